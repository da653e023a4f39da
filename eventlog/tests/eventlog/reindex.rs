use hydra_eventlog::{AllFilter, Direction, EventLog, StreamMetadata};
use hydra_volume::{KeyRange, WriteBatch};

use crate::{fill, open, read_all_of, sid};

/// Everything a reader can ask, as one comparable value.
fn answers(log: &EventLog) -> String {
    let mut out = String::new();
    for s in log.list_streams("") {
        let s = s.unwrap();
        out += &format!("{s:?}\n");
        if s.version.is_some() {
            let events = read_all_of(log, &s.stream);
            out += &format!("{events:?}\n");
            out += &format!("{:?}\n", log.head(&s.stream).unwrap().root);
            let v = events[events.len() / 2].version;
            out += &format!("{:?}\n", log.prove(&s.stream, v).unwrap().1);
            out += &format!("{:?}\n", log.get_event(events[0].id).unwrap());
        }
    }
    let all: Vec<_> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .map(|e| e.unwrap().position)
        .collect();
    out += &format!("{all:?} next {}\n", log.next_position());
    out
}

#[test]
fn a_rebuilt_index_answers_identically() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        fill(&log, &sid(name), 300 * (i as u64 + 1));
    }
    log.set_metadata(
        &sid("b"),
        StreamMetadata {
            truncate_before: Some(100),
            ..Default::default()
        },
    )
    .unwrap();
    log.scavenge().unwrap();
    let before = answers(&log);

    // Wipe every derived index behind the log's back.
    let vol = log.volume().clone();
    for prefix in [&b"sv-0/"[..], b"eid-0/", b"smt-0/"] {
        let mut b = WriteBatch::new();
        for e in vol.scan(KeyRange::prefix(prefix), Direction::Forward) {
            b.delete(e.unwrap().0);
        }
        vol.commit(b).unwrap();
    }
    let report = log.reindex().unwrap();
    assert_eq!(report.streams, 3);
    assert_eq!(answers(&log), before);
    // And it keeps working afterwards.
    fill(&log, &sid("a"), 1);
    drop(vol);
    drop(log);
    let log = open(dir.path());
    assert_eq!(read_all_of(&log, &sid("a")).len(), 301);
}
