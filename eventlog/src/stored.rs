//! What a stream's storage holds, signed: the commitment a peer without
//! the bucket's key checks every byte it keeps for the stream against.
//!
//! A [`Head`] commits to the stream's *events* (the Merkle root over the
//! plain records): a reader with the key proves any event against it. A
//! peer without the key holds only ciphertext, so the writer also signs a
//! [`StoredHead`]: the head, plus what the stream's storage holds at that
//! length: the top of its bundle tree (see `tree.rs`), whose links reach
//! every sealed bundle's block (refs are hashes of the stored bytes), and
//! a Merkle root over the records still on the open edge (the hashes of
//! their sealed bytes), in version order:
//!
//! ```text
//!   StoredHead { head {stream, length 600, root, ...}, tree, edge_root, edge_records 88, signature }
//!                  |                                          |
//!            tile (0, 0)                          edge_root over H(sealed 512) ... H(sealed 599)
//!            /         \
//!     bundle 0      bundle 1
//! ```
//!
//! Checking needs no key: walk the tree from its top, hash every tile and
//! bundle held, hash the edge records, rebuild the edge root, compare,
//! and check the signature. The event proofs are not touched: inclusion
//! and consistency stay O(log n) against the head. Scavenged events are
//! in neither (their bytes are gone), so a stored head describes the
//! storage of one moment; the head inside it is what proves history.

use hydra_block::Ref;
use serde::{Deserialize, Serialize};

use crate::layout::{self, LogEntry};
use crate::merkle::{self, Hash};
use crate::{BUNDLE, Error, EventLog, Head, ProofError, StreamId, hex, tree};

/// A stream's head with what its storage holds, signed by the head's
/// signer (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHead {
    pub head: Head,
    /// The top of the stream's bundle tree; `None` before a bundle is
    /// sealed.
    pub tree: Option<Ref>,
    /// The Merkle root over the edge records below the head's length.
    #[serde(with = "hex::fixed")]
    pub edge_root: Hash,
    /// How many edge records the root covers.
    pub edge_records: u64,
    #[serde(with = "hex::fixed")]
    pub signature: [u8; 64],
}

impl StoredHead {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(&(
            "hydra-stored-head-v2",
            self.head.signed_bytes(),
            self.tree,
            self.edge_root,
            self.edge_records,
        ))
        .expect("stored heads encode")
    }

    /// Checks both signatures, and that the signer is `trusted`.
    pub fn verify(&self, trusted: &[u8; 32]) -> Result<(), ProofError> {
        self.head.verify(trusted)?;
        hydra_volume::verify(&self.head.signer, &self.signed_bytes(), &self.signature)
            .map_err(|_| ProofError::BadSignature)
    }
}

/// What a writer says of a stream beside its storage, signed together
/// with the stored head it comes with: the first version it shows (its
/// scavenged events can stay in a bundle it keeps until the bundle's
/// last event goes) and the stream's metadata, its application part
/// sealed by the stream's bucket (a blind replica keeps it unread). A
/// replica takes both on the writer's word, never on a relay's, and
/// hands the signature on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Said {
    pub shown: u64,
    pub max_count: Option<u64>,
    pub max_age: Option<u64>,
    pub truncate_before: Option<u64>,
    /// The metadata's `custom` JSON, sealed by the stream's bucket.
    pub custom: Option<serde_bytes::ByteBuf>,
    #[serde(with = "hex::fixed")]
    pub signature: [u8; 64],
}

impl Said {
    fn signed_bytes(&self, stored: &StoredHead) -> Vec<u8> {
        let said = (
            self.shown,
            self.max_count,
            self.max_age,
            self.truncate_before,
            &self.custom,
        );
        postcard::to_allocvec(&("hydra-stream-said-v1", stored.signed_bytes(), said))
            .expect("what a writer says encodes")
    }

    /// Signs it by this store's key with `stored` (which this store
    /// signed).
    pub fn sign(mut self, identity: &hydra_volume::Identity, stored: &StoredHead) -> Said {
        self.signature = identity.sign(&self.signed_bytes(stored));
        self
    }

    /// Whether the signer of `stored` signed this with it.
    pub fn verify(&self, stored: &StoredHead) -> bool {
        let bytes = self.signed_bytes(stored);
        hydra_volume::verify(&stored.head.signer, &bytes, &self.signature).is_ok()
    }

    /// Whether it says anything a replica would not assume: a stream
    /// shown from version 0, without metadata.
    pub fn is_plain(&self) -> bool {
        self.shown == 0
            && self.max_count.is_none()
            && self.max_age.is_none()
            && self.truncate_before.is_none()
            && self.custom.is_none()
    }
}

/// An edge record's leaf: its version and the hash of its sealed bytes.
pub(crate) fn edge_leaf(version: u64, sealed: &[u8]) -> Hash {
    merkle::leaf_hash(
        &postcard::to_allocvec(&(version, blake3::hash(sealed).as_bytes())).expect("leaves encode"),
    )
}

/// A record on a stream's open edge, as this store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EdgeHeld {
    pub version: u64,
    pub position: u64,
    /// Its Merkle leaf (of the plain record).
    pub leaf: Hash,
    /// The record as its bucket sealed it.
    pub sealed: Vec<u8>,
}

impl EdgeHeld {
    /// Its leaf in the Merkle tree over the edge a stored head signs.
    pub fn stored_leaf(&self) -> Hash {
        edge_leaf(self.version, &self.sealed)
    }
}

