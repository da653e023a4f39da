//! Event records in their stream's bucket: which bucket a new stream
//! goes to, sealing a record for the volume, and opening it again with
//! every check a read owes its caller.
//!
//! A record is sealed by its bucket's transforms (zstd, then
//! ChaCha20-Poly1305) before it is stored, and kept with its Merkle leaf
//! hash. Opening it checks the unsealed bytes against that hash, so a
//! flipped byte anywhere in a stored event fails the read with the stream
//! and version named, never returns altered data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hydra_bucket::{Bucket, BucketError, BucketName, Store};

use crate::layout::{self, EventRecord, StoredEvent};
use crate::merkle::leaf_hash;
use crate::{Error, RecordedEvent, StreamId};

/// Streams whose id starts with `prefix` go to `bucket` when created
/// (the longest matching prefix wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub prefix: String,
    pub bucket: BucketName,
}

/// The buckets streams live in, by internal number, opened once.
pub(crate) struct Buckets {
    store: Store,
    placements: Vec<Placement>,
    open: Mutex<HashMap<u32, Arc<Bucket>>>,
}

impl Buckets {
    pub fn new(store: Store, mut placements: Vec<Placement>) -> Buckets {
        placements.sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
        Buckets {
            store,
            placements,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Bucket>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bucket with internal number `num`, shared (the hot path clones
    /// no config).
    pub fn get(&self, num: u32) -> Result<Arc<Bucket>, Error> {
        if let Some(b) = self.lock().get(&num) {
            return Ok(b.clone());
        }
        let b = Arc::new(
            self.store
                .bucket_by_num(num)?
                .ok_or_else(|| Error::Corrupt {
                    what: format!("bucket #{num}"),
                    reason: "it holds streams but no longer exists".into(),
                })?,
        );
        self.lock().insert(num, b.clone());
        Ok(b)
    }

    /// The bucket named `name`.
    pub fn named(&self, name: &BucketName) -> Result<Arc<Bucket>, Error> {
        let num = self.store.bucket_config(name)?.num();
        self.get(num)
    }

    /// Where a new stream goes: the bucket asked for, else the longest
    /// configured prefix that matches, else the default bucket.
    pub fn place(
        &self,
        stream: &StreamId,
        asked: Option<&BucketName>,
    ) -> Result<Arc<Bucket>, Error> {
        let default = BucketName::default_bucket();
        let name = asked.unwrap_or_else(|| {
            self.placements
                .iter()
                .find(|p| stream.as_str().starts_with(&p.prefix))
                .map_or(&default, |p| &p.bucket)
        });
        self.named(name)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Forgets open handles, so that keys given since are used.
    pub fn reopen(&self) {
        self.lock().clear();
    }
}

/// Seals a record, whose Merkle leaf is `leaf`, for its `ev-0/` entry.
pub(crate) fn seal(
    bucket: &Bucket,
    position: u64,
    leaf: &crate::Hash,
    record: &[u8],
) -> Result<Vec<u8>, Error> {
    let sealed = bucket.seal(record)?;
    Ok(StoredEvent::encode(
        position,
        bucket.config().num(),
        leaf,
        &sealed,
    ))
}

/// Opens an `ev-0/` entry of stream number `num` at `version` back into
/// the record's bytes, checked against its leaf hash. `name` says which
/// stream that is, for errors (looked up only when one happens).
pub(crate) fn open_record(
    buckets: &Buckets,
    (num, version): (u64, u64),
    value: Vec<u8>,
    name: impl Fn(u64) -> String,
) -> Result<(u64, Vec<u8>), Error> {
    let stored = StoredEvent::decode(value)?;
    let bucket = buckets.get(stored.bucket)?;
    let corrupt = |reason: String| Error::CorruptEvent {
        stream: name(num),
        version,
        reason,
    };
    let plain = match bucket.unseal(stored.sealed) {
        Ok(p) => p,
        Err(e @ BucketError::Unseal { .. }) => return Err(corrupt(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    if leaf_hash(&plain) != stored.leaf {
        return Err(corrupt(
            "its bytes do not hash to its Merkle leaf (changed on disk)".into(),
        ));
    }
    Ok((stored.position, plain))
}

/// [`open_record`], decoded into an event, whose stream and version must
/// be the ones its key says.
pub(crate) fn open_event(
    buckets: &Buckets,
    at: (u64, u64),
    value: Vec<u8>,
    name: impl Fn(u64) -> String,
) -> Result<RecordedEvent, Error> {
    let (position, plain) = open_record(buckets, at, value, &name)?;
    let record = EventRecord::decode(&plain)?;
    if record.version != at.1 {
        return Err(Error::CorruptEvent {
            stream: name(at.0),
            version: at.1,
            reason: format!("it holds version {}", record.version),
        });
    }
    record.into_event(position)
}

pub(crate) type SharedBuckets = Arc<Buckets>;

/// The `ev-0/` key of the event at `position`, from the `$all` index.
pub(crate) fn event_key_at(all_value: &[u8]) -> Result<(u64, u64), Error> {
    layout::num_version(all_value).ok_or_else(|| Error::Corrupt {
        what: "$all index entry".into(),
        reason: format!("{} bytes, expected 16", all_value.len()),
    })
}
