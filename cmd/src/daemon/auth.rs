//! Who may do what, checked the same way on every API: the [`Gate`]
//! turns a bearer token into a [`Caller`], and each request names what it
//! needs (a [`Need`]) before it acts. HTTP routes declare a [`Rule`] in
//! the route table, gRPC methods and RESP commands check in their
//! handlers; `tests/cli/auth.rs` tries every route, method and command
//! without a token, with one lacking the scope and with one holding it.
//!
//! While no token exists (or with `api.auth: none`) every caller is
//! [`Caller::Anyone`]: the loopback quick start needs no token. The first
//! token makes every API require one.

use std::sync::{Arc, RwLock};

use axum::RequestExt;
use axum::extract::{RawPathParams, Request};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use super::app::Shared;
use super::error::ApiError;
use crate::access::{Need, Token, TokenError, Tokens, allows};

/// A token the daemon accepts, and the signal that ends what it opened
/// (subscriptions) when it is revoked.
pub struct Grant {
    pub token: Token,
    revoked: watch::Sender<bool>,
    /// The gate's count of refusals, which [`Caller::check`] raises.
    failures: Counter,
}

/// Who a request comes from.
#[derive(Clone)]
pub enum Caller {
    /// No token is required (yet): what it opened ends when the first
    /// token is made.
    Anyone(watch::Receiver<bool>),
    Token(Arc<Grant>),
}

/// Why a request is refused: no valid token (401, UNAUTHENTICATED,
/// NOAUTH), or a token without the scope (403, PERMISSION_DENIED, NOPERM).
/// Each protocol says how to send a token in its own words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Denied {
    Missing,
    Unknown,
    /// The one-line reason, naming the scope needed.
    Forbidden(String),
}

/// What is said of a token that is not known.
pub const UNKNOWN: &str = "unknown or revoked token";

impl Caller {
    /// Refuses a token whose scopes do not allow `need`, naming the scope,
    /// and counts the refusal (every API checks here).
    pub fn check(&self, need: &Need) -> Result<(), Denied> {
        match self {
            Caller::Anyone(_) => Ok(()),
            Caller::Token(g) if allows(&g.token.scopes, need) => Ok(()),
            Caller::Token(g) => {
                g.failures.inc();
                Err(Denied::Forbidden(format!(
                    "token {} lacks scope {need}",
                    g.token.name
                )))
            }
        }
    }

    /// Resolves when the caller's token is revoked, or for
    /// [`Caller::Anyone`] when tokens become required: a subscription
    /// opened without a token does not outlive the open door.
    pub async fn revoked(&self) {
        match self {
            Caller::Anyone(closed) => {
                let mut rx = closed.clone();
                if rx.wait_for(|c| *c).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
            Caller::Token(g) => {
                let mut rx = g.revoked.subscribe();
                let _ = rx.wait_for(|r| *r).await;
            }
        }
    }
}

/// The daemon's tokens, cached, and how it checks them.
pub struct Gate {
    tokens: Tokens,
    enabled: bool,
    /// An API listens beyond loopback: a token is required even when
    /// none exists (revoking the last token must not open the door).
    always: bool,
    open_metrics: bool,
    grants: RwLock<Vec<Arc<Grant>>>,
    /// Whether tokens are required now, for what anyone opened.
    closed: watch::Sender<bool>,
    failures: Counter,
}

impl Gate {
    /// Loads the tokens of the event log's volume. `enabled: false` is
    /// `api.auth: none`: nobody is asked for a token; `always`: a token is
    /// asked for even while none exists.
    pub fn open(
        tokens: Tokens,
        enabled: bool,
        always: bool,
        open_metrics: bool,
        failures: Counter,
    ) -> Result<Gate, TokenError> {
        let grants: Vec<_> = tokens
            .list()?
            .into_iter()
            .map(|t| grant(t, &failures))
            .collect();
        let closed = enabled && (always || !grants.is_empty());
        Ok(Gate {
            tokens,
            enabled,
            always,
            open_metrics,
            grants: RwLock::new(grants),
            closed: watch::channel(closed).0,
            failures,
        })
    }

    /// Whether requests need a token now.
    pub fn required(&self) -> bool {
        *self.closed.borrow()
    }

    /// The caller when no token is required.
    pub fn anyone(&self) -> Caller {
        Caller::Anyone(self.closed.subscribe())
    }

    /// Whether tokens are required with these grants; tells what anyone
    /// opened when that changes.
    fn update(&self, grants: &[Arc<Grant>]) {
        let closed = self.enabled && (self.always || !grants.is_empty());
        self.closed
            .send_if_modified(|c| std::mem::replace(c, closed) != closed);
    }

