//! Signed heads and Merkle proofs: what no other event store offers.
//!
//! A [`Head`] is a stream's checkpoint: its id, length, Merkle root and
//! last global position, signed with the volume's ed25519 key. With a head
//! and the signer's public key, anyone can check that an event is the
//! stream's event at some version ([`InclusionProof`], O(log n) hashes) and
//! that an older head is a prefix of a newer one ([`ConsistencyProof`]),
//! without trusting whoever served them. The `verify_*` functions read
//! only their arguments.
//!
//! A scavenged event can no longer be proved (its bytes are gone), but
//! heads and the proofs of every surviving event still verify: the store
//! keeps the leaf hashes of what it scavenges.

use serde::{Deserialize, Serialize};

use crate::bundle::BUNDLE;
use crate::layout::{self, Deletion, EventRecord, STORED_SUBTREE_LEVEL, StreamState};
use crate::merkle::{self, Hash, Subtrees};
use crate::{Error, EventLog, RecordedEvent, StreamId, hex};

/// A stream's signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Head {
    pub stream: StreamId,
    /// Number of events: the next version.
    pub length: u64,
    /// Merkle root over the stream's events.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    #[serde(with = "hex::fixed")]
    pub root: Hash,
    /// Global position of the stream's last event.
    pub position: Option<u64>,
    /// The signer's ed25519 public key.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    #[serde(with = "hex::fixed")]
    pub signer: [u8; 32],
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    #[serde(with = "hex::fixed")]
    pub signature: [u8; 64],
}

impl Head {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(&(
            "hydra-head-v1",
            self.stream.as_str(),
            self.length,
            self.root,
            self.position,
        ))
        .expect("heads encode")
    }

    /// The libp2p peer id of the signer.
    pub fn signer_peer_id(&self) -> String {
        hydra_volume::peer_id_of(&self.signer)
            .map_or_else(|_| hex::encode(&self.signer), |p| p.to_string())
    }

    /// Checks the signature, and that the signer is `trusted`.
    pub fn verify(&self, trusted: &[u8; 32]) -> Result<(), ProofError> {
        if &self.signer != trusted {
            return Err(ProofError::UntrustedSigner {
                signer: self.signer_peer_id(),
            });
        }
        hydra_volume::verify(&self.signer, &self.signed_bytes(), &self.signature)
            .map_err(|_| ProofError::BadSignature)
    }
}

/// Proof that an event is a stream's event at `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InclusionProof {
    pub stream: StreamId,
    pub version: u64,
    /// The tree size (head length) the proof is against.
    pub length: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    #[serde(with = "hex::list")]
    pub path: Vec<Hash>,
}

/// Proof that the stream's first `old_length` events are a prefix of its
/// first `new_length`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsistencyProof {
    pub stream: StreamId,
    pub old_length: u64,
    pub new_length: u64,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    #[serde(with = "hex::list")]
    pub path: Vec<Hash>,
}

/// A stream's signed head, its root at an older length, and the
/// consistency proof between the two: what a peer sends a replica whose
/// copy of that older length disagrees with an export the peer sent. If
/// the old root is the replica's, the peer's tree extends the replica's,
/// so the export's records were wrong (a peer to distrust); if it is not,
/// the writer signed two histories that cannot both be true
/// (equivocation), and the replica's head with this extension proves it
/// to anyone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    pub head: Head,
    #[serde(with = "hex::fixed")]
    pub old_root: Hash,
    pub proof: ConsistencyProof,
}

impl Extension {
    /// Checks the head's signature by `trusted`, and that the proof links
    /// the old root to the head's root.
    pub fn verify(&self, trusted: &[u8; 32]) -> Result<(), ProofError> {
        self.head.verify(trusted)?;
        if self.proof.stream != self.head.stream {
            return Err(ProofError::StreamMismatch {
                proof: self.proof.stream.to_string(),
                head: self.head.stream.to_string(),
            });
        }
        if self.proof.new_length != self.head.length {
            return Err(ProofError::LengthMismatch {
                proof: self.proof.new_length,
                head: self.head.length,
            });
        }
        if merkle::verify_consistency(
            self.proof.old_length,
            self.proof.new_length,
            &self.old_root,
            &self.head.root,
            &self.proof.path,
        ) {
            Ok(())
        } else {
            Err(ProofError::PathInvalid)
        }
    }

