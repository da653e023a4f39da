//! Compaction: sealed events' `$all` entries keep their edge records until
//! compaction, some way behind the head, points them at their bundles.
//! Reads never see the difference; at rest (after `close`) no edge copy
//! is left; after a crash the copies are found again; a scavenge racing
//! compaction is not undone by it.

use hydra_eventlog::{
    AllFilter, Direction, EventLog, ExpectedVersion, RecordedEvent, StreamId, StreamMetadata,
    StreamWrite,
};
use hydra_volume::KeyRange;

use crate::{ev, read_all_of, sid};

/// Positions whose `ev-1/` entry still holds the edge record of an event
/// whose bundle is sealed (tag 0: an edge record; then the stream number
/// and version, big-endian), and the compaction mark.
fn edge_copies(log: &EventLog) -> (Vec<u64>, u64) {
    let volume = log.volume();
    let mut copies = Vec::new();
    for e in volume.scan(KeyRange::prefix(b"ev-1/"), Direction::Forward) {
        let (k, v) = e.unwrap();
        if v[0] != 0 {
            continue;
        }
        let n = |b: &[u8]| u64::from_be_bytes(b.try_into().unwrap());
        let (num, version) = (n(&v[1..9]), n(&v[9..17]));
        let bundle = [
            b"bnd-0/".as_slice(),
            &num.to_be_bytes(),
            &(version / 256).to_be_bytes(),
        ]
        .concat();
        if volume.get(&bundle).unwrap().is_some() {
            copies.push(n(&k[5..]));
        }
    }
    let mark = volume
        .get(b"el-compacted-0")
        .unwrap()
        .map_or(0, |b| u64::from_be_bytes(b.try_into().unwrap()));
    (copies, mark)
}

/// `streams` streams appended in turn, one event each per commit,
/// `rounds` times.
fn interleave(log: &EventLog, streams: &[StreamId], rounds: u64, tag: &str) {
    for r in 0..rounds {
        log.append_multi(
            streams
                .iter()
                .map(|s| {
                    StreamWrite::new(
                        s.clone(),
                        ExpectedVersion::Any,
                        vec![ev("E", &format!("{tag}{r}"))],
                    )
                })
                .collect(),
        )
        .unwrap();
    }
}

fn everything(
    log: &EventLog,
    streams: &[StreamId],
) -> (Vec<RecordedEvent>, Vec<Vec<RecordedEvent>>) {
    let all = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .collect::<Result<_, _>>()
        .unwrap();
    (all, streams.iter().map(|s| read_all_of(log, s)).collect())
}

#[test]
fn sealed_events_point_at_their_bundles_once_compaction_passes_and_all_at_rest() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    // 64 streams in turn: each bundle of 256 spreads over 16,384
    // positions; 600 rounds seal two bundles a stream.
    let streams: Vec<StreamId> = (0..64).map(|i| sid(&format!("acct-{i}"))).collect();
    interleave(&log, &streams, 600, "a");
    let next = log.next_position();
    assert_eq!(next, 64 * 600);
    let (copies, mark) = edge_copies(&log);
    assert!(
        mark > 0 && mark < next,
        "compaction has passed part: {mark}"
    );
    assert!(
        copies.iter().all(|p| *p >= mark),
        "no edge copy of a sealed event is left behind compaction"
    );
    assert!(
        !copies.is_empty(),
        "the newest sealed events wait for compaction"
    );
    let before = everything(&log, &streams);
    assert_eq!(before.0.len() as u64, next);
    // Every event reads the same from its edge copy and from its bundle,
    // and proves.
    for (i, s) in streams.iter().enumerate().step_by(13) {
        let e = &before.1[i][300];
        let (head, proof) = log.prove(s, 300).unwrap();
        hydra_eventlog::verify_event(&head, &log.identity().public_key(), e, &proof).unwrap();
        assert_eq!(&log.event_at(e.position).unwrap(), e);
    }
    log.close().unwrap();
    drop(log);
    let log = crate::open(dir.path());
    let (copies, mark) = edge_copies(&log);
    assert_eq!(
        (copies.len(), mark),
        (0, next),
        "closing compacts everything"
    );
    assert_eq!(everything(&log, &streams), before);
    assert!(log.verify(|_| {}).unwrap().corrupt.is_empty());
}

#[test]
fn a_crash_leaves_edge_copies_that_compaction_finds_again() {
    let dir = tempfile::tempdir().unwrap();
    let streams: Vec<StreamId> = (0..64).map(|i| sid(&format!("acct-{i}"))).collect();
    let log = crate::open(dir.path());
    interleave(&log, &streams, 300, "a");
    let (waiting, _) = edge_copies(&log);
    assert!(!waiting.is_empty());
    let before = everything(&log, &streams);
    // Dropped without closing: what compaction kept in memory is gone.
    drop(log);
    let log = crate::open(dir.path());
    assert_eq!(edge_copies(&log).0, waiting);
    assert_eq!(everything(&log, &streams), before);
    // Appends carry compaction past them.
    interleave(&log, &streams, 300, "b");
    let (copies, mark) = edge_copies(&log);
    assert!(waiting.iter().all(|p| *p < mark), "passed all of them");
    assert!(copies.iter().all(|p| *p >= mark));
    log.reindex().unwrap();
    assert_eq!(
        edge_copies(&log).0,
        Vec::<u64>::new(),
        "reindex leaves none"
    );
    assert_eq!(everything(&log, &streams).1[5].len(), 600);
}

#[test]
fn a_scavenge_before_compaction_is_not_undone_by_it() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    let streams: Vec<StreamId> = (0..64).map(|i| sid(&format!("acct-{i}"))).collect();
    interleave(&log, &streams, 300, "a");
    let (waiting, _) = edge_copies(&log);
    assert!(!waiting.is_empty());
    // Scavenge the first 280 events of every stream: whole first bundles
    // (whose positions compaction has not reached) and part of the edge.
    for s in &streams {
        log.set_metadata(
            s,
            StreamMetadata {
                truncate_before: Some(280),
                ..Default::default()
            },
        )
        .unwrap();
    }
    log.scavenge().unwrap();
    log.close().unwrap();
    drop(log);
    let log = crate::open(dir.path());
    let (all, reads) = everything(&log, &streams);
    assert_eq!(all.len(), 64 * 20, "$all holds only what is left");
    assert!(reads.iter().all(|r| r.len() == 20 && r[0].version == 280));
    let entries = log
        .volume()
        .scan(KeyRange::prefix(b"ev-1/"), Direction::Forward)
        .count();
    assert_eq!(entries, 64 * 20, "no entry came back for a scavenged event");
}
