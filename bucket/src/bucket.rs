//! [`Bucket`]: put, get, has and delete blocks; named roots.

use std::collections::HashSet;
use std::sync::Arc;

use hydra_block::{Codec, Node, Ref, Verified};
use hydra_volume::{Direction, KeyRange, Volume, WriteBatch};
use serde::Serialize;

use crate::layout;
use crate::store::Shared;
use crate::transform::{Pipeline, Undo};
use crate::{BucketConfig, BucketError, BucketName, Key};

/// Largest plain block. Larger data is an object (chunked).
pub const MAX_BLOCK_SIZE: usize = 32 << 20;

/// A writer commits when its batch holds this many bytes.
const BATCH_BYTES: usize = 8 << 20;

/// A handle on one bucket of a [`Store`](crate::Store). Cheap to clone.
#[derive(Clone)]
pub struct Bucket {
    volume: Arc<dyn Volume>,
    config: BucketConfig,
    pipeline: Arc<Pipeline>,
    keyed: bool,
    pub(crate) shared: Arc<Shared>,
}

/// Counts of one bucket's blocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BucketStats {
    pub blocks: u64,
    pub stored_bytes: u64,
}

impl Bucket {
    pub(crate) fn new(
        volume: Arc<dyn Volume>,
        config: BucketConfig,
        key: Option<&Key>,
        shared: Arc<Shared>,
    ) -> Bucket {
        Bucket {
            pipeline: Arc::new(Pipeline::new(&config.transforms, key)),
            keyed: key.is_some(),
            volume,
            config,
            shared,
        }
    }

    pub fn name(&self) -> &BucketName {
        &self.config.id
    }

    pub fn config(&self) -> &BucketConfig {
        &self.config
    }

    pub(crate) fn volume(&self) -> &Arc<dyn Volume> {
        &self.volume
    }

    pub(crate) fn num(&self) -> u32 {
        self.config.num
    }

    pub fn is_encrypted(&self) -> bool {
        self.config.transforms.encryption.is_some()
    }

    /// Whether this handle can read and write plain bytes: the bucket is
    /// not encrypted, or the handle has its key.
    pub fn is_readable(&self) -> bool {
        !self.is_encrypted() || self.keyed
    }

    /// Fails unless this handle can read and write plain bytes.
    pub(crate) fn require_key(&self) -> Result<(), BucketError> {
        if !self.is_readable() {
            return Err(BucketError::KeyRequired(self.name().clone()));
        }
        Ok(())
    }

    /// Plain bytes to the bytes this bucket stores, through its transforms,
    /// for a value kept under a key of its own rather than its hash (an
    /// event record on a stream's open edge). Needs the key.
    pub fn seal(&self, plain: &[u8]) -> Result<Vec<u8>, BucketError> {
        self.require_key()?;
        Ok(self.pipeline.seal(plain))
    }

    /// The inverse of [`Bucket::seal`], bounded like a block. A failure
    /// (wrong key, tampered or corrupt bytes) names the bucket; callers add
    /// what the value was.
    pub fn unseal(&self, stored: Vec<u8>) -> Result<Vec<u8>, BucketError> {
        self.require_key()?;
        self.pipeline
            .open(stored, MAX_BLOCK_SIZE)
            .map_err(|e| BucketError::Unseal {
                bucket: self.name().clone(),
                reason: match e {
                    Undo::Decrypt => "it fails authentication (wrong key or tampered bytes)".into(),
                    Undo::Decompress(reason) => format!("it does not decompress: {reason}"),
                },
            })
    }

    /// Whether this handle can read plain bytes (not an encrypted bucket
    /// opened without its key).
    pub fn readable(&self) -> bool {
        self.require_key().is_ok()
    }

    /// Adds a block to `batch` instead of storing it now; returns its ref.
    /// For a caller that writes blocks together with its own keys in one
    /// transaction (the event log sealing a bundle), committed with
    /// [`Store::commit`](crate::Store::commit) so that a collection running
    /// meanwhile keeps them.
    pub fn stage_put(
        &self,
        batch: &mut WriteBatch,
        codec: Codec,
        plain: &[u8],
    ) -> Result<Ref, BucketError> {
        let (r, stored) = self.to_stored(codec, plain)?;
        batch.put(layout::block_key(self.num(), &r), stored);
        Ok(r)
    }

