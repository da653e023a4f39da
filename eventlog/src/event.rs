//! Events going in and coming out, and the options of appends and reads.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StreamId;

/// Longest event type, in bytes.
pub const MAX_EVENT_TYPE: usize = 256;

/// An event to append.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NewEvent {
    /// Client-chosen id, for idempotent retries. `None`: the log assigns a
    /// time-ordered UUID that carries the event's global position, so it
    /// needs no index entry (see `event_id.rs`).
    pub id: Option<Uuid>,
    pub event_type: String,
    /// The payload: bytes, often JSON.
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    /// Milliseconds since the Unix epoch; `None`: the time of the append.
    pub timestamp: Option<u64>,
}

impl NewEvent {
    pub fn new(event_type: impl Into<String>, data: impl Into<Vec<u8>>) -> NewEvent {
        NewEvent {
            event_type: event_type.into(),
            data: data.into(),
            ..NewEvent::default()
        }
    }

    pub fn with_id(mut self, id: Uuid) -> NewEvent {
        self.id = Some(id);
        self
    }

    pub fn with_metadata(mut self, metadata: impl Into<Vec<u8>>) -> NewEvent {
        self.metadata = metadata.into();
        self
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub id: Uuid,
    pub stream: StreamId,
    /// 0-based, gapless within the stream.
    pub version: u64,
    /// 0-based, gapless across the store: the `$all` order.
    pub position: u64,
    pub event_type: String,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    /// Milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// What an append expects of the stream, checked atomically with the
/// write (optimistic concurrency, as in KurrentDB).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// No check.
    #[default]
    Any,
    /// The stream must not exist (or be soft-deleted).
    NoStream,
    /// The stream must exist.
    StreamExists,
    /// The stream's last event must have this version.
    Exact(u64),
}

impl std::fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::StreamExists => f.write_str("stream_exists"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

impl std::str::FromStr for ExpectedVersion {
    type Err = String;
    fn from_str(s: &str) -> Result<ExpectedVersion, String> {
        match s {
            "any" => Ok(ExpectedVersion::Any),
            "no_stream" | "no-stream" | "empty" => Ok(ExpectedVersion::NoStream),
            "exists" | "stream_exists" | "stream-exists" => Ok(ExpectedVersion::StreamExists),
            n => n.parse().map(ExpectedVersion::Exact).map_err(|_| {
                format!("expected version {s:?}: use any, no_stream, exists or a number")
            }),
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendResult {
    /// Version of the first event written.
    pub first_version: u64,
    /// Version of the last event written: the stream's version now.
    pub version: u64,
    /// Global position of the first event written.
    pub first_position: u64,
    /// Global position of the last event written.
    pub position: u64,
    /// The stream's partition (see [`partition_of`](crate::partition_of)).
    pub partition: u16,
    /// The first event's sequence in the partition; the others follow it.
    pub first_partition_sequence: u64,
}

/// Which way a read runs.
pub use hydra_volume::Direction;

/// Where a stream read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFrom {
    /// The first event (forwards) or the last (backwards).
    Edge,
    /// This version (inclusive).
    Version(u64),
}

/// Filters of a `$all` read or subscription.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AllFilter {
    /// Only streams whose id starts with this.
    pub stream_prefix: Option<String>,
    /// Only these event types (any, when empty).
    pub event_types: Vec<String>,
}

impl AllFilter {
    pub fn matches(&self, e: &RecordedEvent) -> bool {
        self.stream_prefix
            .as_deref()
            .is_none_or(|p| e.stream.as_str().starts_with(p))
            && (self.event_types.is_empty() || self.event_types.contains(&e.event_type))
    }
}

/// A stream's metadata (KurrentDB's `$maxCount`, `$maxAge`, `$tb`), plus
/// free-form JSON for the application. (No field may be skipped when
/// serialising: the stream state stores it with postcard, which is not
/// self-describing.)
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamMetadata {
    /// Keep only the last N events visible.
    #[serde(default)]
    pub max_count: Option<u64>,
    /// Hide events older than this many seconds.
    #[serde(default)]
    pub max_age: Option<u64>,
    /// Hide events before this version.
    #[serde(default)]
    pub truncate_before: Option<u64>,
    /// Application metadata as JSON text.
    #[serde(default)]
    pub custom: Option<String>,
}

/// When an acknowledged append is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DurabilityMode {
    /// fsync before acknowledging; concurrent appends share one commit
    /// (group commit).
    #[default]
    Sync,
    /// Acknowledge at commit; fsync every `interval` or after `bytes`
    /// bytes, whichever comes first.
    Async {
        interval: std::time::Duration,
        bytes: u64,
    },
    /// Acknowledge at commit; fsync only at close. A process crash loses
    /// nothing, a machine crash loses what the OS had not written.
    None,
}

impl DurabilityMode {
    /// `async` with its defaults: every 100 ms or 8 MiB.
    pub fn async_default() -> DurabilityMode {
        DurabilityMode::Async {
            interval: std::time::Duration::from_millis(100),
            bytes: 8 << 20,
        }
    }
}

impl std::str::FromStr for DurabilityMode {
    type Err = String;
    fn from_str(s: &str) -> Result<DurabilityMode, String> {
        match s {
            "sync" => Ok(DurabilityMode::Sync),
            "async" => Ok(DurabilityMode::async_default()),
            "none" => Ok(DurabilityMode::None),
            other => Err(format!("durability {other:?}: use sync, async or none")),
        }
    }
}
