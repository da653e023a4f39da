//! The event log: an embedded event store whose streams are signed
//! Merkle trees.
//!
//! Streams of events with optimistic concurrency (`any`, `no_stream`,
//! `stream_exists`, an exact version), idempotent retries by event id,
//! atomic appends across streams, a gapless global order (`$all`), reads
//! both ways, catch-up-then-live and persistent subscriptions, snapshots,
//! soft and hard deletes with retention rules and scavenging, and what no
//! other event store offers: every stream's history is a Merkle tree whose
//! signed head proves each event and every earlier head.
//!
//! # Layout
//!
//! ```text
//!   signed head {stream, length 6, root, position, signer, signature}
//!                          root
//!                 /                  \
//!            h(0..4)                h(4..6)          Merkle tree (RFC 6962
//!           /      \               /      \          shape, BLAKE3): peaks
//!       h(0..2)   h(2..4)       e4        e5         kept in the stream state,
//!       /    \     /    \                            subtrees of >= 256 leaves
//!     e0     e1  e2     e3                           stored, smaller recomputed
//!      |      |   |      |      |         |
//!   bundle block of versions 0..256 (sealed)  |   open edge, in $all order:
//!   ev-1/<position> -> pointer (num, version) | ev-1/<position> -> num, version, bucket,
//!   bnd-0/<num>/<index> -> block ref, positions |   leaf, record sealed by the bucket
//!                                              | sv-0/<num>/<version> -> position
//! ```
//!
//! A stream belongs to a bucket, fixed when it is created (asked for by
//! the first append, else a configured id prefix, else `default`), and
//! its records are sealed by that bucket's transforms: compressed and
//! encrypted at rest when the bucket is. Records are written once, under
//! their global position, with their Merkle leaf hash (reads check the
//! unsealed bytes against it; proofs over the edge need no key); each
//! stream indexes its edge by version. When a stream's records fill a
//! bundle of 256, they become one content-addressed block in its bucket
//! (see `bundle.rs`), in the same commit, and their positions come to
//! hold a pointer into it once compaction, which runs 16,384 positions
//! behind the head in `$all` order, passes them (see `compact.rs`). Every per-event key is sequential within its range,
//! so appends stay fast at any size; ids the log assigns itself carry
//! their position and need no index entry (see `event_id.rs`). Appending
//! costs O(1) amortised writes; reading a stream is a scan of its bundles
//! and its edge index; `$all` is a scan of the positions. A stream's
//! Merkle tree is kept as its peaks (at most 64 hashes) plus the hashes of
//! complete subtrees of 256 events and more, so a proof costs O(log n)
//! lookups and at most two 256-event pages. Opening reads one counter
//! record, whatever the log's size.
//!
//! A peer without a bucket's key cannot check records against the event
//! root, so the writer also signs a [`StoredHead`]: its head plus a Merkle
//! root over what the stream's storage holds (each sealed bundle's block
//! ref, each edge record's sealed bytes), which [`EventLog::check_stored`]
//! verifies with no key at all (see `stored.rs`).
//!
//! All writes go through one writer thread that commits concurrent appends
//! together (group commit): in `sync` mode they share one fsync.
//!
//! # Goals and non-goals
//!
//! Goals: the event-store semantics KurrentDB, SierraDB and erl-esdb users
//! rely on, verifiable history, and the append and read rates of the
//! storage engine underneath. Non-goals here: transport (HTTP, gRPC,
//! RESP3 and replication live in higher crates) and projections.
//!
//! ```
//! use hydra_eventlog::{EventLog, ExpectedVersion, NewEvent, Options, ReadFrom, StreamId};
//! use hydra_volume::Direction;
//!
//! let dir = tempfile::tempdir()?;
//! let log = EventLog::open_dir(dir.path(), Options::default())?;
//! let stream = StreamId::new("account-1")?;
//! let r = log.append(&stream, ExpectedVersion::NoStream, vec![
//!     NewEvent::new("Opened", br#"{"owner":"ada"}"#.to_vec()),
//!     NewEvent::new("Deposited", br#"{"amount":100}"#.to_vec()),
//! ])?;
//! assert_eq!((r.first_version, r.version), (0, 1));
//!
//! let events: Vec<_> = log
//!     .read(&stream, ReadFrom::Edge, 10, Direction::Forward)?
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(events[1].event_type, "Deposited");
//!
//! // Prove event 1 against the signed head, with only the public key.
//! let (head, proof) = log.prove(&stream, 1)?;
//! hydra_eventlog::verify_event(&head, &log.identity().public_key(), &events[1], &proof)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

/// The README's examples, compiled by `cargo test`.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

mod admin;
mod bundle;
mod compact;
mod error;
mod event;
mod event_id;
mod event_store;
mod flusher;
mod hex;
mod id;
mod layout;
mod log;
mod merkle;
mod migrate;
mod partition;
mod proof;
mod read;
mod records;
mod reindex;
mod retention;
mod snapshot;
mod storage;
mod stored;
mod subscribe;
mod transfer;
mod tree;
mod verify;
mod writer;

pub use admin::{
    Admin, BucketCollected, BucketShown, Export, Imported, VolumeInfo, VolumeVerified, bucket_of,
};
pub use bundle::{BUNDLE, EVENT_BUNDLE};
pub use error::Error;
pub use event::{
    AllFilter, AppendResult, Direction, DurabilityMode, ExpectedVersion, MAX_EVENT_TYPE, NewEvent,
    ReadFrom, RecordedEvent, StreamMetadata,
};
pub use event_store::{AllRead, EventStore, ProvedEvent, ProvedPrefix, StreamRead};
pub use hydra_bucket::ErrorKind;
pub use hydra_bucket::StoreError;
pub use id::{MAX_STREAM_ID, StreamId, StreamIdError};
pub use log::{EventLog, Options, SNAPSHOT_BUCKET};
pub use merkle::Hash;
pub use partition::{PARTITIONS, partition_of, stream_partition_key};
pub use proof::{
    ConsistencyProof, Extension, Head, InclusionProof, ProofError, leaf_of, verify_consistency,
    verify_event,
};
pub use read::{AllEvents, StreamEvents, StreamInfo};
pub use records::Placement;
pub use reindex::ReindexReport;
pub use retention::ScavengeReport;
pub use snapshot::{SNAPSHOT, Snapshot, SnapshotInfo};
pub use storage::{
    Applied, HeldStream, HeldTree, Received, STREAM_EDGE, STREAM_STORAGE, STREAM_STORAGE_SAID,
    Storage, storage_bucket,
};
pub use stored::StoredHead;
pub use subscribe::{Offered, PersistentSubscription, Subscription, Target};
pub use transfer::{ALL_ORDER, ExportReport, ImportReport};
pub use verify::EventsReport;
pub use writer::StreamWrite;

#[cfg(test)]
mod tests {
    /// Every kind of node the log writes is its own: a decoder that
    /// checks the kind never takes one for another.
    #[test]
    fn node_kinds_are_distinct() {
        let kinds = [
            hydra_bucket::OBJECT_INDEX,
            crate::SNAPSHOT,
            crate::EVENT_BUNDLE,
            crate::tree::STREAM_TILE,
            crate::STREAM_STORAGE,
            crate::STREAM_EDGE,
            crate::STREAM_STORAGE_SAID,
            crate::ALL_ORDER,
        ];
        let distinct: std::collections::HashSet<u16> = kinds.iter().map(|k| k.0).collect();
        assert_eq!(distinct.len(), kinds.len());
    }
}