    /// Whether this (verified) extension and `held`, a head of the same
    /// stream and signer at the old length, cannot both be true.
    pub fn contradicts(&self, held: &Head) -> bool {
        held.stream == self.head.stream
            && held.signer == self.head.signer
            && held.length == self.proof.old_length
            && held.root != self.old_root
    }
}

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    #[error("head is signed by {signer}, which is not the trusted signer")]
    UntrustedSigner { signer: String },
    #[error("head signature does not verify")]
    BadSignature,
    #[error("proof is for stream {proof}, head is for stream {head}")]
    StreamMismatch { proof: String, head: String },
    #[error(
        "event is of stream {event} version {event_version}, proof is of stream {proof} version {proof_version}"
    )]
    EventMismatch {
        event: String,
        event_version: u64,
        proof: String,
        proof_version: u64,
    },
    #[error("proof is against length {proof}, head has length {head}")]
    LengthMismatch { proof: u64, head: u64 },
    #[error("Merkle path does not lead to the head's root")]
    PathInvalid,
}

/// The Merkle leaf hash of an event: what the stream's root commits to.
pub fn leaf_of(event: &RecordedEvent) -> Hash {
    merkle::leaf_hash(&EventRecord::of(event).encode())
}

/// Checks that `event` is at `proof.version` in the stream that `head`
/// (signed by `trusted`) describes.
pub fn verify_event(
    head: &Head,
    trusted: &[u8; 32],
    event: &RecordedEvent,
    proof: &InclusionProof,
) -> Result<(), ProofError> {
    head.verify(trusted)?;
    if proof.stream != head.stream {
        return Err(ProofError::StreamMismatch {
            proof: proof.stream.to_string(),
            head: head.stream.to_string(),
        });
    }
    if event.stream != proof.stream || event.version != proof.version {
        return Err(ProofError::EventMismatch {
            event: event.stream.to_string(),
            event_version: event.version,
            proof: proof.stream.to_string(),
            proof_version: proof.version,
        });
    }
    if proof.length != head.length {
        return Err(ProofError::LengthMismatch {
            proof: proof.length,
            head: head.length,
        });
    }
    if merkle::verify_inclusion(
        proof.version,
        proof.length,
        &leaf_of(event),
        &proof.path,
        &head.root,
    ) {
        Ok(())
    } else {
        Err(ProofError::PathInvalid)
    }
}

/// Checks that `old` is a prefix of `new`, both signed by `trusted`.
pub fn verify_consistency(
    old: &Head,
    new: &Head,
    trusted: &[u8; 32],
    proof: &ConsistencyProof,
) -> Result<(), ProofError> {
    old.verify(trusted)?;
    new.verify(trusted)?;
    for h in [old, new] {
        if h.stream != proof.stream {
            return Err(ProofError::StreamMismatch {
                proof: proof.stream.to_string(),
                head: h.stream.to_string(),
            });
        }
    }
    if proof.old_length != old.length {
        return Err(ProofError::LengthMismatch {
            proof: proof.old_length,
            head: old.length,
        });
    }
    if proof.new_length != new.length {
        return Err(ProofError::LengthMismatch {
            proof: proof.new_length,
            head: new.length,
        });
    }
    if merkle::verify_consistency(old.length, new.length, &old.root, &new.root, &proof.path) {
        Ok(())
    } else {
        Err(ProofError::PathInvalid)
    }
}

/// Subtree hashes of one stream: stored ones from 256 leaves up, smaller
/// ones recomputed from the events (or the leaf hashes kept at scavenge).
struct StreamTree<'a> {
    log: &'a EventLog,
    stream: &'a StreamId,
    num: u64,
    open: &'a layout::OpenEdge,
}

