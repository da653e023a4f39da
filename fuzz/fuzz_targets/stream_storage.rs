//! A stream's storage as a peer or an export file hands it over: a
//! storage block and edge blocks from untrusted bytes, checked against an
//! in-memory store: never panics, and nothing that fails is applied.
#![no_main]

use std::sync::{Arc, OnceLock};

use hydra_eventlog::{EventLog, Options, Received};

fn log() -> &'static EventLog {
    static LOG: OnceLock<EventLog> = OnceLock::new();
    LOG.get_or_init(|| {
        let volume = Arc::new(hydra_volume::MemVolume::new());
        let store = hydra_bucket::Store::open(volume).expect("a store in memory");
        EventLog::open(store, Options::default()).expect("a log in memory")
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    // The first two bytes say where the storage block ends; the rest are
    // edge blocks of up to 255 bytes, each after its length.
    let Some((len, rest)) = data.split_first_chunk::<2>() else {
        return;
    };
    let (root, mut rest) = rest.split_at(usize::from(u16::from_le_bytes(*len)).min(rest.len()));
    let mut edges = Vec::new();
    while let Some((n, tail)) = rest.split_first() {
        let (edge, tail) = tail.split_at(usize::from(*n).min(tail.len()));
        edges.push(edge.to_vec());
        rest = tail;
    }
    let received = Received {
        root,
        edges: &edges,
    };
    if log().check_storage(received, &[]).is_err() {
        assert!(log().apply_storage(received, &[]).is_err());
    }
});
