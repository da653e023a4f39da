//! A stream's storage as blocks: what moves between stores, as it is
//! stored, and how a replica takes it in.
//!
//! ```text
//!   storage block { stored head, bucket, sealing }
//!     | links
//!     +-- top tile --- tiles --- bundle blocks    (stored bytes, as the bucket keeps them)
//!     +-- edge block 0, edge block 1, ...         (the open edge's sealed records)
//! ```
//!
//! The writer reads its stream out as the blocks its bucket holds: the
//! tiles of the bundle tree and the sealed bundles, exactly as stored
//! (compressed and encrypted when the bucket is), plus *edge blocks*
//! made for the occasion from the records still on the open edge (each
//! record as the bucket sealed it). Everything hangs from a *storage
//! block*, whose body is the writer's [`StoredHead`]: it signs the tree's
//! top and a Merkle root over the edge records, so every block a replica
//! receives is checked against a ref that a signature covers.
//!
//! A replica stores the blocks as they come (no decode, no re-encode),
//! then [`EventLog::apply_storage`] checks the stream as a whole and
//! indexes the new events in one commit: the stored head's signature and
//! writer; the tree walked from its top, every tile in its place; the
//! edge blocks against the signed edge root; that the bundles it already
//! holds are the writer's; every new event decoded with the bucket's key,
//! in its place, and the Merkle root over all of them against the signed
//! head (so the new head extends the one held, or nothing changes). Its
//! storage is then the writer's, block for block: the replica keeps the
//! stored head, and serves it and the same blocks to a third store.
//!
//! A store that cannot read the stream's bucket (encrypted, no key here)
//! keeps the storage whole instead, blind: the bucket root
//! `stream/<id>` names the storage block (see [`blind_root`]), after
//! every check that needs no key (each block against its ref, the stored
//! head's signature, the tree, the edge against its signed root). It
//! serves and exports that storage as it holds it; given the key, it
//! applies it as above.
//!
//! A storage block can tell more than its stored head (a block of kind
//! [`STREAM_STORAGE_SAID`]): of a stream its writer scavenged from the
//! start, whose storage begins past version 0, the peaks of the Merkle
//! tree over the versions before (see [`Before`]), so that a store that
//! holds none of the stream (a restore from a backup, a new replica)
//! starts its tree there and proves every event; and what the writer
//! says of the stream, signed with the stored head (see [`Said`]): the
//! first version it shows and the stream's metadata. A replica shows
//! what its writer shows, answers its metadata, and follows its
//! scavenges (what the writer no longer stores or shows, the replica
//! removes too, keeping the leaf hashes).
//!
//! The bucket name and sealing (zstd level, key check) in the storage
//! block are not signed: they choose where the stream goes here (a stream
//! stays in the bucket of its name, made as the writer's when missing,
//! which must be sealed the same way), and a wrong one only makes the
//! checks fail. Edge blocks are not kept by a keyed replica: once
//! applied, their records are its own edge, and `hydra gc` frees the
//! blocks.

mod apply;

use std::collections::HashSet;
use std::sync::Arc;

use hydra_block::{Codec, Kind, Node, Ref};
use hydra_bucket::{Bucket, BucketName, Transforms};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteBuf, Bytes};

use crate::layout;
use crate::merkle::Hash;
use crate::stored::{EdgeHeld, Said};
use crate::{BUNDLE, Error, EventLog, StoredHead, StreamId, tree};
pub use apply::{Applied, Received};
pub(crate) use apply::{Checked, Prepared, Start};

/// Kind of a storage block: body a [`StoredHead`] with its bucket, links
/// the top of the bundle tree (when there is one), then the edge blocks.
pub const STREAM_STORAGE: Kind = Kind(0x0404);
/// Kind of an edge block: body edge records, `(version, sealed bytes)`,
/// in version order.
pub const STREAM_EDGE: Kind = Kind(0x0405);
/// Kind of the storage block of a stream whose writer says more of it
/// than its stored head: that its storage begins past version 0 (it
/// scavenged the versions before), that it shows it from a later version,
/// or its metadata. Body a [`STREAM_STORAGE`] body, then what it tells of
/// the versions before, then what the writer says, signed (see the
/// module docs). Other streams' storage blocks keep their kind and
/// bytes.
pub const STREAM_STORAGE_SAID: Kind = Kind(0x0407);

