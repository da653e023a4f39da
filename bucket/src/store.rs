//! [`Store`]: the buckets of one volume.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};

use hydra_block::Ref;
use hydra_volume::{Direction, KeyRange, Volume, WriteBatch, hex};

use crate::layout::{self, CONFIG_PREFIX, SEQ_KEY};
use crate::transform::{CIPHER, Encryption};
use crate::{
    Bucket, BucketConfig, BucketError, BucketName, BucketUpdate, Key, Policies, Transforms,
};

/// The state every handle on one store shares: the collector's gate and
/// what it must not free.
#[derive(Default)]
pub(crate) struct Shared {
    /// Writers hold it shared while they commit, pin or set roots; the
    /// collector holds it exclusively while it decides and deletes.
    pub gate: RwLock<()>,
    /// Blocks that live writers have written or found, per bucket number:
    /// not yet reachable from a root, but about to be.
    pub pins: Mutex<HashMap<(u32, Ref), u32>>,
    /// Set while a collection runs, with the roots set since it began.
    pub tracking: Mutex<Option<Tracking>>,
    pub collecting: Mutex<()>,
    /// Serialises config changes (create, update, remove).
    pub config: Mutex<()>,
    pub active: AtomicBool,
    /// Grows with every root set or removed; replication waits on it.
    pub roots: Mutex<u64>,
    pub roots_cv: Condvar,
    /// Keys given with [`Store::unlock`], by bucket number.
    pub keys: Mutex<HashMap<u32, Key>>,
}

pub(crate) struct Tracking {
    pub num: u32,
    pub new_roots: Vec<Ref>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent before anything
    // that can panic, so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    pub fn pins(&self) -> MutexGuard<'_, HashMap<(u32, Ref), u32>> {
        lock(&self.pins)
    }

    pub fn tracking(&self) -> MutexGuard<'_, Option<Tracking>> {
        lock(&self.tracking)
    }

    pub fn read_gate(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.gate.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn write_gate(&self) -> std::sync::RwLockWriteGuard<'_, ()> {
        self.gate.write().unwrap_or_else(|e| e.into_inner())
    }

    pub fn collecting(&self) -> MutexGuard<'_, ()> {
        lock(&self.collecting)
    }

    pub fn roots_changed(&self) {
        *lock(&self.roots) += 1;
        self.roots_cv.notify_all();
    }

    pub fn roots_generation(&self) -> u64 {
        *lock(&self.roots)
    }

    pub fn wait_roots_change(&self, seen: u64, deadline: std::time::Instant) -> u64 {
        let mut g = lock(&self.roots);
        while *g <= seen {
            let now = std::time::Instant::now();
            if now >= deadline {
                break;
            }
            g = self
                .roots_cv
                .wait_timeout(g, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        *g
    }

    /// Records a root set while a collection of its bucket runs.
    pub fn note_root(&self, num: u32, r: Ref) {
        if self.active.load(Ordering::SeqCst)
            && let Some(t) = self.tracking().as_mut().filter(|t| t.num == num)
        {
            t.new_roots.push(r);
        }
    }
}

/// What a new bucket applies to its blocks.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions<'a> {
    /// Compress blocks with zstd at this level (1 to 22).
    pub zstd_level: Option<i32>,
    /// Encrypt blocks with ChaCha20-Poly1305 under this key.
    pub key: Option<&'a Key>,
}

/// The buckets of one volume: create, list, update, remove, and open a
/// [`Bucket`] handle. A store always has a `default` bucket.
#[derive(Clone)]
pub struct Store {
    volume: Arc<dyn Volume>,
    shared: Arc<Shared>,
}

impl Store {
    /// Opens the store on `volume`, creating the default bucket if absent.
    pub fn open(volume: Arc<dyn Volume>) -> Result<Store, BucketError> {
        let store = Store {
            volume,
            shared: Arc::default(),
        };
        let default = BucketName::default_bucket();
        if store.load_config(&default)?.is_none() {
            store.create_bucket(&default, CreateOptions::default())?;
        }
        Ok(store)
    }

    pub fn volume(&self) -> &Arc<dyn Volume> {
        &self.volume
    }

    pub fn create_bucket(
        &self,
        name: &BucketName,
        options: CreateOptions<'_>,
    ) -> Result<BucketConfig, BucketError> {
        if let Some(level) = options.zstd_level {
            check_level(level)?;
        }
        let _g = lock(&self.shared.config);
        if self.load_config(name)?.is_some() {
            return Err(BucketError::AlreadyExists(name.clone()));
        }
        self.write_new_config(
            name,
            Transforms {
                zstd_level: options.zstd_level,
                encryption: options.key.map(|k| Encryption {
                    cipher: CIPHER.into(),
                    key_check: hex::encode(&k.check()),
                }),
            },
        )
    }

