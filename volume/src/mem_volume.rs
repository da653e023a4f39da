//! [`MemVolume`]: a volume held in memory, gone when dropped.

use std::collections::BTreeMap;
use std::fs::File;
use std::ops::Bound;
use std::sync::RwLock;

use crate::batch::check_key;
use crate::{
    Backend, Direction, Durability, Entry, KeyRange, Op, PageLimit, Volume, VolumeError, WriteBatch,
};

/// A volume in a `BTreeMap` behind a reader-writer lock. A backend like
/// the others (it passes the same conformance suite), for caches, tests
/// of higher layers and throwaway daemons; nothing survives the process.
#[derive(Debug, Default)]
pub struct MemVolume {
    map: RwLock<BTreeMap<Vec<u8>, Vec<u8>>>,
    /// The data directory lock, when opened through `open_dir`, so that a
    /// daemon's in-memory directory is as exclusive as a persistent one.
    _lock: Option<File>,
}

impl MemVolume {
    pub fn new() -> MemVolume {
        MemVolume::default()
    }

    pub(crate) fn with_lock(lock: File) -> MemVolume {
        MemVolume {
            _lock: Some(lock),
            ..MemVolume::default()
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Vec<u8>, Vec<u8>>> {
        // A panic while holding the lock cannot leave the map half-written
        // (commit mutates only after validation), so poisoning is ignored.
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }
}

impl Volume for MemVolume {
    fn backend(&self) -> Backend {
        Backend::Mem
    }

    fn durability(&self) -> Durability {
        Durability::Eventual
    }

    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, VolumeError> {
        check_key(key, true)?;
        Ok(self.read().get(key).cloned())
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Vec<u8>>>, VolumeError> {
        let map = self.read();
        keys.iter()
            .map(|k| {
                check_key(k, true)?;
                Ok(map.get(*k).cloned())
            })
            .collect()
    }

    fn has(&self, key: &[u8]) -> Result<bool, VolumeError> {
        check_key(key, true)?;
        Ok(self.read().contains_key(key))
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
        let map = self.read();
        let bounds: (Bound<&[u8]>, Bound<&[u8]>) = range.as_bounds();
        let iter = map.range::<[u8], _>(bounds);
        let mut page = Vec::new();
        let mut bytes = 0;
        let mut take = |(k, v): (&Vec<u8>, &Vec<u8>)| {
            bytes += k.len() + v.len();
            page.push((k.clone(), v.clone()));
            limit.full(page.len(), bytes)
        };
        match direction {
            Direction::Forward => {
                for e in iter {
                    if take(e) {
                        break;
                    }
                }
            }
            Direction::Backward => {
                for e in iter.rev() {
                    if take(e) {
                        break;
                    }
                }
            }
        }
        Ok(page)
    }

    fn commit_unchecked(&self, batch: WriteBatch) -> Result<(), VolumeError> {
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        for op in batch.ops() {
            match op {
                Op::Put { key, value } => {
                    map.insert(key.clone(), value.clone());
                }
                Op::Delete { key } => {
                    map.remove(key);
                }
            }
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), VolumeError> {
        Ok(())
    }
}
