//! The open edge: the positions of a stream's records on the edge live in
//! its state (the open bundle's, and those of a full one waiting to be
//! sealed); an edge record that stays (its bundle cannot be sealed) has
//! one `sv-0/` entry instead; a sealed bundle's records have none. Reads,
//! proofs, verify, reindex and reopen answer the same whichever holds a
//! record's position.

use hydra_eventlog::{
    Direction, EventLog, ExpectedVersion, RecordedEvent, StreamId, StreamWrite, verify_event,
};
use hydra_volume::KeyRange;

use crate::{ev, fill, read_all_of, sid};

/// How many `sv-0/` entries the volume holds.
fn indexed(log: &EventLog) -> usize {
    log.volume()
        .scan(KeyRange::prefix(b"sv-0/"), Direction::Forward)
        .count()
}

/// Every stream read both ways, its first, a middle and its last event
/// proved, and the whole log verified.
fn answers(log: &EventLog, streams: &[StreamId]) -> Vec<Vec<RecordedEvent>> {
    let key = log.identity().public_key();
    let mut out = Vec::new();
    for s in streams {
        let forward = read_all_of(log, s);
        let mut backward: Vec<RecordedEvent> = log
            .read(
                s,
                hydra_eventlog::ReadFrom::Edge,
                u64::MAX,
                Direction::Backward,
            )
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        backward.reverse();
        assert_eq!(forward, backward, "{s} both ways");
        for e in [
            &forward[0],
            &forward[forward.len() / 2],
            &forward[forward.len() - 1],
        ] {
            let (head, proof) = log.prove(s, e.version).unwrap();
            verify_event(&head, &key, e, &proof).unwrap();
        }
        out.push(forward);
    }
    let report = log.verify(|_| {}).unwrap();
    assert!(report.corrupt.is_empty(), "{report:?}");
    out
}

#[test]
fn the_open_edge_is_indexed_by_the_state_and_what_stays_by_sv0() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    let (a, b, c) = (sid("edge-a"), sid("edge-b"), sid("edge-c"));
    fill(&log, &a, 200);
    fill(&log, &b, 200);
    assert_eq!(indexed(&log), 0, "open bundles need no index entries");

    // One commit fills both bundles; it seals one (a commit seals at most
    // one bundle whose records were already on the edge), the other waits
    // for the next commit, still on its stream's open edge.
    let more = |s: &StreamId| {
        let events = (200..300).map(|i| ev("Filled", &format!("{{\"i\":{i}}}")));
        StreamWrite::new(s.clone(), ExpectedVersion::Any, events.collect())
    };
    for r in log.write_each(vec![more(&a), more(&b)]) {
        r.unwrap();
    }
    assert_eq!(indexed(&log), 0);
    let before = answers(&log, &[a.clone(), b.clone()]);
    assert_eq!(before[1].len(), 300);
    // The next commit seals it; so does a crash and reopen in between.
    log.close().unwrap();
    drop(log);
    let log = crate::open(dir.path());
    assert_eq!(answers(&log, &[a.clone(), b.clone()]), before);
    fill(&log, &c, 1);
    assert_eq!(indexed(&log), 0);
    assert_eq!(log.verify(|_| {}).unwrap().bundles, 2);
    assert_eq!(answers(&log, &[a.clone(), b.clone()]), before);

    // A bundle spread over more than 65,536 positions is never sealed:
    // its records stay on the edge, indexed.
    let d = sid("edge-d");
    fill(&log, &d, 1);
    fill(&log, &c, 70_000);
    fill(&log, &d, 299);
    assert_eq!(indexed(&log), 256, "d's first bundle, and nothing else");
    let before = answers(&log, &[a.clone(), b.clone(), d.clone()]);
    fill(&log, &d, 300);
    assert_eq!(indexed(&log), 256);

    // Reindexed (which indexes every edge record in sv-0/): the same
    // answers, and appends go on across the next boundary.
    log.reindex().unwrap();
    // a and b: 44 each; c: 70,001 % 256; d: its first bundle and 88.
    let on_edge = 2 * 44 + 70_001 % 256 + 256 + 88;
    assert_eq!(indexed(&log), on_edge, "every edge record");
    let d_then = read_all_of(&log, &d);
    assert_eq!(d_then[..300], before[2][..]);
    assert_eq!(answers(&log, &[a.clone(), b.clone()])[..], before[..2]);
    // c's bundle fills from records written together: sealed, its index
    // entries go. a's spans c's 70,000: it stays, indexed whole.
    fill(&log, &c, 300);
    assert_eq!(indexed(&log), on_edge - 113);
    fill(&log, &a, 300);
    assert_eq!(indexed(&log), on_edge - 113 + (256 - 44));
    let after = answers(&log, &[a.clone(), b.clone(), c.clone(), d.clone()]);
    assert_eq!(after[0].len(), 600);
    assert_eq!(after[0][..300], before[0][..]);
    assert_eq!(after[2].len(), 70_301);
    assert_eq!(after[3], d_then);
}
