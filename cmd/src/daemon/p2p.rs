//! The daemon's libp2p node: which streams and buckets it follows, which
//! buckets it serves, and the routes that show it (`GET /peers`,
//! `POST /peers`, `GET /replication`).

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hydra_bucket::{Bucket, Key, Store};
use serde::Deserialize;
use serde_json::json;

use super::app::{App, Shared};
use super::config::Config;
use super::error::{ApiError, ApiResult};

/// Replication state shared with the handlers.
pub struct P2p {
    /// Each followed writer (`p2p.follow`) with its report, in config order.
    pub follows: Vec<(hydra_net::Follow, hydra_net::FollowStatus)>,
    /// Each replica bucket, the store that holds it, and its report.
    pub buckets: Vec<(hydra_net::BucketFollow, Store, hydra_net::BucketStatus)>,
    /// Set once the node runs (never, when p2p is off).
    pub node: OnceLock<hydra_net::Node>,
}

impl P2p {
    pub fn new(config: &Config, stores: &[(String, Store)]) -> Result<P2p> {
        let mut buckets = Vec::new();
        for b in &config.buckets {
            if let Some(r) = &b.replicate {
                let follow = r.to_follow(&b.id)?;
                // Every writer must have a peer id, to be named in errors.
                for w in &follow.writers {
                    hydra_volume::peer_id_of(w)?;
                }
                let status = follow.status();
                buckets.push((follow, store_of(config, stores, b).clone(), status));
            }
        }
        let follows = config
            .p2p
            .follow
            .iter()
            .map(|f| {
                let follow = f.to_follow()?;
                let status = follow.status();
                Ok((follow, status))
            })
            .collect::<Result<_>>()?;
        Ok(P2p {
            follows,
            buckets,
            node: OnceLock::new(),
        })
    }

    /// Refuses local writes to a replica bucket: its objects are its
    /// writer's, and the next manifest would undo them.
    pub fn refuse_writes(&self, bucket: &str) -> ApiResult<()> {
        match self
            .buckets
            .iter()
            .find(|(f, ..)| f.bucket.as_str() == bucket)
        {
            Some((follow, ..)) => {
                let writers: Vec<String> = follow
                    .writers
                    .iter()
                    .filter_map(|w| hydra_volume::peer_id_of(w).ok())
                    .map(|p| p.to_string())
                    .collect();
                Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!(
                        "bucket {bucket} is a replica of writer {}: write to the writer",
                        writers.join(", ")
                    ),
                ))
            }
            None => Ok(()),
        }
    }

    fn node(&self) -> ApiResult<&hydra_net::Node> {
        self.node.get().ok_or_else(|| {
            ApiError::new(
                StatusCode::CONFLICT,
                "p2p is off: start the daemon with --p2p MULTIADDR (or p2p.listen)",
            )
        })
    }
}

/// Starts the libp2p node when the config serves, follows or dials
/// anything, and a loop per followed writer and replica bucket.
pub async fn start(config: &Config, app: &Shared) -> Result<()> {
    let p2p = &config.p2p;
    if p2p.listen.is_empty()
        && p2p.follow.is_empty()
        && p2p.peers.is_empty()
        && app.p2p.buckets.is_empty()
        && !p2p.mdns
    {
        return Ok(());
    }
    let listen = p2p
        .listen
        .iter()
        .map(|a| a.parse())
        .collect::<Result<Vec<_>, _>>()
        .context("p2p.listen")?;
    let node =
        hydra_net::Node::start_with(app.log.clone(), serving(config, app)?, listen, p2p.mdns)
            .await
            .context("p2p: starting the node")?;
    for addr in node.listening() {
        println!("p2p listening on {addr}");
    }
    for a in &p2p.peers {
        let (node, addr) = (node.clone(), a.parse()?);
        tokio::spawn(async move {
            if let Err(e) = node.connect(addr).await {
                tracing::warn!("p2p.peers: {e}");
            }
        });
    }
    for (follow, status) in &app.p2p.follows {
        let follow = follow.clone();
        tracing::info!(prefix = %follow.prefix, peers = follow.from.len(), "following streams");
        tokio::spawn(follow.run(node.clone(), app.log.clone(), status.clone()));
    }
    for (follow, store, status) in &app.p2p.buckets {
        let (follow, store) = (follow.clone(), store.clone());
        let key = app.keys.get(follow.bucket.as_str()).cloned();
        tracing::info!(bucket = %follow.bucket, blind = key.is_none(), "replicating bucket");
        tokio::spawn(follow.run(node.clone(), store, key, status.clone()));
    }
    let _ = app.p2p.node.set(node);
    Ok(())
}

fn store_of<'a>(
    config: &Config,
    stores: &'a [(String, Store)],
    b: &super::config::BucketConfig,
) -> &'a Store {
    let volume = b
        .volume
        .clone()
        .unwrap_or_else(|| config.volumes[0].id.clone());
    &stores
        .iter()
        .find(|(id, _)| *id == volume)
        .expect("validated")
        .1
}

