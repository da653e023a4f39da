//! What a stream's storage holds, signed: the commitment a peer without
//! the bucket's key checks every byte it keeps for the stream against.
//!
//! A [`Head`] commits to the stream's *events* (the Merkle root over the
//! plain records): a reader with the key proves any event against it. A
//! peer without the key holds only ciphertext, so the writer also signs a
//! [`StoredHead`]: the head, plus a Merkle root over the stream's *stored
//! units* at that length, in version order. A unit is a sealed bundle (its
//! block's ref, which is the hash of the stored bytes) or an edge record
//! (the hash of its sealed bytes):
//!
//! ```text
//!   StoredHead { head {stream, length 600, root, ...}, stored_root, units 90, signature }
//!                               stored_root
//!                  /                                  \
//!        u(bundle 0)  u(bundle 1)   u(edge 512) ... u(edge 599)
//!             |            |             |               |
//!        block ref     block ref    H(sealed record) H(sealed record)
//! ```
//!
//! Checking needs no key: hash the blocks and edge records held, rebuild
//! the root, compare, and check the signature. The event proofs are not
//! touched: inclusion and consistency stay O(log n) against the head.
//! Scavenged events are no unit (their bytes are gone), so a stored head
//! describes the storage of one moment; the head inside it is what proves
//! history.

use hydra_block::Ref;
use hydra_volume::{Direction, KeyRange};
use serde::{Deserialize, Serialize};

use crate::layout::{self, LogEntry};
use crate::merkle::{self, Hash};
use crate::{BUNDLE, Error, EventLog, Head, ProofError, StreamId, hex};

/// A stream's head with the root of what its storage holds, signed by the
/// head's signer (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredHead {
    pub head: Head,
    #[serde(with = "hex::fixed")]
    pub stored_root: Hash,
    /// How many units the root covers.
    pub units: u64,
    #[serde(with = "hex::fixed")]
    pub signature: [u8; 64],
}

