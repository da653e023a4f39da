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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use hydra_block::{Codec, Kind, Node, Ref};
use hydra_bucket::{Bucket, BucketError, BucketName, Transforms};
use hydra_volume::{Direction, KeyRange};
use serde::{Deserialize, Serialize};
use serde_bytes::{ByteBuf, Bytes};

use crate::layout::{self, Deletion, EventRecordView, STORED_SUBTREE_LEVEL, StreamState};
use crate::merkle::{Hash, leaf_hash, push_leaf, root_of_peaks};
use crate::stored::{EdgeHeld, Said, edge_leaf};
use crate::writer::Request;
use crate::{
    BUNDLE, EVENT_BUNDLE, Error, EventLog, StoredHead, StreamId, StreamMetadata, bundle, tree,
};

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
/// blocks. Bundles are immutable, so they are read when they are handed
/// over; tiles are replaced as bundles are sealed, so they are read here.
pub struct Storage {
    pub stored: StoredHead,
    /// The storage block's ref: a root of an export.
    pub root: Ref,
    root_block: Vec<u8>,
    tiles: Vec<Block>,
    bundles: Vec<Ref>,
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
        if let Some((_, bytes)) = self.tiles.iter().chain(&self.edges).find(|(b, _)| b == r) {
            return Ok(Some(bytes.clone()));
        }
        if !self.bundle_set.contains(r) {
            return Ok(None);
        }
        Ok(self.bucket.get_stored(r)?)
    }
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

/// A stream's storage as a store received it: its storage block, and
/// those of its edge blocks that came with it, in memory (a peer sends
/// small edges along: they are not stored, their records are). Its tiles,
/// bundles and other edge blocks are in its bucket.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub root: &'a [u8],
    pub edges: &'a [Vec<u8>],
}

impl<'a> Received<'a> {
    /// A storage block alone: every block it links is in its bucket.
    pub fn root(root: &'a [u8]) -> Received<'a> {
        Received { root, edges: &[] }
    }
}

/// What applying a stream's storage did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// Events new here.
    pub events: u64,
    /// Events this store held already.
    pub held: u64,
}

/// A stream's storage checked against this store.
pub(crate) enum Checked {
    /// Nothing new: this store holds the stream at least this long.
    Held(u64),
    New(Box<Prepared>),
    /// In a bucket this store cannot read: kept whole, as stored.
    Blind(Box<Blind>),
}

/// A stream's storage a bucket here holds blind: the bucket, and the
/// storage block with its ref.
pub(crate) struct BlindHeld {
    pub bucket: Arc<Bucket>,
    root: Ref,
    block: Vec<u8>,
}

/// A stream's storage a blind store keeps: its blocks are in the bucket
/// but for the storage block and the edge blocks received along.
pub(crate) struct Blind {
    bucket: Arc<Bucket>,
    stream: StreamId,
    root: Vec<u8>,
    edges: Vec<Vec<u8>>,
    applied: Applied,
}

impl Checked {
    /// What applying it does.
    pub fn applied(&self) -> Applied {
        match self {
            Checked::Held(length) => Applied {
                events: 0,
                held: *length,
            },
            Checked::New(p) => Applied {
                events: p.events.len() as u64,
                held: p.held,
            },
            Checked::Blind(b) => b.applied,
        }
    }

    /// New events it holds in memory, for the writer.
    pub fn events(&self) -> u64 {
        match self {
            Checked::New(p) => p.events.len() as u64,
            _ => 0,
        }
    }
}

/// A new event of a replicated stream, checked, for the writer.
pub(crate) struct Incoming {
    pub id: [u8; 16],
    pub leaf: Hash,
    /// Its sealed record, when it is on the edge (else it is in one of
    /// the new bundles).
    pub sealed: Option<Vec<u8>>,
}

