//! The daemon's libp2p node: which streams and buckets it follows, which
//! buckets it serves, and the routes that show it (`GET /peers`,
//! `POST /peers`, `GET /replication`).

use std::collections::HashMap;
use std::sync::OnceLock;

use anyhow::{Context, Result};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use hydra_bucket::{Bucket, Key, Store};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::app::{App, Shared};
use super::config::Config;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::JsonBody;

/// Replication state shared with the handlers.
pub struct P2p {
    /// Each replica bucket (`buckets[].replicate`), the store that holds
    /// it, and the reports of its objects loop and its streams loop.
    pub buckets: Vec<Replica>,
    /// Set once the node runs (never, when p2p is off).
    pub node: OnceLock<hydra_net::Node>,
}

/// A replica bucket: what it follows, where it is stored, and how its
/// two loops are doing.
pub struct Replica {
    pub follow: hydra_net::BucketFollow,
    pub store: Store,
    pub objects: hydra_net::BucketStatus,
    pub streams: hydra_net::FollowStatus,
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
                buckets.push(Replica {
                    objects: follow.status(),
                    streams: follow.streams_status(),
                    store: store_of(config, stores, b).clone(),
                    follow,
                });
            }
        }
        Ok(P2p {
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
            .find(|r| r.follow.bucket.as_str() == bucket)
        {
            Some(Replica { follow, .. }) => {
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

/// Starts the libp2p node when the config serves, replicates or dials
/// anything, and two loops per replica bucket: its objects, its streams.
pub async fn start(config: &Config, app: &Shared) -> Result<()> {
    let p2p = &config.p2p;
    if p2p.listen.is_empty() && p2p.peers.is_empty() && app.p2p.buckets.is_empty() && !p2p.mdns {
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
    for r in &app.p2p.buckets {
        let key = app.keys.get(r.follow.bucket.as_str()).cloned();
        tracing::info!(bucket = %r.follow.bucket, peers = r.follow.from.len(), blind = key.is_none(), "replicating bucket");
        let objects = r
            .follow
            .clone()
            .run(node.clone(), r.store.clone(), key, r.objects.clone());
        tokio::spawn(objects);
        let streams =
            r.follow
                .clone()
                .run_streams(node.clone(), app.log.clone(), r.streams.clone());
        tokio::spawn(streams);
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

/// What the node serves: the buckets marked `serve` (to `p2p.allow`, or
/// every peer) or `public` (to anyone), their objects and their streams;
/// no other bucket, and no stream of one, is visible to peers.
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

/// What replication is doing.
#[derive(Serialize, ToSchema)]
pub struct Replication {
    peer_id: String,
    /// Each replica bucket's streams loop.
    follows: Vec<hydra_net::FollowReport>,
    /// Each replica bucket's objects loop.
    buckets: Vec<hydra_net::BucketReport>,
    /// What this node sent and received.
    stats: hydra_net::StatsSnapshot,
}

/// Replica buckets, their streams and objects: peers, progress, what is
/// behind, last success and error; p2p counters.
#[utoipa::path(get, path = "/replication",
    responses((status = 200, description = "Replication now", body = Replication)))]
pub async fn replication(State(app): State<Shared>) -> Json<Replication> {
    let stats = app.p2p.node.get().map(|n| n.stats().snapshot());
    Json(Replication {
        peer_id: app.log.identity().peer_id().to_string(),
        follows: app.p2p.buckets.iter().map(|r| report(&r.streams)).collect(),
        buckets: app.p2p.buckets.iter().map(|r| report(&r.objects)).collect(),
        stats: stats.unwrap_or_default(),
    })
}

fn report<T: Clone>(s: &hydra_net::Status<T>) -> T {
    peek(s, T::clone)
}

/// Reads a report under its lock.
fn peek<T, R>(s: &hydra_net::Status<T>, f: impl FnOnce(&T) -> R) -> R {
    f(&s.lock().unwrap_or_else(|e| e.into_inner()))
}

/// How far replication is behind.
#[derive(Serialize, ToSchema)]
pub struct Lag {
    /// Whether every loop is caught up.
    caught_up: bool,
    /// Each replica bucket's streams loop: events behind.
    follows: Vec<LoopLag>,
    /// Each replica bucket's objects loop: blocks behind.
    buckets: Vec<LoopLag>,
}

/// How far one loop is behind, or why its peers could not tell.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum LoopLag {
    Behind { behind: u64 },
    Failed { error: String },
}

/// How far each replica bucket's streams and objects are behind its best
/// peer now (asked of the peers, without waiting); `caught_up` when
/// nothing is.
#[utoipa::path(get, path = "/replication/lag",
    responses(
        (status = 200, description = "The lag", body = Lag),
        (status = 409, description = "This daemon runs no p2p node", body = ErrorBody),
    ))]
pub async fn lag(State(app): State<Shared>) -> ApiResult<Json<Lag>> {
    let node = app.p2p.node()?;
    let replicas = &app.p2p.buckets;
    let follows = futures_util::future::join_all(
        replicas
            .iter()
            .map(|r| r.follow.streams_lag(node, &app.log)),
    );
    let buckets =
        futures_util::future::join_all(replicas.iter().map(|r| r.follow.lag(node, &r.store)));
    let (follows, buckets) = tokio::join!(follows, buckets);
    let mut caught_up = true;
    let mut show = |r: Result<u64, hydra_net::NodeError>| match r {
        Ok(behind) => {
            caught_up &= behind == 0;
            LoopLag::Behind { behind }
        }
        Err(e) => {
            caught_up = false;
            LoopLag::Failed {
                error: e.to_string(),
            }
        }
    };
    let follows = follows.into_iter().map(&mut show).collect();
    let buckets = buckets.into_iter().map(&mut show).collect();
    Ok(Json(Lag {
        caught_up,
        follows,
        buckets,
    }))
}

/// This node and its peers.
#[derive(Serialize, ToSchema)]
pub struct Peers {
    peer_id: String,
    /// Whether a p2p node runs.
    p2p: bool,
    /// The addresses it listens on.
    listening: Vec<String>,
    /// The peers connected now.
    peers: Vec<hydra_net::PeerInfo>,
}

/// This node's peer id and listen addresses, and the peers connected now
/// (addresses, ping).
#[utoipa::path(get, path = "/peers",
    responses((status = 200, description = "The peers", body = Peers)))]
