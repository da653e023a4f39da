//! What every handler shares: the event log, the stores, keys, metrics.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hydra_bucket::{Bucket, BucketName, Key, Store};
use hydra_eventlog::EventLog;

use super::error::{ApiError, ApiResult};
use super::metrics::Metrics;

pub struct App {
    pub log: EventLog,
    /// Stores by volume id, the event log's first.
    pub stores: Vec<(String, Store)>,
    /// Keys of encrypted buckets, by bucket id.
    pub keys: HashMap<String, Key>,
    pub metrics: Metrics,
    pub shutting_down: AtomicBool,
    pub timeout: Duration,
    /// The libp2p node and what replication is doing.
    pub p2p: super::p2p::P2p,
    /// The feed of commits every subscription follows.
    pub live: super::live::Live,
    /// Tokens, and who may do what.
    pub gate: super::auth::Gate,
}

pub type Shared = Arc<App>;

impl App {
    pub fn shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// The bucket of that name, in whichever volume has it.
    pub fn bucket(&self, name: &str) -> ApiResult<Bucket> {
        let name: BucketName = name
            .parse()
            .map_err(|e: hydra_bucket::BucketError| ApiError::bad_request(e.to_string()))?;
        for (_, store) in &self.stores {
            match store.bucket(&name, self.keys.get(name.as_str())) {
                Ok(b) => return Ok(b),
                Err(hydra_bucket::BucketError::NotFound(_)) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ApiError::not_found(format!("bucket {name} does not exist")))
    }
}

impl App {
    /// A bucket to write to: any but a replica, whose contents are its
    /// writer's.
    pub fn writable_bucket(&self, name: &str) -> ApiResult<Bucket> {
        self.p2p.refuse_writes(name)?;
        self.bucket(name)
    }

    /// The store that holds a bucket.
    pub fn store_of(&self, name: &BucketName) -> ApiResult<&Store> {
        for (_, store) in &self.stores {
            if store.bucket_config(name).is_ok() {
                return Ok(store);
            }
        }
        Err(ApiError::not_found(format!("bucket {name} does not exist")))
    }
}

/// Runs a change (an append, a delete, a collection, an import) off the
/// async threads and answers once it is known, however long that takes:
/// the request timeout that turns a slow read into a 503 would report a
/// failure for an append that then commits, and a client that retries it
/// without event ids would write it twice.
pub async fn committing<T: Send + 'static>(
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("request worker failed: {e}")))?
}

/// Runs blocking storage work that changes nothing off the async threads,
/// within the request timeout.
pub async fn blocking<T: Send + 'static>(
    app: &Shared,
    f: impl FnOnce() -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    match tokio::time::timeout(app.timeout, tokio::task::spawn_blocking(f)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(ApiError::internal(format!("request worker failed: {e}"))),
        Err(_) => Err(ApiError::new(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("request timed out after {} s", app.timeout.as_secs()),
        )),
    }
}
