use std::path::PathBuf;

use crate::{Backend, MAX_KEY_LEN, MAX_VALUE_LEN};

/// Boxed error of a storage engine (redb, LMDB).
pub type EngineError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What went wrong in a volume. One error type for the whole layer, like
/// redb's `StorageError`: callers rarely branch on more than "locked" or
/// "bad input", and the engine's own error is kept as the source.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VolumeError {
    #[error("{backend} engine error: {source}")]
    Engine {
        backend: Backend,
        #[source]
        source: EngineError,
    },
    #[error("key of {len} bytes exceeds the {MAX_KEY_LEN}-byte limit")]
    KeyTooLong { len: usize },
    #[error("value of {len} bytes exceeds the {MAX_VALUE_LEN}-byte limit")]
    ValueTooLarge { len: usize },
    #[error("key {key:?} is reserved for the volume's own metadata (keys starting with 0x00)")]
    ReservedKey { key: Vec<u8> },
    #[error("data directory {path} is in use by another process")]
    Locked { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "data directory {path} holds a {found} volume; --backend {requested} applies only when a volume is created"
    )]
    BackendMismatch {
        path: PathBuf,
        found: Backend,
        requested: Backend,
    },
    #[error("{path} is not a Hydra volume marker: {reason}")]
    BadMarker { path: PathBuf, reason: String },
    #[error("volume identity is unreadable: {reason}")]
    Identity { reason: String },
}

impl VolumeError {
    pub(crate) fn engine(backend: Backend, e: impl Into<EngineError>) -> VolumeError {
        VolumeError::Engine {
            backend,
            source: e.into(),
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> VolumeError {
        VolumeError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_values_that_differ() {
        assert_eq!(
            VolumeError::KeyTooLong { len: 600 }.to_string(),
            "key of 600 bytes exceeds the 480-byte limit"
        );
        assert_eq!(
            VolumeError::BackendMismatch {
                path: "d".into(),
                found: Backend::Redb,
                requested: Backend::Lmdb
            }
            .to_string(),
            "data directory d holds a redb volume; --backend lmdb applies only when a volume is created"
        );
        assert_eq!(
            VolumeError::Locked { path: "d".into() }.to_string(),
            "data directory d is in use by another process"
        );
    }
}