impl StreamTree<'_> {
    /// The leaf hashes of versions `[start, start + size)`: kept beside
    /// each edge record, hashed from a sealed bundle's records, or kept at
    /// scavenge.
    fn leaves(&self, start: u64, size: u64) -> Result<Vec<Hash>, Error> {
        let volume = &self.log.inner.volume;
        let mut on_edge = crate::records::edge_positions(
            &**volume,
            (self.num, self.open),
            (start, start + size),
        )?
        .into_iter()
        .peekable();
        let logs: Vec<Vec<u8>> = (start..start + size)
            .map(|v| {
                on_edge
                    .next_if(|(ev, _)| *ev == v)
                    .map_or(Vec::new(), |(_, p)| layout::log_key(p))
            })
            .collect();
        let log_refs: Vec<&[u8]> = logs.iter().map(Vec::as_slice).collect();
        let entries = volume.get_many(&log_refs)?;
        let mut out = Vec::with_capacity(size as usize);
        for (version, e) in (start..).zip(entries) {
            let edge = match e {
                Some(v) => layout::LogEntry::peek(&v)?.2.map(|(_, leaf)| leaf),
                None => None,
            };
            out.push(match edge {
                Some(leaf) => leaf,
                None => match self.log.bundle(self.num, version / BUNDLE)? {
                    Some(b) => merkle::leaf_hash(b.record((version % BUNDLE) as usize)),
                    None => self.scavenged_leaf(version)?,
                },
            });
        }
        Ok(out)
    }

    fn scavenged_leaf(&self, version: u64) -> Result<Hash, Error> {
        let b = self
            .log
            .inner
            .volume
            .get(&layout::scavenged_leaf_key(self.num, version))?
            .ok_or_else(|| Error::Scavenged {
                stream: self.stream.clone(),
                version,
            })?;
        b.try_into().map_err(|_| Error::Corrupt {
            what: "scavenged leaf hash".into(),
            reason: "not 32 bytes".into(),
        })
    }
}

fn mth(leaves: &[Hash]) -> Hash {
    if leaves.len() == 1 {
        return leaves[0];
    }
    let k = leaves.len().next_power_of_two() / 2;
    merkle::node_hash(&mth(&leaves[..k]), &mth(&leaves[k..]))
}

impl Subtrees for StreamTree<'_> {
    type Error = Error;

    fn subtree(&mut self, start: u64, size: u64) -> Result<Hash, Error> {
        let level = size.trailing_zeros();
        if level >= STORED_SUBTREE_LEVEL
            && let Some(b) =
                self.log
                    .inner
                    .volume
                    .get(&layout::subtree_key(self.num, level, start / size))?
        {
            return b.try_into().map_err(|_| Error::Corrupt {
                what: "subtree hash".into(),
                reason: "not 32 bytes".into(),
            });
        }
        if level > STORED_SUBTREE_LEVEL {
            let half = size / 2;
            let l = self.subtree(start, half)?;
            let r = self.subtree(start + half, half)?;
            return Ok(merkle::node_hash(&l, &r));
        }
        Ok(mth(&self.leaves(start, size)?))
    }
}

impl EventLog {
    /// The stream's current head, signed by this log's key.
    pub fn head(&self, stream: &StreamId) -> Result<Head, Error> {
        let st = self.head_state(stream)?;
        Ok(self.sign_head(stream, &st))
    }

    fn head_state(&self, stream: &StreamId) -> Result<StreamState, Error> {
        match self.state(stream)? {
            Some(s) if s.deletion == Deletion::Hard => Err(Error::StreamDeleted(stream.clone())),
            Some(s) if s.length > 0 => Ok(s),
            _ => Err(Error::StreamNotFound(stream.clone())),
        }
    }

    pub(crate) fn sign_head(&self, stream: &StreamId, st: &StreamState) -> Head {
        // A replica serves its writer's head, which proves the same tree.
        if let Some(h) = &st.replica
            && h.length == st.length
        {
            return h.clone();
        }
        let identity = &self.inner.identity;
        let mut head = Head {
            stream: stream.clone(),
            length: st.length,
            root: merkle::root_of_peaks(&st.peaks),
            position: st.last_position,
            signer: identity.public_key(),
            signature: [0; 64],
        };
        head.signature = identity.sign(&head.signed_bytes());
        head
    }

