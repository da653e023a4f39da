//! What a token may do (a [`Scope`]) and what a request needs (a
//! [`Need`]): one check, [`allows`], that every API runs before it acts.
//!
//! Stream scopes name a prefix of stream ids; a prefix also stands for
//! the set of streams a `$all` read or a list may return, so
//! `read:orders-` lets a token read stream `orders-1` and read `$all`
//! filtered to `?prefix=orders-`, but not `$all` unfiltered (that needs
//! `read:*`). `admin` allows everything.

use std::fmt;
use std::str::FromStr;

/// One permission held by a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Read streams whose id starts with the prefix (`*`: every stream).
    Read(Prefix),
    /// Append to them, save snapshots of them.
    Write(Prefix),
    /// Delete them, their snapshots, or events through retention settings.
    Delete(Prefix),
    /// Read a bucket's blocks and objects (`*`: every bucket).
    BucketRead(Prefix),
    /// Store and delete a bucket's blocks and objects.
    BucketWrite(Prefix),
    /// Everything, and what only operators do: gc, scavenge, reindex,
    /// import, peers, tokens, buckets.
    Admin,
}

/// A stream id prefix or a bucket name; `*` covers everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prefix {
    Everything,
    Starting(String),
}

impl Prefix {
    /// Whether every name starting with `wanted` starts with this prefix
    /// (for one stream, `wanted` is its id; for a filtered read, the
    /// filter's prefix; for everything, "").
    fn covers(&self, wanted: &str) -> bool {
        match self {
            Prefix::Everything => true,
            Prefix::Starting(p) => wanted.starts_with(p.as_str()),
        }
    }

    /// Exactly this name (buckets are named, not prefixed).
    fn names(&self, wanted: Option<&str>) -> bool {
        match (self, wanted) {
            (Prefix::Everything, _) => true,
            (Prefix::Starting(p), Some(w)) => p == w,
            (Prefix::Starting(_), None) => false,
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Prefix::Everything => f.write_str("*"),
            Prefix::Starting(p) => f.write_str(p),
        }
    }
}

/// A scope that does not parse: the text and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("scope {scope:?}: {reason}")]
pub struct ScopeError {
    pub scope: String,
    pub reason: &'static str,
}

impl FromStr for Scope {
    type Err = ScopeError;

    fn from_str(s: &str) -> Result<Scope, ScopeError> {
        let bad = |reason| ScopeError {
            scope: s.to_owned(),
            reason,
        };
        if s == "admin" {
            return Ok(Scope::Admin);
        }
        let (kind, what) = s.split_once(':').ok_or_else(|| {
            bad("use read:PREFIX, write:PREFIX, delete:PREFIX, bucket-read:BUCKET, bucket-write:BUCKET or admin")
        })?;
        let prefix = match what {
            "" => return Err(bad("name a prefix, or * for all")),
            "*" => Prefix::Everything,
            p if p.chars().any(char::is_control) => {
                return Err(bad("control characters are not allowed"));
            }
            p => Prefix::Starting(p.to_owned()),
        };
        Ok(match kind {
            "read" => Scope::Read(prefix),
            "write" => Scope::Write(prefix),
            "delete" => Scope::Delete(prefix),
            "bucket-read" => Scope::BucketRead(prefix),
            "bucket-write" => Scope::BucketWrite(prefix),
            _ => {
                return Err(bad(
                    "unknown kind: use read, write, delete, bucket-read, bucket-write or admin",
                ));
            }
        })
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Scope::Read(p) => write!(f, "read:{p}"),
            Scope::Write(p) => write!(f, "write:{p}"),
            Scope::Delete(p) => write!(f, "delete:{p}"),
            Scope::BucketRead(p) => write!(f, "bucket-read:{p}"),
            Scope::BucketWrite(p) => write!(f, "bucket-write:{p}"),
            Scope::Admin => f.write_str("admin"),
        }
    }
}

/// What one request needs. Stream needs carry a stream id, or the prefix
/// a read is filtered to ("" for every stream).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// Any valid token (metrics, PING, HELLO).
    Token,
    Read(String),
    Write(String),
    Delete(String),
    /// One bucket, or every bucket (`None`).
    BucketRead(Option<String>),
    BucketWrite(String),
    Admin,
}