    /// The caller a secret (if any) stands for. Every token's hash is
    /// compared, in constant time, whichever matches.
    pub fn authenticate(&self, secret: Option<&str>) -> Result<Caller, Denied> {
        if !self.required() {
            return Ok(self.anyone());
        }
        let Some(secret) = secret else {
            self.failures.inc();
            return Err(Denied::Missing);
        };
        let h = crate::access::hash(secret);
        let mut found = None;
        for g in self.grants.read().expect("not poisoned").iter() {
            if g.token.hash == h {
                found = Some(g.clone());
            }
        }
        found.map(Caller::Token).ok_or_else(|| {
            self.failures.inc();
            Denied::Unknown
        })
    }

    /// Authenticates and checks one need, counting a refusal.
    pub fn admit(&self, secret: Option<&str>, need: &Need) -> Result<Caller, Denied> {
        let caller = self.authenticate(secret)?;
        caller.check(need)?;
        Ok(caller)
    }

    /// Whether `/metrics` answers without a token.
    pub fn open_metrics(&self) -> bool {
        self.open_metrics
    }

    pub fn list(&self) -> Vec<Token> {
        let grants = self.grants.read().expect("not poisoned");
        grants.iter().map(|g| g.token.clone()).collect()
    }

    pub fn create(&self, name: &str, scopes: &[String]) -> Result<(Token, String), TokenError> {
        let (token, secret) = self.tokens.create(name, scopes)?;
        let mut grants = self.grants.write().expect("not poisoned");
        grants.push(grant(token.clone(), &self.failures));
        grants.sort_by(|a, b| a.token.name.cmp(&b.token.name));
        self.update(&grants);
        Ok((token, secret))
    }

    /// Revokes a token: later requests bearing it are refused, and the
    /// subscriptions it opened end.
    pub fn revoke(&self, name: &str) -> Result<(), TokenError> {
        self.tokens.revoke(name)?;
        let mut grants = self.grants.write().expect("not poisoned");
        grants.retain(|g| {
            let keep = g.token.name != name;
            if !keep {
                g.revoked.send_replace(true);
            }
            keep
        });
        self.update(&grants);
        Ok(())
    }
}

fn grant(token: Token, failures: &Counter) -> Arc<Grant> {
    Arc::new(Grant {
        token,
        revoked: watch::channel(false).0,
        failures: failures.clone(),
    })
}

/// The secret of an `Authorization: Bearer` value (any case of "bearer").
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, secret) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then_some(secret.trim())
}

/// What an HTTP route needs, declared beside it in the route table (and
/// shown in the OpenAPI document as `x-scope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// No token: `/health`, `/openapi.json`.
    Open,
    /// `/metrics`: open or any token, per `api.metrics`.
    Metrics,
    Read(Of),
    Write(Of),
    Delete(Of),
    BucketRead(Of),
    BucketWrite(Of),
    Admin,
    /// `/export`: reading each `?stream=`; a whole bucket is admin's.
    Export,
}

/// Where a rule's stream or bucket comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Of {
    /// The `{id}` path parameter (a stream).
    Id,
    /// The `?prefix=` filter ("": every stream).
    Prefix,
    /// Every stream, or every bucket.
    All,
    /// The `{b}` path parameter (a bucket).
    Bucket,
}

impl Rule {
    /// The scope as the OpenAPI document shows it, parameters in braces.
    pub fn doc(self) -> String {
        let of = |o: Of| match o {
            Of::Id => "{id}",
            Of::Prefix => "{prefix}",
            Of::All => "*",
            Of::Bucket => "{b}",
        };
        match self {
            Rule::Open => "none".into(),
            Rule::Metrics => "any token, or none with api.metrics: open".into(),
            Rule::Read(o) => format!("read:{}", of(o)),
            Rule::Write(o) => format!("write:{}", of(o)),
            Rule::Delete(o) => format!("delete:{}", of(o)),
            Rule::BucketRead(o) => format!("bucket-read:{}", of(o)),
            Rule::BucketWrite(o) => format!("bucket-write:{}", of(o)),
            Rule::Admin => "admin".into(),
            Rule::Export => {
                "read:{stream} for each stream; admin for a bucket or everything".into()
            }
        }
    }

    /// What a request to this route needs (none for open routes).
    fn needs(self, params: &RawPathParams, query: &str) -> Vec<Need> {
        let param = |name: &str| {
            params
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_owned())
                .unwrap_or_default()
        };
        let values = |name: &str| -> Vec<String> {
            form_urlencoded::parse(query.as_bytes())
                .filter(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
                .collect()
        };
        let stream = |o: Of| match o {
            Of::Id => param("id"),
            Of::Prefix => values("prefix").pop().unwrap_or_default(),
            Of::All | Of::Bucket => String::new(),
        };
        let bucket = |o: Of| match o {
            Of::Bucket => Some(param("b")),
            _ => None,
        };
        match self {
            Rule::Open => Vec::new(),
            Rule::Metrics => vec![Need::Token],
            Rule::Read(o) => vec![Need::Read(stream(o))],
            Rule::Write(o) => vec![Need::Write(stream(o))],
            Rule::Delete(o) => vec![Need::Delete(stream(o))],
            Rule::BucketRead(o) => vec![Need::BucketRead(bucket(o))],
            Rule::BucketWrite(o) => vec![Need::BucketWrite(bucket(o).unwrap_or_default())],
            Rule::Admin => vec![Need::Admin],
            // Everything, or a bucket, is the admin's.
            Rule::Export if values("bucket").is_empty() && values("all").is_empty() => {
                values("stream").into_iter().map(Need::Read).collect()
            }
            Rule::Export => vec![Need::Admin],
        }
    }
}