    /// Writes the config of a new bucket (the caller holds the config lock
    /// and has checked that the name is free).
    fn write_new_config(
        &self,
        name: &BucketName,
        transforms: Transforms,
    ) -> Result<BucketConfig, BucketError> {
        let num =
            match self.volume.get(SEQ_KEY)? {
                Some(b) => u32::from_be_bytes(b.as_slice().try_into().map_err(|_| {
                    BucketError::BadConfig {
                        bucket: "(sequence)".into(),
                        reason: format!("{} bytes", b.len()),
                    }
                })?),
                None => 0,
            };
        let config = BucketConfig {
            id: name.clone(),
            version: 1,
            transforms,
            policies: Policies::default(),
            num,
        };
        let mut b = WriteBatch::new();
        b.put(SEQ_KEY, (num + 1).to_be_bytes().to_vec());
        b.put(layout::config_key(name.as_str()), encode_config(&config));
        self.volume.commit(b)?;
        Ok(config)
    }

    /// Every bucket's config, ordered by name.
    pub fn buckets(&self) -> Result<Vec<BucketConfig>, BucketError> {
        self.volume
            .scan(KeyRange::prefix(CONFIG_PREFIX), Direction::Forward)
            .map(|e| {
                let (k, v) = e?;
                decode_config(&String::from_utf8_lossy(&k[CONFIG_PREFIX.len()..]), &v)
            })
            .collect()
    }

    pub fn bucket_config(&self, name: &BucketName) -> Result<BucketConfig, BucketError> {
        self.load_config(name)?
            .ok_or_else(|| BucketError::NotFound(name.clone()))
    }

    /// Applies `update`, whose version must exceed the current one.
    /// Compression and encryption cannot be switched on or off (blocks
    /// already stored depend on them); the zstd level can change.
    pub fn update_bucket(
        &self,
        name: &BucketName,
        update: BucketUpdate,
    ) -> Result<BucketConfig, BucketError> {
        let _g = lock(&self.shared.config);
        let mut config = self.bucket_config(name)?;
        if update.version <= config.version {
            return Err(BucketError::VersionNotNewer {
                bucket: name.clone(),
                current: config.version,
                given: update.version,
            });
        }
        if let Some(level) = update.zstd_level {
            if config.transforms.zstd_level.is_none() {
                return Err(BucketError::TransformChange {
                    bucket: name.clone(),
                    what: "compression",
                });
            }
            check_level(level)?;
            config.transforms.zstd_level = Some(level);
        }
        if let Some(p) = update.policies {
            config.policies = p;
        }
        config.version = update.version;
        self.volume
            .put(&layout::config_key(name.as_str()), &encode_config(&config))?;
        Ok(config)
    }

    /// Removes a bucket with all its blocks and roots. Returns how many
    /// blocks were deleted. The default bucket cannot be removed.
    pub fn remove_bucket(&self, name: &BucketName) -> Result<u64, BucketError> {
        if *name == BucketName::default_bucket() {
            return Err(BucketError::BadName {
                name: name.to_string(),
                reason: "the default bucket cannot be removed",
            });
        }
        let _g = lock(&self.shared.config);
        let config = self.bucket_config(name)?;
        // The config goes first: a crash midway leaves unreachable keys of
        // a number never reused, not a half-empty bucket.
        self.volume.delete(&layout::config_key(name.as_str()))?;
        let mut blocks = 0;
        for prefix in [layout::blocks_of(config.num), layout::roots_of(config.num)] {
            let is_blocks = prefix.starts_with(layout::BLOCK_PREFIX);
            loop {
                let page = self.volume.scan_page(
                    &KeyRange::prefix(&prefix),
                    Direction::Forward,
                    Default::default(),
                )?;
                if page.is_empty() {
                    break;
                }
                let mut b = WriteBatch::new();
                for (k, _) in page {
                    blocks += u64::from(is_blocks);
                    b.delete(k);
                }
                self.volume.commit(b)?;
            }
        }
        Ok(blocks)
    }

    /// A handle on the replica of a writer's bucket, created with the
    /// transforms `manifest` names if absent. An existing bucket must
    /// transform as the writer's does (it stores the writer's bytes).
    pub fn replica(
        &self,
        name: &BucketName,
        manifest: &crate::Manifest,
        key: Option<&Key>,
    ) -> Result<Bucket, BucketError> {
        self.replica_of(name, manifest.transforms(), key)
    }

