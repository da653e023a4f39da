//! Transforms between a block's plain bytes and the bytes a volume stores:
//! compress (zstd), then encrypt (ChaCha20-Poly1305).
//!
//! A ref is the hash of the *stored* bytes. That choice lets a peer that
//! holds no key store, verify and serve an encrypted bucket's blocks (a
//! blind replica), and lets `hydra volume verify` check every block
//! without keys. For deduplication to survive encryption, encryption is
//! deterministic: the nonce is a keyed BLAKE3 hash of the (compressed)
//! plaintext, so equal blocks under one key encrypt to equal bytes. The
//! cost, as for any convergent scheme, is that someone holding the stored
//! bytes learns which blocks are equal, nothing more.
//!
//! Encrypted layout: `nonce (12 bytes) || ciphertext || tag (16 bytes)`,
//! with the associated data `hydra-block-v1`.

use std::cell::RefCell;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};
use serde::{Deserialize, Serialize};

use crate::Key;

const NONCE_LEN: usize = 12;
const AAD: &[u8] = b"hydra-block-v1";

/// The transforms a bucket applies, as recorded in its config.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transforms {
    /// zstd level, when blocks are compressed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zstd_level: Option<i32>,
    /// Present when blocks are encrypted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption: Option<Encryption>,
}

impl Transforms {
    /// Transforms from their parts as a writer publishes them (a manifest,
    /// a stream's storage block): a zstd level, and the check value of
    /// the key, when encrypted.
    pub fn of(zstd_level: Option<i32>, key_check: Option<String>) -> Transforms {
        Transforms {
            zstd_level,
            encryption: key_check.map(|key_check| Encryption {
                cipher: CIPHER.into(),
                key_check,
            }),
        }
    }
}

/// How an encrypted bucket's blocks are sealed. Holds no secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Encryption {
    /// Always `chacha20-poly1305`; named so that another cipher can come.
    pub cipher: String,
    /// [`Key::check`] of the bucket's key, hex: tells a wrong key at open.
    pub key_check: String,
}

pub(crate) const CIPHER: &str = "chacha20-poly1305";

/// Why stored bytes did not turn back into a plain block.
#[derive(Debug)]
pub(crate) enum Undo {
    Decrypt,
    Decompress(String),
}

/// A bucket's transforms, ready to run: the config plus the key.
pub(crate) struct Pipeline {
    zstd_level: Option<i32>,
    cipher: Option<Sealer>,
}

struct Sealer {
    aead: ChaCha20Poly1305,
    nonce_key: [u8; 32],
}

impl Pipeline {
    pub fn new(transforms: &Transforms, key: Option<&Key>) -> Pipeline {
        Pipeline {
            zstd_level: transforms.zstd_level,
            cipher: match (&transforms.encryption, key) {
                (Some(_), Some(k)) => Some(Sealer {
                    aead: ChaCha20Poly1305::new(&k.derive("hydra 2026-11 block aead v1").into()),
                    nonce_key: k.derive("hydra 2026-11 block nonce v1"),
                }),
                _ => None,
            },
        }
    }

    /// Plain bytes to stored bytes.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        let compressed;
        let data = match self.zstd_level {
            Some(level) => {
                compressed = compress(level, plain);
                &compressed[..]
            }
            None => plain,
        };
        match &self.cipher {
            Some(s) => {
                let digest = blake3::keyed_hash(&s.nonce_key, data);
                let nonce_bytes: [u8; NONCE_LEN] = digest.as_bytes()[..NONCE_LEN]
                    .try_into()
                    .expect("12 of 32 bytes");
                let nonce = Nonce::from(nonce_bytes);
                let sealed = s
                    .aead
                    .encrypt(
                        &nonce,
                        Payload {
                            msg: data,
                            aad: AAD,
                        },
                    )
                    .expect("ChaCha20-Poly1305 encrypts any buffer that fits in memory");
                let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
                out.extend_from_slice(&nonce_bytes);
                out.extend_from_slice(&sealed);
                out
            }
            None if self.zstd_level.is_some() => data.to_vec(),
            None => plain.to_vec(),
        }
    }

    /// Stored bytes to plain bytes. `max_plain` bounds decompression, so
    /// a hostile block cannot expand into unbounded memory.
    pub fn open(&self, stored: Vec<u8>, max_plain: usize) -> Result<Vec<u8>, Undo> {
        let data = match &self.cipher {
            Some(s) => {
                if stored.len() < NONCE_LEN {
                    return Err(Undo::Decrypt);
                }
                let (nonce, sealed) = stored.split_at(NONCE_LEN);
                let nonce = Nonce::from(<[u8; NONCE_LEN]>::try_from(nonce).expect("12 bytes"));
                s.aead
                    .decrypt(
                        &nonce,
                        Payload {
                            msg: sealed,
                            aad: AAD,
                        },
                    )
                    .map_err(|_| Undo::Decrypt)?
            }
            None => stored,
        };
        match self.zstd_level {
            Some(_) => decompress(&data, max_plain).map_err(|e| Undo::Decompress(e.to_string())),
            None => Ok(data),
        }
    }
}

