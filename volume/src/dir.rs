//! Opening a data directory: backend detection and the directory lock.

use std::fs::{File, OpenOptions as FsOpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{
    Backend, Durability, Identity, LmdbVolume, MemVolume, RedbVolume, Volume, VolumeError,
};

/// Names the backend of a data directory. Written once, at creation.
const MARKER: &str = "VOLUME";
/// Held (flock) while a process has the directory open.
const LOCK: &str = "LOCK";
/// The volume's ed25519 public key (64 hex digits), written by
/// [`publish_public_key`]: whom its heads and proofs are signed by,
/// readable without opening the volume, whose lock one process holds (a
/// `stream verify` reading the proof another command is writing into a
/// pipe).
const PUBLIC_KEY: &str = "PUBLIC_KEY";
const REDB_FILE: &str = "volume.redb";
const LMDB_DIR: &str = "lmdb";

/// How to open a data directory.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenOptions {
    /// The backend for a new directory; `None` means redb. On an existing
    /// directory it must match what is there (or be `None`).
    pub backend: Option<Backend>,
    pub durability: Durability,
    /// Bytes of pages the engine may cache in memory (redb; LMDB maps the
    /// file and leaves caching to the kernel). `None`: redb's default of
    /// 1 GiB.
    pub cache_bytes: Option<usize>,
}

/// Opens the volume in `dir`, creating the directory and a volume of the
/// requested backend if there is none. Reopening detects the backend from
/// the `VOLUME` marker. The directory is locked for this process: a second
/// process gets [`VolumeError::Locked`].
pub fn open_dir(dir: &Path, options: OpenOptions) -> Result<Arc<dyn Volume>, VolumeError> {
    std::fs::create_dir_all(dir).map_err(|e| VolumeError::io(dir, e))?;
    let lock = lock(dir)?;
    let marker = dir.join(MARKER);
    let backend = match read_marker(&marker)? {
        Some(found) => {
            if let Some(requested) = options.backend
                && requested != found
            {
                return Err(VolumeError::BackendMismatch {
                    path: dir.to_path_buf(),
                    found,
                    requested,
                });
            }
            found
        }
        None => {
            let backend = options.backend.unwrap_or_default();
            write_marker(&marker, backend)?;
            backend
        }
    };
    let d = options.durability;
    Ok(match backend {
        Backend::Redb => Arc::new(RedbVolume::open_locked(
            &dir.join(REDB_FILE),
            d,
            options.cache_bytes,
            Some(lock),
        )?),
        Backend::Lmdb => Arc::new(LmdbVolume::open_locked(&dir.join(LMDB_DIR), d, Some(lock))?),
        Backend::Mem => Arc::new(MemVolume::with_lock(lock)),
    })
}

/// Writes the public key of `volume` (opened from `dir`; its identity is
/// created if it has none) into the directory, for [`public_key_of_dir`].
/// An in-memory volume's identity lasts one process: nothing is written.
pub fn publish_public_key(dir: &Path, volume: &dyn Volume) -> Result<(), VolumeError> {
    if volume.backend() == Backend::Mem {
        return Ok(());
    }
    let key = crate::hex::encode(&Identity::load_or_create(volume)?.public_key());
    let path = dir.join(PUBLIC_KEY);
    if std::fs::read_to_string(&path).ok().as_deref() != Some(key.as_str()) {
        replace_file(&path, key.as_bytes())?;
    }
    Ok(())
}

/// The public key of the volume in `dir`, as [`publish_public_key`] wrote
/// it; `None` if it never did.
pub fn public_key_of_dir(dir: &Path) -> Result<Option<[u8; 32]>, VolumeError> {
    let path = dir.join(PUBLIC_KEY);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(VolumeError::io(&path, e)),
    };
    crate::hex::decode(&text)
        .map(Some)
        .map_err(|reason| VolumeError::BadMarker { path, reason })
}

/// The files that hold a directory's data (for size reports and tests).
pub fn data_files(dir: &Path, backend: Backend) -> Vec<PathBuf> {
    match backend {
        Backend::Redb => vec![dir.join(REDB_FILE)],
        Backend::Lmdb => vec![dir.join(LMDB_DIR).join("data.mdb")],
        Backend::Mem => Vec::new(),
    }
}

fn lock(dir: &Path) -> Result<File, VolumeError> {
    let path = dir.join(LOCK);
    let file = FsOpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| VolumeError::io(&path, e))?;
    // A lock held a moment longer than its owner: a child process this
    // one started (or the last owner, forking just before it closed) keeps
    // the lock's file open until it execs. Ask again for a little while.
    for _ in 0..LOCK_TRIES {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(VolumeError::io(&path, e)),
        }
    }
    Err(VolumeError::Locked {
        path: dir.to_path_buf(),
    })
}

/// Times a held lock is asked for, 10 ms apart.
const LOCK_TRIES: usize = 20;

fn read_marker(path: &Path) -> Result<Option<Backend>, VolumeError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(VolumeError::io(path, e)),
    };
    let bad = |reason: String| VolumeError::BadMarker {
        path: path.to_path_buf(),
        reason,
    };
    let mut lines = text.lines();
    if lines.next() != Some("hydra-volume 1") {
        return Err(bad("first line is not \"hydra-volume 1\"".into()));
    }
    let backend = lines
        .next()
        .and_then(|l| l.strip_prefix("backend "))
        .ok_or_else(|| bad("no \"backend\" line".into()))?;
    backend.parse().map(Some).map_err(bad)
}

fn write_marker(path: &Path, backend: Backend) -> Result<(), VolumeError> {
    replace_file(
        path,
        format!("hydra-volume 1\nbackend {backend}\n").as_bytes(),
    )
}

/// Writes `bytes` to `path` whole or not at all (a temporary file, synced,
/// then renamed over it).
fn replace_file(path: &Path, bytes: &[u8]) -> Result<(), VolumeError> {
    let tmp = path.with_extension("tmp");
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| VolumeError::io(path, e))
}
