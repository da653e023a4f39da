//! Moving a data directory written by the first layout (`log-0/` plain
//! records by position, `st-0/` states without a bucket; its `sv-0/`
//! version index is the current one) to the current one, when the log is
//! opened.
//!
//! Every stream of the old layout goes to the `default` bucket. Records
//! move a page at a time, each page in one commit that writes their new
//! entries and deletes their old ones, so a crash midway leaves a store
//! that the next open finishes migrating; states move next, and last every
//! stream's full bundles are sealed, each in its own commit (a crash there
//! leaves the rest on the edge, where they read the same). The Merkle
//! leaves are the hashes of the same record bytes, so every head, root and
//! proof stays what it was.
//!
//! A store whose bundles were each a root of their own (`ev/<num>/<index>`
//! in their bucket, before streams had bundle trees) gets each stream's
//! tree built from those roots, in one commit per stream that also
//! removes them; `el-trees-0` marks a store done (or born with trees), so
//! that opening looks for old roots only once.

use std::collections::HashMap;

use hydra_bucket::{BucketName, Store};
use hydra_volume::{Direction, KeyRange, Volume};
use serde::Deserialize;

use crate::layout::{self, Deletion, EventRecord, StreamState};
use crate::merkle::{Hash, leaf_hash};
use crate::{Error, StreamMetadata};

const OLD_LOG: &[u8] = b"log-0/";
const OLD_STATE: &[u8] = b"st-0/";

/// A stream's state as the first layout stored it: today's without the
/// bucket.
#[derive(Deserialize)]
struct OldState {
    num: u64,
    length: u64,
    peaks: Vec<Hash>,
    last_position: Option<u64>,
    deletion: Deletion,
    deleted_before: u64,
    scavenged_before: u64,
    metadata: StreamMetadata,
    replica: Option<crate::Head>,
}

impl OldState {
    fn decode(bytes: &[u8]) -> Result<OldState, Error> {
        postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
            what: "stream state of the first layout".into(),
            reason: e.to_string(),
        })
    }

    fn into_state(self, bucket: u32) -> StreamState {
        StreamState {
            num: self.num,
            length: self.length,
            peaks: self.peaks,
            last_position: self.last_position,
            deletion: self.deletion,
            deleted_before: self.deleted_before,
            scavenged_before: self.scavenged_before,
            metadata: self.metadata,
            replica: self.replica,
            bucket,
            open: layout::OpenEdge::at(self.length),
        }
    }
}

/// Whether anything is stored under `prefix`.
fn any(volume: &dyn Volume, prefix: &[u8]) -> Result<bool, Error> {
    Ok(volume
        .first(&KeyRange::prefix(prefix), Direction::Forward)?
        .is_some())
}

/// Migrates the first layout, if any of it is there; returns how many
/// records moved.
pub(crate) fn run(
    volume: &dyn Volume,
    store: &Store,
    buckets: &crate::records::Buckets,
) -> Result<u64, Error> {
    if !any(volume, OLD_LOG)? && !any(volume, OLD_STATE)? {
        return Ok(0);
    }
    let bucket = store.bucket(&BucketName::default_bucket(), None)?;
    let bucket_num = bucket.config().num();
    // Stream numbers by id, from the states of both layouts (a migration
    // interrupted after moving some states left both).
    let mut nums: HashMap<Vec<u8>, u64> = HashMap::new();
    for (prefix, old) in [(OLD_STATE, true), (layout::STREAM_STATE, false)] {
        for e in volume.scan(KeyRange::prefix(prefix), Direction::Forward) {
            let (k, v) = e?;
            let num = if old {
                OldState::decode(&v)?.num
            } else {
                StreamState::decode(&v)?.num
            };
            nums.insert(k[prefix.len()..].to_vec(), num);
        }
    }
    let mut moved = 0;
    crate::log::drain(volume, OLD_LOG, |k, v, batch| {
        let pos = layout::u64_of(&k[OLD_LOG.len()..], "log key of the first layout")?;
        let record = EventRecord::decode(&v)?;
        let num = *nums
            .get(record.stream.as_bytes())
            .ok_or_else(|| Error::Corrupt {
                what: format!("record at position {pos}"),
                reason: format!("its stream {:?} has no state", record.stream),
            })?;
        let value = crate::records::seal(&bucket, (num, record.version), &leaf_hash(&v), &v)?;
        batch.put(layout::log_key(pos), value);
        moved += 1;
        Ok(())
    })?;
    crate::log::drain(volume, OLD_STATE, |k, v, batch| {
        let st = OldState::decode(&v)?.into_state(bucket_num);
        batch.put(
            [layout::STREAM_STATE, &k[OLD_STATE.len()..]].concat(),
            st.encode(),
        );
        Ok(())
    })?;
    // The first layout had no bundles: seal every stream's full ones.
    for e in volume.scan(KeyRange::prefix(layout::STREAM_STATE), Direction::Forward) {
        let (k, v) = e?;
        let st = StreamState::decode(&v)?;
        let stream = String::from_utf8_lossy(&k[layout::STREAM_STATE.len()..]);
        crate::bundle::seal_edge(volume, buckets, &bucket, (&stream, st.num), &st)?;
    }
    Ok(moved)
}

/// Set once every stream's bundles hang from its tree.
const TREES: &[u8] = b"el-trees-0";

/// Builds the bundle trees of a store whose bundles were roots of their
/// own (see the module docs); returns how many streams it built.
pub(crate) fn trees(volume: &dyn Volume, buckets: &crate::records::Buckets) -> Result<u64, Error> {
    if volume.has(TREES)? {
        return Ok(0);
    }
    let mut built = 0;
    for config in buckets.store().buckets()? {
        let bucket = buckets.get(config.num())?;
        let mut old: std::collections::BTreeMap<u64, crate::tree::Changes> = Default::default();
        for root in bucket.roots("ev/") {
            let (name, r) = root?;
            let parts: Option<(u64, u64)> = name
                .strip_prefix("ev/")
                .and_then(|rest| rest.split_once('/'))
                .and_then(|(num, index)| {
                    Some((
                        u64::from_str_radix(num, 16).ok()?,
                        u64::from_str_radix(index, 16).ok()?,
                    ))
                });
            if let Some((num, index)) = parts {
                old.entry(num).or_default().insert(index, Some(r));
            }
        }
        for (num, changes) in old {
            let stream = volume
                .get(&layout::name_key(num))?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .ok_or_else(|| Error::Corrupt {
                    what: format!("name of stream #{num}"),
                    reason: "missing".into(),
                })?;
            let mut batch = hydra_volume::WriteBatch::new();
            let top = crate::tree::update(&bucket, &mut batch, &stream, num, &changes)?;
            for index in changes.keys() {
                bucket.stage_remove_root(&mut batch, &format!("ev/{num:016x}/{index:016x}"))?;
            }
            let noted: Vec<_> = top.map(|t| (config.num(), t)).into_iter().collect();
            buckets.store().commit(batch, &noted)?;
            built += 1;
        }
    }
    volume.put(TREES, &[])?;
    Ok(built)
}