/// A stream's storage checked against this store: what the writer
/// applies (and checks again that the stream did not change meanwhile).
pub(crate) struct Prepared {
    pub stored: StoredHead,
    /// The internal number of the bucket it goes to.
    pub bucket: u32,
    /// The length this store held when it was checked.
    pub held: u64,
    /// Where the stream starts, when it is new here and its storage
    /// begins past version 0.
    pub start: Option<Start>,
    /// For a replica whose writer scavenged what it holds: the version
    /// its own scavenge removes up to before the rest is applied.
    pub scavenge: Option<u64>,
    /// What the writer says beside its stored head, signed: kept beside
    /// it, and handed on.
    pub said: Option<Said>,
    /// The stream's metadata, as the writer says it.
    pub metadata: StreamMetadata,
    /// The events from `held` on, in version order.
    pub events: Vec<Incoming>,
    /// Bundles new here: (index, block).
    pub bundles: Vec<(u64, Ref)>,
    /// Edge records held here that the new bundles take in: (version,
    /// position).
    pub sealed_now: Vec<(u64, u64)>,
}

/// Where a stream new here starts when its storage begins past version
/// 0 (see [`Before`]): what the replica keeps as its writer did at
/// scavenge, so that its tree and proofs go on from there.
pub(crate) struct Start {
    /// The versions the peaks cover, `[0, covered)`.
    pub covered: u64,
    pub peaks: Vec<Hash>,
    /// The leaf hashes of the versions from `covered` up to the first
    /// shown.
    pub leaves: Vec<Hash>,
}

/// A storage's events taken onto a stream's tree, in version order:
/// those before `shown` only as leaves.
struct Taking {
    peaks: Vec<Hash>,
    length: u64,
    shown: u64,
    hidden: Vec<Hash>,
    events: Vec<Incoming>,
}

impl Taking {
    fn take(&mut self, leaf: Hash, id: [u8; 16], sealed: Option<Vec<u8>>) {
        push_leaf(&mut self.peaks, self.length, leaf, |_, _, _| {});
        if self.length < self.shown {
            self.hidden.push(leaf);
        } else {
            self.events.push(Incoming { id, leaf, sealed });
        }
        self.length += 1;
    }
}

impl Before {
    /// Checks that it fits a storage of `length` events whose first
    /// record is version `first` (of a bundle when `bundle_first`),
    /// shown from version `shown`: it begins there, with a peak per set
    /// bit of the versions below rounded down to 256 and a leaf for each
    /// after, and hides no more than that bundle's events.
    fn check(
        &self,
        first: u64,
        bundle_first: bool,
        (shown, length): (u64, u64),
    ) -> Result<(), String> {
        let covered = self.from >> STORED_SUBTREE_LEVEL << STORED_SUBTREE_LEVEL;
        if self.from != first {
            return Err(format!(
                "it says it begins at version {}, its first record is {first}",
                self.from
            ));
        }
        if self.peaks.len() as u32 != covered.count_ones()
            || self.leaves.len() as u64 != self.from - covered
        {
            return Err(format!(
                "it gives {} peaks and {} leaf hashes for the {} versions before it",
                self.peaks.len(),
                self.leaves.len(),
                self.from
            ));
        }
        let last = match bundle_first {
            true => (self.from + BUNDLE - 1).min(length),
            false => self.from,
        };
        if !(self.from..=last).contains(&shown) {
            return Err(format!(
                "it shows the stream from version {shown}, outside {}..={last}",
                self.from
            ));
        }
        Ok(())
    }
}

/// A block and its stored bytes.
type Block = (Ref, Vec<u8>);

/// What a storage block tells beside its stored head: of the versions
/// before its first, and what its writer says.
type Told = (Option<Before>, Option<Said>);

/// A stream's sealed bundles: index and block, in index order.
type Bundles = Vec<(u64, Ref)>;

