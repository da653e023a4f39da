//! Checking every stored event against what commits to it, for `hydra
//! volume verify`: each edge record against its Merkle leaf, each sealed
//! bundle (its block already checked against its ref by the bucket's
//! verify) against the stream's stored subtree hash of those 256 events,
//! which the signed root covers, and each stream's bundle tree against
//! its bundles: every tile present and in its place, linking exactly the
//! bundles the stream has sealed.

use std::collections::BTreeMap;

use hydra_block::Ref;
use hydra_volume::{Direction, KeyRange};
use serde::{Deserialize, Serialize};

use crate::bundle::BUNDLE;
use crate::layout::{self, LogEntry};
use crate::{Error, EventLog};
use crate::{merkle, tree};

/// What [`EventLog::verify`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventsReport {
    /// Edge records checked against their leaf.
    pub records: u64,
    /// Sealed bundles checked against the stream's Merkle tree.
    pub bundles: u64,
    /// Tiles of the streams' bundle trees checked (see [`EventLog::verify`]).
    pub tiles: u64,
    /// Records and bundles of encrypted buckets whose key this log was
    /// not given: stored, but not checkable here beyond their block refs.
    pub locked: u64,
    /// One line for each corrupt record, bundle or tree.
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
        // Each stream's sealed bundles, to compare with its tree.
        let mut sealed: BTreeMap<u64, (u32, Vec<(u64, Ref)>)> = BTreeMap::new();
        for e in volume.scan(KeyRange::prefix(layout::BUNDLES), Direction::Forward) {
            let (k, v) = e?;
            let Some((num, index)) = layout::num_version(&k[layout::BUNDLES.len()..]) else {
                report
                    .corrupt
                    .push(format!("malformed bundle key of {} bytes", k.len()));
                continue;
            };
            match crate::bundle::block_of(&v) {
                Ok((bucket, block)) => {
                    let entry = sealed.entry(num).or_insert((bucket, Vec::new()));
                    entry.1.push((index, block));
                }
                Err(e) => report.corrupt.push(e.to_string()),
            }
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
        self.verify_trees(sealed, &mut report)?;
        Ok(report)
    }

    /// Checks every stream's bundle tree links exactly its sealed bundles
    /// (`sealed`: stream number -> bucket, bundles by index).
    fn verify_trees(
        &self,
        mut sealed: BTreeMap<u64, (u32, Vec<(u64, Ref)>)>,
        report: &mut EventsReport,
    ) -> Result<(), Error> {
        let buckets = &self.inner.buckets;
        for config in buckets.store().buckets()? {
            let bucket = buckets.get(config.num())?;
            for root in bucket.roots("ev/") {
                let (name, top) = root?;
                let Some(num) = tree::num_of_root(&name) else {
                    continue;
                };
                let stream = self.stream_name(num);
                let expected = sealed.remove(&num).map(|(_, b)| b).unwrap_or_default();
                match tree::bundles(&bucket, &stream, &top) {
                    Ok(tree::Walked {
                        bundles: linked,
                        tiles,
                    }) => {
                        report.tiles += tiles.len() as u64;
                        if linked != expected {
                            report.corrupt.push(format!(
                                "the bundle tree of stream {stream} links {} bundles, {} are sealed{}",
                                linked.len(),
                                expected.len(),
                                first_difference(&linked, &expected)
                                    .map(|i| format!(" (first difference: events from {})", i * BUNDLE))
                                    .unwrap_or_default()
                            ));
                        }
                    }
                    Err(e) => report.corrupt.push(e.to_string()),
                }
            }
        }
        for (num, (_, bundles)) in sealed {
            report.corrupt.push(format!(
                "stream {} has {} sealed bundles and no bundle tree links them",
                self.stream_name(num),
                bundles.len()
            ));
        }
        Ok(())
    }
}

/// The bundle index where two lists of (index, block) first differ.
fn first_difference(a: &[(u64, Ref)], b: &[(u64, Ref)]) -> Option<u64> {
    let differ = a.iter().zip(b).find(|(x, y)| x != y);
    match differ {
        Some((x, y)) => Some(x.0.min(y.0)),
        None => a.get(b.len()).or(b.get(a.len())).map(|x| x.0),
    }
}
