//! `hydra daemon`: the event log and the stores behind an HTTP API.
//!
//! HTTP handlers are thin translations into event-log and bucket calls;
//! storage work runs on blocking threads; errors map to statuses in one
//! place (`error.rs`).

mod admin;
mod api;
mod app;
mod auth;
mod blobs;
pub mod config;
mod error;
mod extract;
pub(crate) mod grpc;
mod lanes;
mod live;
mod metrics;
mod p2p;
mod resp;
mod streams;
mod subscriptions;
mod tls;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::Json;
use axum::extract::{DefaultBodyLimit, State};
use axum::response::IntoResponse;
use hydra_bucket::{BucketName, CreateOptions, Key, Store};
use hydra_eventlog::{DurabilityMode, EventLog, Options};
use hydra_volume::{Durability, OpenOptions, open_dir};
use utoipa_axum::routes;

use self::api::Api;
use self::app::{App, Shared};
use self::auth::{Of, Rule};
use self::config::Config;
use crate::context::Ctx;

/// The file in the event log's data directory that tells CLI users where
/// the daemon that holds it listens.
pub const ADDRESS_FILE: &str = "DAEMON";

/// `hydra daemon` flags; each also reads a `HYDRA_*` variable.
#[derive(Debug, clap::Args)]
pub struct DaemonArgs {
    /// YAML config file (see examples/hydra.yaml). Without one, and for
    /// whatever it leaves out: a redb volume in --data, HTTP on
    /// 127.0.0.1:8080, durability sync.
    #[arg(long, short, env = "HYDRA_CONFIG")]
    pub config: Option<PathBuf>,
    /// Data directory of the default volume (as `hydra --data DIR
    /// daemon`; a config that lists volumes names their paths itself).
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Write the effective config (flags and environment merged over the
    /// file) back to --config.
    #[arg(long, requires = "config")]
    pub write_config: bool,
    /// HTTP listen address (port 0 picks a free one).
    #[arg(long, env = "HYDRA_HTTP")]
    pub http: Option<String>,
    /// Durability of the event log: sync, async or none.
    #[arg(long, env = "HYDRA_DURABILITY")]
    pub durability: Option<String>,
    /// gRPC listen address, e.g. 127.0.0.1:50051.
    #[arg(long, env = "HYDRA_GRPC")]
    pub grpc: Option<String>,
    /// RESP3 (Redis protocol) listen address, e.g. 127.0.0.1:9090.
    #[arg(long, env = "HYDRA_RESP")]
    pub resp: Option<String>,
    /// Log level: trace, debug, info, warn, error.
    #[arg(long, env = "HYDRA_LOG")]
    pub log_level: Option<String>,
    /// Listen for peers on a libp2p multiaddr, e.g. /ip4/0.0.0.0/tcp/4001
    /// (repeatable), to serve the buckets marked served.
    #[arg(long = "p2p", value_name = "MULTIADDR")]
    pub p2p: Vec<String>,
    /// Serve a bucket, its objects and its streams, to peers (repeatable;
    /// `buckets[].serve`).
    #[arg(long, value_name = "BUCKET")]
    pub serve: Vec<String>,
    /// Make a bucket a replica of a writer's bucket of that name, its
    /// objects and its streams, fetched from the peers named and verified
    /// against the writer's key (peer id or 64 hex digits):
    /// BUCKET=WRITER@MULTIADDR[,MULTIADDR...] (repeatable;
    /// `buckets[].replicate`).
    #[arg(long, value_name = "BUCKET=WRITER@MULTIADDR")]
    pub replicate: Vec<String>,
    /// Gone: see --replicate.
    #[arg(long, hide = true)]
    pub follow: Vec<String>,
}

/// The header carrying a snapshot's metadata (base64) over HTTP.
pub const SNAPSHOT_METADATA: &str = "snapshot-metadata";

/// The effective configuration: the file (or the defaults), then flags.
pub fn effective_config(ctx: &Ctx, args: &DaemonArgs) -> Result<Config> {
    let data = args.data.clone().unwrap_or_else(|| ctx.data.clone());
    let mut c = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::embedded(data.clone()),
    };
    let default_volume = args.config.is_none() || c.volumes.is_empty();
    if c.volumes.is_empty() {
        // What the file leaves out, the defaults fill, as with no file.
        c.volumes = Config::embedded(data).volumes;
    } else if args.config.is_some() && args.data.is_some() {
        bail!(
            "--data names the default volume's directory, and the config lists its volumes: set their paths there"
        );
    }
    if default_volume && let Some(b) = ctx.backend {
        c.volumes[0].backend = b.to_string();
    }
    if let Some(h) = &args.http {
        c.api.http = Some(h.clone());
    }
    if let Some(g) = &args.grpc {
        c.api.grpc = Some(g.clone());
    }
    if let Some(r) = &args.resp {
        c.api.resp = Some(r.clone());
    }
    if let Some(d) = &args.durability {
        let id = c.eventlog_volume_id();
        if let Some(v) = c.volumes.iter_mut().find(|v| v.id == id) {
            v.durability = d.clone();
        }
    }
    if let Some(l) = &args.log_level {
        c.log.level = l.clone();
    }
    c.p2p.listen.extend(args.p2p.iter().cloned());
    if !args.follow.is_empty() {
        bail!(
            "--follow: streams replicate with their bucket now: --replicate BUCKET=WRITER@MULTIADDR (streams appended without --bucket are in bucket `default`; the writer serves it with --serve default)"
        );
    }
    for b in &args.serve {
        c.bucket_entry(b).serve = true;
    }
    for r in &args.replicate {
        let (bucket, replicate) = config::ReplicateConfig::from_flag(r)?;
        c.bucket_entry(&bucket).replicate = Some(replicate);
    }
    c.validate()?;
    Ok(c)
}