/// Most records per edge block, and bytes (a record larger than that
/// goes in a block of its own).
const EDGE_RECORDS: usize = 256;
const EDGE_BYTES: usize = 4 << 20;

/// A storage block's body.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Body {
    stored: StoredHead,
    /// The stream's bucket at the writer, and how it seals blocks.
    bucket: BucketName,
    sealing: Sealing,
    /// Encoded after the rest, in a [`STREAM_STORAGE_SAID`] block only.
    #[serde(skip)]
    before: Option<Before>,
    /// Encoded after `before`, in a [`STREAM_STORAGE_SAID`] block only.
    #[serde(skip)]
    said: Option<Said>,
}

/// What a storage that does not begin at version 0 tells of the versions
/// before its first, so that a store holding none of the stream (a
/// restore from a backup, a new replica) can start the stream's Merkle
/// tree there: its writer scavenged them, and their records are in no
/// block.
///
/// ```text
///   versions  0 ............ 511 | 512 .. 515 | 516 ....... 767 | 768 ...
///             peaks: one subtree   leaves        first bundle:    the rest
///             per set bit of 512   of 512..515   (516 on shown)
/// ```
///
/// The hashes are not signed: the Merkle root over them and every event
/// the storage holds must be the signed head's, so wrong ones fail the
/// import (a mismatch of the storage, not evidence against the writer).
/// The first version the writer shows is in what it says, signed
/// ([`Said`]), and hides no more than the first bundle's events: those
/// its writer scavenged but keeps, in a bundle that stays until its last
/// event goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Before {
    /// The first version the storage holds a record of.
    from: u64,
    /// The peaks of the tree over versions `[0, from)` rounded down to
    /// 256: the roots of its perfect subtrees, largest first.
    peaks: Vec<Hash>,
    /// The leaf hashes of the versions from there to `from`.
    leaves: Vec<Hash>,
}

/// How a bucket seals blocks: its zstd level and its key's check value
/// (public, in its config). A bucket's [`Transforms`] skip absent fields,
/// which postcard cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sealing {
    zstd_level: Option<i32>,
    key_check: Option<String>,
}

impl Sealing {
    fn of(t: &Transforms) -> Sealing {
        Sealing {
            zstd_level: t.zstd_level,
            key_check: t.encryption.as_ref().map(|e| e.key_check.clone()),
        }
    }

    fn transforms(&self) -> Transforms {
        Transforms::of(self.zstd_level, self.key_check.clone())
    }
}

/// A stream's storage as blocks, read at one moment (see the module
/// docs): the storage block, the tiles, the bundles' refs and the edge
/// blocks (of the tree, only the part past a bundle, when read by
/// [`EventLog::storage_past`]). Bundles are immutable, so they are read
/// when they are handed over; tiles are replaced as bundles are sealed,
/// so they are read here.
pub struct Storage {
    pub stored: StoredHead,
    /// The storage block's ref: a root of an export.
    pub root: Ref,
    root_block: Vec<u8>,
    tiles: Tiles,
    bundles: Bundles,
    bundle_set: HashSet<Ref>,
    edges: Vec<Block>,
    bucket: Arc<Bucket>,
}

impl Storage {
    /// Blocks in all, the storage block included.
    pub fn blocks(&self) -> u64 {
        (1 + self.tiles.len() + self.bundles.len() + self.edges.len()) as u64
    }

    /// The storage block's bytes.
    pub fn root_block(&self) -> &[u8] {
        &self.root_block
    }

    /// The edge blocks: refs and bytes.
    pub fn edge_blocks(&self) -> impl Iterator<Item = (&Ref, &[u8])> {
        self.edges.iter().map(|(r, b)| (r, b.as_slice()))
    }

    /// The bucket that holds the stream here.
    pub fn bucket(&self) -> &BucketName {
        self.bucket.name()
    }

    /// The stored bytes of block `r`, if it is one of this storage's
    /// (a tile, an edge block, or a bundle still stored): what a peer
    /// that may read the stream may be given of it, and nothing else of
    /// its bucket.
    pub fn block(&self, r: &Ref) -> Result<Option<Vec<u8>>, Error> {
        let tiles = self.tiles.iter().map(|(t, _)| t);
        if let Some((_, bytes)) = tiles.chain(&self.edges).find(|(b, _)| b == r) {
            return Ok(Some(bytes.clone()));
        }
        if !self.bundle_set.contains(r) {
            return Ok(None);
        }
        Ok(self.bucket.get_stored(r)?)
    }