impl StoredHead {
    /// The bytes the signature covers.
    pub fn signed_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(&(
            "hydra-stored-head-v1",
            self.head.signed_bytes(),
            self.stored_root,
            self.units,
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

/// A unit's leaf: what kind, where, and the hash of its stored bytes.
fn unit_leaf(kind: &str, at: u64, hash: &[u8]) -> Hash {
    merkle::leaf_hash(&postcard::to_allocvec(&(kind, at, hash)).expect("units encode"))
}

impl EventLog {
    /// The stored units of stream number `num` below version `length`,
    /// by first version, with the blocks they name (to check).
    fn stored_units(&self, num: u64, length: u64) -> Result<Vec<(u64, Hash, Option<Ref>)>, Error> {
        let volume = &self.inner.volume;
        let mut units = Vec::new();
        let bundles = [layout::BUNDLES, &num.to_be_bytes()].concat();
        for e in volume.scan(KeyRange::prefix(&bundles), Direction::Forward) {
            let (k, v) = e?;
            let index =
                u64::from_be_bytes(k[bundles.len()..].try_into().map_err(|_| Error::Corrupt {
                    what: "bundle key".into(),
                    reason: format!("{} bytes", k.len()),
                })?);
            if (index + 1) * BUNDLE <= length {
                let block = crate::bundle::block_of(&v)?;
                units.push((
                    index * BUNDLE,
                    unit_leaf("bundle", index, block.hash()),
                    Some(block),
                ));
            }
        }
        let versions = KeyRange::between(
            &layout::version_key(num, 0),
            &layout::version_key(num, length),
        );
        let index: Vec<(u64, Vec<u8>)> = volume
            .scan(versions, Direction::Forward)
            .map(|e| {
                let (k, v) = e?;
                let (_, version) = layout::version_of_key(&k).ok_or_else(|| Error::Corrupt {
                    what: "stream index key".into(),
                    reason: format!("{} bytes", k.len()),
                })?;
                Ok((
                    version,
                    layout::log_key(layout::u64_of(&v, "stream index entry")?),
                ))
            })
            .collect::<Result<_, Error>>()?;
        for chunk in index.chunks(512) {
            let keys: Vec<&[u8]> = chunk.iter().map(|(_, k)| k.as_slice()).collect();
            for ((version, _), value) in chunk.iter().zip(volume.get_many(&keys)?) {
                if let Some(LogEntry::Edge { sealed, .. }) =
                    value.map(LogEntry::decode).transpose()?
                {
                    let hash = blake3::hash(&sealed);
                    units.push((*version, unit_leaf("edge", *version, hash.as_bytes()), None));
                }
            }
        }
        units.sort_by_key(|(first, _, _)| *first);
        Ok(units)
    }

    fn stored_root(units: &[(u64, Hash, Option<Ref>)]) -> Hash {
        merkle::root_of_leaves(units.iter().map(|(_, leaf, _)| *leaf))
    }

    /// The stream's signed head with the root of what its storage holds
    /// now; needs no bucket key. Only the stream's writer signs one.
    pub fn stored_head(&self, stream: &StreamId) -> Result<StoredHead, Error> {
        // Sealing moves units between the edge and a bundle: read again
        // if the stream sealed a bundle meanwhile.
        for _ in 0..8 {
            let st = self.readable_or_deleted(stream)?;
            if let Some(h) = &st.replica {
                return Err(Error::Replicated {
                    stream: stream.clone(),
                    writer: h.signer_peer_id(),
                });
            }
            let units = self.stored_units(st.num, st.length)?;
            let again = self.readable_or_deleted(stream)?;
            if again.length / BUNDLE != st.length / BUNDLE {
                continue;
            }
            let mut stored = StoredHead {
                head: self.sign_head(stream, &st),
                stored_root: Self::stored_root(&units),
                units: units.len() as u64,
                signature: [0; 64],
            };
            stored.signature = self.inner.identity.sign(&stored.signed_bytes());
            return Ok(stored);
        }
        Err(Error::Corrupt {
            what: format!("storage of stream {stream}"),
            reason: "it kept changing while it was read".into(),
        })
    }

    /// Checks, without any key, that what this store holds for the
    /// stream up to `stored.head.length` is what `stored` (signed by
    /// `trusted`) commits to: every sealed bundle's block present and
    /// hashing to its ref, every edge record's sealed bytes, nothing
    /// missing, nothing else.
    pub fn check_stored(&self, stored: &StoredHead, trusted: &[u8; 32]) -> Result<(), Error> {
        let stream = &stored.head.stream;
        stored
            .verify(trusted)
            .map_err(|_| Error::BadHeadSignature(stream.clone()))?;
        let st = self.readable_or_deleted(stream)?;
        let units = self.stored_units(st.num, stored.head.length)?;
        let mismatch = |reason: String| Error::StoredMismatch {
            stream: stream.clone(),
            reason,
        };
        let bucket = self.inner.buckets.get(st.bucket)?;
        for (first, _, block) in &units {
            if let Some(r) = block {
                match bucket.get_stored(r) {
                    Ok(Some(_)) => {}
                    Ok(None) => {
                        return Err(mismatch(format!(
                            "the block of events from {first} is missing"
                        )));
                    }
                    Err(e) => return Err(mismatch(e.to_string())),
                }
            }
        }
        if units.len() as u64 != stored.units || Self::stored_root(&units) != stored.stored_root {
            return Err(mismatch(format!(
                "{} units here hash to another root than the {} signed",
                units.len(),
                stored.units
            )));
        }
        Ok(())
    }

    /// The state of a stream that exists (deleted or not).
    fn readable_or_deleted(&self, stream: &StreamId) -> Result<layout::StreamState, Error> {
        self.state(stream)?
            .ok_or_else(|| Error::StreamNotFound(stream.clone()))
    }
}