/// The HTTP gate of one route: authenticates, checks the route's rule and
/// hands the handler its [`Caller`] (subscriptions end with it).
pub async fn http(rule: Rule, mut req: Request, next: Next) -> Response {
    let app = req
        .extensions()
        .get::<Shared>()
        .cloned()
        .expect("the router adds the app");
    let open = rule == Rule::Open || (rule == Rule::Metrics && app.gate.open_metrics());
    if !open {
        let params = match req.extract_parts::<RawPathParams>().await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
        let query = req.uri().query().unwrap_or("").to_owned();
        let secret = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer);
        let caller = match app.gate.authenticate(secret) {
            Ok(c) => c,
            Err(d) => return refuse(req, d).await,
        };
        for need in rule.needs(&params, &query) {
            if let Err(d) = caller.check(&need) {
                return refuse(req, d).await;
            }
        }
        req.extensions_mut().insert(caller);
    } else {
        req.extensions_mut().insert(app.gate.anyone());
    }
    next.run(req).await
}

/// Request body bytes read before a refusal is answered.
const REFUSED_BODY: usize = 1 << 20;

/// Answers a refusal once the request's body is read (up to
/// [`REFUSED_BODY`]): an answer that leaves an HTTP/2 request body unread
/// resets its stream, which a client still sending it (curl) reports as a
/// transport error instead of the refusal.
async fn refuse(req: Request, d: Denied) -> Response {
    let _ = axum::body::to_bytes(req.into_body(), REFUSED_BODY).await;
    refused(d)
}

fn refused(d: Denied) -> Response {
    let unauthorized = |m: &str| {
        let mut r = ApiError::new(StatusCode::UNAUTHORIZED, m).into_response();
        r.headers_mut().insert(
            axum::http::header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
        r
    };
    match d {
        Denied::Missing => unauthorized("a token is required: send Authorization: Bearer TOKEN"),
        Denied::Unknown => unauthorized(UNKNOWN),
        Denied::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, m).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("abc"), None);
    }

    #[test]
    fn the_first_token_closes_the_door_and_revoking_ends_it() {
        let failures = Counter::default();
        let gate = Gate::open(
            Tokens::new(Arc::new(hydra_volume::MemVolume::new())),
            true,
            false,
            false,
            failures.clone(),
        )
        .unwrap();
        let anyone = gate.authenticate(None).unwrap();
        assert!(matches!(anyone, Caller::Anyone(_)));
        let (_, secret) = gate.create("w", &["write:orders-".into()]).unwrap();
        gate.create("other", &["admin".into()]).unwrap();
        assert_eq!(gate.authenticate(None).err(), Some(Denied::Missing));
        assert_eq!(
            gate.authenticate(Some("hydra_nope")).err(),
            Some(Denied::Unknown)
        );
        let caller = gate
            .admit(Some(&secret), &Need::Write("orders-1".into()))
            .unwrap();
        assert_eq!(
            gate.admit(Some(&secret), &Need::Read("orders-1".into()))
                .err()
                .unwrap(),
            Denied::Forbidden("token w lacks scope read:orders-1".into())
        );
        assert_eq!(failures.get(), 3);
        // A check a handler makes on its own (RESP, gRPC AppendMulti)
        // counts too.
        assert!(caller.check(&Need::Admin).is_err());
        assert_eq!(failures.get(), 4);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), anyone.revoked())
                .await
                .expect("the first token ends what anyone opened")
        });
        gate.revoke("w").unwrap();
        rt.block_on(async {
            tokio::time::timeout(std::time::Duration::from_secs(5), caller.revoked())
                .await
                .expect("revocation reaches what the token opened")
        });
        assert_eq!(
            gate.authenticate(Some(&secret)).err(),
            Some(Denied::Unknown)
        );
        gate.revoke("other").unwrap();
        assert!(
            matches!(gate.authenticate(None), Ok(Caller::Anyone(_))),
            "no token left: open again on loopback"
        );
    }

    #[test]
    fn beyond_loopback_the_door_stays_closed_without_tokens() {
        let gate = Gate::open(
            Tokens::new(Arc::new(hydra_volume::MemVolume::new())),
            true,
            true,
            false,
            Counter::default(),
        )
        .unwrap();
        assert_eq!(gate.authenticate(None).err(), Some(Denied::Missing));
        assert_eq!(
            gate.authenticate(Some("hydra_x")).err(),
            Some(Denied::Unknown)
        );
    }
}
