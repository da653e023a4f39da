//! Real libp2p nodes on loopback: followers replicate writers' streams and
//! buckets, verifying everything, and trust no other signer.

mod buckets;
mod liar;
mod streams;

use hydra_eventlog::{EventLog, Options};

pub fn open(dir: &std::path::Path) -> EventLog {
    EventLog::open_dir(dir, Options::default()).unwrap()
}