/// What the node serves: streams to `p2p.allow` (or every peer), and the
/// buckets marked `serve` (to the same peers) or `public` (to anyone); no
/// other bucket is visible to peers.
fn serving(config: &Config, app: &App) -> Result<hydra_net::Serving> {
    let served: HashMap<String, (Store, Option<Key>, bool)> = config
        .buckets
        .iter()
        .filter(|b| b.serve || b.public)
        .map(|b| {
            let store = store_of(config, &app.stores, b).clone();
            (
                b.id.clone(),
                (store, app.keys.get(&b.id).cloned(), b.public),
            )
        })
        .collect();
    Ok(hydra_net::Serving {
        allow: config
            .p2p
            .allow
            .iter()
            .map(|p| p.parse())
            .collect::<Result<_, _>>()
            .context("p2p.allow")?,
        buckets: Box::new(move |name| {
            let (store, key, public) = served.get(name)?;
            let bucket: Bucket = store.bucket(&name.parse().ok()?, key.as_ref()).ok()?;
            Some((bucket, *public))
        }),
    })
}

/// `GET /replication`: each follow loop and replica bucket, and counters.
pub async fn replication(State(app): State<Shared>) -> impl IntoResponse {
    let follows: Vec<hydra_net::FollowReport> =
        app.p2p.follows.iter().map(|(_, s)| report(s)).collect();
    let buckets: Vec<hydra_net::BucketReport> =
        app.p2p.buckets.iter().map(|(.., s)| report(s)).collect();
    let stats = app.p2p.node.get().map(|n| n.stats().snapshot());
    Json(json!({
        "peer_id": app.log.identity().peer_id().to_string(),
        "follows": follows,
        "buckets": buckets,
        "stats": stats.unwrap_or_default(),
    }))
}

fn report<T: Clone>(s: &hydra_net::Status<T>) -> T {
    peek(s, T::clone)
}

/// Reads a report under its lock.
fn peek<T, R>(s: &hydra_net::Status<T>, f: impl FnOnce(&T) -> R) -> R {
    f(&s.lock().unwrap_or_else(|e| e.into_inner()))
}

/// `GET /replication/lag`: how far each loop is behind its best peer now,
/// asked of the peers (without waiting); `caught_up` when nothing is.
pub async fn lag(State(app): State<Shared>) -> ApiResult<Response> {
    let node = app.p2p.node()?;
    let follows =
        futures_util::future::join_all(app.p2p.follows.iter().map(|(f, _)| f.lag(node, &app.log)));
    let buckets = futures_util::future::join_all(
        app.p2p
            .buckets
            .iter()
            .map(|(b, store, _)| b.lag(node, store)),
    );
    let (follows, buckets) = tokio::join!(follows, buckets);
    let mut caught_up = true;
    let mut show = |r: Result<u64, hydra_net::NodeError>| match r {
        Ok(n) => {
            caught_up &= n == 0;
            json!({ "behind": n })
        }
        Err(e) => {
            caught_up = false;
            json!({ "error": e.to_string() })
        }
    };
    let follows: Vec<_> = follows.into_iter().map(&mut show).collect();
    let buckets: Vec<_> = buckets.into_iter().map(&mut show).collect();
    Ok(
        Json(json!({ "caught_up": caught_up, "follows": follows, "buckets": buckets }))
            .into_response(),
    )
}

/// `GET /peers`: this node and the peers connected now.
pub async fn peers(State(app): State<Shared>) -> ApiResult<Response> {
    let (listening, peers) = match app.p2p.node.get() {
        Some(n) => (
            n.listening().iter().map(|a| a.to_string()).collect(),
            n.peers()
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Json(json!({
        "peer_id": app.log.identity().peer_id().to_string(),
        "p2p": app.p2p.node.get().is_some(),
        "listening": listening,
        "peers": peers,
    }))
    .into_response())
}

#[derive(Deserialize)]
pub struct ConnectBody {
    addr: String,
}

/// `POST /peers`: dial a peer.
pub async fn connect(
    State(app): State<Shared>,
    Json(body): Json<ConnectBody>,
) -> ApiResult<Response> {
    let node = app.p2p.node()?;
    let addr = body
        .addr
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{:?} is not a multiaddr: {e}", body.addr)))?;
    let peer = node
        .connect(addr)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(Json(json!({"peer_id": peer.to_string()})).into_response())
}

/// Sets the replication metrics from the node's counters and the loops.
pub fn update_metrics(app: &App) {
    let m = &app.metrics;
    if let Some(n) = app.p2p.node.get() {
        m.set_p2p(&n.stats().snapshot());
    }
    let buckets = &app.p2p.buckets;
    let behind: u64 = buckets
        .iter()
        .map(|(.., s)| peek(s, |r| r.blocks_behind))
        .sum();
    let failing = app
        .p2p
        .follows
        .iter()
        .filter(|(_, s)| peek(s, |r| r.rounds.last_error.is_some()))
        .count()
        + buckets
            .iter()
            .filter(|(.., s)| peek(s, |r| r.rounds.last_error.is_some()))
            .count();
    m.replication_blocks_behind.set(behind as i64);
    m.replication_failing.set(failing as i64);
}
