//! Integration tests of hydra-volume: the conformance suite, run against
//! every backend, and crash recovery under SIGKILL.

mod conformance;
mod crash;

use std::path::Path;
use std::sync::Arc;

use hydra_volume::{Backend, Durability, OpenOptions, Volume, open_dir};

/// Opens (or reopens) a data directory of the given backend.
pub fn open(dir: &Path, backend: Backend) -> Arc<dyn Volume> {
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