impl Need {
    /// Reading every stream: `$all` unfiltered, events by id, partitions.
    pub fn read_all() -> Need {
        Need::Read(String::new())
    }
}

/// The scope that would allow `need`, as a token lists it: what an error
/// names.
impl fmt::Display for Need {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let or_all = |s: &str| {
            if s.is_empty() {
                "*".to_owned()
            } else {
                s.to_owned()
            }
        };
        match self {
            Need::Token => f.write_str("any token"),
            Need::Read(s) => write!(f, "read:{}", or_all(s)),
            Need::Write(s) => write!(f, "write:{}", or_all(s)),
            Need::Delete(s) => write!(f, "delete:{}", or_all(s)),
            Need::BucketRead(b) => write!(f, "bucket-read:{}", b.as_deref().unwrap_or("*")),
            Need::BucketWrite(b) => write!(f, "bucket-write:{b}"),
            Need::Admin => f.write_str("admin"),
        }
    }
}

/// Whether a token holding `scopes` may do what `need` asks.
pub fn allows(scopes: &[Scope], need: &Need) -> bool {
    scopes.iter().any(|s| match (s, need) {
        (Scope::Admin, _) | (_, Need::Token) => true,
        (Scope::Read(p), Need::Read(w))
        | (Scope::Write(p), Need::Write(w))
        | (Scope::Delete(p), Need::Delete(w)) => p.covers(w),
        (Scope::BucketRead(p), Need::BucketRead(b)) => p.names(b.as_deref()),
        (Scope::BucketWrite(p), Need::BucketWrite(b)) => p.names(Some(b)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scopes(s: &[&str]) -> Vec<Scope> {
        s.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn scopes_parse_and_print_back() {
        for s in [
            "read:*",
            "read:orders-",
            "write:a",
            "delete:*",
            "bucket-read:photos",
            "bucket-write:*",
            "admin",
        ] {
            assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
        }
        assert_eq!(
            "read:".parse::<Scope>().unwrap_err().to_string(),
            "scope \"read:\": name a prefix, or * for all"
        );
        assert!(
            "reads:x"
                .parse::<Scope>()
                .unwrap_err()
                .to_string()
                .contains("unknown kind")
        );
        assert!("everything".parse::<Scope>().is_err());
    }

    #[test]
    fn a_prefix_covers_its_streams_and_narrower_filters_only() {
        let s = scopes(&["read:orders-"]);
        assert!(allows(&s, &Need::Read("orders-1".into())));
        assert!(
            allows(&s, &Need::Read("orders-".into())),
            "$all filtered to the prefix"
        );
        assert!(!allows(&s, &Need::Read("order".into())), "a wider filter");
        assert!(!allows(&s, &Need::read_all()));
        assert!(
            !allows(&s, &Need::Write("orders-1".into())),
            "reading is not writing"
        );
        assert!(allows(&scopes(&["read:*"]), &Need::read_all()));
    }

    #[test]
    fn buckets_are_named_not_prefixed() {
        let s = scopes(&["bucket-read:photos", "bucket-write:*"]);
        assert!(allows(&s, &Need::BucketRead(Some("photos".into()))));
        assert!(!allows(&s, &Need::BucketRead(Some("photos2".into()))));
        assert!(!allows(&s, &Need::BucketRead(None)), "listing every bucket");
        assert!(allows(&s, &Need::BucketWrite("any".into())));
    }

    #[test]
    fn admin_allows_everything_and_any_token_allows_the_basics() {
        let admin = scopes(&["admin"]);
        for n in [Need::Admin, Need::read_all(), Need::BucketWrite("b".into())] {
            assert!(allows(&admin, &n));
        }
        let reader = scopes(&["bucket-read:x"]);
        assert!(allows(&reader, &Need::Token));
        assert!(!allows(&reader, &Need::Admin));
        assert!(!allows(&[], &Need::Token), "no scope at all is no token");
    }

    #[test]
    fn needs_print_as_the_scope_that_allows_them() {
        assert_eq!(Need::read_all().to_string(), "read:*");
        assert_eq!(Need::Write("s-1".into()).to_string(), "write:s-1");
        assert_eq!(Need::BucketRead(None).to_string(), "bucket-read:*");
        assert_eq!(Need::Admin.to_string(), "admin");
    }
}
