//! The tokens a daemon accepts, kept in the event log's volume under
//! `tok-0/<name>`: a name, its scopes, and the BLAKE3 hash of the secret.
//! The secret itself is shown once, when the token is made, and stored
//! nowhere.
//!
//! A secret is 32 random bytes, so a fast hash is safe here: there is no
//! password to guess, and a stolen volume gives no token back.

use std::sync::Arc;

use base64::Engine as _;
use hydra_volume::{Direction, KeyRange, Volume, VolumeError, WriteBatch};
use serde::{Deserialize, Serialize};

use super::scope::{Scope, ScopeError};

/// What every secret starts with, so that leaked ones are easy to find
/// (secret scanners, logs).
pub const SECRET_PREFIX: &str = "hydra_";

const KEYS: &str = "tok-0/";

/// A token as stored: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub name: String,
    pub scopes: Vec<Scope>,
    pub hash: blake3::Hash,
    /// Milliseconds since the Unix epoch.
    pub created: u64,
}

/// A token as the API and the CLI show it (the client's type, which the
/// daemon answers with).
pub use hydra_client::TokenInfo;

impl Token {
    pub fn info(&self) -> TokenInfo {
        TokenInfo {
            name: self.name.clone(),
            scopes: self.scopes.iter().map(Scope::to_string).collect(),
            created: self.created,
            secret: None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Stored {
    scopes: Vec<String>,
    hash: String,
    created: u64,
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    #[error("token name {0:?} is invalid: use 1-64 letters, digits, '.', '_' or '-'")]
    BadName(String),
    #[error("token {0} already exists (revoke it first)")]
    Exists(String),
    #[error("token {0} does not exist")]
    NotFound(String),
    #[error("a token needs at least one scope")]
    NoScope,
    #[error(transparent)]
    BadScope(#[from] ScopeError),
    #[error("stored token {name} is unreadable: {reason}")]
    Corrupt { name: String, reason: String },
    #[error("no system randomness for a token: {0}")]
    Randomness(String),
    #[error(transparent)]
    Volume(#[from] VolumeError),
}

/// The token store of one volume.
#[derive(Clone)]
pub struct Tokens {
    volume: Arc<dyn Volume>,
}

impl Tokens {
    pub fn new(volume: Arc<dyn Volume>) -> Tokens {
        Tokens { volume }
    }

    /// Every token, by name.
    pub fn list(&self) -> Result<Vec<Token>, TokenError> {
        let mut out = Vec::new();
        for entry in self
            .volume
            .scan(KeyRange::prefix(KEYS.as_bytes()), Direction::Forward)
        {
            let entry = entry?;
            let name = String::from_utf8_lossy(&entry.0[KEYS.len()..]).into_owned();
            out.push(decode(name, &entry.1)?);
        }
        Ok(out)
    }

    /// Makes a token; returns it and its secret, which nothing keeps.
    pub fn create(&self, name: &str, scopes: &[String]) -> Result<(Token, String), TokenError> {
        check_name(name)?;
        if scopes.is_empty() {
            return Err(TokenError::NoScope);
        }
        let scopes = scopes
            .iter()
            .map(|s| s.parse())
            .collect::<Result<Vec<Scope>, _>>()?;
        let key = key(name);
        if self.volume.has(&key)? {
            return Err(TokenError::Exists(name.to_owned()));
        }
        let mut bytes = [0u8; 32];
        getrandom::fill(&mut bytes).map_err(|e| TokenError::Randomness(e.to_string()))?;
        let secret = format!(
            "{SECRET_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
        );
        let token = Token {
            name: name.to_owned(),
            scopes,
            hash: hash(&secret),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        };
        let stored = Stored {
            scopes: token.scopes.iter().map(Scope::to_string).collect(),
            hash: token.hash.to_hex().to_string(),
            created: token.created,
        };
        let mut batch = WriteBatch::new();
        batch.put(key, serde_json::to_vec(&stored).expect("plain data"));
        self.volume.commit(batch)?;
        Ok((token, secret))
    }

    /// Removes a token: requests bearing it are refused from now on.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        let key = key(name);
        if !self.volume.has(&key)? {
            return Err(TokenError::NotFound(name.to_owned()));
        }
        let mut batch = WriteBatch::new();
        batch.delete(key);
        self.volume.commit(batch)?;
        Ok(())
    }
}

/// The hash a secret is known by.
pub fn hash(secret: &str) -> blake3::Hash {
    blake3::hash(secret.as_bytes())
}

fn key(name: &str) -> Vec<u8> {
    format!("{KEYS}{name}").into_bytes()
}

fn check_name(name: &str) -> Result<(), TokenError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(TokenError::BadName(name.to_owned()))
    }
}

fn decode(name: String, value: &[u8]) -> Result<Token, TokenError> {
    let corrupt = |reason: String| TokenError::Corrupt {
        name: name.clone(),
        reason,
    };
    let s: Stored = serde_json::from_slice(value).map_err(|e| corrupt(e.to_string()))?;
    Ok(Token {
        scopes: s
            .scopes
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, ScopeError>>()
            .map_err(|e| corrupt(e.to_string()))?,
        hash: blake3::Hash::from_hex(&s.hash).map_err(|e| corrupt(e.to_string()))?,
        created: s.created,
        name,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens() -> Tokens {
        Tokens::new(Arc::new(hydra_volume::MemVolume::new()))
    }

    #[test]
    fn a_token_is_stored_as_a_hash_and_found_by_its_secret() {
        let t = tokens();
        let (made, secret) = t.create("reader", &["read:*".into()]).unwrap();
        assert!(secret.starts_with(SECRET_PREFIX) && secret.len() > 40);
        let listed = t.list().unwrap();
        assert_eq!(listed, vec![made.clone()]);
        let stored = t.volume.get(b"tok-0/reader").unwrap().unwrap();
        let secret_part = &secret[SECRET_PREFIX.len()..];
        assert!(
            !String::from_utf8_lossy(&stored).contains(secret_part),
            "the secret is not stored"
        );
        assert_eq!(hash(&secret), made.hash);
    }

    #[test]
    fn names_scopes_and_revocation_are_checked() {
        let t = tokens();
        assert!(matches!(
            t.create("a b", &["admin".into()]),
            Err(TokenError::BadName(_))
        ));
        assert!(matches!(t.create("a", &[]), Err(TokenError::NoScope)));
        assert_eq!(
            t.create("a", &["root".into()]).unwrap_err().to_string(),
            "scope \"root\": use read:PREFIX, write:PREFIX, delete:PREFIX, bucket-read:BUCKET, bucket-write:BUCKET or admin"
        );
        t.create("a", &["admin".into()]).unwrap();
        assert_eq!(
            t.create("a", &["admin".into()]).unwrap_err().to_string(),
            "token a already exists (revoke it first)"
        );
        t.revoke("a").unwrap();
        assert!(t.list().unwrap().is_empty());
        assert_eq!(
            t.revoke("a").unwrap_err().to_string(),
            "token a does not exist"
        );
    }
}
