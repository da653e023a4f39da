//! Integration tests of hydra-eventlog on real volumes.

mod append;
mod buckets;
mod compaction;
mod concurrency;
mod crash;
mod edge;
mod model;
mod partitions;
mod proofs;
mod read;
mod reindex;
mod retention;
mod snapshots;
mod subscribe;
mod transfer;

use hydra_eventlog::{
    Direction, EventLog, ExpectedVersion, NewEvent, Options, ReadFrom, RecordedEvent, StreamId,
};

pub fn open(dir: &std::path::Path) -> EventLog {
    EventLog::open_dir(dir, Options::default()).unwrap()
}

pub fn sid(s: &str) -> StreamId {
    StreamId::new(s).unwrap()
}

pub fn ev(t: &str, data: &str) -> NewEvent {
    NewEvent::new(t, data.as_bytes().to_vec())
}

/// Appends `n` events of type `t` to `stream`.
pub fn fill(log: &EventLog, stream: &StreamId, n: u64) {
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let events = chunk
            .iter()
            .map(|i| ev("Filled", &format!("{{\"i\":{i}}}")))
            .collect();
        log.append(stream, ExpectedVersion::Any, events).unwrap();
    }
}

pub fn read_all_of(log: &EventLog, stream: &StreamId) -> Vec<RecordedEvent> {
    log.read(stream, ReadFrom::Edge, u64::MAX, Direction::Forward)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}
