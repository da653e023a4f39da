//! The open edge: the positions of a stream's open bundle live in its
//! state; every other edge record (of a full bundle waiting to be sealed,
//! or one that cannot be) has one `sv-0/` entry; a sealed bundle's
//! records have none. Reads, proofs, verify, reindex and reopen answer
//! the same whichever holds a record's position.

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
fn the_open_bundle_is_indexed_by_its_state_and_a_waiting_one_by_sv0() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    let (a, b, c) = (sid("edge-a"), sid("edge-b"), sid("edge-c"));
    fill(&log, &a, 200);
    fill(&log, &b, 200);
    assert_eq!(indexed(&log), 0, "open bundles need no index entries");

    // One commit fills both bundles; it seals one (a commit seals at most
    // one bundle whose records were already on the edge), the other waits,
    // indexed, for the next commit.
    let more = |s: &StreamId| {
        let events = (200..300).map(|i| ev("Filled", &format!("{{\"i\":{i}}}")));
        StreamWrite::new(s.clone(), ExpectedVersion::Any, events.collect())
    };
    for r in log.write_each(vec![more(&a), more(&b)]) {
        r.unwrap();
    }
    assert_eq!(indexed(&log), 256, "the waiting bundle, and nothing else");
    let before = answers(&log, &[a.clone(), b.clone()]);
    assert_eq!(before[1].len(), 300);

    // The next commit seals it: its entries go.
    fill(&log, &c, 1);
    assert_eq!(indexed(&log), 0);
    assert_eq!(answers(&log, &[a.clone(), b.clone()]), before);

    // Reopened, and reindexed (which indexes every edge record in sv-0/):
    // the same answers, and appends go on across the next boundary.
    log.close().unwrap();
    drop(log);
    let log = crate::open(dir.path());
    assert_eq!(answers(&log, &[a.clone(), b.clone()]), before);
    log.reindex().unwrap();
    assert_eq!(indexed(&log), 2 * 44 + 1, "every edge record");
    assert_eq!(answers(&log, &[a.clone(), b.clone()]), before);
    fill(&log, &a, 300);
    fill(&log, &b, 300);
    let after = answers(&log, &[a.clone(), b.clone()]);
    assert_eq!(after[0].len(), 600);
    assert_eq!(after[0][..300], before[0][..]);
    assert_eq!(indexed(&log), 1, "only c's record, from the reindex");
}