    /// A block's stored bytes and ref: sealed by the transforms (which
    /// needs the key), except for a [`Codec::PlainNode`], stored as it is.
    fn to_stored(&self, codec: Codec, plain: &[u8]) -> Result<(Ref, Vec<u8>), BucketError> {
        if plain.len() > MAX_BLOCK_SIZE {
            return Err(BucketError::BlockTooLarge {
                size: plain.len(),
                max: MAX_BLOCK_SIZE,
            });
        }
        let stored = if codec.is_plain() {
            plain.to_vec()
        } else {
            self.require_key()?;
            self.pipeline.seal(plain)
        };
        Ok((Ref::of(codec, &stored), stored))
    }

    /// Adds setting root `name` to `r` to `batch` (see [`Bucket::stage_put`]).
    pub fn stage_root(
        &self,
        batch: &mut WriteBatch,
        name: &str,
        r: Ref,
    ) -> Result<(), BucketError> {
        check_root_name(name)?;
        let value = postcard::to_allocvec(&r).expect("a ref encodes");
        batch.put(layout::root_key(self.num(), name), value);
        Ok(())
    }

    /// Adds removing root `name` to `batch`; its blocks stay until the
    /// next [`Bucket::gc`].
    pub fn stage_remove_root(&self, batch: &mut WriteBatch, name: &str) -> Result<(), BucketError> {
        check_root_name(name)?;
        batch.delete(layout::root_key(self.num(), name));
        Ok(())
    }

    /// Adds deleting block `r` to `batch` (see [`Bucket::stage_put`]): for
    /// a layer replacing a block that only it names (a stream's bundle
    /// tile), which would otherwise wait for the next [`Bucket::gc`].
    pub fn stage_delete(&self, batch: &mut WriteBatch, r: &Ref) {
        batch.delete(layout::block_key(self.num(), r));
    }

    /// Stores a block and returns its ref; storing a block that is already
    /// there writes nothing. The block is durable when this returns (per
    /// the volume's durability).
    pub fn put(&self, codec: Codec, plain: &[u8]) -> Result<Ref, BucketError> {
        let mut w = self.writer();
        let r = w.put(codec, plain)?;
        w.flush()?;
        Ok(r)
    }

    /// Encodes and stores a node.
    pub fn put_node<T: Serialize>(&self, node: &Node<T>) -> Result<Ref, BucketError> {
        self.put(Codec::Node, &node.encode())
    }