    /// Like [`Store::replica`], for a bucket whose writer sealed its
    /// blocks with `want` (as a stream's storage block tells).
    pub fn replica_of(
        &self,
        name: &BucketName,
        want: Transforms,
        key: Option<&Key>,
    ) -> Result<Bucket, BucketError> {
        {
            let _g = lock(&self.shared.config);
            match self.load_config(name)? {
                Some(c) if c.transforms != want => {
                    return Err(BucketError::TransformMismatch {
                        bucket: name.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    self.write_new_config(name, want)?;
                }
            }
        }
        self.bucket(name, key)
    }

    /// A count that grows whenever a root of any bucket here is set or
    /// removed (see [`Bucket::roots_generation`]).
    pub fn roots_generation(&self) -> u64 {
        self.shared.roots_generation()
    }

    /// Keeps `key` for bucket `name`, after checking it, so that every
    /// handle opened through this store (and every clone of it) can read
    /// the bucket: the event log opens its streams' buckets this way.
    pub fn unlock(&self, name: &BucketName, key: &Key) -> Result<(), BucketError> {
        let config = self.bucket_config(name)?;
        match &config.transforms.encryption {
            None => return Err(BucketError::KeyNotNeeded(name.clone())),
            Some(_) if !key.opens(&config.transforms) => {
                return Err(BucketError::WrongKey(name.clone()));
            }
            Some(_) => {}
        }
        lock(&self.shared.keys).insert(config.num, key.clone());
        Ok(())
    }

    /// Unlocks every encrypted bucket that `key` is the key of; returns
    /// their names (none when it opens no bucket).
    pub fn unlock_with(&self, key: &Key) -> Result<Vec<BucketName>, BucketError> {
        let mut opened = Vec::new();
        for c in self.buckets()? {
            if key.opens(&c.transforms) {
                lock(&self.shared.keys).insert(c.num, key.clone());
                opened.push(c.id);
            }
        }
        Ok(opened)
    }

    /// Commits a batch that holds blocks and roots staged with
    /// [`Bucket::stage_put`] and [`Bucket::stage_root`] (and any other
    /// keys), as one transaction. `roots` are the refs the batch names as
    /// roots, by bucket number: a collection running meanwhile marks them
    /// before it deletes anything, so the new blocks survive it.
    pub fn commit(&self, batch: WriteBatch, roots: &[(u32, Ref)]) -> Result<(), BucketError> {
        let _g = self.shared.read_gate();
        for (num, r) in roots {
            self.shared.note_root(*num, *r);
        }
        self.volume.commit(batch)?;
        Ok(())
    }

    /// A handle on the bucket with internal number `num` (what other
    /// layers record instead of a name), unlocked if its key was given.
    pub fn bucket_by_num(&self, num: u32) -> Result<Option<Bucket>, BucketError> {
        match self.buckets()?.into_iter().find(|c| c.num == num) {
            Some(c) => self.bucket(&c.id, None).map(Some),
            None => Ok(None),
        }
    }

    /// A handle on a bucket. `key` is needed to read or write the plain
    /// bytes of an encrypted bucket (a key given to [`Store::unlock`]
    /// serves when `key` is `None`); without one the handle still stores,
    /// verifies, serves and deletes stored bytes (a blind replica).
    pub fn bucket(&self, name: &BucketName, key: Option<&Key>) -> Result<Bucket, BucketError> {
        let config = self.bucket_config(name)?;
        let kept = lock(&self.shared.keys).get(&config.num).cloned();
        let key = match (&config.transforms.encryption, key.or(kept.as_ref())) {
            (Some(_), Some(k)) => {
                if !k.opens(&config.transforms) {
                    return Err(BucketError::WrongKey(name.clone()));
                }
                Some(k)
            }
            _ => None,
        };
        Ok(Bucket::new(
            self.volume.clone(),
            config,
            key,
            self.shared.clone(),
        ))
    }

    fn load_config(&self, name: &BucketName) -> Result<Option<BucketConfig>, BucketError> {
        match self.volume.get(&layout::config_key(name.as_str()))? {
            Some(v) => decode_config(name.as_str(), &v).map(Some),
            None => Ok(None),
        }
    }

    /// Every distinct bucket number in use, for volume-wide walks.
    pub(crate) fn names_by_num(&self) -> Result<HashMap<u32, BucketName>, BucketError> {
        Ok(self.buckets()?.into_iter().map(|c| (c.num, c.id)).collect())
    }
}

fn check_level(level: i32) -> Result<(), BucketError> {
    if (1..=22).contains(&level) {
        Ok(())
    } else {
        Err(BucketError::BadLevel(level))
    }
}

fn encode_config(c: &BucketConfig) -> Vec<u8> {
    serde_json::to_vec(c).expect("a bucket config serialises to JSON")
}

fn decode_config(name: &str, bytes: &[u8]) -> Result<BucketConfig, BucketError> {
    serde_json::from_slice(bytes).map_err(|e| BucketError::BadConfig {
        bucket: name.to_owned(),
        reason: e.to_string(),
    })
}
