//! [`BlobStore`]: blocks and objects, whether the store is in this process
//! ([`Store`]) or behind a `hydra daemon` (the `hydra-client` crate). Code
//! written against it runs either way: the `hydra` CLI's block and object
//! commands are one body for both.
//!
//! As with the event log's `EventStore`, the methods are async because a
//! remote store is; [`Store`] does its work when the future is first
//! polled, on the calling thread. Objects stream both ways: from a
//! [`Read`] and into a [`Write`], a chunk at a time, whatever their size.

use std::future::Future;
use std::io::{Read, Write};

use hydra_block::{Codec, Ref};

use crate::{BucketError, BucketName, ErrorKind, ObjectInfo, Store};

/// A store's error: whatever it says, its [`ErrorKind`] is what callers
/// act on, the same for every store.
pub trait StoreError: std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> ErrorKind;
}

impl StoreError for BucketError {
    fn kind(&self) -> ErrorKind {
        BucketError::kind(self)
    }
}

/// The root that keeps a pinned block through gc.
pub fn pin_root(r: &Ref) -> String {
    format!("pin/{r}")
}

/// Blocks and objects of a store's buckets. The semantics are
/// [`Bucket`](crate::Bucket)'s: see its methods of the same names.
pub trait BlobStore: Send + Sync {
    type Error: StoreError;

    /// Stores a raw block; `pin` keeps it through gc (a root
    /// [`pin_root`]).
    fn put_block(
        &self,
        bucket: &BucketName,
        data: Vec<u8>,
        pin: bool,
    ) -> impl Future<Output = Result<Ref, Self::Error>> + Send;

    /// A block's bytes, verified against its ref.
    fn get_block(
        &self,
        bucket: &BucketName,
        r: &Ref,
    ) -> impl Future<Output = Result<Vec<u8>, Self::Error>> + Send;

    fn has_block(
        &self,
        bucket: &BucketName,
        r: &Ref,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Every block with its size as stored.
    fn list_blocks(
        &self,
        bucket: &BucketName,
    ) -> impl Future<Output = Result<Vec<(Ref, u64)>, Self::Error>> + Send;

    /// Deletes a block and its pin; whether it was there.
    fn delete_block(
        &self,
        bucket: &BucketName,
        r: &Ref,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;

    /// Stores `data`, read to its end, as object `key`.
    fn put_object(
        &self,
        bucket: &BucketName,
        key: &str,
        data: impl Read + Send + 'static,
    ) -> impl Future<Output = Result<ObjectInfo, Self::Error>> + Send;

    /// Writes object `key`'s bytes to `out`.
    fn get_object(
        &self,
        bucket: &BucketName,
        key: &str,
        out: impl Write + Send,
    ) -> impl Future<Output = Result<ObjectInfo, Self::Error>> + Send;

    /// Object `key`'s root and size, if it exists.
    fn object(
        &self,
        bucket: &BucketName,
        key: &str,
    ) -> impl Future<Output = Result<Option<ObjectInfo>, Self::Error>> + Send;

    /// Objects whose key starts with `prefix`.
    fn list_objects(
        &self,
        bucket: &BucketName,
        prefix: &str,
    ) -> impl Future<Output = Result<Vec<ObjectInfo>, Self::Error>> + Send;

    /// Removes object `key`; whether it was there.
    fn delete_object(
        &self,
        bucket: &BucketName,
        key: &str,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send;
}

/// The store's own buckets, with the keys it was unlocked with.
impl BlobStore for Store {
    type Error = BucketError;

    async fn put_block(
        &self,
        bucket: &BucketName,
        data: Vec<u8>,
        pin: bool,
    ) -> Result<Ref, BucketError> {
        let bucket = self.bucket(bucket, None)?;
        let r = bucket.put(Codec::Raw, &data)?;
        if pin {
            bucket.set_root(&pin_root(&r), r)?;
        }
        Ok(r)
    }

    async fn get_block(&self, bucket: &BucketName, r: &Ref) -> Result<Vec<u8>, BucketError> {
        self.bucket(bucket, None)?.get(r)
    }

    async fn has_block(&self, bucket: &BucketName, r: &Ref) -> Result<bool, BucketError> {
        self.bucket(bucket, None)?.has(r)
    }

    async fn list_blocks(&self, bucket: &BucketName) -> Result<Vec<(Ref, u64)>, BucketError> {
        self.bucket(bucket, None)?.blocks().collect()
    }

    async fn delete_block(&self, bucket: &BucketName, r: &Ref) -> Result<bool, BucketError> {
        let bucket = self.bucket(bucket, None)?;
        bucket.remove_root(&pin_root(r))?;
        bucket.delete(r)
    }

    async fn put_object(
        &self,
        bucket: &BucketName,
        key: &str,
        data: impl Read + Send + 'static,
    ) -> Result<ObjectInfo, BucketError> {
        self.bucket(bucket, None)?.put_object(key, data, |_| {})
    }

    async fn get_object(
        &self,
        bucket: &BucketName,
        key: &str,
        out: impl Write + Send,
    ) -> Result<ObjectInfo, BucketError> {
        self.bucket(bucket, None)?.get_object(key, out, |_| {})
    }

    async fn object(
        &self,
        bucket: &BucketName,
        key: &str,
    ) -> Result<Option<ObjectInfo>, BucketError> {
        self.bucket(bucket, None)?.object(key)
    }

    async fn list_objects(
        &self,
        bucket: &BucketName,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, BucketError> {
        self.bucket(bucket, None)?.objects(prefix).collect()
    }

    async fn delete_object(&self, bucket: &BucketName, key: &str) -> Result<bool, BucketError> {
        self.bucket(bucket, None)?.remove_object(key)
    }
}
