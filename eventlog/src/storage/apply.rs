//! How a store takes in a stream's storage it received (see the parent
//! module): every check of the blocks against the signed stored head and
//! what it holds, then the new events prepared for the writer, which
//! applies them in one commit (`writer/replicate.rs`). A store that
//! cannot read the stream's bucket keeps the storage whole, blind, after
//! every check that needs no key.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hydra_block::{Codec, Node, Ref};
use hydra_bucket::{Bucket, BucketError};
use hydra_volume::{Direction, KeyRange};
use serde::Serialize;
use serde_bytes::{ByteBuf, Bytes};

use super::{
    Before, STREAM_EDGE, Sealing, blind_root, decode_root, first_held, held_block, tree_and_edges,
};
use crate::layout::{self, Deletion, EventRecordView, STORED_SUBTREE_LEVEL, StreamState};
use crate::merkle::{Hash, leaf_hash, push_leaf, root_of_peaks};
use crate::stored::{EdgeHeld, Said, edge_leaf};
use crate::writer::Request;
use crate::{
    BUNDLE, EVENT_BUNDLE, Error, EventLog, StoredHead, StreamId, StreamMetadata, bundle, tree,
};

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

impl Start {
    /// The tree's peaks and length once the leaves are pushed onto the
    /// peaks, calling `completed` for every subtree they complete (see
    /// [`push_leaf`]).
    pub fn grown(&self, mut completed: impl FnMut(u32, u64, &Hash)) -> (Vec<Hash>, u64) {
        let mut peaks = self.peaks.clone();
        let mut length = self.covered;
        for leaf in &self.leaves {
            push_leaf(&mut peaks, length, *leaf, &mut completed);
            length += 1;
        }
        (peaks, length)
    }
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
/// What a storage block tells beside its stored head: of the versions
/// before its first, and what its writer says.
type Told = (Option<Before>, Option<Said>);

/// Checks what a storage block tells beside its stored head, which needs
/// no key: what it says of the versions before the first it holds (see
/// [`Before`]), when there are any, fitting the storage (whose first
/// bundle and first edge record are at the indexes given); and that the
/// stored head's signer signed what it says beside ([`Said`]). Returns
/// the first version the storage holds.
fn check_told(
    stored: &StoredHead,
    (before, said): (Option<&Before>, Option<&Said>),
    first_bundle: Option<u64>,
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
    let first = first_held(first_bundle, edge_first, length);
    let shown = said.map_or(0, |s| s.shown);
    match before {
        Some(b) => {
            let bundle_first = first.is_multiple_of(BUNDLE) && first_bundle == Some(first / BUNDLE);
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

impl EventLog {
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
        let first_bundle = bundles.first().map(|(index, _)| *index);
        check_told(&stored, told, first_bundle, edge.first().map(|(v, _)| *v))?;
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

        // The tree's bundles against those held here: read whole for a
        // stream new here, else only where the tree differs from the one
        // applied last (not at all when it is the same: a live stream
        // whose new events are all on its edge), so that a round costs
        // what changed, not the stream's length. `linked` are the tree's
        // bundles to compare, `held` the ones held here to compare them
        // with (a tree applied links exactly the bundles held).
        let (top, edge_refs) = tree_and_edges(&stored, &links)?;
        let first_of = |top: &Ref| -> Result<Option<u64>, Error> {
            Ok(tree::first_bundle(bucket, stream.as_str(), top)?.map(|(index, _)| index))
        };
        let held_top = held_stored.as_ref().and_then(|h| h.tree);
        let (first_bundle, linked, held_bundles) = match (&top, held_top) {
            (Some(top), Some(h)) if *top == h => (first_of(top)?, Vec::new(), BTreeMap::new()),
            (Some(top), Some(h)) => {
                let diff = tree::diff(bucket, stream.as_str(), &h, top)?;
                let held = diff.unlinked.into_iter().collect();
                (first_of(top)?, diff.linked, held)
            }
            (top, _) => {
                let linked = match top {
                    Some(top) => tree::bundles(bucket, stream.as_str(), top)?.bundles,
                    None => Vec::new(),
                };
                let held = match num {
                    Some(num) => self.held_bundles(num)?,
                    None => BTreeMap::new(),
                };
                (linked.first().map(|(index, _)| *index), linked, held)
            }
        };
        let edge = edge_records(&stored, received, edge_refs, bucket)?;
        let first = check_told(
            &stored,
            (before.as_ref(), said.as_ref()),
            first_bundle,
            edge.first().map(|(v, _)| *v),
        )?;
        let shown = said.as_ref().map_or(0, |s| s.shown);
        // What a replica holds below the first version its writer shows,
        // the writer scavenged (its signed storage and what it says say
        // so): the replica removes it too, then applies the rest.
        let upto = shown.min(st.length);
        let scavenge = (st.replica.is_some() && upto > st.scavenged_before).then_some(upto);
        let mut new_bundles = Vec::new();
        for (index, r) in &linked {
            match held_bundles.get(index) {
                Some(held) if held == r => {}
                // The writer signed another block of events held here:
                // another history than the one held (which the follower
                // tells from a peer's lie by the writer's own proof).
                Some(_) => {
                    return Err(Error::Inconsistent {
                        stream: stream.clone(),
                        length: head.length,
                    });
                }
                None => new_bundles.push((*index, *r)),
            }
        }
        if let Some(index) = held_bundles.keys().find(|i| {
            (*i + 1) * BUNDLE > first && linked.binary_search_by_key(*i, |(j, _)| *j).is_err()
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
        let mut start = before.filter(|_| st.length == 0).map(|b| Start {
            covered: b.from - b.leaves.len() as u64,
            peaks: b.peaks,
            leaves: b.leaves,
        });
        // Every new event, from a new bundle or the edge, in order.
        let mut t = Taking {
            peaks: st.peaks.clone(),
            length: st.length,
            shown: 0,
            hidden: Vec::new(),
            events: Vec::with_capacity((head.length - st.length) as usize),
        };
        if let Some(s) = &start {
            (t.peaks, t.length) = s.grown(|_, _, _| {});
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
        // New bundles of events held here on the edge must hold them as
        // they are here.
        for (index, r) in new_bundles.iter().filter(|(i, _)| i * BUNDLE < st.length) {
            let plain = open_bundle(r)?;
            for (i, record) in bundle_records(r, &plain, &mismatch)?.iter().enumerate() {
                let version = index * BUNDLE + i as u64;
                if version < st.length
                    && held_edge.get(&version).map(|e| e.leaf) != Some(leaf_hash(record))
                {
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
                let first = index * BUNDLE;
                for (i, record) in bundle_records(r, &plain, &mismatch)?.iter().enumerate() {
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
                Some(s) => mismatch(format!(
                    "its hashes of the versions before {} and its events give another root \
                     than the signed one",
                    s.covered + s.leaves.len() as u64
                )),
                None => Error::Inconsistent {
                    stream: stream.clone(),
                    length: head.length,
                },
            });
        }
        if let Some(s) = &mut start {
            s.leaves.append(&mut t.hidden);
        }
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

/// The records of bundle `r`, opened to `plain`: all of them, or an
/// error of the storage.
fn bundle_records<'p>(
    r: &Ref,
    plain: &'p [u8],
    mismatch: &impl Fn(String) -> Error,
) -> Result<Vec<&'p Bytes>, Error> {
    let node = Node::<Vec<&Bytes>>::decode(EVENT_BUNDLE, plain)
        .map_err(|e| mismatch(format!("bundle {r}: {e}")))?;
    if node.body.len() as u64 != BUNDLE {
        return Err(mismatch(format!(
            "bundle {r} holds {} records",
            node.body.len()
        )));
    }
    Ok(node.body)
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
