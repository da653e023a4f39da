//! The `/hydra/sync/1` messages.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The protocol name.
pub const PROTOCOL: &str = "/hydra/sync/1";
/// Largest response a node accepts (an export of the streams asked for).
pub const MAX_RESPONSE: u64 = 64 << 20;
/// Largest request a node accepts.
pub const MAX_REQUEST: u64 = 64 << 10;
/// Longest a heads request waits for a new append before answering.
pub const HEADS_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    V1(RequestV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestV1 {
    /// The streams under `prefix` and their lengths. With `after`, the
    /// answer waits (up to [`HEADS_WAIT`]) until the log holds position
    /// `after`: a follower passes the `next` of its last answer and hears
    /// of new appends as they commit, without polling.
    Heads { prefix: String, after: Option<u64> },
    /// An export (CARv1) of these streams, each from the version beside
    /// it (the length the asker already holds), with the current head.
    Export { streams: Vec<(String, u64)> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    V1(ResponseV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseV1 {
    /// Stream lengths, and the log position the next append will get.
    Heads {
        heads: Vec<(String, u64)>,
        next: u64,
    },
    Car(ByteBuf),
    Error(String),
}
