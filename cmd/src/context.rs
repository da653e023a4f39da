//! Resolving what the user typed into an open store, buckets and keys.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hydra_bucket::{Key, Store};
use hydra_volume::{Backend, Durability, OpenOptions, VolumeError, open_dir};

/// Where the data lives and how to unlock it, from the global flags.
pub struct Ctx {
    pub data: PathBuf,
    pub backend: Option<Backend>,
    pub key_file: Option<PathBuf>,
}

impl Ctx {
    /// Opens the data directory, creating it on first use.
    pub fn store(&self) -> Result<Store> {
        let volume = open_dir(
            &self.data,
            OpenOptions {
                backend: self.backend,
                durability: Durability::Immediate,
                cache_bytes: None,
            },
        )
        .map_err(|e| match e {
            VolumeError::Locked { path } => {
                let daemon = std::fs::read_to_string(path.join(crate::daemon::ADDRESS_FILE))
                    .ok()
                    .map(|a| a.trim().to_owned());
                match daemon {
                    Some(url) => anyhow::anyhow!(
                        "data directory {} is held by a running hydra daemon; use --api {url} (or HYDRA_API)",
                        path.display()
                    ),
                    None => anyhow::anyhow!(
                        "data directory {} is in use by another process; if a hydra daemon runs on it, use --api URL",
                        path.display()
                    ),
                }
            }
            e => anyhow::Error::new(e),
        })?;
        hydra_volume::publish_public_key(&self.data, &*volume)?;
        Ok(Store::open(volume)?)
    }

    /// The key given on the command line or in the environment, if any.
    pub fn key(&self) -> Result<Option<Key>> {
        if let Some(path) = &self.key_file {
            return Ok(Some(Key::from_file(path)?));
        }
        Ok(Key::from_env()?)
    }
}

/// Opens `path` for reading, `-` meaning stdin. Returns the reader and the
/// size when known.
pub fn input(path: Option<&Path>) -> Result<(Box<dyn std::io::Read + Send>, Option<u64>)> {
    let stdin = || Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()));
    match path {
        None => Ok((stdin(), None)),
        Some(p) if p == Path::new("-") => Ok((stdin(), None)),
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
            let len = f.metadata().ok().map(|m| m.len());
            Ok((Box::new(std::io::BufReader::with_capacity(1 << 20, f)), len))
        }
    }
}