    /// The stored bytes of the tree blocks a holder of this stream's tree
    /// as far as bundle `after` lacks, for a storage answer to carry
    /// along (a live follower then needs no want-list when a bundle is
    /// sealed): the tiles that reach past it, top first, then the later
    /// bundles, until `budget` bytes; every tile of the tree and every
    /// bundle, for `None`. Nothing when no bundle is later: the tiles are
    /// then the holder's. The holder checks each block against the links
    /// it follows, and asks for whatever else it lacks.
    pub fn tree_since(&self, after: Option<u64>, budget: usize) -> Result<Vec<Vec<u8>>, Error> {
        let later = |index: u64| after.is_none_or(|a| index > a);
        let first = self.bundles.partition_point(|(index, _)| !later(*index));
        if first == self.bundles.len() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut bytes = 0;
        for ((_, tile), _) in self.tiles.iter().filter(|(_, reach)| later(*reach)) {
            bytes += tile.len();
            if bytes > budget {
                return Ok(out);
            }
            out.push(tile.clone());
        }
        for (_, r) in &self.bundles[first..] {
            // Scavenged since the storage was read: the holder asks.
            let Some(bundle) = self.bucket.get_stored(r)? else {
                continue;
            };
            bytes += bundle.len();
            if bytes > budget {
                break;
            }
            out.push(bundle);
        }
        Ok(out)
    }
}

/// A stream's bundle tree as a log holds it, applied
/// ([`EventLog::held_tree`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldTree {
    /// The top tile.
    pub top: Ref,
    /// The index of the last bundle it links.
    pub last_bundle: u64,
}

/// A stream a store holds, as a peer replicating its bucket is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldStream {
    pub stream: StreamId,
    /// Events held (the signed length, for a stream held blind).
    pub length: u64,
    /// The writer whose signed head it is (this store's own key for a
    /// stream it writes).
    pub writer: [u8; 32],
}

/// A stream's storage a bucket here holds blind: the bucket, and the
/// storage block with its ref.
pub(crate) struct BlindHeld {
    pub bucket: Arc<Bucket>,
    root: Ref,
    block: Vec<u8>,
}

/// A block and its stored bytes.
type Block = (Ref, Vec<u8>);

/// Tiles of a stream's tree, top first, each with the last bundle index
/// its place reaches.
type Tiles = Vec<(Block, u64)>;

/// A stream's sealed bundles: index and block, in index order.
type Bundles = Vec<(u64, Ref)>;

/// The first version a storage of `length` events holds a record of,
/// given the index of its first bundle and its first edge record's
/// version: `length` when it holds none.
fn first_held(bundle: Option<u64>, edge: Option<u64>, length: u64) -> u64 {
    let bundle = bundle.map(|index| index * BUNDLE);
    bundle.into_iter().chain(edge).min().unwrap_or(length)
}

fn edge_blocks(edge: &[EdgeHeld]) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut rest = edge;
    while !rest.is_empty() {
        let mut n = 0;
        let mut bytes = 0;
        while n < rest.len()
            && n < EDGE_RECORDS
            && (n == 0 || bytes + rest[n].sealed.len() <= EDGE_BYTES)
        {
            bytes += rest[n].sealed.len();
            n += 1;
        }
        let node = Node {
            kind: STREAM_EDGE,
            links: Vec::new(),
            body: rest[..n]
                .iter()
                .map(|e| (e.version, Bytes::new(&e.sealed)))
                .collect::<Vec<_>>(),
        };
        let bytes = node.encode();
        blocks.push((Ref::of(Codec::PlainNode, &bytes), bytes));
        rest = &rest[n..];
    }
    blocks
}

impl EventLog {
    /// The stream's storage as blocks (see the module docs). The writer
    /// signs it now; a replica hands over its writer's, which its storage
    /// matches.
    pub fn storage(&self, stream: &StreamId) -> Result<Storage, Error> {
        self.storage_past(stream, None)
    }

