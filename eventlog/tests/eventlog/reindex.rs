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

/// A stream whose later bundle is sealed while an earlier one still waits
/// in the sealing queue (on the edge) reindexes in version order.
#[test]
fn a_bundle_sealed_before_an_earlier_one_reindexes() {
    use hydra_eventlog::{ExpectedVersion, StreamWrite};
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let (a, b) = (sid("early"), sid("late"));
    fill(&log, &a, 200);
    fill(&log, &b, 200);
    // One commit completes both first bundles: one is sealed, the other
    // queued.
    log.append_multi(
        [&a, &b]
            .iter()
            .map(|s| {
                StreamWrite::new(
                    (*s).clone(),
                    ExpectedVersion::Any,
                    (0..56).map(|i| crate::ev("E", &format!("{i}"))).collect(),
                )
            })
            .collect(),
    )
    .unwrap();
    // A whole second bundle for each, sealed in the commit that writes it,
    // while a first bundle still waits.
    for s in [&a, &b] {
        log.append(
            s,
            ExpectedVersion::Any,
            (0..256).map(|i| crate::ev("E", &format!("{i}"))).collect(),
        )
        .unwrap();
    }
    let before = answers(&log);
    log.reindex().unwrap();
    assert_eq!(answers(&log), before);
    for s in [&a, &b] {
        assert_eq!(read_all_of(&log, s).len(), 512);
    }
}

/// A reindex that meets a corrupt record fails before it changes any
/// index: retries of client-chosen ids still find their events.
#[test]
fn a_reindex_that_finds_a_corrupt_record_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let id = uuid::Uuid::new_v4();
    let mut first = crate::ev("Placed", "{}");
    first.id = Some(id);
    log.append(
        &sid("order-1"),
        hydra_eventlog::ExpectedVersion::Any,
        vec![first.clone()],
    )
    .unwrap();
    fill(&log, &sid("order-2"), 10);
    let before = answers(&log);
    // Flip a byte of order-2's last record, on the edge.
    let vol = log.volume().clone();
    let (k, mut v) = vol
        .scan(KeyRange::prefix(b"ev-1/"), Direction::Backward)
        .next()
        .unwrap()
        .unwrap();
    *v.last_mut().unwrap() ^= 1;
    vol.put(&k, &v).unwrap();

    let err = log.reindex().unwrap_err();
    assert!(err.to_string().contains("order-2"), "{err}");
    // The retry is recognised: nothing was drained.
    let again = log
        .append(
            &sid("order-1"),
            hydra_eventlog::ExpectedVersion::Any,
            vec![first],
        )
        .unwrap();
    assert_eq!(again.version, 0);
    assert_eq!(read_all_of(&log, &sid("order-1")).len(), 1);
    // Repaired, it answers as before.
    *v.last_mut().unwrap() ^= 1;
    vol.put(&k, &v).unwrap();
    log.reindex().unwrap();
    assert_eq!(answers(&log), before);
}