/// Checks what a storage block tells beside its stored head, which needs
/// no key: what it says of the versions before the first it holds (see
/// [`Before`]), when there are any, fitting the storage; and that the
/// stored head's signer signed what it says beside ([`Said`]). Returns
/// the first version the storage holds.
fn check_told(
    stored: &StoredHead,
    (before, said): (Option<&Before>, Option<&Said>),
    bundles: &Bundles,
    edge_first: Option<u64>,
) -> Result<u64, Error> {
    let mismatch = |reason: String| Error::StoredMismatch {
        stream: stored.head.stream.clone(),
        reason,
    };
    if let Some(said) = said
        && !said.verify(stored)
    {
        return Err(mismatch(
            "what it says beside its stored head is not signed with it".into(),
        ));
    }
    let length = stored.head.length;
    let first = first_held(bundles.first().map(|(index, _)| *index), edge_first, length);
    let shown = said.map_or(0, |s| s.shown);
    match before {
        Some(b) => {
            let bundle_first = first.is_multiple_of(BUNDLE)
                && bundles
                    .binary_search_by_key(&(first / BUNDLE), |(j, _)| *j)
                    .is_ok();
            b.check(first, bundle_first, (shown, length))
                .map_err(mismatch)?;
        }
        None if first > 0 || shown > 0 => {
            return Err(mismatch(format!(
                "it begins at version {first}, shows it from {shown}, and says nothing \
                 of the versions before"
            )));
        }
        None => {}
    }
    Ok(first)
}

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
        if self.state(stream)?.is_none()
            && let Some(held) = self.blind_held(stream)?
        {
            return blind_storage(stream, held);
        }
        let st = self.readable(stream)?;
        let bucket = self.inner.buckets.get(st.bucket)?;
        let read_tiles = |top: Option<&Ref>| read_tree(&bucket, stream, top);
        let (stored, kept, edge, (tiles, bundles)) = match &st.replica {
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
            bundles.first().map(|(index, _)| *index),
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
        let bundles: Vec<Ref> = bundles.into_iter().map(|(_, r)| r).collect();
        Ok(Storage {
            stored,
            root: Ref::of(Codec::PlainNode, &root_block),
            root_block,
            tiles,
            bundle_set: bundles.iter().copied().collect(),
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
        let mut out = Vec::new();
        for config in self.inner.buckets.store().buckets()? {
            out.extend(blind_in(&*self.inner.buckets.get(config.num())?)?);
        }
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
        out.extend(blind_in(&bucket)?);
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
        for (r, bytes) in &storage.tiles {
            f(r, bytes)?;
        }
        for r in &storage.bundles {
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

    /// The stream a storage block is of, and the bucket here that its
    /// blocks go to: the stream's own, or for a new stream the bucket of
    /// the writer's bucket name, which must exist here and seal blocks
    /// the same way.
    pub fn storage_target(&self, root_block: &[u8]) -> Result<(StreamId, Arc<Bucket>), Error> {
        let (body, _) = decode_root(root_block)?;
        let stream = body.stored.head.stream.clone();
        let bucket = match self.state(&stream)? {
            Some(st) => self.inner.buckets.get(st.bucket)?,
            None => {
                // A bucket of that name, made as the writer's if missing,
                // read with the key given for it (if it came otherwise, as
                // a replica of the writer's objects, it has none yet).
                let store = self.inner.buckets.store();
                if let Err(BucketError::NotFound(_)) = store.bucket_config(&body.bucket) {
                    store.replica_of(&body.bucket, body.sealing.transforms(), None)?;
                }
                let bucket = self.inner.buckets.named(&body.bucket)?;
                let key = match bucket.readable() {
                    true => None,
                    false => {
                        let named = crate::log::lock(&self.inner.pending_keys).remove(&body.bucket);
                        named.or_else(|| {
                            let offered = crate::log::lock(&self.inner.offered_keys);
                            let t = &bucket.config().transforms;
                            offered.iter().find(|k| k.opens(t)).cloned()
                        })
                    }
                };
                match key {
                    Some(key) => {
                        self.unlock(&body.bucket, &key)?;
                        self.inner.buckets.named(&body.bucket)?
                    }
                    None => bucket,
                }
            }
        };
        if Sealing::of(&bucket.config().transforms) != body.sealing {
            return Err(Error::OtherTransforms {
                stream,
                bucket: bucket.name().clone(),
                writer: body.bucket,
            });
        }
        Ok((stream, bucket))
    }

    /// Checks a stream's storage whose blocks are in its bucket here
    /// (see [`EventLog::storage_target`]) without applying it: what
    /// [`EventLog::apply_storage`] would do.
    pub fn check_storage(
        &self,
        received: Received<'_>,
        trusted: &[[u8; 32]],
    ) -> Result<Applied, Error> {
        Ok(self.check(received, trusted)?.applied())
    }

    /// Checks a stream's storage whose blocks are in its bucket here, and
    /// indexes its new events and takes its stored head, in one commit
    /// (see the module docs). `trusted`, when not empty, are the writers
    /// whose heads are taken.
    pub fn apply_storage(
        &self,
        received: Received<'_>,
        trusted: &[[u8; 32]],
    ) -> Result<Applied, Error> {
        self.apply_checked(self.check(received, trusted)?)
    }

    /// Applies a storage [`EventLog::check`] passed (the writer checks
    /// again that the stream did not change since).
    pub(crate) fn apply_checked(&self, checked: Checked) -> Result<Applied, Error> {
        let applied = checked.applied();
        match checked {
            Checked::Held(_) => {}
            Checked::New(prepared) => {
                self.follow_scavenge(&prepared)?;
                self.request(|reply| Request::Replicate {
                    prepared: vec![*prepared],
                    order: None,
                    reply,
                })?;
            }
            Checked::Blind(blind) => {
                let root = Ref::of(Codec::PlainNode, &blind.root);
                let mut blocks = blind.bucket.writer();
                for edge in blind.edges {
                    blocks.put_stored(Ref::of(Codec::PlainNode, &edge), edge)?;
                }
                blocks.put_stored(root, blind.root)?;
                blocks.flush()?;
                blind.bucket.set_root(&blind_root(&blind.stream), root)?;
            }
        }
        Ok(applied)
    }

    /// Removes what a replica holds of a stream that its writer
    /// scavenged since (see [`Prepared::scavenge`]), as the writer did.
    pub(crate) fn follow_scavenge(&self, p: &Prepared) -> Result<(), Error> {
        match p.scavenge {
            Some(upto) => self
                .scavenge_stream(&p.stored.head.stream, upto)
                .map(|_| ()),
            None => Ok(()),
        }
    }

    /// Every check of [`EventLog::apply_storage`].
    pub(crate) fn check(
        &self,
        received: Received<'_>,
        trusted: &[[u8; 32]],
    ) -> Result<Checked, Error> {
        let (body, links) = decode_root(received.root)?;
        let (stored, told) = (body.stored, (body.before, body.said));
        let head = &stored.head;
        if !trusted.is_empty() && !trusted.contains(&head.signer) {
            return Err(Error::UntrustedWriter {
                stream: head.stream.clone(),
                signer: head.signer_peer_id(),
            });
        }
        stored
            .verify(&head.signer)
            .map_err(|_| Error::BadHeadSignature(head.stream.clone()))?;
        let (stream, bucket) = self.storage_target(received.root)?;
        if !bucket.readable() && self.state(&stream)?.is_none() {
            return self.check_blind(received, (stored, links), told, bucket);
        }
        let length = head.length;
        Ok(
            match self.prepare(received, (stored, links), told, &bucket)? {
                Some(p) => Checked::New(Box::new(p)),
                None => Checked::Held(length),
            },
        )
    }

    /// [`EventLog::check`] for a bucket this store cannot read: every
    /// block present (tiles in their places, bundles, edge blocks) and the
    /// edge against its signed root. The events cannot be checked against
    /// the head without the key: a keyed store that takes the stream from
    /// here does that.
    fn check_blind(
        &self,
        received: Received<'_>,
        (stored, links): (StoredHead, Vec<Ref>),
        (before, said): Told,
        bucket: Arc<Bucket>,
    ) -> Result<Checked, Error> {
        let head = &stored.head;
        let stream = &head.stream;
        let held = match held_block(&bucket, stream)? {
            Some((_, block)) => Some(decode_root(&block)?.0.stored),
            None => None,
        };
        if let Some(h) = &held {
            if h.head.signer != head.signer {
                return Err(Error::OtherWriter {
                    stream: stream.clone(),
                    signer: head.signer_peer_id(),
                    writer: h.head.signer_peer_id(),
                });
            }
            if h.head.length == head.length && h.head.root != head.root {
                return Err(Error::Inconsistent {
                    stream: stream.clone(),
                    length: head.length,
                });
            }
            if h.head.length > head.length || *h == stored {
                return Ok(Checked::Held(h.head.length));
            }
        }
        let (top, edge_refs) = tree_and_edges(&stored, &links)?;
        let bundles = match &top {
            Some(top) => tree::bundles(&bucket, stream.as_str(), top)?.bundles,
            None => Vec::new(),
        };
        for (index, r) in &bundles {
            if !bucket.has(r)? {
                return Err(Error::StoredMismatch {
                    stream: stream.clone(),
                    reason: format!("its bundle {index} ({r}) is missing"),
                });
            }
        }
        let edge = edge_records(&stored, received, edge_refs, &bucket)?;
        let told = (before.as_ref(), said.as_ref());
        check_told(&stored, told, &bundles, edge.first().map(|(v, _)| *v))?;
        let held = held.map_or(0, |h| h.head.length);
        Ok(Checked::Blind(Box::new(Blind {
            bucket,
            stream: stream.clone(),
            root: received.root.to_vec(),
            edges: received.edges.to_vec(),
            applied: Applied {
                events: head.length - held,
                held,
            },
        })))
    }

    /// [`EventLog::check`]: `None` when this store already holds all of
    /// it.
    fn prepare(
        &self,
        received: Received<'_>,
        (stored, links): (StoredHead, Vec<Ref>),
        (before, said): Told,
        bucket: &Bucket,
    ) -> Result<Option<Prepared>, Error> {
        let head = &stored.head;
        let stream = &head.stream;
        let mismatch = |reason: String| Error::StoredMismatch {
            stream: stream.clone(),
            reason,
        };
        let state = self.state(stream)?;
        let st = match &state {
            Some(s) => {
                match &s.replica {
                    Some(h) if h.signer != head.signer => {
                        return Err(Error::OtherWriter {
                            stream: stream.clone(),
                            signer: head.signer_peer_id(),
                            writer: h.signer_peer_id(),
                        });
                    }
                    None if s.length > 0 || s.deletion != Deletion::None => {
                        return Err(Error::NotAReplica {
                            stream: stream.clone(),
                        });
                    }
                    _ => {}
                }
                s.clone()
            }
            None => StreamState::default(),
        };
        let held_stored = match &state {
            Some(s) if s.replica.is_some() => self.replica_stored(s.num)?.map(|(s, _)| s),
            _ => None,
        };
        // The stream's metadata as the writer says it.
        let metadata = match &said {
            Some(said) => said_metadata(said, bucket, &mismatch)?,
            None => StreamMetadata::default(),
        };
        // The same length as held but another storage (the writer sealed
        // bundles since, which the replica takes in), or other words (it
        // scavenged, or changed the stream's metadata).
        let said_more = st.replica.is_some()
            && (metadata != st.metadata
                || said.as_ref().map_or(0, |s| s.shown) > st.scavenged_before);
        let resealed =
            head.length == st.length && (held_stored.as_ref() != Some(&stored) || said_more);
        if head.length <= st.length && !resealed {
            // Nothing new: it must be a prefix of what is held.
            let held_root = if head.length == st.length {
                root_of_peaks(&st.peaks)
            } else {
                self.head_at(stream, head.length)?.root
            };
            if held_root != head.root {
                return Err(Error::Inconsistent {
                    stream: stream.clone(),
                    length: head.length,
                });
            }
            return Ok(None);
        }
        let num = state.as_ref().map(|s| s.num);

        // The tree, and the bundles it links that are new here.
        let (top, edge_refs) = tree_and_edges(&stored, &links)?;
        let walked = match &top {
            Some(top) => tree::bundles(bucket, stream.as_str(), top)?.bundles,
            None => Vec::new(),
        };
        let held_bundles = match num {
            Some(num) => self.held_bundles(num)?,
            None => BTreeMap::new(),
        };
        let edge = edge_records(&stored, received, edge_refs, bucket)?;
        let first = check_told(
            &stored,
            (before.as_ref(), said.as_ref()),
            &walked,
            edge.first().map(|(v, _)| *v),
        )?;
        let shown = said.as_ref().map_or(0, |s| s.shown);
        // What a replica holds below the first version its writer shows,
        // the writer scavenged (its signed storage and what it says say
        // so): the replica removes it too, then applies the rest.
        let upto = shown.min(st.length);
        let scavenge = (st.replica.is_some() && upto > st.scavenged_before).then_some(upto);
        let mut new_bundles = Vec::new();
        for (index, r) in &walked {
            match held_bundles.get(index) {
                Some(held) if held == r => {}
                Some(held) => {
                    return Err(mismatch(format!(
                        "its bundle {index} is {r}, the one held here {held}"
                    )));
                }
                None => new_bundles.push((*index, *r)),
            }
        }
        if let Some(index) = held_bundles.keys().find(|i| {
            (*i + 1) * BUNDLE > first && walked.binary_search_by_key(*i, |(j, _)| *j).is_err()
        }) {
            return Err(mismatch(format!(
                "bundle {index} held here is not in its tree"
            )));
        }

        // What the replica holds on its edge: each either taken into a
        // new bundle, or in the writer's edge as it is here.
        let held_edge: BTreeMap<u64, EdgeHeld> = match num {
            Some(num) => self
                .edge_held((num, &st.open), st.length)?
                .into_iter()
                .map(|e| (e.version, e))
                .collect(),
            None => BTreeMap::new(),
        };
        let new_bundle_of: HashMap<u64, Ref> = new_bundles.iter().copied().collect();
        let mut sealed_now = Vec::new();
        let mut their_edge = edge.iter().take_while(|(v, _)| *v < st.length).peekable();
        for (version, held) in held_edge.range(first..) {
            if new_bundle_of.contains_key(&(version / BUNDLE)) {
                sealed_now.push((*version, held.position));
                continue;
            }
            match their_edge.next() {
                Some((v, sealed)) if v == version && *sealed == held.sealed => {}
                // Another history than the one held here.
                _ => {
                    return Err(Error::Inconsistent {
                        stream: stream.clone(),
                        length: head.length,
                    });
                }
            }
        }
        if let Some((v, _)) = their_edge.next() {
            return Err(mismatch(format!(
                "its edge holds event {v}, which this store does not hold on its edge"
            )));
        }

        // A stream new here starts where its storage does (see [`Before`]).
        let start = before.filter(|_| st.length == 0);
        // Every new event, from a new bundle or the edge, in order.
        let mut t = Taking {
            peaks: st.peaks.clone(),
            length: st.length,
            shown: 0,
            hidden: Vec::new(),
            events: Vec::with_capacity((head.length - st.length) as usize),
        };
        if let Some(b) = &start {
            t.peaks = b.peaks.clone();
            t.length = b.from - b.leaves.len() as u64;
            for leaf in &b.leaves {
                push_leaf(&mut t.peaks, t.length, *leaf, |_, _, _| {});
                t.length += 1;
            }
            t.shown = shown;
        }
        let mut edge = edge
            .into_iter()
            .skip_while(|(v, _)| *v < st.length)
            .peekable();
        let corrupt = |version: u64, reason: String| Error::CorruptEvent {
            stream: stream.to_string(),
            version,
            reason,
        };
        let check = |record: &[u8], version: u64| -> Result<[u8; 16], Error> {
            let r = EventRecordView::decode(record)?;
            if r.stream != stream.as_str() || r.version != version {
                return Err(corrupt(
                    version,
                    format!("it is event {} of stream {:?}", r.version, r.stream),
                ));
            }
            Ok(r.id)
        };
        let open_bundle = |r: &Ref| -> Result<Vec<u8>, Error> {
            bucket.get(r).map_err(|e| open_error(e, &mismatch))
        };
        let records = |r: &Ref, plain: &'_ [u8]| -> Result<Vec<Hash>, Error> {
            let node = Node::<Vec<&Bytes>>::decode(EVENT_BUNDLE, plain)
                .map_err(|e| mismatch(format!("bundle {r}: {e}")))?;
            if node.body.len() as u64 != BUNDLE {
                return Err(mismatch(format!(
                    "bundle {r} holds {} records",
                    node.body.len()
                )));
            }
            Ok(node.body.iter().map(|b| leaf_hash(b)).collect())
        };
        // New bundles of events held here on the edge must hold them as
        // they are here.
        for (index, r) in new_bundles.iter().filter(|(i, _)| i * BUNDLE < st.length) {
            let plain = open_bundle(r)?;
            for (i, leaf) in records(r, &plain)?.into_iter().enumerate() {
                let version = index * BUNDLE + i as u64;
                if version < st.length && held_edge.get(&version).map(|e| e.leaf) != Some(leaf) {
                    // Another history than the one held here.
                    return Err(Error::Inconsistent {
                        stream: stream.clone(),
                        length: head.length,
                    });
                }
            }
        }
        while t.length < head.length {
            let index = t.length / BUNDLE;
            if let Some(r) = new_bundle_of.get(&index) {
                let plain = open_bundle(r)?;
                let node = Node::<Vec<&Bytes>>::decode(EVENT_BUNDLE, &plain)
                    .map_err(|e| mismatch(format!("bundle {r}: {e}")))?;
                if node.body.len() as u64 != BUNDLE {
                    return Err(mismatch(format!(
                        "bundle {r} holds {} records",
                        node.body.len()
                    )));
                }
                let first = index * BUNDLE;
                for (i, record) in node.body.iter().enumerate() {
                    let version = first + i as u64;
                    if version < t.length {
                        continue;
                    }
                    let leaf = leaf_hash(record);
                    t.take(leaf, check(record, version)?, None);
                }
                continue;
            }
            let Some((version, sealed)) = edge.next() else {
                return Err(Error::ImportGap {
                    stream: stream.clone(),
                    expected: t.length,
                    found: head.length,
                });
            };
            if version != t.length {
                return Err(Error::ImportGap {
                    stream: stream.clone(),
                    expected: t.length,
                    found: version,
                });
            }
            let record = bucket
                .unseal(sealed.clone())
                .map_err(|e| open_error(e, &mismatch))?;
            let leaf = leaf_hash(&record);
            t.take(leaf, check(&record, version)?, Some(sealed));
        }
        if let Some((v, _)) = edge.next() {
            return Err(mismatch(format!(
                "its edge holds event {v}, past its length {}",
                head.length
            )));
        }
        if root_of_peaks(&t.peaks) != head.root {
            return Err(match &start {
                // Hashes a peer gave, not the writer's history.
                Some(b) => mismatch(format!(
                    "its hashes of the versions before {} and its events give another root \
                     than the signed one",
                    b.from
                )),
                None => Error::Inconsistent {
                    stream: stream.clone(),
                    length: head.length,
                },
            });
        }
        let start = start.map(|b| Start {
            covered: b.from - b.leaves.len() as u64,
            peaks: b.peaks,
            leaves: b.leaves.into_iter().chain(t.hidden).collect(),
        });
        Ok(Some(Prepared {
            bucket: bucket.config().num(),
            held: st.length,
            start,
            scavenge,
            said,
            metadata,
            events: t.events,
            bundles: new_bundles,
            sealed_now,
            stored,
        }))
    }

    /// The sealed bundles of stream `num` here: index -> block.
    fn held_bundles(&self, num: u64) -> Result<BTreeMap<u64, Ref>, Error> {
        let range = KeyRange::between(
            &layout::bundle_key(num, 0),
            &layout::bundle_key(num, u64::MAX),
        );
        self.inner
            .volume
            .scan(range, Direction::Forward)
            .map(|e| {
                let (k, v) = e?;
                let index = layout::u64_of(&k[k.len() - 8..], "bundle key")?;
                Ok((index, bundle::block_of(&v)?.1))
            })
            .collect()
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

/// The edge records of a stream's storage, `(version, sealed bytes)` in
/// version order, from the edge blocks received or in `bucket`, checked
/// against the signed edge root (which needs no key).
fn edge_records(
    stored: &StoredHead,
    received: Received<'_>,
    edge_refs: &[Ref],
    bucket: &Bucket,
) -> Result<Vec<(u64, Vec<u8>)>, Error> {
    let mismatch = |reason: String| Error::StoredMismatch {
        stream: stored.head.stream.clone(),
        reason,
    };
    let mut edge: Vec<(u64, Vec<u8>)> = Vec::with_capacity(stored.edge_records as usize);
    let given: HashMap<Ref, &[u8]> = received
        .edges
        .iter()
        .map(|b| (Ref::of(Codec::PlainNode, b), b.as_slice()))
        .collect();
    for r in edge_refs {
        let held;
        let bytes = match given.get(r) {
            Some(b) => *b,
            None => {
                held = bucket
                    .get_stored(r)?
                    .ok_or_else(|| mismatch(format!("edge block {r} is missing")))?;
                &held
            }
        };
        let node = Node::<Vec<(u64, ByteBuf)>>::decode(STREAM_EDGE, bytes)
            .map_err(|e| mismatch(format!("edge block {r}: {e}")))?;
        edge.extend(node.body.into_iter().map(|(v, b)| (v, b.into_vec())));
    }
    let leaves = edge.iter().map(|(v, sealed)| edge_leaf(*v, sealed));
    if edge.len() as u64 != stored.edge_records
        || crate::merkle::root_of_leaves(leaves) != stored.edge_root
    {
        return Err(mismatch(format!(
            "its {} edge records hash to another root than the {} signed",
            edge.len(),
            stored.edge_records
        )));
    }
    if !edge.windows(2).all(|w| w[0].0 < w[1].0) {
        return Err(mismatch("its edge records are out of order".into()));
    }
    Ok(edge)
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

/// The streams `bucket` holds blind.
fn blind_in(bucket: &Bucket) -> Result<Vec<HeldStream>, Error> {
    let mut out = Vec::new();
    for root in bucket.roots(&blind_root_prefix("")) {
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

/// The tiles of a stream's tree under `top`, read with their bytes, and
/// its bundles.
fn read_tree(
    bucket: &Bucket,
    stream: &StreamId,
    top: Option<&Ref>,
) -> Result<(Vec<Block>, Bundles), Error> {
    let Some(top) = top else {
        return Ok(Default::default());
    };
    let walked = tree::bundles(bucket, stream.as_str(), top)?;
    let mut tiles = Vec::with_capacity(walked.tiles.len());
    for r in walked.tiles {
        let bytes = bucket.get_stored(&r)?.ok_or_else(|| Error::Corrupt {
            what: format!("bundle tree of stream {stream}"),
            reason: format!("tile {r} is missing"),
        })?;
        tiles.push((r, bytes));
    }
    Ok((tiles, walked.bundles))
}

/// The storage of a stream a bucket holds blind: as it was received.
fn blind_storage(
    stream: &StreamId,
    BlindHeld {
        bucket,
        root,
        block: root_block,
    }: BlindHeld,
) -> Result<Storage, Error> {
    let (body, links) = decode_root(&root_block)?;
    let (top, edge_refs) = tree_and_edges(&body.stored, &links)?;
    let (tiles, bundles) = read_tree(&bucket, stream, top.as_ref())?;
    let bundles: Vec<Ref> = bundles.into_iter().map(|(_, r)| r).collect();
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
        bundle_set: bundles.iter().copied().collect(),
        bundles,
        edges,
        bucket,
    })
}

/// A storage block's body and links.
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

/// The stream metadata `said` says, its custom part opened by `bucket`.
fn said_metadata(
    said: &Said,
    bucket: &Bucket,
    mismatch: &impl Fn(String) -> Error,
) -> Result<StreamMetadata, Error> {
    let custom = match &said.custom {
        Some(sealed) => {
            let plain = bucket
                .unseal(sealed.to_vec())
                .map_err(|e| open_error(e, mismatch))?;
            let text = String::from_utf8(plain)
                .map_err(|_| mismatch("its stream metadata is not UTF-8".into()))?;
            Some(text)
        }
        None => None,
    };
    Ok(StreamMetadata {
        max_count: said.max_count,
        max_age: said.max_age,
        truncate_before: said.truncate_before,
        custom,
    })
}

/// A block that did not open with this store's key: a missing key is
/// the bucket's own error, anything else the stream's storage's.
fn open_error(e: BucketError, mismatch: &impl Fn(String) -> Error) -> Error {
    match e {
        BucketError::Decrypt { .. }
        | BucketError::Decompress { .. }
        | BucketError::Corrupt { .. } => mismatch(e.to_string()),
        e => e.into(),
    }
}