pub fn run(ctx: &Ctx, args: DaemonArgs) -> Result<std::process::ExitCode> {
    let config = effective_config(ctx, &args)?;
    if args.write_config {
        let path = args.config.as_ref().expect("clap requires --config");
        std::fs::write(path, config.to_yaml()?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    init_logging(&config.log.level);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .max_blocking_threads(1024)
        .build()
        .context("starting the async runtime")?;
    let subscribers = lanes::subscriber_runtime().context("starting the subscribers' runtime")?;
    let served = runtime.block_on(serve(config, subscribers.handle().clone()));
    // Followers' heads requests wait on blocking threads (they end within
    // a slice once the p2p node stops); the log is closed by now, so
    // nothing they do matters any more.
    runtime.shutdown_timeout(Duration::from_secs(1));
    subscribers.shutdown_timeout(Duration::from_secs(1));
    served?;
    Ok(std::process::ExitCode::SUCCESS)
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("hydra={level},{level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}

/// Opens every volume and bucket, refusing to start half-configured.
fn open(config: &Config) -> Result<App> {
    let mut stores = Vec::new();
    for v in &config.volumes {
        let mode: DurabilityMode = v.durability.parse().map_err(anyhow::Error::msg)?;
        let volume = open_dir(
            &v.path,
            OpenOptions {
                backend: Some(v.backend.parse().map_err(anyhow::Error::msg)?),
                durability: match mode {
                    DurabilityMode::Sync => Durability::Immediate,
                    _ => Durability::Eventual,
                },
                cache_bytes: v.cache_mb.map(|mb| mb << 20),
            },
        )
        .map_err(|e| match e {
            hydra_volume::VolumeError::Locked { path } => anyhow::anyhow!(
                "volume {}: data directory {} is in use by another process (another hydra daemon?)",
                v.id,
                path.display()
            ),
            e => anyhow::anyhow!("volume {}: {e}", v.id),
        })?;
        hydra_volume::publish_public_key(&v.path, &*volume)?;
        stores.push((v.id.clone(), Store::open(volume)?));
    }
    let mut keys = std::collections::HashMap::new();
    for b in &config.buckets {
        let name: BucketName = b.id.parse()?;
        let volume = b
            .volume
            .clone()
            .unwrap_or_else(|| config.volumes[0].id.clone());
        let store = &stores
            .iter()
            .find(|(id, _)| *id == volume)
            .expect("validated")
            .1;
        let key = match &b.key_file {
            Some(path) if b.encrypt && !path.exists() => {
                let k = Key::generate()?;
                k.write_new_file(path)?;
                tracing::warn!(bucket = %name, file = %path.display(), "wrote a new bucket key; keep it safe");
                Some(k)
            }
            Some(path) => Some(Key::from_file(path).with_context(|| format!("bucket {name}"))?),
            None => None,
        };
        // A replica is created by its first manifest, with the writer's
        // transforms.
        if b.replicate.is_none() && store.bucket_config(&name).is_err() {
            store
                .create_bucket(
                    &name,
                    CreateOptions {
                        zstd_level: b
                            .compress
                            .as_deref()
                            .map(crate::cli::parse_compress)
                            .transpose()
                            .map_err(anyhow::Error::msg)?,
                        key: key.as_ref().filter(|_| b.encrypt),
                    },
                )
                .with_context(|| format!("creating bucket {name}"))?;
        }
        // Fail now, not at the first request, on a wrong key.
        if store.bucket_config(&name).is_ok() {
            store
                .bucket(&name, key.as_ref())
                .with_context(|| format!("bucket {name}"))?;
        }
        if let Some(k) = key {
            keys.insert(b.id.clone(), k);
        }
    }
    let ev = config.eventlog_volume();
    let position = stores
        .iter()
        .position(|(id, _)| *id == ev.id)
        .expect("validated");
    stores.swap(0, position);
    let placements = config
        .eventlog
        .streams
        .iter()
        .map(|p| {
            Ok(hydra_eventlog::Placement {
                prefix: p.prefix.clone(),
                bucket: p.bucket.parse()?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let log = EventLog::open(
        stores[0].1.clone(),
        Options {
            durability: ev.durability.parse().map_err(anyhow::Error::msg)?,
            placements,
        },
    )
    .context("opening the event log")?;
    // Streams in encrypted buckets of the log's volume need their keys
    // (those of a bucket a replicated stream brings later, too).
    for (id, key) in &keys {
        let name: BucketName = id.parse()?;
        log.give_key(&name, key)
            .with_context(|| format!("bucket {name}"))?;
    }
    let p2p = p2p::P2p::new(config, &stores)?;
    let metrics = metrics::Metrics::new();
    let gate = gate(config, &log, &metrics)?;
    Ok(App {
        live: live::Live::new(&log),
        log,
        stores,
        keys,
        metrics,
        gate,
        shutting_down: Default::default(),
        timeout: Duration::from_secs(config.limits.request_timeout_secs),
        p2p,
    })
}

/// The token gate, refusing to start an API beyond loopback that nobody
/// could be refused on.
fn gate(config: &Config, log: &EventLog, metrics: &metrics::Metrics) -> Result<auth::Gate> {
    let enabled = config.api.auth == config::AuthMode::Tokens;
    let public = config.api.public_address();
    let gate = auth::Gate::open(
        crate::access::Tokens::new(log.store().volume().clone()),
        enabled,
        public.is_some(),
        config.api.metrics == config::MetricsAccess::Open,
        metrics.auth_failures.clone(),
    )
    .context("reading the API tokens")?;
    match public {
        Some((name, addr)) if enabled && gate.list().is_empty() => anyhow::bail!(
            "{name} listens on {addr}, beyond loopback, and no API token exists: create one first (hydra --data {} token create NAME --scope admin), or set api.auth: none (unsafe)",
            config.eventlog_volume().path.display()
        ),
        _ if !enabled => tracing::warn!(
            "api.auth is none: every API serves anyone who reaches it, tokens or not"
        ),
        _ => {}
    }
    Ok(gate)
}

/// Every route: its handler documents it (`#[utoipa::path]`), the table
/// says who may call it.
fn routes() -> Api {
    Api::new()
        .add(Rule::Open, routes!(health))
        .add(Rule::Metrics, routes!(metrics_text))
        .add(Rule::Open, routes!(openapi))
        .add(Rule::Read(Of::Prefix), routes!(streams::list))
        .add(Rule::Write(Of::Id), routes!(streams::append))
        .add(Rule::Read(Of::Id), routes!(streams::read))
        .add(Rule::Delete(Of::Id), routes!(streams::delete))
        .add(Rule::Read(Of::Id), routes!(streams::version))
        .add(Rule::Read(Of::Id), routes!(streams::get_metadata))
        .add(Rule::Delete(Of::Id), routes!(streams::set_metadata))
        .add(Rule::Read(Of::Id), routes!(streams::head))
        .add(Rule::Read(Of::Id), routes!(streams::proof))
        .add(Rule::Read(Of::Id), routes!(streams::consistency))
        .add(Rule::Read(Of::Id), routes!(streams::load_snapshot))
        .add(Rule::Read(Of::Id), routes!(streams::list_snapshots))
        .add(Rule::Delete(Of::Id), routes!(streams::delete_snapshots))
        .add(Rule::Write(Of::Id), routes!(streams::save_snapshot))
        .add(Rule::Delete(Of::Id), routes!(streams::delete_snapshot))
        .add(Rule::Read(Of::Prefix), routes!(streams::read_all))
        .add(Rule::Read(Of::All), routes!(streams::get_event))
        .add(Rule::Read(Of::Id), routes!(subscriptions::stream))
        .add(Rule::Read(Of::Prefix), routes!(subscriptions::all))
        .add(Rule::Read(Of::All), routes!(subscriptions::list))
        .add(Rule::Read(Of::All), routes!(subscriptions::create))
        .add(Rule::Read(Of::All), routes!(subscriptions::show))
        .add(Rule::Read(Of::All), routes!(subscriptions::delete))
        .add(Rule::Read(Of::All), routes!(subscriptions::read))
        .add(Rule::Read(Of::All), routes!(subscriptions::ack))
        .add(Rule::BucketRead(Of::All), routes!(blobs::list))
        .add(Rule::BucketRead(Of::Bucket), routes!(blobs::show))
        .add(Rule::Admin, routes!(admin::create_bucket))
        .add(Rule::Admin, routes!(admin::update_bucket))
        .add(Rule::Admin, routes!(admin::delete_bucket))
        .add(Rule::Admin, routes!(admin::volume))
        .add(Rule::Admin, routes!(admin::verify))
        .add(Rule::Admin, routes!(admin::gc))
        .add(Rule::Admin, routes!(admin::scavenge))
        .add(Rule::Admin, routes!(admin::reindex))
        .add(Rule::Admin, routes!(p2p::replication))
        .add(Rule::Admin, routes!(p2p::lag))
        .add(Rule::Admin, routes!(p2p::peers))
        .add(Rule::Admin, routes!(p2p::connect))
        .add(Rule::Export, routes!(admin::export))
        .add(Rule::Admin, unlimited(routes!(admin::import)))
        .add(Rule::Admin, routes!(admin::list_tokens))
        .add(Rule::Admin, routes!(admin::create_token))
        .add(Rule::Admin, routes!(admin::revoke_token))
        .add(Rule::BucketWrite(Of::Bucket), routes!(blobs::put_block))
        .add(Rule::BucketRead(Of::Bucket), routes!(blobs::list_blocks))
        .add(Rule::BucketRead(Of::Bucket), routes!(blobs::get_block))
        .add(Rule::BucketWrite(Of::Bucket), routes!(blobs::delete_block))
        .add(Rule::BucketRead(Of::Bucket), routes!(blobs::list_objects))
        .add(
            Rule::BucketWrite(Of::Bucket),
            unlimited(routes!(blobs::put_object)),
        )
        .add(Rule::BucketRead(Of::Bucket), routes!(blobs::get_object))
        .add(Rule::BucketWrite(Of::Bucket), routes!(blobs::delete_object))
}

/// A route whose body may be any size (it is streamed, not held).
fn unlimited(
    (schemas, paths, handler): utoipa_axum::router::UtoipaMethodRouter<Shared>,
) -> utoipa_axum::router::UtoipaMethodRouter<Shared> {
    (schemas, paths, handler.layer(DefaultBodyLimit::disable()))
}

/// The router and its OpenAPI document.
pub fn router(app: Shared, body_limit: usize) -> (axum::Router, serde_json::Value) {
    let api = routes();
    let doc = api.document();
    let router = api
        .router
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(app.clone()))
        .layer(axum::Extension(Arc::new(doc.clone())))
        .with_state(app);
    (router, doc)
}

/// Who this daemon is.
#[derive(serde::Serialize, utoipa::ToSchema)]
struct Health {
    /// Always `ok`: the daemon answers.
    status: String,
    version: String,
    /// Its libp2p peer id, from the key that signs its heads.
    peer_id: String,
    /// That key, hex.
    public_key: String,
    /// The position the next event appended here takes.
    next_position: u64,
}

/// Liveness and identity.
#[utoipa::path(get, path = "/health",
    responses((status = 200, description = "Up", body = Health)))]
async fn health(State(app): State<Shared>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        peer_id: app.log.identity().peer_id().to_string(),
        public_key: hydra_volume::hex::encode(&app.log.identity().public_key()),
        next_position: app.log.next_position(),
    })
}

/// Prometheus metrics (OpenMetrics text).
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "The metrics", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
async fn metrics_text(State(app): State<Shared>) -> impl IntoResponse {
    app.metrics.commits.set(app.log.commits() as i64);
    p2p::update_metrics(&app);
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.render(),
    )
}

/// This document: OpenAPI 3.1, generated from the handlers.
#[utoipa::path(get, path = "/openapi.json",
    responses((status = 200, description = "The document", body = Object)))]
