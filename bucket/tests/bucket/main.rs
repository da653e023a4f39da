//! Integration tests of hydra-bucket on real volumes.

mod config;
mod encryption;
mod gc;
mod objects;
mod replica;
mod transforms;

use std::path::Path;
use std::sync::Arc;

use hydra_bucket::Store;
use hydra_volume::{Backend, Durability, OpenOptions, Volume, open_dir};

pub const BACKENDS: [Backend; 3] = [Backend::Mem, Backend::Redb, Backend::Lmdb];

pub fn volume(dir: &Path, backend: Backend) -> Arc<dyn Volume> {
    open_dir(
        dir,
        OpenOptions {
            backend: Some(backend),
            durability: Durability::Immediate,
            cache_bytes: None,
        },
    )
    .unwrap()
}

pub fn store(dir: &Path, backend: Backend) -> Store {
    Store::open(volume(dir, backend)).unwrap()
}

/// Bytes that compress poorly and never repeat a chunk: an xorshift stream.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