    /// A signed head for the stream as it was at `length` events.
    pub fn head_at(&self, stream: &StreamId, length: u64) -> Result<Head, Error> {
        let st = self.head_state(stream)?;
        if length == 0 || length > st.length {
            return Err(Error::NoSuchVersion {
                stream: stream.clone(),
                version: length,
                length: st.length,
            });
        }
        if length == st.length {
            return Ok(self.sign_head(stream, &st));
        }
        let mut tree = StreamTree {
            log: self,
            stream,
            num: st.num,
            open: &st.open,
        };
        let root = merkle::range_root(&mut tree, 0, length)?;
        let last = length - 1;
        let on_edge = crate::records::edge_positions(
            &*self.inner.volume,
            (st.num, &st.open),
            (last, length),
        )?;
        let position = match on_edge.first() {
            Some(&(_, p)) => Some(p),
            // A scavenged event has no position.
            None if last < st.scavenged_before => None,
            None => self
                .bundle(st.num, last / BUNDLE)?
                .map(|b| b.positions[(last % BUNDLE) as usize]),
        };
        let identity = &self.inner.identity;
        let mut head = Head {
            stream: stream.clone(),
            length,
            root,
            position,
            signer: identity.public_key(),
            signature: [0; 64],
        };
        head.signature = identity.sign(&head.signed_bytes());
        Ok(head)
    }

    /// What a stream's storage beginning at version `from` tells of the
    /// versions before it (see `storage.rs`): the peaks over versions
    /// `[0, from)` rounded down to a stored subtree, and the leaf hashes
    /// from there to `from`. Here they are stored subtrees and the leaf
    /// hashes kept at scavenge (or, on a replica, what it began from).
    pub(crate) fn prefix_hashes(
        &self,
        stream: &StreamId,
        st: &StreamState,
        from: u64,
    ) -> Result<(Vec<Hash>, Vec<Hash>), Error> {
        let mut tree = StreamTree {
            log: self,
            stream,
            num: st.num,
            open: &st.open,
        };
        let aligned = from >> STORED_SUBTREE_LEVEL << STORED_SUBTREE_LEVEL;
        let peaks = merkle::peak_ranges(aligned)
            .map(|(level, start)| tree.subtree(start, 1 << level))
            .collect::<Result<_, _>>()?;
        Ok((peaks, tree.leaves(aligned, from - aligned)?))
    }

    /// Proves that the event at `version` is in the stream's current head.
    pub fn prove(&self, stream: &StreamId, version: u64) -> Result<(Head, InclusionProof), Error> {
        let st = self.head_state(stream)?;
        if version >= st.length {
            return Err(Error::NoSuchVersion {
                stream: stream.clone(),
                version,
                length: st.length,
            });
        }
        if version < st.scavenged_before {
            return Err(Error::Scavenged {
                stream: stream.clone(),
                version,
            });
        }
        let mut tree = StreamTree {
            log: self,
            stream,
            num: st.num,
            open: &st.open,
        };
        let path = merkle::inclusion_path(&mut tree, version, st.length)?;
        Ok((
            self.sign_head(stream, &st),
            InclusionProof {
                stream: stream.clone(),
                version,
                length: st.length,
                path,
            },
        ))
    }

    /// The stream's current head, its root at `old_length`, and the proof
    /// between them (see [`Extension`]).
    pub fn extension(&self, stream: &StreamId, old_length: u64) -> Result<Extension, Error> {
        let st = self.head_state(stream)?;
        if old_length == 0 || old_length > st.length {
            return Err(Error::NoSuchVersion {
                stream: stream.clone(),
                version: old_length,
                length: st.length,
            });
        }
        let head = self.sign_head(stream, &st);
        let mut tree = StreamTree {
            log: self,
            stream,
            num: st.num,
            open: &st.open,
        };
        let old_root = merkle::range_root(&mut tree, 0, old_length)?;
        let proof = self.prove_consistency(stream, old_length, st.length)?;
        Ok(Extension {
            head,
            old_root,
            proof,
        })
    }

    /// Proves that the stream at `old_length` events is a prefix of the
    /// stream at `new_length`.
    pub fn prove_consistency(
        &self,
        stream: &StreamId,
        old_length: u64,
        new_length: u64,
    ) -> Result<ConsistencyProof, Error> {
        let st = self.head_state(stream)?;
        if old_length > new_length || new_length > st.length {
            return Err(Error::BadHeadOrder {
                old: old_length,
                new: new_length,
            });
        }
        let mut tree = StreamTree {
            log: self,
            stream,
            num: st.num,
            open: &st.open,
        };
        let path = merkle::consistency_path(&mut tree, old_length, new_length)?;
        Ok(ConsistencyProof {
            stream: stream.clone(),
            old_length,
            new_length,
            path,
        })
    }
}
