//! Sealed bundles: every 256 events of a stream, once all 256 are there,
//! become one immutable, content-addressed block in the stream's bucket.
//!
//! ```text
//!   versions  0 ........ 255 | 256 ....... 511 | 512 ... 600
//!             bundle 0 block | bundle 1 block  | open edge: ev-1/ records
//!   bnd-0/<num>/<index> -> bucket, block ref, positions
//!   root-0/<bucket>/ev/<num> -> the stream's bundle tree, which links
//!                               every bundle block (see `tree.rs`)
//!   ev-1/<position> -> pointer (num, version), for each sealed event,
//!                      once compaction has passed it (see `compact.rs`)
//! ```
//!
//! The block is a node of kind [`EVENT_BUNDLE`](crate::EVENT_BUNDLE)
//! (addressed with the raw codec: it links nothing) whose body is the 256
//! records, the same bytes the Merkle leaves hash,
//! sealed by the bucket's transforms as a whole: compression works on 256
//! similar records at once instead of one small record at a time, and an
//! encrypted bucket's block is ciphertext whose ref anyone can check. The
//! bundle's positions in `$all` are local to this store, so they live in
//! the volume beside it, not in the block: a replica stores the same
//! block. Scavenging a stream's oldest events, or deleting it, unlinks
//! whole bundles from the stream's tree and `hydra gc` frees their
//! blocks; a bundle only partly scavenged stays until its last event goes.
//!
//! Sealing happens in the commit of the append that fills the bundle: its
//! block, the tiles that link it and its index entry are written and its records' stream index
//! entries deleted in one transaction, so a crash leaves either the edge
//! or the bundle, never neither; the `$all` entries keep their (still
//! valid) edge records until compaction points them at the bundle. A bundle whose edge lost records to a scavenge
//! before it filled is never sealed; its remaining records stay on the
//! edge, which readers handle the same way; so does a bundle of events
//! too large for one block (over 16 MiB in all), and one whose events are
//! spread over more than 65,536 `$all` positions (see [`MAX_SPAN`]).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use hydra_block::{Codec, Kind, Node, Ref};
use hydra_bucket::{Bucket, BucketError};
use hydra_volume::WriteBatch;
use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;

use crate::layout;
use crate::{Error, EventLog};

/// Kind of a bundle block: body the 256 event records.
pub const EVENT_BUNDLE: Kind = Kind(0x0402);

/// Events per bundle.
pub const BUNDLE: u64 = 256;

/// The most record bytes a bundle may hold: a bundle of larger events is
/// not sealed (it stays on the edge), so that no block nears the bucket's
/// block limit.
pub(crate) const MAX_BYTES: usize = 16 << 20;

/// The widest range of `$all` positions a bundle may span. A reader of
/// `$all` needs every bundle that spans its position open at once; bounding
/// the span bounds that set by about twice this many events (a few tens of
/// MiB, within the cache), however many streams interleave. A stream
/// whose 256 events are spread wider (one of thousands of streams written
/// in turn) keeps them on the edge, one sealed record each.
pub(crate) const MAX_SPAN: u64 = 1 << 16;

/// Whether records of these sizes, at these positions (in version order),
/// may be sealed as one bundle.
pub(crate) fn sealable<'a>(records: impl Iterator<Item = (u64, &'a [u8])>) -> bool {
    let (mut bytes, mut first, mut last) = (0, None, 0);
    for (position, record) in records {
        bytes += record.len() + 8;
        first.get_or_insert(position);
        last = position;
    }
    bytes <= MAX_BYTES && first.is_some_and(|f| last - f < MAX_SPAN)
}

/// Decoded bundles kept in memory, in bytes.
const CACHE_BYTES: usize = 64 << 20;

/// A bundle's entry in the volume (`bnd-0/`).
#[derive(Debug, Serialize, Deserialize)]
struct Entry {
    bucket: u32,
    block: Ref,
    first_position: u64,
    /// Differences between consecutive positions (varints: one byte each
    /// when the bundle was appended in one run).
    gaps: Vec<u64>,
}

impl Entry {
    fn positions(&self) -> Vec<u64> {
        let mut p = self.first_position;
        let mut out = Vec::with_capacity(self.gaps.len() + 1);
        out.push(p);
        for g in &self.gaps {
            p += g;
            out.push(p);
        }
        out
    }
}

/// A sealed bundle, opened: its records (version `index * 256 + i` is
/// record `i`), as spans of the block's plain bytes (opening one costs
/// no allocation per record), and their positions.
#[derive(Debug)]
pub(crate) struct Sealed {
    plain: Vec<u8>,
    spans: Vec<std::ops::Range<usize>>,
    pub positions: Vec<u64>,
}

