//! Buckets: named collections of blocks on a volume.
//!
//! A [`Store`] holds the buckets of one [`Volume`](hydra_volume::Volume).
//! Each bucket has a persisted, versioned [`BucketConfig`] and transforms
//! (zstd compression, ChaCha20-Poly1305 encryption) applied between a
//! block's plain bytes and the bytes the volume stores. A block's
//! [`Ref`](hydra_block::Ref) is the hash of the stored bytes, checked on
//! every read. On top of blocks: named roots, objects (large byte streams
//! chunked into a DAG), and garbage collection from the roots.
//!
//! ```
//! use std::sync::Arc;
//! use hydra_block::Codec;
//! use hydra_bucket::{BucketName, CreateOptions, Key, Store};
//! use hydra_volume::MemVolume;
//!
//! let store = Store::open(Arc::new(MemVolume::new()))?;
//! let key = Key::generate()?;
//! let name: BucketName = "secrets".parse()?;
//! store.create_bucket(&name, CreateOptions { zstd_level: Some(3), key: Some(&key) })?;
//! let bucket = store.bucket(&name, Some(&key))?;
//!
//! let r = bucket.put(Codec::Raw, b"hello")?;
//! assert_eq!(bucket.get(&r)?, b"hello");
//!
//! bucket.put_object("notes.txt", &b"a large file"[..], |_| {})?;
//! let mut out = Vec::new();
//! bucket.get_object("notes.txt", &mut out, |_| {})?;
//! assert_eq!(out, b"a large file");
//! # Ok::<(), hydra_bucket::BucketError>(())
//! ```

mod blob_store;
mod bucket;
mod config;
mod copy;
mod error;
mod gc;
mod key;
mod layout;
mod name;
mod object;
mod replica;
mod store;
mod transfer;
mod transform;
mod verify;

pub use blob_store::{BlobStore, StoreError, pin_root};
pub use bucket::{BlockWriter, Bucket, BucketStats, MAX_BLOCK_SIZE, WriteStats};
pub use config::{BucketConfig, BucketUpdate, Policies};
pub use copy::CopyReport;
pub use error::{BucketError, ErrorKind};
pub use gc::GcReport;
pub use key::{KEY_ENV, Key};
pub use name::{BucketName, MAX_BUCKET_NAME};
pub use object::{MAX_OBJECT_KEY, OBJECT_INDEX, ObjectInfo};
pub use replica::{
    Closure, EVIDENCE_PREFIX, MANIFEST_ROOT, MAX_MANIFEST_OBJECTS, Manifest, ManifestObject,
    Receiver,
};
pub use store::{CreateOptions, Store};
pub use transfer::{BucketExport, BucketImport, Part, check_objects};
pub use transform::{Encryption, Transforms};
pub use verify::{Corruption, VerifyReport};
