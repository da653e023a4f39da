//! [`EventStore`]: what an application does with events, whether the log
//! runs in its own process ([`EventLog`]) or behind a `hydra daemon` (the
//! `hydra-client` crate). Code written against it runs either way, unchanged:
//! the `hydra` CLI's stream, event and snapshot commands, and the bank
//! example, are each one body for both.
//!
//! ```text
//!              application code (generic over S: EventStore)
//!                 /                                   \
//!        EventLog (this process)              hydra_client::Client
//!        answers on the calling thread         HTTP to a daemon, which
//!                                              runs an EventLog
//! ```
//!
//! The methods are async because a remote store is; the embedded one does
//! its work when the future is first polled, on the calling thread (an
//! async server calls it from a blocking task, as the daemon does). Reads
//! and subscriptions are streams in both: a read of a million events holds
//! a page at a time, in this process or over the wire.

use std::future::Future;

use futures_core::Stream;
use futures_util::stream;
use hydra_block::Ref;
use hydra_bucket::StoreError;
use uuid::Uuid;

use crate::{
    AllFilter, AppendResult, ConsistencyProof, Direction, Error, ErrorKind, EventLog,
    ExpectedVersion, Head, InclusionProof, ReadFrom, RecordedEvent, ReindexReport, ScavengeReport,
    Snapshot, SnapshotInfo, StreamId, StreamInfo, StreamMetadata, StreamWrite, Target,
};

/// An [`EventStore`]'s error (a [`StoreError`]): whatever it says, its
/// [`ErrorKind`] is what callers act on (a conflict to retry from fresh
/// state, a stream that is not there yet), the same for every store.
impl StoreError for Error {
    fn kind(&self) -> ErrorKind {
        Error::kind(self)
    }
}

/// Which events of a stream a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRead {
    pub from: ReadFrom,
    /// Most events.
    pub count: u64,
    pub direction: Direction,
    /// Read the stream as it was at this many events (time travel).
    pub at_length: Option<u64>,
}

impl StreamRead {
    /// The whole stream, first event first.
    pub fn forward() -> StreamRead {
        StreamRead {
            from: ReadFrom::Edge,
            count: u64::MAX,
            direction: Direction::Forward,
            at_length: None,
        }
    }

    /// From `version` on.
    pub fn from_version(version: u64) -> StreamRead {
        StreamRead {
            from: ReadFrom::Version(version),
            ..StreamRead::forward()
        }
    }
}

/// Which events of `$all` a read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllRead {
    /// The first position (inclusive); the first or last event when `None`.
    pub from: Option<u64>,
    /// Most events.
    pub count: u64,
    pub direction: Direction,
    pub filter: AllFilter,
}

/// An event with the proof that it is in the stream its head signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvedEvent {
    pub head: Head,
    pub proof: InclusionProof,
    /// Its payloads exactly as stored: what the proof covers.
    pub event: RecordedEvent,
}

/// Two heads of a stream and the proof that the older is a prefix of the
/// newer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvedPrefix {
    pub old_head: Head,
    pub head: Head,
    pub proof: ConsistencyProof,
}

/// Appends, reads both ways, `$all`, subscriptions, streams, snapshots,
/// proofs and maintenance: what both an embedded log and a daemon do. The
/// semantics are [`EventLog`]'s: see its methods of the same names.
pub trait EventStore: Send + Sync {
    type Error: StoreError;

    /// Appends atomically (expected version, idempotent event ids,
    /// the bucket of a new stream).
    fn write(
        &self,
        write: StreamWrite,
    ) -> impl Future<Output = Result<AppendResult, Self::Error>> + Send;

    /// A stream's events; a read that cannot start fails as the first item.
    fn read(
        &self,
        stream: &StreamId,
        read: StreamRead,
    ) -> impl Stream<Item = Result<RecordedEvent, Self::Error>> + Send + 'static;

    /// `$all`: every stream's events in one global order.
    fn read_all(
        &self,
        read: AllRead,
    ) -> impl Stream<Item = Result<RecordedEvent, Self::Error>> + Send + 'static;

    /// Catches up from `from` (a version, or a position for `$all`; now
    /// when `None`), then goes live; never ends by itself.
    fn subscribe(
        &self,
        target: Target,
        from: Option<u64>,
    ) -> impl Stream<Item = Result<RecordedEvent, Self::Error>> + Send + 'static;

    fn get_event(
        &self,
        id: Uuid,
    ) -> impl Future<Output = Result<RecordedEvent, Self::Error>> + Send;