thread_local! {
    /// zstd contexts are expensive to create (tens of microseconds, more
    /// than compressing a small block), so each thread keeps one. A reused
    /// context produces the same bytes as a fresh one at the same level,
    /// which deduplication relies on.
    static COMPRESSOR: RefCell<Option<(i32, zstd::bulk::Compressor<'static>)>> =
        const { RefCell::new(None) };
    static DECOMPRESSOR: RefCell<Option<zstd::bulk::Decompressor<'static>>> =
        const { RefCell::new(None) };
}

fn compress(level: i32, plain: &[u8]) -> Vec<u8> {
    COMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.as_ref().map(|(l, _)| *l) != Some(level) {
            let c = zstd::bulk::Compressor::new(level).expect("zstd accepts levels 1 to 22");
            *slot = Some((level, c));
        }
        let (_, c) = slot.as_mut().expect("set above");
        c.compress(plain)
            .expect("zstd compression of an in-memory buffer does not fail")
    })
}

fn decompress(data: &[u8], max_plain: usize) -> std::io::Result<Vec<u8>> {
    DECOMPRESSOR.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            *slot = Some(zstd::bulk::Decompressor::new()?);
        }
        slot.as_mut()
            .expect("set above")
            .decompress(data, max_plain)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn transforms(zstd: bool, encrypt: bool) -> Transforms {
        Transforms {
            zstd_level: zstd.then_some(3),
            encryption: encrypt.then(|| Encryption {
                cipher: CIPHER.into(),
                key_check: String::new(),
            }),
        }
    }

    #[test]
    fn sealing_is_deterministic_and_a_wrong_key_fails() {
        let k = Key::from_bytes([1; 32]);
        let p = Pipeline::new(&transforms(true, true), Some(&k));
        let a = p.seal(b"same plaintext");
        assert_eq!(a, p.seal(b"same plaintext"));
        assert_ne!(a, p.seal(b"other plaintext"));
        let other = Pipeline::new(&transforms(true, true), Some(&Key::from_bytes([2; 32])));
        assert!(matches!(other.open(a.clone(), 1 << 20), Err(Undo::Decrypt)));
        let mut flipped = a.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(matches!(p.open(flipped, 1 << 20), Err(Undo::Decrypt)));
        assert!(matches!(p.open(vec![1, 2], 1 << 20), Err(Undo::Decrypt)));
    }

    #[test]
    fn reused_contexts_compress_like_fresh_ones() {
        let data = b"the same block, compressed again and again".repeat(20);
        let fresh = zstd::bulk::compress(&data, 7).unwrap();
        assert_eq!(compress(7, &data), fresh);
        assert_eq!(compress(3, &data), zstd::bulk::compress(&data, 3).unwrap());
        assert_eq!(compress(7, &data), fresh);
    }

    #[test]
    fn decompression_is_bounded() {
        let p = Pipeline::new(&transforms(true, false), None);
        let stored = p.seal(&vec![0u8; 1 << 20]);
        assert!(stored.len() < 1000);
        assert!(matches!(p.open(stored, 1000), Err(Undo::Decompress(_))));
    }

    proptest! {
        #[test]
        fn any_bytes_round_trip_through_every_combination(
            plain in prop::collection::vec(any::<u8>(), 0..4096),
            zstd in any::<bool>(),
            encrypt in any::<bool>(),
        ) {
            let k = Key::from_bytes([9; 32]);
            let p = Pipeline::new(&transforms(zstd, encrypt), Some(&k));
            let stored = p.seal(&plain);
            if encrypt && plain.len() > 16 {
                prop_assert!(stored.windows(16).all(|w| w != &plain[..16]));
            }
            prop_assert_eq!(p.open(stored, 1 << 20).unwrap(), plain);
        }
    }
}