    /// A writer that batches many puts into few commits.
    pub fn writer(&self) -> BlockWriter<'_> {
        self.writer_with_batch(BATCH_BYTES)
    }

    /// A writer that commits every `batch_bytes`: larger batches mean
    /// fewer fsyncs for bulk work (a replica's catch-up), more memory.
    pub(crate) fn writer_with_batch(&self, batch_bytes: usize) -> BlockWriter<'_> {
        BlockWriter {
            bucket: self,
            batch: WriteBatch::new(),
            batch_bytes,
            in_batch: HashSet::new(),
            pinned: Vec::new(),
            stats: WriteStats::default(),
        }
    }

    /// The plain bytes of a block, verified against its ref.
    pub fn get(&self, r: &Ref) -> Result<Vec<u8>, BucketError> {
        self.try_get(r)?.ok_or_else(|| BucketError::BlockNotFound {
            bucket: self.name().clone(),
            reference: *r,
        })
    }

    /// Like [`Bucket::get`], with `None` for a missing block.
    /// A [`Codec::PlainNode`] needs no key.
    pub fn try_get(&self, r: &Ref) -> Result<Option<Vec<u8>>, BucketError> {
        if r.codec().is_plain() {
            return self.get_stored(r);
        }
        self.require_key()?;
        let Some(stored) = self.get_stored(r)? else {
            return Ok(None);
        };
        self.pipeline
            .open(stored, MAX_BLOCK_SIZE)
            .map(Some)
            .map_err(|e| match e {
                Undo::Decrypt => BucketError::Decrypt {
                    bucket: self.name().clone(),
                    reference: *r,
                },
                Undo::Decompress(reason) => BucketError::Decompress {
                    bucket: self.name().clone(),
                    reference: *r,
                    reason,
                },
            })
    }

    /// The stored (transformed) bytes of a block, verified against its
    /// ref. Needs no key.
    pub fn get_stored(&self, r: &Ref) -> Result<Option<Vec<u8>>, BucketError> {
        let Some(stored) = self.volume.get(&layout::block_key(self.num(), r))? else {
            return Ok(None);
        };
        Ok(Some(self.verified(*r, stored)?.into_parts().1))
    }

    /// `stored` as the bytes of `r`, or the error naming the ref they
    /// hash to.
    pub(crate) fn verified(&self, r: Ref, stored: Vec<u8>) -> Result<Verified, BucketError> {
        r.verify(stored).map_err(|actual| BucketError::Corrupt {
            bucket: self.name().clone(),
            reference: r,
            backend: self.volume.backend(),
            actual,
        })
    }

    /// Stores bytes received already transformed (from a peer or an
    /// import), after checking that they hash to `r`. Needs no key.
    pub fn put_stored(&self, r: &Ref, stored: &[u8]) -> Result<(), BucketError> {
        let mut w = self.writer();
        w.put_stored(*r, stored.to_vec())?;
        w.flush()?;
        Ok(())
    }

    pub fn has(&self, r: &Ref) -> Result<bool, BucketError> {
        Ok(self.volume.has(&layout::block_key(self.num(), r))?)
    }

    /// Deletes a block; returns whether it was there. Deleting a block
    /// that a root still reaches breaks that DAG: prefer [`Bucket::gc`].
    pub fn delete(&self, r: &Ref) -> Result<bool, BucketError> {
        let key = layout::block_key(self.num(), r);
        let _g = self.shared.read_gate();
        let existed = self.volume.has(&key)?;
        if existed {
            self.volume.delete(&key)?;
        }
        Ok(existed)
    }

    /// Every block of the bucket, ordered by hash, with its stored size.
    pub fn blocks(&self) -> impl Iterator<Item = Result<(Ref, u64), BucketError>> + '_ {
        self.volume
            .scan(
                KeyRange::prefix(&layout::blocks_of(self.num())),
                Direction::Forward,
            )
            .map(|e| {
                let (k, v) = e?;
                let (_, r) = layout::ref_of_block_key(&k).ok_or_else(|| BucketError::BadRoot {
                    name: String::from_utf8_lossy(&k).into_owned(),
                    reason: "malformed block key".into(),
                })?;
                Ok((r, v.len() as u64))
            })
    }

    pub fn stats(&self) -> Result<BucketStats, BucketError> {
        let mut s = BucketStats::default();
        for b in self.blocks() {
            s.blocks += 1;
            s.stored_bytes += b?.1;
        }
        Ok(s)
    }

    /// Names `r` as a root: it and everything it reaches survive
    /// [`Bucket::gc`]. Objects are the roots named `o/<key>`; other layers
    /// (stream heads) register theirs under their own prefix.
    pub fn set_root(&self, name: &str, r: Ref) -> Result<(), BucketError> {
        self.set_root_quietly(name, r)?;
        self.shared.roots_changed();
        Ok(())
    }

    /// Sets a root without waking [`Bucket::wait_roots_change`]: for roots
    /// that only cache what others already name (object closures).
    pub(crate) fn set_root_quietly(&self, name: &str, r: Ref) -> Result<(), BucketError> {
        check_root_name(name)?;
        let _g = self.shared.read_gate();
        let value = postcard::to_allocvec(&r).expect("a ref encodes");
        self.volume
            .put(&layout::root_key(self.num(), name), &value)?;
        self.shared.note_root(self.num(), r);
        Ok(())
    }

    /// A count that grows whenever a root of this store is set or removed.
    pub fn roots_generation(&self) -> u64 {
        self.shared.roots_generation()
    }

    /// Waits until the roots generation passes `seen` or `deadline`
    /// comes; returns the generation then.
    pub fn wait_roots_change(&self, seen: u64, deadline: std::time::Instant) -> u64 {
        self.shared.wait_roots_change(seen, deadline)
    }

    pub fn root(&self, name: &str) -> Result<Option<Ref>, BucketError> {
        check_root_name(name)?;
        match self.volume.get(&layout::root_key(self.num(), name))? {
            Some(v) => decode_root(name, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Removes a root; returns whether it existed. Its blocks stay until
    /// the next [`Bucket::gc`].
    pub fn remove_root(&self, name: &str) -> Result<bool, BucketError> {
        check_root_name(name)?;
        let key = layout::root_key(self.num(), name);
        let existed = self.volume.has(&key)?;
        if existed {
            self.volume.delete(&key)?;
            self.shared.roots_changed();
        }
        Ok(existed)
    }

    /// Roots whose name starts with `prefix`, ordered by name.
    pub fn roots<'a>(
        &'a self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, Ref), BucketError>> + use<'a> {
        let base = layout::roots_of(self.num()).len();
        self.volume
            .scan(
                KeyRange::prefix(&layout::root_key(self.num(), prefix)),
                Direction::Forward,
            )
            .map(move |e| {
                let (k, v) = e?;
                let name = String::from_utf8_lossy(&k[base..]).into_owned();
                let r = decode_root(&name, &v)?;
                Ok((name, r))
            })
    }
}

fn check_root_name(name: &str) -> Result<(), BucketError> {
    let bad = |reason| BucketError::BadRootName {
        name: name.to_owned(),
        reason,
    };
    if name.len() > 400 {
        return Err(bad("it is longer than 400 bytes"));
    }
    if name.contains('\0') {
        return Err(bad("it contains a NUL character"));
    }
    Ok(())
}

fn decode_root(name: &str, bytes: &[u8]) -> Result<Ref, BucketError> {
    postcard::from_bytes(bytes).map_err(|e| BucketError::BadRoot {
        name: name.to_owned(),
        reason: e.to_string(),
    })
}

/// What a [`BlockWriter`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Blocks written.
    pub written: u64,
    /// Blocks that were already stored (deduplicated).
    pub existing: u64,
    /// Stored bytes written.
    pub bytes: u64,
}

/// Batches puts into few commits. Blocks it writes or finds are pinned
/// against garbage collection until the writer is dropped, so that a
/// caller can write a DAG and then set its root without racing
/// [`Bucket::gc`]. Call [`BlockWriter::flush`] before relying on the
/// blocks being stored; dropping a writer discards an unflushed batch.
pub struct BlockWriter<'a> {
    bucket: &'a Bucket,
    batch: WriteBatch,
    batch_bytes: usize,
    in_batch: HashSet<Ref>,
    pinned: Vec<Ref>,
    stats: WriteStats,
}

