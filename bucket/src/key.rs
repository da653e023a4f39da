//! [`Key`]: a bucket's secret key, and where it comes from.

use std::path::Path;

use crate::BucketError;

/// Environment variable holding a bucket key as 64 hex digits.
pub const KEY_ENV: &str = "HYDRA_KEY";

/// A 256-bit bucket key. Never stored in a volume: only a check value
/// derived from it is (see [`Key::check`]), so that a wrong key is
/// refused up front instead of failing block by block.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// A new random key.
    pub fn generate() -> Result<Key, BucketError> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| BucketError::BadKey {
            source_name: "system randomness",
            reason: e.to_string(),
        })?;
        Ok(Key(k))
    }

    /// Reads a key file: 32 raw bytes, or 64 hex digits (whitespace
    /// around them ignored).
    pub fn from_file(path: &Path) -> Result<Key, BucketError> {
        let bad = |reason: String| BucketError::KeyFile {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
        if bytes.len() == 32 {
            return Ok(Key(bytes.try_into().expect("length checked")));
        }
        let text = std::str::from_utf8(&bytes).map_err(|_| {
            bad(format!(
                "{} bytes; expected 32 raw bytes or 64 hex digits",
                bytes.len()
            ))
        })?;
        parse_hex(text.trim()).map_err(bad)
    }

    /// Reads the key from `HYDRA_KEY` if set.
    pub fn from_env() -> Result<Option<Key>, BucketError> {
        match std::env::var(KEY_ENV) {
            Ok(v) => parse_hex(v.trim())
                .map(Some)
                .map_err(|reason| BucketError::BadKey {
                    source_name: KEY_ENV,
                    reason,
                }),
            Err(_) => Ok(None),
        }
    }

    /// Writes the key to a new file as hex, readable by its owner only.
    pub fn write_new_file(&self, path: &Path) -> Result<(), BucketError> {
        use std::io::Write;
        #[cfg(unix)]
        use std::os::unix::fs::OpenOptionsExt;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        opts.mode(0o600);
        let write = || -> std::io::Result<()> {
            let mut f = opts.open(path)?;
            writeln!(f, "{}", self.to_hex())?;
            f.sync_all()
        };
        write().map_err(|e| BucketError::KeyFile {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
    }

    pub fn to_hex(&self) -> String {
        hydra_volume::hex::encode(&self.0)
    }

    /// Derives an independent subkey for one purpose (BLAKE3's KDF mode).
    pub(crate) fn derive(&self, context: &str) -> [u8; 32] {
        blake3::derive_key(context, &self.0)
    }

    /// A value stored in the bucket config to recognise this key. It is a
    /// one-way derivation: it reveals nothing that helps decrypt.
    pub fn check(&self) -> [u8; 32] {
        self.derive("hydra 2026-11 bucket key check v1")
    }

    /// Whether this is the key of a bucket sealed with `transforms`.
    pub fn opens(&self, transforms: &crate::Transforms) -> bool {
        transforms
            .encryption
            .as_ref()
            .is_some_and(|e| e.key_check == hydra_volume::hex::encode(&self.check()))
    }
}

fn parse_hex(text: &str) -> Result<Key, String> {
    if text.len() != 64 {
        return Err(format!("{} characters; expected 64 hex digits", text.len()));
    }
    let mut k = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let s = std::str::from_utf8(pair).map_err(|_| "not hex".to_string())?;
        k[i] = u8::from_str_radix(s, 16).map_err(|_| format!("{s:?} is not a hex byte"))?;
    }
    Ok(Key(k))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_in_hex_or_raw_and_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let k = Key::generate().unwrap();
        let hex = dir.path().join("hex.key");
        k.write_new_file(&hex).unwrap();
        assert_eq!(Key::from_file(&hex).unwrap(), k);
        assert!(
            k.write_new_file(&hex).is_err(),
            "never overwrites a key file"
        );
        let raw = dir.path().join("raw.key");
        std::fs::write(&raw, k.0).unwrap();
        assert_eq!(Key::from_file(&raw).unwrap(), k);
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "abc").unwrap();
        let e = Key::from_file(&bad).unwrap_err().to_string();
        assert!(
            e.ends_with("bad.key: 3 characters; expected 64 hex digits"),
            "{e}"
        );
        assert!(Key::from_file(&dir.path().join("missing")).is_err());
        assert_eq!(format!("{k:?}"), "Key(..)");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&hex).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