impl Sealed {
    pub fn bytes(&self) -> usize {
        self.plain.len() + 16 * self.spans.len() + 8 * self.positions.len()
    }

    /// Record `i`: the event at version `index * 256 + i`.
    pub fn record(&self, i: usize) -> &[u8] {
        &self.plain[self.spans[i].clone()]
    }

    /// The records in version order.
    pub fn records(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.spans.iter().map(|s| &self.plain[s.clone()])
    }
}

/// Writes bundle `index` of stream `num`: the block (sealed by `bucket`)
/// and its index entry, into `ops`. Returns the block's ref, which the
/// caller links into the stream's tree (see `tree.rs`) in the same commit.
pub(crate) fn seal(
    bucket: &Bucket,
    ops: &mut WriteBatch,
    num: u64,
    index: u64,
    records: &[(u64, &[u8])],
) -> Result<Ref, Error> {
    debug_assert_eq!(records.len() as u64, BUNDLE);
    let node = Node {
        kind: EVENT_BUNDLE,
        links: Vec::new(),
        body: records
            .iter()
            .map(|(_, r)| Bytes::new(r))
            .collect::<Vec<_>>(),
    };
    // Addressed as raw: the block links nothing, so every collector,
    // a blind one too, keeps it as a leaf of its root.
    let block = bucket.stage_put(ops, Codec::Raw, &node.encode())?;
    let positions: Vec<u64> = records.iter().map(|(p, _)| *p).collect();
    stage_entry(ops, (num, index), bucket.config().num(), block, &positions);
    Ok(block)
}

/// Writes the index entry of bundle `index` of stream `num`: its block
/// in bucket number `bucket`, and the `$all` positions of its events.
pub(crate) fn stage_entry(
    ops: &mut WriteBatch,
    (num, index): (u64, u64),
    bucket: u32,
    block: Ref,
    positions: &[u64],
) {
    let entry = Entry {
        bucket,
        block,
        first_position: positions[0],
        gaps: positions.windows(2).map(|w| w[1] - w[0]).collect(),
    };
    ops.put(
        layout::bundle_key(num, index),
        postcard::to_allocvec(&entry).expect("entries encode"),
    );
}

/// Seals every complete bundle of stream `num`, below `length`, whose 256
/// records are all on the edge, each in its own commit; returns how many.
/// For stores whose edges hold full bundles (migrated from the first
/// layout); appends seal as they go.
pub(crate) fn seal_edge(
    volume: &dyn hydra_volume::Volume,
    buckets: &crate::records::Buckets,
    bucket: &Bucket,
    (stream, num): (&str, u64),
    st: &layout::StreamState,
) -> Result<u64, Error> {
    let length = st.length;
    let mut sealed = 0;
    for index in 0..length / BUNDLE {
        if volume.get(&layout::bundle_key(num, index))?.is_some() {
            continue;
        }
        let first = index * BUNDLE;
        let edge = crate::records::edge_of(
            volume,
            buckets,
            (num, &st.open),
            (first, first + BUNDLE),
            |n| layout::stream_name(volume, n),
        )?;
        if edge.len() as u64 != BUNDLE {
            // Some were scavenged: the rest stays on the edge.
            continue;
        }
        let mut batch = WriteBatch::new();
        let mut records = Vec::with_capacity(BUNDLE as usize);
        for (version, position, record) in edge {
            batch.put(
                layout::log_key(position),
                layout::LogEntry::bundled(num, version),
            );
            batch.delete(layout::version_key(num, version));
            records.push((position, record));
        }
        if !sealable(records.iter().map(|(p, r)| (*p, r.as_slice()))) {
            continue;
        }
        let parts: Vec<(u64, &[u8])> = records.iter().map(|(p, r)| (*p, r.as_slice())).collect();
        let block = seal(bucket, &mut batch, num, index, &parts)?;
        let changes = [(index, Some(block))].into();
        let top = crate::tree::update(bucket, &mut batch, stream, num, &changes)?;
        buckets
            .store()
            .commit(batch, &[(bucket.config().num(), top.unwrap_or(block))])?;
        sealed += 1;
    }
    Ok(sealed)
}

/// Removes bundle `index` of stream `num`'s entry; the writer unlinks it
/// from the stream's tree, and `hydra gc` frees the block. Returns whether
/// it was there.
pub(crate) fn remove(
    log: &EventLog,
    ops: &mut WriteBatch,
    num: u64,
    index: u64,
) -> Result<bool, Error> {
    if !log.inner.volume.has(&layout::bundle_key(num, index))? {
        return Ok(false);
    }
    ops.delete(layout::bundle_key(num, index));
    log.inner.bundles.forget(num, index);
    Ok(true)
}