pub async fn peers(State(app): State<Shared>) -> ApiResult<Json<Peers>> {
    let (listening, peers) = match app.p2p.node.get() {
        Some(n) => (
            n.listening().iter().map(|a| a.to_string()).collect(),
            n.peers()
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ),
        None => (Vec::new(), Vec::new()),
    };
    Ok(Json(Peers {
        peer_id: app.log.identity().peer_id().to_string(),
        p2p: app.p2p.node.get().is_some(),
        listening,
        peers,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectBody {
    /// A multiaddr, `/ip4/.../tcp/.../p2p/PEER_ID`.
    addr: String,
}

/// A peer connected to.
#[derive(Serialize, ToSchema)]
pub struct Connected {
    peer_id: String,
}

/// Connects to a peer.
#[utoipa::path(post, path = "/peers", request_body = ConnectBody,
    responses(
        (status = 200, description = "Connected", body = Connected),
        (status = 400, description = "Not a multiaddr", body = ErrorBody),
        (status = 409, description = "This daemon runs no p2p node", body = ErrorBody),
        (status = 502, description = "The peer could not be reached", body = ErrorBody),
    ))]
pub async fn connect(
    State(app): State<Shared>,
    JsonBody(body): JsonBody<ConnectBody>,
) -> ApiResult<Json<Connected>> {
    let node = app.p2p.node()?;
    let addr = body
        .addr
        .parse()
        .map_err(|e| ApiError::bad_request(format!("{:?} is not a multiaddr: {e}", body.addr)))?;
    let peer = node
        .connect(addr)
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()))?;
    Ok(Json(Connected {
        peer_id: peer.to_string(),
    }))
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
        .map(|r| peek(&r.objects, |r| r.blocks_behind))
        .sum();
    let failing = buckets
        .iter()
        .filter(|r| peek(&r.streams, |r| r.rounds.last_error.is_some()))
        .count()
        + buckets
            .iter()
            .filter(|r| peek(&r.objects, |r| r.rounds.last_error.is_some()))
            .count();
    m.replication_blocks_behind.set(behind as i64);
    m.replication_failing.set(failing as i64);
}
