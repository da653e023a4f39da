//! [`LmdbVolume`]: a volume in an LMDB environment (through heed).

use std::fs::File;
use std::path::{Path, PathBuf};

use heed::types::Bytes;
use heed::{Database, Env, EnvFlags, EnvOpenOptions};

use crate::batch::check_key;
use crate::{
    Backend, Direction, Durability, Entry, KeyRange, Op, PageLimit, Volume, VolumeError, WriteBatch,
};

/// Address space reserved for the memory map. LMDB never grows past it;
/// the file itself only grows as data is written.
const MAP_SIZE: usize = 1 << 40;

/// LMDB refuses empty keys, which the [`Volume`] contract allows, so every
/// key is stored behind this byte. Order is unchanged.
const KEY_TAG: u8 = 0x6b;

/// A volume stored in an LMDB environment directory (`data.mdb`,
/// `lock.mdb`). Reads are lock-free memory-mapped lookups; writes are
/// serialised by LMDB's writer lock.
pub struct LmdbVolume {
    env: Env,
    db: Database<Bytes, Bytes>,
    path: PathBuf,
    durability: Durability,
    _lock: Option<File>,
}

fn err(e: heed::Error) -> VolumeError {
    VolumeError::engine(Backend::Lmdb, e)
}

fn tagged(key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(KEY_TAG);
    k.extend_from_slice(key);
    k
}

fn tagged_bound(b: std::ops::Bound<&[u8]>) -> std::ops::Bound<Vec<u8>> {
    use std::ops::Bound;
    match b {
        Bound::Included(k) => Bound::Included(tagged(k)),
        Bound::Excluded(k) => Bound::Excluded(tagged(k)),
        Bound::Unbounded => Bound::Unbounded,
    }
}

impl LmdbVolume {
    /// Opens (creating if absent) the LMDB environment in directory `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<LmdbVolume, VolumeError> {
        LmdbVolume::open_locked(path, durability, None)
    }

    pub(crate) fn open_locked(
        path: &Path,
        durability: Durability,
        lock: Option<File>,
    ) -> Result<LmdbVolume, VolumeError> {
        std::fs::create_dir_all(path).map_err(|e| VolumeError::io(path, e))?;
        let mut opts = EnvOpenOptions::new();
        opts.map_size(MAP_SIZE).max_dbs(1);
        if durability == Durability::Eventual {
            // SAFETY: NO_SYNC only skips the fsync at commit; flush() runs
            // mdb_env_sync. A process crash loses nothing, an OS crash may
            // lose commits since the last flush.
            unsafe {
                opts.flags(EnvFlags::NO_SYNC);
            }
        }
        // SAFETY: heed requires that the environment is not opened twice
        // in one process and that its files are not modified by other
        // means; the data directory lock taken by `open_dir` guards the
        // first between Hydra processes.
        let env = unsafe { opts.open(path) }.map_err(err)?;
        let mut wtxn = env.write_txn().map_err(err)?;
        let db: Database<Bytes, Bytes> = env.create_database(&mut wtxn, None).map_err(err)?;
        wtxn.commit().map_err(err)?;
        Ok(LmdbVolume {
            env,
            db,
            path: path.to_path_buf(),
            durability,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Volume for LmdbVolume {
    fn backend(&self) -> Backend {
        Backend::Lmdb
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, VolumeError> {
        check_key(key, true)?;
        let txn = self.env.read_txn().map_err(err)?;
        Ok(self
            .db
            .get(&txn, &tagged(key))
            .map_err(err)?
            .map(<[u8]>::to_vec))
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, VolumeError> {
        let txn = self.env.read_txn().map_err(err)?;
        keys.iter()
            .map(|k| {
                check_key(k, true)?;
                Ok(self
                    .db
                    .get(&txn, &tagged(k))
                    .map_err(err)?
                    .map(<[u8]>::to_vec))
            })
            .collect()
    }

    fn has(&self, key: &[u8]) -> Result<bool, VolumeError> {
        check_key(key, true)?;
        let txn = self.env.read_txn().map_err(err)?;
        Ok(self.db.get(&txn, &tagged(key)).map_err(err)?.is_some())
    }

    fn scan_page(
        &self,
        range: &KeyRange,
        direction: Direction,
        limit: PageLimit,
    ) -> Result<Vec<Entry>, VolumeError> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        let (start, end) = range.as_bounds();
        let (start, end) = (tagged_bound(start), tagged_bound(end));
        // Unbounded ends stay inside the tagged keyspace.
        let start = match start {
            std::ops::Bound::Unbounded => std::ops::Bound::Included(vec![KEY_TAG]),
            b => b,
        };
        let end = match end {
            std::ops::Bound::Unbounded => std::ops::Bound::Excluded(vec![KEY_TAG + 1]),
            b => b,
        };
        let bounds = (
            start.as_ref().map(Vec::as_slice),
            end.as_ref().map(Vec::as_slice),
        );
        let txn = self.env.read_txn().map_err(err)?;
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut take = |e: heed::Result<(&[u8], &[u8])>| {
            let (k, v) = e.map_err(err)?;
            let (k, v) = (k[1..].to_vec(), v.to_vec());
            bytes += k.len() + v.len();
            page.push((k, v));
            Ok::<bool, VolumeError>(limit.full(page.len(), bytes))
        };
        match direction {
            Direction::Forward => {
                for e in self.db.range(&txn, &bounds).map_err(err)? {
                    if take(e)? {
                        break;
                    }
                }
            }
            Direction::Backward => {
                for e in self.db.rev_range(&txn, &bounds).map_err(err)? {
                    if take(e)? {
                        break;
                    }
                }
            }
        }
        Ok(page)
    }

    fn commit_unchecked(&self, batch: WriteBatch) -> Result<(), VolumeError> {
        let mut txn = self.env.write_txn().map_err(err)?;
        for op in batch.ops() {
            match op {
                Op::Put { key, value } => {
                    self.db.put(&mut txn, &tagged(key), value).map_err(err)?
                }
                Op::Delete { key } => {
                    self.db.delete(&mut txn, &tagged(key)).map_err(err)?;
                }
            }
        }
        // Dropping an uncommitted heed transaction aborts it, so an error
        // above leaves nothing behind.
        txn.commit().map_err(err)
    }

    fn flush(&self) -> Result<(), VolumeError> {
        self.env.force_sync().map_err(err)
    }
}