async fn openapi(
    axum::Extension(doc): axum::Extension<Arc<serde_json::Value>>,
) -> impl IntoResponse {
    Json((*doc).clone())
}

/// Connections the kernel queues for a listener before the daemon accepts
/// them (it caps this at `net.core.somaxconn`). tokio's default, 128,
/// made a burst of thousands of subscribers connecting at once lose SYNs
/// and wait a second or more to retry.
const BACKLOG: u32 = 8192;

/// A listener on `addr` (`host:port`, the first address it resolves to)
/// with the daemon's [`BACKLOG`].
async fn listen(addr: &str) -> std::io::Result<tokio::net::TcpListener> {
    let at = tokio::net::lookup_host(addr).await?.next().ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "resolves to no address")
    })?;
    let socket = if at.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(at)?;
    socket.listen(BACKLOG)
}

async fn serve(config: Config, subscribers: tokio::runtime::Handle) -> Result<()> {
    let app = Arc::new(open(&config)?);
    let tls = config.api.tls.as_ref().map(tls::load).transpose()?;
    let acceptor = |alpn| tls.as_ref().map(|t| tls::acceptor(t, alpn));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = config.api.http.clone().expect("validated: http is set");
    let listener = listen(&addr)
        .await
        .with_context(|| format!("api.http: cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let data_dir = config.eventlog_volume().path.clone();
    let address_file = data_dir.join(ADDRESS_FILE);
    let _ = std::fs::write(&address_file, format!("{scheme}://{local}\n"));
    let (router, _) = router(app.clone(), config.limits.body_bytes);
    let lanes = lanes::Lanes::new(subscribers, app.metrics.subscriber_lane.clone());
    if let Some(addr) = &config.api.grpc {
        let listener = listen(addr)
            .await
            .with_context(|| format!("api.grpc: cannot listen on {addr}"))?;
        println!("grpc listening on {}", listener.local_addr()?);
        let (a, tls, lanes) = (app.clone(), acceptor(tls::Alpn::Grpc), lanes.clone());
        tokio::spawn(async move {
            if let Err(e) = grpc::serve(a, listener, tls, lanes).await {
                tracing::error!("grpc server: {e}");
            }
        });
    }
    if let Some(addr) = &config.api.resp {
        let listener = listen(addr)
            .await
            .with_context(|| format!("api.resp: cannot listen on {addr}"))?;
        println!("resp listening on {}", listener.local_addr()?);
        tokio::spawn(resp::serve(
            app.clone(),
            listener,
            acceptor(tls::Alpn::None),
            lanes.clone(),
        ));
    }
    p2p::start(&config, &app).await?;
    tokio::spawn(live::tail(app.clone()));
    let files = crate::raise_open_files();
    tracing::info!(
        open_files = files,
        "each connection and subscriber holds one file: about {} at once",
        files.saturating_sub(64)
    );
    tracing::info!(%local, peer_id = %app.log.identity().peer_id(), "hydra daemon started");
    println!("listening on {scheme}://{local}");
    let a = app.clone();
    let shutdown = async move {
        shutdown_signal().await;
        tracing::info!("shutting down: finishing requests in flight");
        // Ends live subscriptions, so their connections can close.
        a.shutting_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        a.live.close();
    };
    // Subscriptions move to their own lane (see lanes.rs).
    match acceptor(tls::Alpn::Http) {
        None => lanes::serve(listener, router, lanes::Http::Any, lanes, shutdown).await,
        Some(acceptor) => {
            let tls = tls::Listener {
                incoming: tls::incoming(listener, acceptor),
                local,
            };
            lanes::serve(tls, router, lanes::Http::Any, lanes, shutdown).await
        }
    }
    let log = app.log.clone();
    tokio::task::spawn_blocking(move || log.close()).await??;
    let _ = std::fs::remove_file(&address_file);
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
