use std::sync::Arc;

use hydra_bucket::{BucketError, BucketName, ErrorKind};
use hydra_volume::VolumeError;
use uuid::Uuid;

use crate::{ExpectedVersion, StreamId, StreamIdError};

/// What went wrong in the event log. Callers branch on the first few
/// (concurrency conflicts, missing or deleted streams); the values in each
/// message are the ones that differ.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("stream {stream} is at version {actual}, expected {expected}", actual = show_actual(*.actual))]
    WrongExpectedVersion {
        stream: StreamId,
        expected: ExpectedVersion,
        /// The stream's last version, `None` when it does not exist.
        actual: Option<u64>,
    },
    #[error("stream {0} does not exist")]
    StreamNotFound(StreamId),
    #[error("stream {stream} is replicated from writer {writer}: append there")]
    Replicated { stream: StreamId, writer: String },
    #[error("stream {stream} is written here, not replicated: an import cannot change it")]
    NotAReplica { stream: StreamId },
    #[error("head of stream {stream} is signed by {signer}, but this replica follows {writer}")]
    OtherWriter {
        stream: StreamId,
        signer: String,
        writer: String,
    },
    #[error(
        "stream {stream}: the events do not lead to the signed head of length {length} (tampered, or the writer signed two histories)"
    )]
    Inconsistent { stream: StreamId, length: u64 },
    #[error("stream {stream}: expected version {expected}, the import gave {found}")]
    ImportGap {
        stream: StreamId,
        expected: u64,
        found: u64,
    },
    #[error("bad signature on the head of stream {0}")]
    BadHeadSignature(StreamId),
    #[error("stream {0} is deleted (tombstoned) and can never be written or read again")]
    StreamDeleted(StreamId),
    #[error(transparent)]
    BadStreamId(#[from] StreamIdError),
    #[error("event type {0:?} is invalid: it must be 1 to 256 bytes")]
    BadEventType(String),
    #[error("event id {id} appears twice in one append")]
    DuplicateInAppend { id: Uuid },
    #[error("event id {id} was already appended to stream {stream} at version {version}")]
    DuplicateEventId {
        id: Uuid,
        stream: StreamId,
        version: u64,
    },
    #[error("an append needs at least one event")]
    EmptyAppend,
    #[error("stream {stream} appears twice in one multi-stream append")]
    DuplicateStreamInAppend { stream: StreamId },
    #[error("event {0} not found")]
    EventNotFound(Uuid),
    #[error("no event at position {0}")]
    NoSuchPosition(u64),
    #[error("stream {stream} has no version {version} (its length is {length})")]
    NoSuchVersion {
        stream: StreamId,
        version: u64,
        length: u64,
    },
    #[error(
        "event {version} of stream {stream} was scavenged: the head still commits to it, but its contents are gone"
    )]
    Scavenged { stream: StreamId, version: u64 },
    #[error(
        "the given head of length {length} is not a past state of stream {stream}: its root differs"
    )]
    HeadMismatch { stream: StreamId, length: u64 },
    #[error("head of length {old} cannot be proved against a head of length {new}")]
    BadHeadOrder { old: u64, new: u64 },
    #[error("subscription {0:?} does not exist")]
    SubscriptionNotFound(String),
    #[error("subscription {0:?} already exists")]
    SubscriptionExists(String),
    #[error(
        "ack of position {ack} on subscription {name:?} is beyond what it delivered ({delivered:?})"
    )]
    AckBeyondDelivered {
        name: String,
        ack: u64,
        delivered: Option<u64>,
    },
    #[error("no snapshot of stream {stream}{at}", at = .at.map(|v| format!(" at or before version {v}")).unwrap_or_default())]
    SnapshotNotFound { stream: StreamId, at: Option<u64> },
    #[error(
        "bucket {bucket} holds the events of {count} stream{s} ({first}): delete and scavenge them first, or they go with it",
        s = if *.count == 1 { "" } else { "s" }
    )]
    BucketHoldsStreams {
        bucket: String,
        count: u64,
        first: String,
    },
    #[error("the storage of stream {stream} is not what its writer signed: {reason}")]
    StoredMismatch { stream: StreamId, reason: String },
    #[error("events {first} to {last} of stream {stream} are corrupt: {reason}")]
    CorruptBundle {
        stream: String,
        first: u64,
        last: u64,
        reason: String,
    },
    #[error("event {version} of stream {stream} is corrupt: {reason}")]
    CorruptEvent {
        stream: String,
        version: u64,
        reason: String,
    },
    #[error(
        "stream {stream} is in bucket {bucket}, not {asked}: a stream's bucket is fixed when it is created"
    )]
    OtherBucket {
        stream: StreamId,
        bucket: String,
        asked: String,
    },
    #[error(
        "stream {stream} has partition key {key}, not {asked}: a stream's partition key is fixed when it is created"
    )]
    OtherPartition {
        stream: StreamId,
        key: uuid::Uuid,
        asked: uuid::Uuid,
    },
    #[error("the head of stream {stream} is signed by {signer}, who is not a trusted writer")]
    UntrustedWriter { stream: StreamId, signer: String },
    #[error(
        "stream {stream} is in bucket {writer} at its writer, sealed otherwise than bucket {bucket} here: create {bucket} with the same transforms and key"
    )]
    OtherTransforms {
        stream: StreamId,
        bucket: BucketName,
        writer: BucketName,
    },
    #[error("stored {what} is unreadable: {reason}")]
    Corrupt { what: String, reason: String },
    /// A file given to import that is not an export (or not there): bad
    /// input, where [`Error::Corrupt`] is stored data gone bad.
    #[error("not an export hydra can import: {0}")]
    BadImport(String),
    #[error("the event log is closed")]
    Closed,
    #[error(transparent)]
    Volume(Arc<VolumeError>),
    #[error(transparent)]
    Bucket(Arc<BucketError>),
}

