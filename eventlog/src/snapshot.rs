//! Snapshots: a stream's folded state at a version, stored as a block so
//! that a reader can start there instead of at version 0.
//!
//! Each snapshot is a block in the stream's own bucket (a node's bytes,
//! stored as a raw block since it links nothing), under its
//! transforms (a snapshot folds the stream's events: in an encrypted
//! bucket it is as secret as they are, and needs the same key), named by
//! the root `snap/<stream number>/<version>`: the root keeps it through
//! GC, and deleting the stream removes its roots, so the next `gc` frees
//! the blocks (a snapshot never outlives its stream).
//!
//! Snapshots saved before they moved into the stream's bucket are in the
//! `eventlog` bucket, plain, under the same roots: they are listed, loaded
//! and deleted as before, and saving one at the same version replaces it
//! in the stream's bucket.

use std::collections::BTreeMap;

use hydra_block::{Codec, Kind, Node, Ref};
use hydra_bucket::Bucket;
use serde::{Deserialize, Serialize};

use crate::layout::StreamState;
use crate::writer::now_ms;
use crate::{Error, EventLog, StreamId};

/// Kind of a snapshot node.
pub const SNAPSHOT: Kind = Kind(0x0301);

/// A stored snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    pub stream: StreamId,
    /// The version of the last event the snapshot folds in.
    pub version: u64,
    pub data: Vec<u8>,
    pub metadata: Vec<u8>,
    /// When it was saved, in milliseconds since the Unix epoch.
    pub timestamp: u64,
}

/// A snapshot's version and block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SnapshotInfo {
    pub version: u64,
    pub reference: Ref,
}

fn prefix(num: u64) -> String {
    format!("snap/{num:016x}/")
}

fn root_name(num: u64, version: u64) -> String {
    format!("{}{version:020}", prefix(num))
}

impl EventLog {
    /// Saves a snapshot of `stream` at `version` (an existing version);
    /// replaces one saved at the same version.
    pub fn save_snapshot(
        &self,
        stream: &StreamId,
        version: u64,
        data: Vec<u8>,
        metadata: Vec<u8>,
    ) -> Result<Ref, Error> {
        let st = self.readable(stream)?;
        if version >= st.length {
            return Err(Error::NoSuchVersion {
                stream: stream.clone(),
                version,
                length: st.length,
            });
        }
        let snapshot = Snapshot {
            stream: stream.clone(),
            version,
            data,
            metadata,
            timestamp: now_ms(),
        };
        let bucket = self.inner.buckets.get(st.bucket)?;
        // A node's bytes in a raw block: it links nothing, and a collection
        // without the key keeps a raw root as it is, where it would refuse
        // a sealed node it cannot follow.
        let node = Node {
            kind: SNAPSHOT,
            links: Vec::new(),
            body: snapshot,
        };
        let r = bucket.put(Codec::Raw, &node.encode())?;
        let name = root_name(st.num, version);
        bucket.set_root(&name, r)?;
        self.inner.snapshots.remove_root(&name)?;
        Ok(r)
    }

    /// The latest snapshot at or before version `at` (any, when `None`).
    pub fn load_snapshot(&self, stream: &StreamId, at: Option<u64>) -> Result<Snapshot, Error> {
        let st = self.readable(stream)?;
        let (found, bucket) = self
            .stored_snapshots(&st)?
            .into_iter()
            .rev()
            .find(|(s, _)| at.is_none_or(|a| s.version <= a))
            .ok_or_else(|| Error::SnapshotNotFound {
                stream: stream.clone(),
                at,
            })?;
        let bytes = bucket.get(&found.reference)?;
        Ok(Node::<Snapshot>::decode(SNAPSHOT, &bytes)
            .map_err(|e| Error::Corrupt {
                what: format!("snapshot {}", found.reference),
                reason: e.to_string(),
            })?
            .body)
    }

    /// A stream's snapshots, oldest first.
    pub fn list_snapshots(&self, stream: &StreamId) -> Result<Vec<SnapshotInfo>, Error> {
        let st = self.readable(stream)?;
        Ok(self
            .stored_snapshots(&st)?
            .into_iter()
            .map(|(s, _)| s)
            .collect())
    }

    /// Deletes the snapshot at `version`; returns whether there was one.
    pub fn delete_snapshot(&self, stream: &StreamId, version: u64) -> Result<bool, Error> {
        let st = self.readable(stream)?;
        let name = root_name(st.num, version);
        let mut deleted = false;
        for bucket in self.snapshot_buckets(&st)? {
            deleted |= bucket.remove_root(&name)?;
        }
        Ok(deleted)
    }

    /// Deletes every snapshot of the stream; returns how many.
    pub fn delete_snapshots(&self, stream: &StreamId) -> Result<usize, Error> {
        let Some(st) = self.state(stream)? else {
            return Ok(0);
        };
        let all = self.stored_snapshots(&st)?;
        for (s, bucket) in &all {
            bucket.remove_root(&root_name(st.num, s.version))?;
        }
        Ok(all.len())
    }

    /// The buckets a stream's snapshots may be in: its own (when it
    /// still exists: a stream deleted and scavenged to its end may
    /// outlive it), then the `eventlog` bucket.
    fn snapshot_buckets(&self, st: &StreamState) -> Result<Vec<Bucket>, Error> {
        let own = self.inner.store.bucket_by_num(st.bucket)?;
        Ok(own
            .into_iter()
            .chain([self.inner.snapshots.clone()])
            .collect())
    }

    /// A stream's snapshots, oldest first, each with the bucket that holds
    /// it (the stream's own, where a version is in both).
    fn stored_snapshots(&self, st: &StreamState) -> Result<Vec<(SnapshotInfo, Bucket)>, Error> {
        let p = prefix(st.num);
        let mut found = BTreeMap::new();
        for bucket in self.snapshot_buckets(st)?.into_iter().rev() {
            for r in bucket.roots(&p) {
                let (name, reference) = r?;
                let version = name[p.len()..].parse().map_err(|_| Error::Corrupt {
                    what: format!("snapshot root {name:?}"),
                    reason: "no version".into(),
                })?;
                found.insert(
                    version,
                    (SnapshotInfo { version, reference }, bucket.clone()),
                );
            }
        }
        Ok(found.into_values().collect())
    }
}
