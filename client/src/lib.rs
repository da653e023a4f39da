//! An async client of a `hydra daemon`: the same [`EventStore`] and
//! [`Admin`] as the embedded [`EventLog`](hydra_eventlog::EventLog) and the
//! same [`BlobStore`] as the embedded [`Store`](hydra_bucket::Store), over
//! the daemon's HTTP API, so that code written against the traits runs
//! in-process or against a daemon unchanged. What only a daemon has (its
//! replication, peers and API tokens) is on [`Client`] itself.
//!
//! ```no_run
//! use futures_util::TryStreamExt;
//! use hydra_client::Client;
//! use hydra_eventlog::{EventStore, ExpectedVersion, NewEvent, StreamRead, StreamWrite};
//!
//! # async fn run() -> Result<(), hydra_client::Error> {
//! let hydra = Client::new("http://127.0.0.1:2113")?;
//! let order = "order-1".parse().unwrap();
//! let event = NewEvent::new("Placed", br#"{"total": 42}"#.to_vec());
//! hydra
//!     .write(StreamWrite::new(order, ExpectedVersion::NoStream, vec![event]))
//!     .await?;
//! let events: Vec<_> = hydra
//!     .read(&"order-1".parse().unwrap(), StreamRead::forward())
//!     .try_collect()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! - **Pooled**: one [`Client`] keeps its connections (HTTP/1.1
//!   keep-alive, HTTP/2 over TLS) for every call; clone it freely.
//! - **Idempotent retries**: an append whose events have no ids gets
//!   random ones before the first attempt, so that an attempt whose answer
//!   was lost (a dropped connection, a busy daemon's 503) is retried
//!   without writing twice: the daemon answers a repeated id with the first
//!   result. Other calls are retried when they change nothing.
//! - **Streaming**: reads come as NDJSON and subscriptions as Server-Sent
//!   Events, each a [`Stream`](futures_core::Stream) that holds a few
//!   events at a time, however long; objects and imports go up from a
//!   reader, and objects and exports come down into a writer, a chunk at a
//!   time, whatever their size.
//! - **Exact bytes**: payloads go and come back byte for byte (JSON as
//!   itself, anything else as base64), so a proof over them verifies.
//! - **Errors** carry the daemon's one-line message and an
//!   [`ErrorKind`](hydra_eventlog::ErrorKind), as the embedded log's do.

mod admin;
mod blobs;
mod daemon;
mod error;
mod events;
mod store;

use std::time::Duration;

use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use reqwest::{RequestBuilder, Response};

pub use crate::daemon::{Identity, TokenInfo};
pub use crate::error::Error;
pub use hydra_bucket::BlobStore;
pub use hydra_eventlog::{Admin, EventStore};

/// A client of one daemon. Cheap to clone: clones share the connections.
#[derive(Clone)]
pub struct Client {
    base: String,
    http: reqwest::Client,
    retries: u32,
}

/// How a [`Client`] reaches its daemon.
pub struct Builder {
    base: String,
    token: Option<String>,
    roots: Vec<reqwest::Certificate>,
    retries: u32,
}

impl Builder {
    /// The API token (`hydra token create`) sent with every request.
    pub fn token(mut self, token: impl Into<String>) -> Builder {
        self.token = Some(token.into());
        self
    }

    /// Certificates (PEM) to trust for an `https://` daemon, beside the
    /// system's roots.
    pub fn root_certificates_pem(mut self, pem: &[u8]) -> Result<Builder, Error> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| Error::invalid(format!("not a PEM certificate: {e}")))?;
        self.roots.extend(certs);
        Ok(self)
    }

    /// How many times a call that may be repeated is retried after a lost
    /// answer or a 503 (default 3, 100 ms then doubling).
    pub fn retries(mut self, retries: u32) -> Builder {
        self.retries = retries;
        self
    }

    pub fn build(self) -> Result<Client, Error> {
        let mut http = reqwest::Client::builder();
        if let Some(token) = &self.token {
            let mut value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|_| Error::invalid("the token is not a valid header value"))?;
            value.set_sensitive(true);
            http = http.default_headers(HeaderMap::from_iter([(AUTHORIZATION, value)]));
        }
        for cert in self.roots {
            http = http.add_root_certificate(cert);
        }
        Ok(Client {
            http: http
                .build()
                .map_err(|e| Error::invalid(format!("building the HTTP client: {e}")))?,
            base: self.base,
            retries: self.retries,
        })
    }
}

impl Client {
    /// A client of the daemon at `url` (`http://HOST:PORT`), with no token.
    pub fn new(url: &str) -> Result<Client, Error> {
        Client::builder(url).build()
    }

    pub fn builder(url: &str) -> Builder {
        Builder {
            base: url.trim_end_matches('/').to_owned(),
            token: None,
            roots: Vec::new(),
            retries: 3,
        }
    }

    /// The daemon's URL.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn at(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends a request that changes nothing (or changes it idempotently),
    /// retrying while the daemon cannot be reached or is busy; an error
    /// status becomes the daemon's error.
    async fn send(
        &self,
        request: impl Fn(&reqwest::Client) -> RequestBuilder,
    ) -> Result<Response, Error> {
        let mut attempt = 0;
        loop {
            let answer = request(&self.http).send().await;
            let retry = match &answer {
                Err(e) => !e.is_builder(),
                Ok(r) => r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE,
            };
            if !retry || attempt >= self.retries {
                return match answer {
                    Ok(r) if r.status().is_success() => Ok(r),
                    Ok(r) => Err(Error::of_answer(r).await),
                    Err(e) => Err(Error::transport(&self.base, e)),
                };
            }
            tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            attempt += 1;
        }
    }

    /// Sends once: a change that could apply twice if repeated.
    async fn send_once(&self, request: RequestBuilder) -> Result<Response, Error> {
        match request.send().await {
            Ok(r) if r.status().is_success() => Ok(r),
            Ok(r) => Err(Error::of_answer(r).await),
            Err(e) => Err(Error::transport(&self.base, e)),
        }
    }
}

/// An answer's JSON body; `what` names it in the error when it does not
/// read.
async fn json<T: serde::de::DeserializeOwned>(r: Response, what: &str) -> Result<T, Error> {
    let bytes = r.bytes().await.map_err(|e| Error::garbled(what, e))?;
    serde_json::from_slice(&bytes).map_err(|e| Error::garbled(what, e))
}

/// Percent-encodes one path segment: stream ids and keys may hold anything.
pub fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
