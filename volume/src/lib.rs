//! Key/value volumes: where Hydra's bytes live.
//!
//! A [`Volume`] is an ordered byte-key/byte-value store with atomic write
//! batches. Three backends implement it and pass one conformance suite:
//! [`RedbVolume`] (one redb file, the default), [`LmdbVolume`] (LMDB via
//! heed) and [`MemVolume`] (in memory). [`open_dir`] opens a data
//! directory and detects its backend. Each volume also carries an
//! [`Identity`]: an ed25519 keypair whose libp2p peer id names the volume
//! on the network.
//!
//! This layer knows nothing of blocks: keys and values are opaque bytes.
//! Keys starting with `0x00` are reserved for the volume's own metadata.
//!
//! ```
//! use hydra_volume::{KeyRange, MemVolume, Volume, WriteBatch};
//!
//! let vol = MemVolume::new();
//! let mut batch = WriteBatch::new();
//! batch.put(b"a/1".to_vec(), b"one".to_vec()).put(b"a/2".to_vec(), b"two".to_vec());
//! vol.commit(batch)?;
//! let keys: Vec<_> = (&vol as &dyn Volume)
//!     .scan(KeyRange::prefix(b"a/"), Default::default())
//!     .map(|e| e.map(|(k, _)| k))
//!     .collect::<Result<_, _>>()?;
//! assert_eq!(keys, [b"a/1".to_vec(), b"a/2".to_vec()]);
//! # Ok::<(), hydra_volume::VolumeError>(())
//! ```

mod batch;
mod dir;
mod error;
pub mod hex;
mod identity;
mod lmdb_volume;
mod mem_volume;
mod redb_volume;
mod scan;

use std::fmt;
use std::str::FromStr;

pub use batch::{Op, WriteBatch};
pub use dir::{OpenOptions, data_files, open_dir, public_key_of_dir, publish_public_key};
pub use error::{EngineError, VolumeError};
pub use identity::{Identity, SignatureError, peer_id_of, public_key_of, verify};
pub use libp2p_identity::PeerId;
pub use lmdb_volume::LmdbVolume;
pub use mem_volume::MemVolume;
pub use redb_volume::RedbVolume;
pub use scan::{Direction, Entry, KeyRange, PageLimit, Scan, successor};

/// Longest key a volume accepts (LMDB's limit, less its tag byte).
pub const MAX_KEY_LEN: usize = 480;
/// Largest value a volume accepts.
pub const MAX_VALUE_LEN: usize = 1 << 30;
/// First byte of the keys a volume keeps for itself.
pub const RESERVED_PREFIX: u8 = 0x00;

/// The storage engine behind a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Backend {
    #[default]
    Redb,
    Lmdb,
    Mem,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Redb => "redb",
            Backend::Lmdb => "lmdb",
            Backend::Mem => "mem",
        })
    }
}

impl FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Backend, String> {
        match s {
            "redb" => Ok(Backend::Redb),
            "lmdb" => Ok(Backend::Lmdb),
            "mem" => Ok(Backend::Mem),
            other => Err(format!(
                "unknown backend {other:?} (expected redb, lmdb or mem)"
            )),
        }
    }
}

/// When a commit reaches stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// Every commit is on disk (fsync) before `commit` returns.
    #[default]
    Immediate,
    /// Commits are atomic and visible at once, and reach disk at the next
    /// [`Volume::flush`] (or sooner). A process crash loses nothing; an OS
    /// crash or power loss may lose commits since the last flush, never
    /// part of one.
    Eventual,
}

/// An ordered key/value store with atomic batches.
///
/// Contract, checked for every backend by the conformance suite:
/// - keys and values are arbitrary bytes, empty ones included; keys are
///   at most [`MAX_KEY_LEN`] bytes, values at most [`MAX_VALUE_LEN`];
/// - scans return keys in bytewise order, either way;
/// - a batch applies all of its ops or none: a batch that fails
///   validation or errors in the engine leaves the volume unchanged;
/// - readers never see part of a batch, and never block on a writer;
/// - with [`Durability::Immediate`] a commit is on disk when it returns.
///
/// Cost: `get`/`has` are one B-tree lookup in a fresh read transaction;
/// `commit` is one write transaction (one fsync when immediate), so batch
/// writes that belong together.
pub trait Volume: Send + Sync + 'static {
    fn backend(&self) -> Backend;

    fn durability(&self) -> Durability;

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, VolumeError>;

    /// Like `get(key).is_some()`, without copying the value.
    fn has(&self, key: &[u8]) -> Result<bool, VolumeError>;

    /// Many gets in one read transaction: one consistent view, and far
    /// cheaper per key than separate gets.
    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, VolumeError> {
        keys.iter().map(|k| self.get(k)).collect()
    }

    /// One page of an ordered scan: the first entries of `range` in
    /// `direction`, stopping when `limit` is reached. [`Scan`] calls this
    /// repeatedly; most callers want `scan`.
    fn scan_page(
        &self,
        range: &KeyRange,
        direction: Direction,
        limit: PageLimit,
    ) -> Result<Vec<Entry>, VolumeError>;

    /// Applies a batch that has already been validated. Called by
    /// [`Volume::commit`]; backends implement it, callers do not.
    #[doc(hidden)]
    fn commit_unchecked(&self, batch: WriteBatch) -> Result<(), VolumeError>;

    /// Makes every earlier commit durable.
    fn flush(&self) -> Result<(), VolumeError>;

    /// Applies `batch` atomically, per the volume's [`Durability`].
    /// Refuses keys in the reserved `0x00` keyspace.
    fn commit(&self, batch: WriteBatch) -> Result<(), VolumeError> {
        batch.validate(false)?;
        self.commit_unchecked(batch)
    }

    /// Like `commit`, for the volume's own metadata keys.
    #[doc(hidden)]
    fn commit_reserved(&self, batch: WriteBatch) -> Result<(), VolumeError> {
        batch.validate(true)?;
        self.commit_unchecked(batch)
    }

    fn put(&self, key: &[u8], value: &[u8]) -> Result<(), VolumeError> {
        let mut b = WriteBatch::new();
        b.put(key, value);
        self.commit(b)
    }

    fn delete(&self, key: &[u8]) -> Result<(), VolumeError> {
        let mut b = WriteBatch::new();
        b.delete(key);
        self.commit(b)
    }
}

impl dyn Volume {
    /// An ordered scan of `range`, read a page at a time (see [`Scan`]).
    pub fn scan(&self, range: KeyRange, direction: Direction) -> Scan<'_> {
        Scan::new(self, range, direction)
    }

    /// The first entry of `range` in `direction`, if any: a page of one
    /// (`scan(..).next()` would read a whole page to use its first).
    pub fn first(
        &self,
        range: &KeyRange,
        direction: Direction,
    ) -> Result<Option<Entry>, VolumeError> {
        let one = PageLimit {
            entries: 1,
            bytes: 1,
        };
        Ok(self.scan_page(range, direction, one)?.into_iter().next())
    }
}