/// The `$all` positions of a bundle's events, from its entry (`bnd-0/`
/// value).
pub(crate) fn positions(entry: &[u8]) -> Result<Vec<u64>, Error> {
    Ok(decode_entry(entry)?.positions())
}

/// The bucket number and block ref in a bundle's entry (`bnd-0/` value).
pub(crate) fn block_of(entry: &[u8]) -> Result<(u32, Ref), Error> {
    let e = decode_entry(entry)?;
    Ok((e.bucket, e.block))
}

fn decode_entry(bytes: &[u8]) -> Result<Entry, Error> {
    postcard::from_bytes(bytes).map_err(|e| Error::Corrupt {
        what: "bundle entry".into(),
        reason: e.to_string(),
    })
}

/// Recently opened bundles, evicted oldest first past [`CACHE_BYTES`].
#[derive(Default)]
pub(crate) struct Cache {
    inner: Mutex<CacheInner>,
}

#[derive(Default)]
struct CacheInner {
    map: HashMap<(u64, u64), Arc<Sealed>>,
    order: VecDeque<(u64, u64)>,
    bytes: usize,
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, CacheInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn get(&self, at: (u64, u64)) -> Option<Arc<Sealed>> {
        self.lock().map.get(&at).cloned()
    }

    fn put(&self, at: (u64, u64), sealed: Arc<Sealed>) {
        let mut c = self.lock();
        c.bytes += sealed.bytes();
        if c.map.insert(at, sealed).is_none() {
            c.order.push_back(at);
        }
        while c.bytes > CACHE_BYTES {
            let Some(old) = c.order.pop_front() else {
                break;
            };
            if let Some(s) = c.map.remove(&old) {
                c.bytes -= s.bytes();
            }
        }
    }

    pub fn forget(&self, num: u64, index: u64) {
        let mut c = self.lock();
        if let Some(s) = c.map.remove(&(num, index)) {
            c.bytes -= s.bytes();
            c.order.retain(|k| *k != (num, index));
        }
    }
}

/// Bundle `index` of stream `num`, if sealed: fetched from its bucket,
/// checked against its ref, and opened. Returns it with its bucket's
/// number. `name` names the stream for errors.
pub(crate) fn load(
    volume: &dyn hydra_volume::Volume,
    buckets: &crate::records::Buckets,
    (num, index): (u64, u64),
    name: impl Fn(u64) -> String,
) -> Result<Option<(Sealed, u32)>, Error> {
    let Some(bytes) = volume.get(&layout::bundle_key(num, index))? else {
        return Ok(None);
    };
    let entry = decode_entry(&bytes)?;
    let corrupt = |reason: String| Error::CorruptBundle {
        stream: name(num),
        first: index * BUNDLE,
        last: index * BUNDLE + BUNDLE - 1,
        reason,
    };
    let bucket = buckets.get(entry.bucket)?;
    let plain = match bucket.get(&entry.block) {
        Ok(p) => p,
        Err(
            e @ (BucketError::Corrupt { .. }
            | BucketError::Decrypt { .. }
            | BucketError::Decompress { .. }
            | BucketError::BlockNotFound { .. }),
        ) => return Err(corrupt(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    let node = Node::<Vec<&Bytes>>::decode(EVENT_BUNDLE, &plain)
        .map_err(|e| corrupt(format!("block {}: {e}", entry.block)))?;
    // Each record borrows from `plain`: keep where it lies.
    let base = plain.as_ptr() as usize;
    let spans: Vec<std::ops::Range<usize>> = node
        .body
        .iter()
        .map(|r| {
            let at = r.as_ptr() as usize - base;
            at..at + r.len()
        })
        .collect();
    let positions = entry.positions();
    if spans.len() as u64 != BUNDLE || positions.len() as u64 != BUNDLE {
        return Err(corrupt(format!(
            "{} records and {} positions, expected {BUNDLE}",
            spans.len(),
            positions.len()
        )));
    }
    Ok(Some((
        Sealed {
            plain,
            spans,
            positions,
        },
        entry.bucket,
    )))
}

impl EventLog {
    /// Bundle `index` of stream `num`, if sealed (see [`load`]), through
    /// the cache.
    pub(crate) fn bundle(&self, num: u64, index: u64) -> Result<Option<Arc<Sealed>>, Error> {
        if let Some(s) = self.inner.bundles.get((num, index)) {
            return Ok(Some(s));
        }
        let loaded = load(
            &*self.inner.volume,
            &self.inner.buckets,
            (num, index),
            |n| self.stream_name(n),
        )?;
        Ok(loaded.map(|(sealed, _)| {
            let sealed = Arc::new(sealed);
            self.inner.bundles.put((num, index), sealed.clone());
            sealed
        }))
    }
}
