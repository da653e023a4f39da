//! The `/hydra/sync/1` messages.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The protocol name.
pub const PROTOCOL: &str = "/hydra/sync/1";
/// Largest response a node accepts (an export of the streams asked for).
pub const MAX_RESPONSE: u64 = 64 << 20;
/// Largest request a node accepts.
pub const MAX_REQUEST: u64 = 64 << 10;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    V1(RequestV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestV1 {
    /// The streams under `prefix` and their lengths.
    Heads { prefix: String },
    /// An export (CARv1) of these streams.
    Export { streams: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    V1(ResponseV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseV1 {
    Heads(Vec<(String, u64)>),
    Car(ByteBuf),
    Error(String),
}
