//! Checking every stored event against what commits to it, for `hydra
//! volume verify`: each edge record against its Merkle leaf, and each
//! sealed bundle (its block already checked against its ref by the
//! bucket's verify) against the stream's stored subtree hash of those 256
//! events, which the signed root covers.

use hydra_volume::{Direction, KeyRange};
use serde::Serialize;

use crate::bundle::BUNDLE;
use crate::layout::{self, LogEntry};
use crate::merkle;
use crate::{Error, EventLog};

/// What [`EventLog::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EventsReport {
    /// Edge records checked against their leaf.
    pub records: u64,
    /// Sealed bundles checked against the stream's Merkle tree.
    pub bundles: u64,
    /// Records and bundles of encrypted buckets whose key this log was
    /// not given: stored, but not checkable here beyond their block refs.
    pub locked: u64,
    /// One line for each corrupt record or bundle.
    pub corrupt: Vec<String>,
}

impl EventLog {
    /// Checks every stored event; never stops at the first problem.
    pub fn verify(&self, mut progress: impl FnMut(u64)) -> Result<EventsReport, Error> {
        let volume = &self.inner.volume;
        let mut report = EventsReport::default();
        for e in volume.scan(KeyRange::prefix(layout::LOG), Direction::Forward) {
            let (_, v) = e?;
            let LogEntry::Edge {
                num,
                version,
                bucket,
                leaf,
                sealed,
            } = LogEntry::decode(v)?
            else {
                continue;
            };
            if !self.inner.buckets.get(bucket)?.readable() {
                report.locked += 1;
                continue;
            }
            report.records += 1;
            match crate::records::open_edge(
                &self.inner.buckets,
                (num, version),
                bucket,
                &leaf,
                sealed,
                |n| self.stream_name(n),
            ) {
                Ok(_) => {}
                Err(e @ (Error::CorruptEvent { .. } | Error::Corrupt { .. })) => {
                    report.corrupt.push(e.to_string());
                }
                Err(e) => return Err(e),
            }
            progress(report.records + report.bundles);
        }
        for e in volume.scan(KeyRange::prefix(layout::BUNDLES), Direction::Forward) {
            let (k, _) = e?;
            let Some((num, index)) = layout::num_version(&k[layout::BUNDLES.len()..]) else {
                report
                    .corrupt
                    .push(format!("malformed bundle key of {} bytes", k.len()));
                continue;
            };
            let bundle = match self.bundle(num, index) {
                Ok(Some(b)) => b,
                Ok(None) => continue,
                Err(Error::Bucket(b))
                    if matches!(*b, hydra_bucket::BucketError::KeyRequired(_)) =>
                {
                    report.locked += 1;
                    continue;
                }
                Err(e @ (Error::CorruptBundle { .. } | Error::Corrupt { .. })) => {
                    report.corrupt.push(e.to_string());
                    continue;
                }
                Err(e) => return Err(e),
            };
            report.bundles += 1;
            let root = merkle::root_of_leaves(bundle.records().map(merkle::leaf_hash));
            let stored = volume.get(&layout::subtree_key(num, 8, index))?;
            if stored.as_deref() != Some(&root[..]) {
                report.corrupt.push(format!(
                    "events {} to {} of stream {} do not hash to the stream's Merkle subtree over them",
                    index * BUNDLE,
                    index * BUNDLE + BUNDLE - 1,
                    self.stream_name(num)
                ));
            }
            progress(report.records + report.bundles);
        }
        Ok(report)
    }
}
