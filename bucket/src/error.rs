use std::path::PathBuf;

use hydra_block::{DecodeError, Ref};
use hydra_volume::VolumeError;

use crate::BucketName;

/// What went wrong in a bucket operation. Messages name the bucket, the
/// ref or the key involved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BucketError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("bucket {0} does not exist")]
    NotFound(BucketName),
    #[error("bucket {0} already exists")]
    AlreadyExists(BucketName),
    #[error("bucket name {name:?} is invalid: {reason}")]
    BadName { name: String, reason: &'static str },
    #[error(
        "bucket {bucket} is at version {current}; an update must give a higher version, not {given}"
    )]
    VersionNotNewer {
        bucket: BucketName,
        current: u64,
        given: u64,
    },
    #[error(
        "bucket {bucket}: {what} cannot change after creation (stored blocks depend on it); create a new bucket instead"
    )]
    TransformChange {
        bucket: BucketName,
        what: &'static str,
    },
    #[error("zstd level {0} is out of range (1 to 22)")]
    BadLevel(i32),
    #[error(
        "bucket {0} is encrypted and this peer has no key: give it with --key-file FILE or HYDRA_KEY"
    )]
    KeyRequired(BucketName),
    #[error("bucket {0} is not encrypted, but a key was given")]
    KeyNotNeeded(BucketName),
    #[error("wrong key for bucket {0}")]
    WrongKey(BucketName),
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("key from {source_name}: {reason}")]
    BadKey {
        source_name: &'static str,
        reason: String,
    },
    #[error("block {reference} not found in bucket {bucket}")]
    BlockNotFound { bucket: BucketName, reference: Ref },
    #[error(
        "block {reference} in bucket {bucket} on the {backend} volume is corrupt: its stored bytes hash to {actual}"
    )]
    Corrupt {
        bucket: BucketName,
        reference: Ref,
        backend: hydra_volume::Backend,
        actual: Ref,
    },
    #[error(
        "block {reference} in bucket {bucket} failed authentication: wrong key or tampered ciphertext"
    )]
    Decrypt { bucket: BucketName, reference: Ref },
    #[error("block {reference} in bucket {bucket} does not decompress: {reason}")]
    Decompress {
        bucket: BucketName,
        reference: Ref,
        reason: String,
    },
    #[error("a value stored in bucket {bucket} does not open: {reason}")]
    Unseal { bucket: BucketName, reason: String },
    #[error(
        "block of {size} bytes exceeds the {max}-byte block limit (store large data as an object)"
    )]
    BlockTooLarge { size: usize, max: usize },
    #[error("block {reference} is not a valid node: {source}")]
    Decode {
        reference: Ref,
        #[source]
        source: DecodeError,
    },
    #[error("object {key:?} not found in bucket {bucket}")]
    ObjectNotFound { bucket: BucketName, key: String },
    #[error("object key {key:?} is invalid: {reason}")]
    BadObjectKey { key: String, reason: &'static str },
    #[error("root name {name:?} is invalid: {reason}")]
    BadRootName { name: String, reason: &'static str },
    #[error("object {key:?} is incomplete: block {reference} is missing")]
    ObjectIncomplete { key: String, reference: Ref },
    #[error("reading object data: {0}")]
    Read(#[source] std::io::Error),
    #[error("writing object data: {0}")]
    Write(#[source] std::io::Error),
    #[error("stored root {name:?} is unreadable: {reason}")]
    BadRoot { name: String, reason: String },
    #[error(
        "bucket {bucket} is encrypted and this peer has no key: root {root:?} has no closure to follow, so a collection could lose its blocks; collect with the key"
    )]
    BlindGc { bucket: BucketName, root: String },
    #[error("bucket import refused: {0}")]
    Car(String),
    #[error("manifest of bucket {bucket} refused: {reason}")]
    BadManifest { bucket: String, reason: String },
    #[error("manifest of bucket {bucket} is signed by {signer}, which is not a trusted writer")]
    UntrustedWriter { bucket: String, signer: String },
    #[error(
        "bucket {bucket} stores blocks with other transforms than its writer's (compression or key); a replica must transform as its writer does"
    )]
    TransformMismatch { bucket: BucketName },
    #[error("stored config of bucket {bucket} is unreadable: {reason}")]
    BadConfig { bucket: String, reason: String },
}

/// What kind of failure an error is, for whoever acts on it (an API's
/// status, a client's retry, an application's "not found"): the same kinds
/// whether the store runs in this process or behind a daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// Bad input: as it is, the request can never succeed.
    Invalid,
    /// What it names does not exist.
    NotFound,
    /// An append or a delete expected another version of the stream.
    WrongExpectedVersion,
    /// It conflicts with what is there (exists already, replicated, ...).
    Conflict,
    /// What it names was deleted for good.
    Gone,
    /// It needs a key that is missing here, or another one.
    Forbidden,
    /// The store is closing or busy: the same request may succeed later.
    Unavailable,
    /// Anything else: storage faults, corrupt data.
    Other,
}

impl BucketError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            BucketError::NotFound(_)
            | BucketError::BlockNotFound { .. }
            | BucketError::ObjectNotFound { .. } => ErrorKind::NotFound,
            BucketError::AlreadyExists(_)
            | BucketError::VersionNotNewer { .. }
            | BucketError::TransformChange { .. } => ErrorKind::Conflict,
            BucketError::BadName { .. }
            | BucketError::BadObjectKey { .. }
            | BucketError::BadRootName { .. }
            | BucketError::BlockTooLarge { .. }
            | BucketError::BadLevel(_) => ErrorKind::Invalid,
            BucketError::KeyRequired(_) | BucketError::WrongKey(_) => ErrorKind::Forbidden,
            _ => ErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let b: BucketName = "photos".parse().unwrap();
        assert_eq!(
            BucketError::KeyRequired(b.clone()).to_string(),
            "bucket photos is encrypted and this peer has no key: give it with --key-file FILE or HYDRA_KEY"
        );
        assert_eq!(
            BucketError::VersionNotNewer {
                bucket: b.clone(),
                current: 3,
                given: 2
            }
            .to_string(),
            "bucket photos is at version 3; an update must give a higher version, not 2"
        );
        let r = Ref::raw(b"x");
        assert_eq!(
            BucketError::BlockNotFound {
                bucket: b,
                reference: r
            }
            .to_string(),
            format!("block {r} not found in bucket photos")
        );
    }
}
