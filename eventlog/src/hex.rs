//! Hex strings for hashes, keys and signatures in human-readable formats
//! (JSON); raw bytes in binary ones (postcard).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

pub use hydra_volume::hex::{decode, encode};

/// `#[serde(with = "hex::fixed")]` for `[u8; N]`.
pub mod fixed {
    use super::*;

    pub fn serialize<S: Serializer, const N: usize>(b: &[u8; N], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&encode(b))
        } else {
            serde::Serialize::serialize(&b.to_vec(), s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        if d.is_human_readable() {
            decode(&String::deserialize(d)?).map_err(D::Error::custom)
        } else {
            let v = Vec::<u8>::deserialize(d)?;
            v.try_into()
                .map_err(|v: Vec<u8>| D::Error::custom(format!("{} bytes, expected {N}", v.len())))
        }
    }
}

/// `#[serde(with = "hex::list")]` for `Vec<[u8; 32]>`.
pub mod list {
    use super::*;

    pub fn serialize<S: Serializer>(v: &[[u8; 32]], s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.collect_seq(v.iter().map(|h| encode(h)))
        } else {
            serde::Serialize::serialize(v, s)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<[u8; 32]>, D::Error> {
        if d.is_human_readable() {
            Vec::<String>::deserialize(d)?
                .iter()
                .map(|h| decode(h).map_err(D::Error::custom))
                .collect()
        } else {
            Vec::<[u8; 32]>::deserialize(d)
        }
    }
}
