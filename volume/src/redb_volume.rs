//! [`RedbVolume`]: a volume in one redb file.

use std::fs::File;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, TableDefinition};

use crate::batch::check_key;
use crate::{
    Backend, Direction, Durability, Entry, KeyRange, Op, PageLimit, Volume, VolumeError, WriteBatch,
};

/// The one table. Versioned in its name so that a layout change is
/// visible and migratable.
const KV: TableDefinition<&[u8], &[u8]> = TableDefinition::new("kv-0");

/// A volume stored in a redb database file. redb gives atomic, isolated
/// write transactions and copy-on-write crash safety; each commit with
/// [`Durability::Immediate`] is one fsync.
pub struct RedbVolume {
    db: Database,
    path: PathBuf,
    durability: Durability,
    _lock: Option<File>,
}

/// One item of a redb range over the table.
type RangeItem<'a> = Result<
    (
        redb::AccessGuard<'a, &'static [u8]>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

fn err(e: impl Into<redb::Error>) -> VolumeError {
    VolumeError::engine(Backend::Redb, e.into())
}

impl RedbVolume {
    /// Opens (creating if absent) the redb file at `path`.
    pub fn open(path: &Path, durability: Durability) -> Result<RedbVolume, VolumeError> {
        RedbVolume::open_locked(path, durability, None, None)
    }

    /// `cache`: bytes of pages redb keeps in memory (its default, 1 GiB,
    /// when `None`): most of a busy daemon's resident memory.
    pub(crate) fn open_locked(
        path: &Path,
        durability: Durability,
        cache: Option<usize>,
        lock: Option<File>,
    ) -> Result<RedbVolume, VolumeError> {
        let mut builder = Database::builder();
        if let Some(bytes) = cache {
            builder.set_cache_size(bytes);
        }
        let db = builder.create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => VolumeError::Locked {
                path: path.to_path_buf(),
            },
            e => err(e),
        })?;
        // Create the table once, so that readers never meet a missing one.
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(KV).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(RedbVolume {
            db,
            path: path.to_path_buf(),
            durability,
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn write(&self, batch: &WriteBatch, durability: Durability) -> Result<(), VolumeError> {
        let mut txn = self.db.begin_write().map_err(err)?;
        if durability == Durability::Eventual {
            txn.set_durability(redb::Durability::None).map_err(err)?;
        }
        {
            let mut table = txn.open_table(KV).map_err(err)?;
            for op in batch.ops() {
                match op {
                    Op::Put { key, value } => {
                        table
                            .insert(key.as_slice(), value.as_slice())
                            .map_err(err)?;
                    }
                    Op::Delete { key } => {
                        table.remove(key.as_slice()).map_err(err)?;
                    }
                }
            }
        }
        txn.commit().map_err(err)
    }
}

impl Volume for RedbVolume {
    fn backend(&self) -> Backend {
        Backend::Redb
    }

    fn durability(&self) -> Durability {
        self.durability
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, VolumeError> {
        check_key(key, true)?;
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(KV).map_err(err)?;
        Ok(table.get(key).map_err(err)?.map(|v| v.value().to_vec()))
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, VolumeError> {
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(KV).map_err(err)?;
        keys.iter()
            .map(|k| {
                check_key(k, true)?;
                Ok(table.get(*k).map_err(err)?.map(|v| v.value().to_vec()))
            })
            .collect()
    }

    fn has(&self, key: &[u8]) -> Result<bool, VolumeError> {
        check_key(key, true)?;
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(KV).map_err(err)?;
        Ok(table.get(key).map_err(err)?.is_some())
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
        let txn = self.db.begin_read().map_err(err)?;
        let table = txn.open_table(KV).map_err(err)?;
        let iter = table.range::<&[u8]>(range.as_bounds()).map_err(err)?;
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut take = |e: RangeItem<'_>| {
            let (k, v) = e.map_err(err)?;
            let (k, v) = (k.value().to_vec(), v.value().to_vec());
            bytes += k.len() + v.len();
            page.push((k, v));
            Ok::<bool, VolumeError>(limit.full(page.len(), bytes))
        };
        match direction {
            Direction::Forward => {
                for e in iter {
                    if take(e)? {
                        break;
                    }
                }
            }
            Direction::Backward => {
                for e in iter.rev() {
                    if take(e)? {
                        break;
                    }
                }
            }
        }
        Ok(page)
    }

    fn commit_unchecked(&self, batch: WriteBatch) -> Result<(), VolumeError> {
        self.write(&batch, self.durability)
    }

    fn flush(&self) -> Result<(), VolumeError> {
        // An empty commit with Immediate durability persists every earlier
        // Durability::None commit.
        self.write(&WriteBatch::new(), Durability::Immediate)
    }
}