    fn list_streams(
        &self,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<StreamInfo>, Self::Error>> + Send;

    /// The version of the stream's last event; `None` when it has none.
    fn stream_version(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Option<u64>, Self::Error>> + Send;

    fn delete(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        hard: bool,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    fn metadata(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<StreamMetadata, Self::Error>> + Send;

    fn set_metadata(
        &self,
        stream: &StreamId,
        metadata: StreamMetadata,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    fn save_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        data: Vec<u8>,
        metadata: Vec<u8>,
    ) -> impl Future<Output = Result<Ref, Self::Error>> + Send;

    /// The latest snapshot at or before `at` (the latest when `None`).
    fn load_snapshot(
        &self,
        stream: &StreamId,
        at: Option<u64>,
    ) -> impl Future<Output = Result<Snapshot, Self::Error>> + Send;

    fn list_snapshots(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<Vec<SnapshotInfo>, Self::Error>> + Send;

    /// Whether there was a snapshot at `version`.
    fn delete_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// How many snapshots there were.
    fn delete_snapshots(
        &self,
        stream: &StreamId,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// The signed head now, or at `length` events.
    fn head(
        &self,
        stream: &StreamId,
        length: Option<u64>,
    ) -> impl Future<Output = Result<Head, Self::Error>> + Send;

    fn prove(
        &self,
        stream: &StreamId,
        version: u64,
    ) -> impl Future<Output = Result<ProvedEvent, Self::Error>> + Send;

    /// The head at `from_length` proved a prefix of the head now.
    fn prove_prefix(
        &self,
        stream: &StreamId,
        from_length: u64,
    ) -> impl Future<Output = Result<ProvedPrefix, Self::Error>> + Send;

    fn scavenge(&self) -> impl Future<Output = Result<ScavengeReport, Self::Error>> + Send;

    fn reindex(&self) -> impl Future<Output = Result<ReindexReport, Self::Error>> + Send;
}

/// A blocking iterator as a stream, a failed start as its one item.
fn events<I>(
    start: Result<I, Error>,
) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static
where
    I: Iterator<Item = Result<RecordedEvent, Error>> + Send + 'static,
{
    let items: Box<dyn Iterator<Item = Result<RecordedEvent, Error>> + Send> = match start {
        Ok(events) => Box::new(events),
        Err(e) => Box::new(std::iter::once(Err(e))),
    };
    stream::iter(items)
}

impl EventStore for EventLog {
    type Error = Error;

    async fn write(&self, write: StreamWrite) -> Result<AppendResult, Error> {
        EventLog::write(self, write)
    }

    fn read(
        &self,
        stream: &StreamId,
        r: StreamRead,
    ) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static {
        events(match r.at_length {
            Some(length) => self.read_at(stream, length, r.from, r.count, r.direction),
            None => EventLog::read(self, stream, r.from, r.count, r.direction),
        })
    }

    fn read_all(
        &self,
        r: AllRead,
    ) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static {
        events(Ok(EventLog::read_all(
            self,
            r.from,
            r.count,
            r.direction,
            r.filter,
        )))
    }

    fn subscribe(
        &self,
        target: Target,
        from: Option<u64>,
    ) -> impl Stream<Item = Result<RecordedEvent, Error>> + Send + 'static {
        events(EventLog::subscribe(self, target, from))
    }

    async fn get_event(&self, id: Uuid) -> Result<RecordedEvent, Error> {
        EventLog::get_event(self, id)
    }

    async fn list_streams(&self, prefix: &str) -> Result<Vec<StreamInfo>, Error> {
        EventLog::list_streams(self, prefix).collect()
    }

    async fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, Error> {
        EventLog::stream_version(self, stream)
    }

    async fn delete(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        hard: bool,
    ) -> Result<(), Error> {
        EventLog::delete(self, stream, expected, hard)
    }

    async fn metadata(&self, stream: &StreamId) -> Result<StreamMetadata, Error> {
        EventLog::metadata(self, stream)
    }

    async fn set_metadata(&self, stream: &StreamId, metadata: StreamMetadata) -> Result<(), Error> {
        EventLog::set_metadata(self, stream, metadata)
    }

    async fn save_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        data: Vec<u8>,
        metadata: Vec<u8>,
    ) -> Result<Ref, Error> {
        EventLog::save_snapshot(self, stream, version, data, metadata)
    }

    async fn load_snapshot(&self, stream: &StreamId, at: Option<u64>) -> Result<Snapshot, Error> {
        EventLog::load_snapshot(self, stream, at)
    }

    async fn list_snapshots(&self, stream: &StreamId) -> Result<Vec<SnapshotInfo>, Error> {
        EventLog::list_snapshots(self, stream)
    }

    async fn delete_snapshot(&self, stream: &StreamId, version: u64) -> Result<bool, Error> {
        EventLog::delete_snapshot(self, stream, version)
    }

    async fn delete_snapshots(&self, stream: &StreamId) -> Result<u64, Error> {
        EventLog::delete_snapshots(self, stream).map(|n| n as u64)
    }

    async fn head(&self, stream: &StreamId, length: Option<u64>) -> Result<Head, Error> {
        match length {
            Some(l) => self.head_at(stream, l),
            None => EventLog::head(self, stream),
        }
    }

    async fn prove(&self, stream: &StreamId, version: u64) -> Result<ProvedEvent, Error> {
        let (head, proof) = EventLog::prove(self, stream, version)?;
        let event = EventLog::read(
            self,
            stream,
            ReadFrom::Version(version),
            1,
            Direction::Forward,
        )?
        .next()
        .transpose()?
        .ok_or(Error::NoSuchVersion {
            stream: stream.clone(),
            version,
            length: head.length,
        })?;
        Ok(ProvedEvent { head, proof, event })
    }

    async fn prove_prefix(
        &self,
        stream: &StreamId,
        from_length: u64,
    ) -> Result<ProvedPrefix, Error> {
        // A length the stream never had is not found, as for a head.
        let old_head = self.head_at(stream, from_length)?;
        let head = EventLog::head(self, stream)?;
        let proof = self.prove_consistency(stream, from_length, head.length)?;
        Ok(ProvedPrefix {
            old_head,
            head,
            proof,
        })
    }

    async fn scavenge(&self) -> Result<ScavengeReport, Error> {
        EventLog::scavenge(self)
    }

    async fn reindex(&self) -> Result<ReindexReport, Error> {
        EventLog::reindex(self)
    }
}