impl EventLog {
    /// The edge records of stream number `num` below version `length`,
    /// in version order.
    pub(crate) fn edge_held(
        &self,
        (num, open): (u64, &layout::OpenEdge),
        length: u64,
    ) -> Result<Vec<EdgeHeld>, Error> {
        let volume = &self.inner.volume;
        let index = crate::records::edge_positions(&**volume, (num, open), (0, length))?;
        let mut held = Vec::with_capacity(index.len());
        for chunk in index.chunks(512) {
            let keys: Vec<Vec<u8>> = chunk.iter().map(|(_, p)| layout::log_key(*p)).collect();
            let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            for ((version, position), value) in chunk.iter().zip(volume.get_many(&keys)?) {
                if let Some(LogEntry::Edge { sealed, leaf, .. }) =
                    value.map(LogEntry::decode).transpose()?
                {
                    held.push(EdgeHeld {
                        version: *version,
                        position: *position,
                        leaf,
                        sealed,
                    });
                }
            }
        }
        Ok(held)
    }

    /// The top of stream `num`'s bundle tree in `bucket`.
    pub(crate) fn tree_top(&self, bucket: u32, num: u64) -> Result<Option<Ref>, Error> {
        Ok(self
            .inner
            .buckets
            .get(bucket)?
            .root(&tree::root_name(num))?)
    }

    /// The stream's signed head with what its storage holds now; needs
    /// no bucket key. Only the stream's writer signs one.
    pub fn stored_head(&self, stream: &StreamId) -> Result<StoredHead, Error> {
        Ok(self.sign_stored(stream, |_, _| Ok(()))?.0)
    }

    /// [`EventLog::stored_head`], with the edge records it covers and
    /// what `also` read of the stream's storage at the same moment (given
    /// the stream's state and the top of its tree).
    pub(crate) fn sign_stored<T>(
        &self,
        stream: &StreamId,
        mut also: impl FnMut(&layout::StreamState, Option<&Ref>) -> Result<T, Error>,
    ) -> Result<(StoredHead, Vec<EdgeHeld>, T), Error> {
        // Sealing moves records from the edge into a bundle, and rewrites
        // tiles: read again if the stream sealed one meanwhile.
        for _ in 0..8 {
            let st = self.readable_or_deleted(stream)?;
            if let Some(h) = &st.replica {
                return Err(Error::Replicated {
                    stream: stream.clone(),
                    writer: h.signer_peer_id(),
                });
            }
            let tree = self.tree_top(st.bucket, st.num)?;
            let edge = self.edge_held((st.num, &st.open), st.length)?;
            let read = match also(&st, tree.as_ref()) {
                Ok(r) => r,
                // A tile replaced meanwhile.
                Err(_) if self.tree_top(st.bucket, st.num)? != tree => continue,
                Err(e) => return Err(e),
            };
            let again = self.readable_or_deleted(stream)?;
            if again.length / BUNDLE != st.length / BUNDLE
                || self.tree_top(st.bucket, st.num)? != tree
            {
                continue;
            }
            let mut stored = StoredHead {
                head: self.sign_head(stream, &st),
                tree,
                edge_root: merkle::root_of_leaves(edge.iter().map(EdgeHeld::stored_leaf)),
                edge_records: edge.len() as u64,
                signature: [0; 64],
            };
            stored.signature = self.inner.identity.sign(&stored.signed_bytes());
            return Ok((stored, edge, read));
        }
        Err(Error::Corrupt {
            what: format!("storage of stream {stream}"),
            reason: "it kept changing while it was read".into(),
        })
    }

    /// Checks, without any key, that what this store holds for the
    /// stream up to `stored.head.length` is what `stored` (signed by
    /// `trusted`) commits to: its bundle tree, every tile and bundle
    /// block present and hashing to its ref, every edge record's sealed
    /// bytes, nothing missing, nothing else.
    pub fn check_stored(&self, stored: &StoredHead, trusted: &[u8; 32]) -> Result<(), Error> {
        let stream = &stored.head.stream;
        stored
            .verify(trusted)
            .map_err(|_| Error::BadHeadSignature(stream.clone()))?;
        let st = self.readable_or_deleted(stream)?;
        let mismatch = |reason: String| Error::StoredMismatch {
            stream: stream.clone(),
            reason,
        };
        let here = self.tree_top(st.bucket, st.num)?;
        if here != stored.tree {
            return Err(mismatch(format!(
                "its bundle tree here is {}, the signed one {}",
                here.map_or("none".into(), |r| r.to_string()),
                stored.tree.map_or("none".into(), |r| r.to_string()),
            )));
        }
        if let Some(top) = &stored.tree {
            let bucket = self.inner.buckets.get(st.bucket)?;
            let walked = tree::bundles(&bucket, stream.as_str(), top)
                .map_err(|e| mismatch(e.to_string()))?;
            for (index, r) in walked.bundles {
                match bucket.get_stored(&r) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(mismatch(format!(
                            "the block of events from {} is missing",
                            index * BUNDLE
                        )));
                    }
                    Err(e) => return Err(mismatch(e.to_string())),
                }
            }
        }
        let edge = self.edge_held((st.num, &st.open), stored.head.length)?;
        if edge.len() as u64 != stored.edge_records
            || merkle::root_of_leaves(edge.iter().map(EdgeHeld::stored_leaf)) != stored.edge_root
        {
            return Err(mismatch(format!(
                "{} edge records here hash to another root than the {} signed",
                edge.len(),
                stored.edge_records
            )));
        }
        Ok(())
    }

    /// The state of a stream that exists (deleted or not).
    pub(crate) fn readable_or_deleted(
        &self,
        stream: &StreamId,
    ) -> Result<layout::StreamState, Error> {
        self.state(stream)?
            .ok_or_else(|| Error::StreamNotFound(stream.clone()))
    }
}
