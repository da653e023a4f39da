//! Hex strings for hashes, keys and signatures in human-readable formats
//! (JSON); raw bytes in binary ones (postcard).

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

pub fn encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn decode<const N: usize>(s: &str) -> Result<[u8; N], String> {
    if s.len() != N * 2 || !s.is_ascii() {
        return Err(format!("expected {} hex digits, got {:?}", N * 2, s));
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[i * 2..i * 2 + 2], 16)
            .map_err(|_| format!("{s:?} is not hex"))?;
    }
    Ok(out)
}

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