    /// [`EventLog::storage`] holding only the part of the tree past bundle
    /// `after` (the tiles that reach past it, the bundles after it): what
    /// a live follower that holds the tree up to `after` lacks, read
    /// without reading the whole tree of a long stream. Its
    /// [`Storage::block`] knows only those blocks and the edge.
    pub fn storage_past(&self, stream: &StreamId, after: Option<u64>) -> Result<Storage, Error> {
        if self.state(stream)?.is_none()
            && let Some(held) = self.blind_held(stream)?
        {
            return blind_storage(stream, held, after);
        }
        let st = self.readable(stream)?;
        let bucket = self.inner.buckets.get(st.bucket)?;
        let read_tiles = |top: Option<&Ref>| read_tree(&bucket, stream, top, after);
        let (stored, kept, edge, (tiles, bundles, first_bundle)) = match &st.replica {
            None => {
                let (stored, edge, read) = self.sign_stored(stream, |_, top| read_tiles(top))?;
                (stored, None, edge, read)
            }
            Some(head) => {
                let (stored, kept) = self
                    .replica_stored(st.num)?
                    .filter(|(s, _)| s.head == *head)
                    .ok_or_else(|| Error::StoredMismatch {
                        stream: stream.clone(),
                        reason: "this replica took it in event by event, not as blocks: \
                                 export it from its writer"
                            .into(),
                    })?;
                let edge = self.edge_held((st.num, &st.open), stored.head.length)?;
                let read = read_tiles(stored.tree.as_ref())?;
                (stored, kept, edge, read)
            }
        };
        let edges = edge_blocks(&edge);
        let from = first_held(
            first_bundle,
            edge.first().map(|e| e.version),
            stored.head.length,
        );
        let (before, said) = self.told(stream, (&stored, &bucket), from, kept)?;
        let body = Body {
            stored: stored.clone(),
            bucket: bucket.name().clone(),
            sealing: Sealing::of(&bucket.config().transforms),
            before,
            said,
        };
        let links = stored
            .tree
            .iter()
            .chain(edges.iter().map(|(r, _)| r))
            .copied()
            .collect();
        let root_block = encode_root(&body, links);
        Ok(Storage {
            stored,
            root: Ref::of(Codec::PlainNode, &root_block),
            root_block,
            tiles,
            bundle_set: bundles.iter().map(|(_, r)| *r).collect(),
            bundles,
            edges,
            bucket,
        })
    }

    /// What a storage of `stream` under `stored`, in `bucket`, beginning
    /// at version `from` tells beside its stored head: of the versions
    /// before (see [`Before`]; `None` when it begins at 0 and shows every
    /// version), and what the writer says ([`Said`]; `None` when there is
    /// nothing to say). The writer signs what it says now; a replica
    /// hands on what its writer said, `kept`.
    fn told(
        &self,
        stream: &StreamId,
        (stored, bucket): (&StoredHead, &Bucket),
        from: u64,
        kept: Option<Said>,
    ) -> Result<(Option<Before>, Option<Said>), Error> {
        // The stream as it is now: a scavenge since the storage was read
        // may have moved its mark past the storage's first bundle.
        let st = self.readable_or_deleted(stream)?;
        let said = match (kept, &st.replica) {
            (Some(said), _) => Some(said),
            (None, Some(_)) => None,
            (None, None) => {
                let m = &st.metadata;
                let custom = match &m.custom {
                    Some(c) => Some(ByteBuf::from(bucket.seal(c.as_bytes())?)),
                    None => None,
                };
                let last = (from + BUNDLE - 1).min(stored.head.length);
                let said = Said {
                    shown: st.scavenged_before.clamp(from, last),
                    max_count: m.max_count,
                    max_age: m.max_age,
                    truncate_before: m.truncate_before,
                    custom,
                    signature: [0; 64],
                };
                (!said.is_plain()).then(|| said.sign(&self.inner.identity, stored))
            }
        };
        let shown = said.as_ref().map_or(0, |s| s.shown);
        if from == 0 && shown == 0 {
            return Ok((None, said));
        }
        let (peaks, leaves) = self.prefix_hashes(stream, &st, from)?;
        Ok((
            Some(Before {
                from,
                peaks,
                leaves,
            }),
            said,
        ))
    }

    /// The storage block of `stream` a bucket here holds blind (see
    /// [`blind_root`]), with the bucket and its ref.
    pub(crate) fn blind_held(&self, stream: &StreamId) -> Result<Option<BlindHeld>, Error> {
        for config in self.inner.buckets.store().buckets()? {
            let bucket = self.inner.buckets.get(config.num())?;
            if let Some((r, block)) = held_block(&bucket, stream)? {
                return Ok(Some(BlindHeld {
                    bucket,
                    root: r,
                    block,
                }));
            }
        }
        Ok(None)
    }