impl BlockWriter<'_> {
    pub(crate) fn bucket(&self) -> &Bucket {
        self.bucket
    }

    /// Transforms and queues a block; returns its ref.
    pub fn put(&mut self, codec: Codec, plain: &[u8]) -> Result<Ref, BucketError> {
        let (r, stored) = self.bucket.to_stored(codec, plain)?;
        self.add_stored(r, stored)?;
        Ok(r)
    }

    pub fn put_node<T: Serialize>(&mut self, node: &Node<T>) -> Result<Ref, BucketError> {
        self.put(Codec::Node, &node.encode())
    }

    /// Queues bytes received already transformed (from a peer or an
    /// import), after checking that they hash to `r`. Needs no key.
    pub fn put_stored(&mut self, r: Ref, stored: Vec<u8>) -> Result<(), BucketError> {
        let block = self.bucket.verified(r, stored)?;
        self.put_verified(block)
    }

    /// Queues bytes checked against their ref where they arrived (a
    /// block fetched from a peer). Needs no key.
    pub fn put_verified(&mut self, block: Verified) -> Result<(), BucketError> {
        let (r, stored) = block.into_parts();
        self.add_stored(r, stored)
    }

    /// Queues bytes already known to hash to `r`.
    pub(crate) fn add_stored(&mut self, r: Ref, stored: Vec<u8>) -> Result<(), BucketError> {
        let num = self.bucket.num();
        {
            // Pin and check under the gate, so that the collector cannot
            // free the block between the check and the pin.
            let _g = self.bucket.shared.read_gate();
            *self.bucket.shared.pins().entry((num, r)).or_default() += 1;
            self.pinned.push(r);
            if self.in_batch.contains(&r) || self.bucket.has(&r)? {
                self.stats.existing += 1;
                return Ok(());
            }
        }
        self.stats.written += 1;
        self.stats.bytes += stored.len() as u64;
        self.batch.put(layout::block_key(num, &r), stored);
        self.in_batch.insert(r);
        if self.batch.bytes() >= self.batch_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Commits what is queued.
    pub fn flush(&mut self) -> Result<WriteStats, BucketError> {
        if !self.batch.is_empty() {
            let _g = self.bucket.shared.read_gate();
            self.bucket.volume.commit(std::mem::take(&mut self.batch))?;
            self.in_batch.clear();
        }
        Ok(self.stats)
    }
}

impl Drop for BlockWriter<'_> {
    fn drop(&mut self) {
        let num = self.bucket.num();
        let mut pins = self.bucket.shared.pins();
        for r in self.pinned.drain(..) {
            if let Some(n) = pins.get_mut(&(num, r)) {
                *n -= 1;
                if *n == 0 {
                    pins.remove(&(num, r));
                }
            }
        }
    }
}
