//! Snapshots: a stream's folded state at a version, stored as a block so
//! that a reader can start there instead of at version 0.
//!
//! Each snapshot is a node block in the `eventlog` bucket, named by the
//! root `snap/<stream number>/<version>`: the root keeps it through GC,
//! and deleting the stream removes its roots, so the next `gc` frees the
//! blocks (a snapshot never outlives its stream).

use hydra_block::{Kind, Node, Ref};
use serde::{Deserialize, Serialize};

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
        let bucket = &self.inner.snapshots;
        let r = bucket.put_node(&Node {
            kind: SNAPSHOT,
            links: Vec::new(),
            body: snapshot,
        })?;
        bucket.set_root(&root_name(st.num, version), r)?;
        Ok(r)
    }

    /// The latest snapshot at or before version `at` (any, when `None`).
    pub fn load_snapshot(&self, stream: &StreamId, at: Option<u64>) -> Result<Snapshot, Error> {
        let st = self.readable(stream)?;
        let found = self
            .snapshots(st.num)?
            .into_iter()
            .rev()
            .find(|s| at.is_none_or(|a| s.version <= a))
            .ok_or_else(|| Error::SnapshotNotFound {
                stream: stream.clone(),
                at,
            })?;
        let bytes = self.inner.snapshots.get(&found.reference)?;
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
        self.snapshots(st.num)
    }

    /// Deletes the snapshot at `version`; returns whether there was one.
    pub fn delete_snapshot(&self, stream: &StreamId, version: u64) -> Result<bool, Error> {
        let st = self.readable(stream)?;
        Ok(self
            .inner
            .snapshots
            .remove_root(&root_name(st.num, version))?)
    }

    /// Deletes every snapshot of the stream; returns how many.
    pub fn delete_snapshots(&self, stream: &StreamId) -> Result<usize, Error> {
        let Some(st) = self.state(stream)? else {
            return Ok(0);
        };
        let all = self.snapshots(st.num)?;
        for s in &all {
            self.inner
                .snapshots
                .remove_root(&root_name(st.num, s.version))?;
        }
        Ok(all.len())
    }

    fn snapshots(&self, num: u64) -> Result<Vec<SnapshotInfo>, Error> {
        let p = prefix(num);
        self.inner
            .snapshots
            .roots(&p)
            .map(|r| {
                let (name, reference) = r?;
                let version = name[p.len()..].parse().map_err(|_| Error::Corrupt {
                    what: format!("snapshot root {name:?}"),
                    reason: "no version".into(),
                })?;
                Ok(SnapshotInfo { version, reference })
            })
            .collect()
    }
}