    /// How many events of `stream` this store holds: in its log, or held
    /// blind in a bucket it still cannot read (0 when neither).
    pub fn held_length(&self, stream: &StreamId) -> Result<u64, Error> {
        if let Some(v) = self.stream_version(stream)? {
            return Ok(v + 1);
        }
        Ok(match self.blind_held(stream)? {
            Some(held) if !held.bucket.readable() => decode_root(&held.block)?.0.stored.head.length,
            _ => 0,
        })
    }

    /// `stream`'s bundle tree as this log holds it (applied: every block
    /// under it is here), so that a follower fetches nothing under it
    /// again and tells its peer where it ends; `None` for a stream not in
    /// the log or without sealed bundles.
    pub fn held_tree(&self, stream: &StreamId) -> Result<Option<HeldTree>, Error> {
        let Some((bucket, top)) = self.held_top(stream)? else {
            return Ok(None);
        };
        Ok(tree::last_bundle(&bucket, stream.as_str(), &top)?
            .map(|(last_bundle, _)| HeldTree { top, last_bundle }))
    }

    /// The top of `stream`'s tree as this store holds it, in its log or
    /// blind, and the bucket that holds it.
    fn held_top(&self, stream: &StreamId) -> Result<Option<(Arc<Bucket>, Ref)>, Error> {
        if let Some(st) = self.state(stream)? {
            return Ok(match self.tree_top(st.bucket, st.num)? {
                Some(top) => Some((self.inner.buckets.get(st.bucket)?, top)),
                None => None,
            });
        }
        let Some(held) = self.blind_held(stream)? else {
            return Ok(None);
        };
        let (body, links) = decode_root(&held.block)?;
        let (top, _) = tree_and_edges(&body.stored, &links)?;
        Ok(top.map(|top| (held.bucket, top)))
    }

    /// The links that the tree `held` (see [`EventLog::held_tree`]) has
    /// at the place the tile `stored` (a block of a newer tree of
    /// `stream`, checked against its ref) states: subtrees and bundles
    /// held whole here, which a follower walking the newer tree need not
    /// look under, so that a round costs what changed, not the stream's
    /// length.
    pub fn held_under(
        &self,
        stream: &StreamId,
        held: &HeldTree,
        stored: &[u8],
    ) -> Result<Vec<Ref>, Error> {
        match self.held_top(stream)? {
            Some((bucket, top)) if top == held.top => {
                tree::held_at_place(&bucket, stream.as_str(), &held.top, stored)
            }
            // Another tree applied since: nothing is taken as held.
            _ => Ok(Vec::new()),
        }
    }

    /// Indexes the streams bucket `name` held blind, now that its key is
    /// here (their blocks are all in it); returns how many events.
    pub(crate) fn index_blind(&self, name: &BucketName) -> Result<u64, Error> {
        let bucket = self.inner.buckets.named(name)?;
        let held: Vec<Ref> = bucket
            .roots(&blind_root_prefix(""))
            .map(|r| r.map(|(_, r)| r))
            .collect::<Result<_, _>>()?;
        let mut events = 0;
        for r in held {
            if let Some(block) = bucket.get_stored(&r)? {
                events += self.apply_storage(Received::root(&block), &[])?.events;
            }
        }
        Ok(events)
    }

    /// The streams that buckets here hold blind, with their lengths (the
    /// signed ones held).
    pub fn blind_streams(&self) -> Result<Vec<HeldStream>, Error> {
        Ok(self
            .blind_listing("")?
            .into_iter()
            .map(|(_, h)| h)
            .collect())
    }

    /// The streams whose id starts with `prefix` that buckets here hold
    /// blind, by id, each with its bucket.
    pub(crate) fn blind_listing(
        &self,
        prefix: &str,
    ) -> Result<Vec<(BucketName, HeldStream)>, Error> {
        let mut out = Vec::new();
        for config in self.inner.buckets.store().buckets()? {
            let bucket = self.inner.buckets.get(config.num())?;
            let held = blind_in(&bucket, prefix)?;
            out.extend(held.into_iter().map(|h| (config.id.clone(), h)));
        }
        out.sort_by(|a, b| a.1.stream.cmp(&b.1.stream));
        Ok(out)
    }

