//! Where a store keeps things in its volume. Every keyspace carries a
//! version in its prefix (`-0`), so that a format change is visible.
//!
//! | key | value |
//! | --- | --- |
//! | `bucket-0/` name | [`BucketConfig`](crate::BucketConfig) as JSON |
//! | `bucket-seq-0` | next internal bucket number (u32, big-endian) |
//! | `blk-0/` num(4) hash(32) codec(1) | the block's stored bytes |
//! | `root-0/` num(4) name | a root ref (postcard) |
//!
//! Blocks of one bucket are contiguous and ordered by hash; roots of one
//! bucket are ordered by name (objects are the roots named `o/<key>`,
//! their closures `c/<key>`; a replica keeps its writer's manifest as
//! `m/manifest`, and contradicting ones under `evidence/`).

use hydra_block::{Codec, HASH_LEN, Ref};

pub const CONFIG_PREFIX: &[u8] = b"bucket-0/";
pub const SEQ_KEY: &[u8] = b"bucket-seq-0";
pub const BLOCK_PREFIX: &[u8] = b"blk-0/";
pub const ROOT_PREFIX: &[u8] = b"root-0/";

pub fn config_key(name: &str) -> Vec<u8> {
    [CONFIG_PREFIX, name.as_bytes()].concat()
}

pub fn blocks_of(num: u32) -> Vec<u8> {
    [BLOCK_PREFIX, &num.to_be_bytes()].concat()
}

pub fn block_key(num: u32, r: &Ref) -> Vec<u8> {
    let mut k = blocks_of(num);
    k.extend_from_slice(r.hash());
    k.push(r.codec().tag());
    k
}

/// The ref in a block key, or `None` for a key of another shape.
pub fn ref_of_block_key(key: &[u8]) -> Option<(u32, Ref)> {
    let rest = key.strip_prefix(BLOCK_PREFIX)?;
    if rest.len() != 4 + HASH_LEN + 1 {
        return None;
    }
    let num = u32::from_be_bytes(rest[..4].try_into().ok()?);
    let hash: [u8; HASH_LEN] = rest[4..4 + HASH_LEN].try_into().ok()?;
    let codec = Codec::from_tag(rest[4 + HASH_LEN])?;
    Some((num, Ref::from_parts(codec, hash)))
}

pub fn roots_of(num: u32) -> Vec<u8> {
    [ROOT_PREFIX, &num.to_be_bytes()].concat()
}

pub fn root_key(num: u32, name: &str) -> Vec<u8> {
    let mut k = roots_of(num);
    k.extend_from_slice(name.as_bytes());
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_keys_round_trip() {
        let r = Ref::of(Codec::Node, b"x");
        assert_eq!(ref_of_block_key(&block_key(7, &r)), Some((7, r)));
        assert_eq!(ref_of_block_key(b"blk-0/short"), None);
    }
}