fn show_actual(actual: Option<u64>) -> String {
    actual.map_or_else(|| "none (no stream)".to_owned(), |v| v.to_string())
}

// Storage errors are shared (`Arc`): one failed group commit answers
// every appender in the group with the same error.
impl From<VolumeError> for Error {
    fn from(e: VolumeError) -> Error {
        Error::Volume(Arc::new(e))
    }
}

impl From<BucketError> for Error {
    fn from(e: BucketError) -> Error {
        Error::Bucket(Arc::new(e))
    }
}

impl Error {
    /// What kind of failure this is (see [`ErrorKind`]).
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::WrongExpectedVersion { .. } => ErrorKind::WrongExpectedVersion,
            Error::DuplicateEventId { .. }
            | Error::SubscriptionExists(_)
            | Error::Replicated { .. }
            | Error::NotAReplica { .. }
            | Error::OtherWriter { .. }
            | Error::Inconsistent { .. }
            | Error::OtherBucket { .. }
            | Error::OtherPartition { .. }
            | Error::BucketHoldsStreams { .. } => ErrorKind::Conflict,
            Error::StreamNotFound(_)
            | Error::EventNotFound(_)
            | Error::NoSuchPosition(_)
            | Error::NoSuchVersion { .. }
            | Error::SubscriptionNotFound(_)
            | Error::SnapshotNotFound { .. } => ErrorKind::NotFound,
            Error::StreamDeleted(_) | Error::Scavenged { .. } => ErrorKind::Gone,
            Error::ImportGap { .. }
            | Error::BadHeadSignature(_)
            | Error::BadStreamId(_)
            | Error::BadEventType(_)
            | Error::DuplicateInAppend { .. }
            | Error::EmptyAppend
            | Error::DuplicateStreamInAppend { .. }
            | Error::BadHeadOrder { .. }
            | Error::HeadMismatch { .. }
            | Error::AckBeyondDelivered { .. }
            | Error::BadImport(_) => ErrorKind::Invalid,
            Error::Closed => ErrorKind::Unavailable,
            Error::Bucket(b) => b.kind(),
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let s = StreamId::new("order-1").unwrap();
        assert_eq!(
            Error::WrongExpectedVersion {
                stream: s.clone(),
                expected: ExpectedVersion::Exact(3),
                actual: Some(5)
            }
            .to_string(),
            "stream order-1 is at version 5, expected 3"
        );
        assert_eq!(
            Error::WrongExpectedVersion {
                stream: s.clone(),
                expected: ExpectedVersion::StreamExists,
                actual: None
            }
            .to_string(),
            "stream order-1 is at version none (no stream), expected stream_exists"
        );
        assert_eq!(
            Error::SnapshotNotFound {
                stream: s.clone(),
                at: Some(9)
            }
            .to_string(),
            "no snapshot of stream order-1 at or before version 9"
        );
        assert_eq!(
            Error::SnapshotNotFound {
                stream: s,
                at: None
            }
            .to_string(),
            "no snapshot of stream order-1"
        );
        assert_eq!(
            Error::CorruptEvent {
                stream: "order-1".into(),
                version: 4,
                reason: "its bytes do not hash to its Merkle leaf (changed on disk)".into()
            }
            .to_string(),
            "event 4 of stream order-1 is corrupt: its bytes do not hash to its Merkle leaf (changed on disk)"
        );
        assert_eq!(
            Error::StoredMismatch {
                stream: StreamId::new("patient-1").unwrap(),
                reason: "the block of events from 0 is missing".into()
            }
            .to_string(),
            "the storage of stream patient-1 is not what its writer signed: the block of events from 0 is missing"
        );
        assert_eq!(
            Error::BucketHoldsStreams {
                bucket: "vault".into(),
                count: 1,
                first: "patient-1".into()
            }
            .to_string(),
            "bucket vault holds the events of 1 stream (patient-1): delete and scavenge them first, or they go with it"
        );
        assert_eq!(
            Error::OtherBucket {
                stream: StreamId::new("patient-1").unwrap(),
                bucket: "vault".into(),
                asked: "default".into()
            }
            .to_string(),
            "stream patient-1 is in bucket vault, not default: a stream's bucket is fixed when it is created"
        );
    }
}