    /// The streams of bucket `name` that this store holds, in its log or
    /// blind, with their lengths and writers: what a peer replicating the
    /// bucket is told, and picks from by the writers it trusts.
    pub fn held_streams(&self, name: &BucketName) -> Result<Vec<HeldStream>, Error> {
        let bucket = self.inner.buckets.named(name)?;
        let num = bucket.config().num();
        let own = self.identity().public_key();
        let mut out = Vec::new();
        for state in self.stream_states("") {
            let (stream, st) = state?;
            if st.bucket == num && st.exists() {
                out.push(HeldStream {
                    stream,
                    length: st.length,
                    writer: st.replica.as_ref().map_or(own, |h| h.signer),
                });
            }
        }
        out.extend(blind_in(&bucket, "")?);
        Ok(out)
    }

    /// Hands `f` every block of `storage`, as stored: the storage block,
    /// the tiles, the bundles, the edge blocks.
    pub fn each_storage_block(
        &self,
        storage: &Storage,
        mut f: impl FnMut(&Ref, &[u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        f(&storage.root, &storage.root_block)?;
        for ((r, bytes), _) in &storage.tiles {
            f(r, bytes)?;
        }
        for (_, r) in &storage.bundles {
            let bytes = storage
                .bucket
                .get_stored(r)?
                .ok_or_else(|| Error::StoredMismatch {
                    stream: storage.stored.head.stream.clone(),
                    reason: format!("bundle {r} is gone (scavenged while it was read)"),
                })?;
            f(r, &bytes)?;
        }
        for (r, bytes) in &storage.edges {
            f(r, bytes)?;
        }
        Ok(())
    }

    /// The writer's stored head a replica stream's storage matches, and
    /// the first version the writer showed with it, signed, when it had
    /// scavenged the stream.
    fn replica_stored(&self, num: u64) -> Result<Option<(StoredHead, Option<Said>)>, Error> {
        let Some(bytes) = self.inner.volume.get(&layout::replica_stored_key(num))? else {
            return Ok(None);
        };
        let corrupt = |e: postcard::Error| Error::Corrupt {
            what: format!("stored head of replica stream #{num}"),
            reason: e.to_string(),
        };
        let (stored, rest) = postcard::take_from_bytes::<StoredHead>(&bytes).map_err(corrupt)?;
        let said = match rest.is_empty() {
            true => None,
            false => Some(postcard::from_bytes(rest).map_err(corrupt)?),
        };
        Ok(Some((stored, said)))
    }
}

/// The top of a stored head's tree, which its storage block links first
/// (when it has one), and the edge blocks it links after it.
fn tree_and_edges<'a>(
    stored: &StoredHead,
    links: &'a [Ref],
) -> Result<(Option<Ref>, &'a [Ref]), Error> {
    match (stored.tree, links.split_first()) {
        (Some(top), Some((first, rest))) if *first == top => Ok((Some(top), rest)),
        (Some(_), _) => Err(Error::StoredMismatch {
            stream: stored.head.stream.clone(),
            reason: "the storage block does not link its tree".into(),
        }),
        (None, _) => Ok((None, links)),
    }
}

/// The root under which a bucket holds the storage block of a stream it
/// cannot read (a blind replica: encrypted, no key here). The storage
/// stays whole in the bucket, which keeps, checks and serves it; once the
/// key is given, applying it indexes the stream and drops the root.
pub(crate) fn blind_root(stream: &StreamId) -> String {
    blind_root_prefix(stream.as_str())
}

/// The storage block of `stream` that `bucket` holds blind, with its ref.
fn held_block(bucket: &Bucket, stream: &StreamId) -> Result<Option<(Ref, Vec<u8>)>, Error> {
    let Some(r) = bucket.root(&blind_root(stream))? else {
        return Ok(None);
    };
    let block = bucket.get_stored(&r)?.ok_or_else(|| Error::Corrupt {
        what: format!(
            "storage block of stream {stream} in bucket {}",
            bucket.name()
        ),
        reason: format!("block {r} is missing"),
    })?;
    Ok(Some((r, block)))
}

fn blind_root_prefix(prefix: &str) -> String {
    format!("stream/{prefix}")
}

/// The streams whose id starts with `prefix` that `bucket` holds blind.
fn blind_in(bucket: &Bucket, prefix: &str) -> Result<Vec<HeldStream>, Error> {
    let mut out = Vec::new();
    for root in bucket.roots(&blind_root_prefix(prefix)) {
        let (_, r) = root?;
        if let Some(block) = bucket.get_stored(&r)? {
            let head = decode_root(&block)?.0.stored.head;
            out.push(HeldStream {
                stream: head.stream,
                length: head.length,
                writer: head.signer,
            });
        }
    }
    Ok(out)
}

/// The tiles of a stream's tree under `top` past bundle `after` (see
/// [`EventLog::storage_past`]), read with their bytes (and the last
/// bundle index each reaches), its bundles after `after`, and the index
/// of its first bundle.
fn read_tree(
    bucket: &Bucket,
    stream: &StreamId,
    top: Option<&Ref>,
    after: Option<u64>,
) -> Result<(Tiles, Bundles, Option<u64>), Error> {
    let Some(top) = top else {
        return Ok(Default::default());
    };
    let walked = tree::bundles_past(bucket, stream.as_str(), top, after)?;
    let first = match after {
        None => walked.bundles.first().map(|(index, _)| *index),
        Some(_) => tree::first_bundle(bucket, stream.as_str(), top)?.map(|(index, _)| index),
    };
    let mut tiles = Vec::with_capacity(walked.tiles.len());
    for (r, reach) in walked.tiles {
        let bytes = bucket.get_stored(&r)?.ok_or_else(|| Error::Corrupt {
            what: format!("bundle tree of stream {stream}"),
            reason: format!("tile {r} is missing"),
        })?;
        tiles.push(((r, bytes), reach));
    }
    Ok((tiles, walked.bundles, first))
}

/// The storage of a stream a bucket holds blind: as it was received.
fn blind_storage(
    stream: &StreamId,
    BlindHeld {
        bucket,
        root,
        block: root_block,
    }: BlindHeld,
    after: Option<u64>,
) -> Result<Storage, Error> {
    let (body, links) = decode_root(&root_block)?;
    let (top, edge_refs) = tree_and_edges(&body.stored, &links)?;
    let (tiles, bundles, _) = read_tree(&bucket, stream, top.as_ref(), after)?;
    let mut edges = Vec::with_capacity(edge_refs.len());
    for r in edge_refs {
        let bytes = bucket.get_stored(r)?.ok_or_else(|| Error::StoredMismatch {
            stream: stream.clone(),
            reason: format!("edge block {r} is missing"),
        })?;
        edges.push((*r, bytes));
    }
    Ok(Storage {
        stored: body.stored,
        root,
        root_block,
        tiles,
        bundle_set: bundles.iter().map(|(_, r)| *r).collect(),
        bundles,
        edges,
        bucket,
    })
}

/// The stream a storage block is of, and the name of its bucket at its
/// writer: what a replica of that bucket checks before it stores
/// anything the block links.
pub fn storage_bucket(root_block: &[u8]) -> Result<(StreamId, BucketName), Error> {
    let (body, _) = decode_root(root_block)?;
    Ok((body.stored.head.stream, body.bucket))
}

/// The events under a storage block's signed head, if `bytes` is one
/// (an export's report counts them).
pub(crate) fn stored_length(bytes: &[u8]) -> Option<u64> {
    decode_root(bytes)
        .ok()
        .map(|(body, _)| body.stored.head.length)
}

/// A storage block's body and links.
fn decode_root(bytes: &[u8]) -> Result<(Body, Vec<Ref>), Error> {
    let corrupt = |e: hydra_block::DecodeError| Error::Corrupt {
        what: "storage block".into(),
        reason: e.to_string(),
    };
    if hydra_block::links_of(bytes).map_err(corrupt)?.0 == STREAM_STORAGE_SAID {
        let node = Node::<(Body, Option<Before>, Said)>::decode(STREAM_STORAGE_SAID, bytes)
            .map_err(corrupt)?;
        let (mut body, before, said) = node.body;
        (body.before, body.said) = (before, Some(said));
        return Ok((body, node.links));
    }
    let node = Node::<Body>::decode(STREAM_STORAGE, bytes).map_err(corrupt)?;
    Ok((node.body, node.links))
}

/// A storage block's bytes: of kind [`STREAM_STORAGE_SAID`] when the
/// writer says more than its stored head.
fn encode_root(body: &Body, links: Vec<Ref>) -> Vec<u8> {
    match &body.said {
        None => Node {
            kind: STREAM_STORAGE,
            links,
            body,
        }
        .encode(),
        Some(said) => Node {
            kind: STREAM_STORAGE_SAID,
            links,
            body: (body, &body.before, said),
        }
        .encode(),
    }
}
