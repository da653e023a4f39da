//! Real libp2p nodes on loopback: replicas of writers' buckets take their
//! streams and objects, verifying everything, and trust no other signer.

mod buckets;
mod liar;
mod streams;

use hydra_eventlog::{EventLog, Options};

pub fn open(dir: &std::path::Path) -> EventLog {
    EventLog::open_dir(dir, Options::default()).unwrap()
}

/// A node for `log` that serves every bucket (and so every stream) to
/// every peer, listening on `listen`.
pub async fn serve_all(log: &EventLog, listen: Vec<hydra_net::Multiaddr>) -> hydra_net::Node {
    let serving = hydra_net::Serving::everything(log.store().clone());
    hydra_net::Node::start(log.clone(), serving, listen)
        .await
        .unwrap()
}
