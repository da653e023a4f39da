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
mod grpc;
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
use axum::routing::{delete, get, patch, post, put};
use hydra_bucket::{BucketName, CreateOptions, Key, Store};
use hydra_eventlog::{DurabilityMode, EventLog, Options};
use hydra_volume::{Durability, OpenOptions, open_dir};
use serde_json::json;

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
    let served = runtime.block_on(serve(config));
    // Followers' heads requests wait on blocking threads (they end within
    // a slice once the p2p node stops); the log is closed by now, so
    // nothing they do matters any more.
    runtime.shutdown_timeout(Duration::from_secs(1));
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

/// Every route, documented.
fn routes() -> Api {
    Api::new()
        .add("GET", "/health", "Liveness and identity", Rule::Open, get(health))
        .add("GET", "/metrics", "Prometheus metrics", Rule::Metrics, get(metrics_text))
        .add("GET", "/openapi.json", "This document", Rule::Open, get(openapi))
        .add("GET", "/streams", "List streams (?prefix=)", Rule::Read(Of::Prefix), get(streams::list))
        .add("POST", "/streams/{id}", "Append an event or an array of events (?expected_version= or Expected-Version: any|no_stream|exists|N)", Rule::Write(Of::Id), post(streams::append))
        .add("GET", "/streams/{id}", "Read a stream (?from=&count=&direction=forwards|backwards&length= for time travel); NDJSON with Accept: application/x-ndjson", Rule::Read(Of::Id), get(streams::read))
        .add("DELETE", "/streams/{id}", "Delete a stream (?hard=true for a tombstone)", Rule::Delete(Of::Id), delete(streams::delete))
        .add("GET", "/streams/{id}/version", "Version of the stream's last event", Rule::Read(Of::Id), get(streams::version))
        .add("GET", "/streams/{id}/metadata", "Stream metadata", Rule::Read(Of::Id), get(streams::get_metadata))
        .add("PUT", "/streams/{id}/metadata", "Set stream metadata (max_count, max_age, truncate_before, custom)", Rule::Delete(Of::Id), put(streams::set_metadata))
        .add("GET", "/streams/{id}/head", "The stream's signed head (?length= for an earlier one)", Rule::Read(Of::Id), get(streams::head))
        .add("GET", "/streams/{id}/proof/{version}", "Inclusion proof of an event against the signed head", Rule::Read(Of::Id), get(streams::proof))
        .add("GET", "/streams/{id}/consistency", "Consistency proof from ?from_length= to the current head", Rule::Read(Of::Id), get(streams::consistency))
        .add("GET", "/streams/{id}/snapshot", "Latest snapshot (?at=VERSION); version in Snapshot-Version", Rule::Read(Of::Id), get(streams::load_snapshot))
        .add("GET", "/streams/{id}/snapshots", "List snapshots", Rule::Read(Of::Id), get(streams::list_snapshots))
        .add("DELETE", "/streams/{id}/snapshots", "Delete every snapshot", Rule::Delete(Of::Id), delete(streams::delete_snapshots))
        .add("PUT", "/streams/{id}/snapshots/{version}", "Save a snapshot (the body)", Rule::Write(Of::Id), put(streams::save_snapshot))
        .add("DELETE", "/streams/{id}/snapshots/{version}", "Delete a snapshot", Rule::Delete(Of::Id), delete(streams::delete_snapshot))
        .add("GET", "/all", "Read $all (?from=&count=&direction=&type=&prefix=)", Rule::Read(Of::Prefix), get(streams::read_all))
        .add("GET", "/events/{event_id}", "One event by id", Rule::Read(Of::All), get(streams::get_event))
        .add("GET", "/subscribe/streams/{id}", "Server-Sent Events: catch up (?from=) then live; Last-Event-ID resumes", Rule::Read(Of::Id), get(subscriptions::stream))
        .add("GET", "/subscribe/all", "Server-Sent Events over $all (?from=&type=&prefix=)", Rule::Read(Of::Prefix), get(subscriptions::all))
        .add("GET", "/subscriptions", "List persistent subscriptions", Rule::Read(Of::All), get(subscriptions::list))
        .add("PUT", "/subscriptions/{name}", "Create a persistent subscription", Rule::Read(Of::All), put(subscriptions::create))
        .add("GET", "/subscriptions/{name}", "A persistent subscription", Rule::Read(Of::All), get(subscriptions::show))
        .add("DELETE", "/subscriptions/{name}", "Delete a persistent subscription", Rule::Read(Of::All), delete(subscriptions::delete))
        .add("GET", "/subscriptions/{name}/events", "Read the next events within the window (?max=&timeout_ms=)", Rule::Read(Of::All), get(subscriptions::read))
        .add("POST", "/subscriptions/{name}/ack", "Acknowledge up to a position", Rule::Read(Of::All), post(subscriptions::ack))
        .add("GET", "/buckets", "List buckets", Rule::BucketRead(Of::All), get(blobs::list))
        .add("GET", "/buckets/{b}", "A bucket's config and size", Rule::BucketRead(Of::Bucket), get(blobs::show))
        .add("PUT", "/buckets/{b}", "Create a bucket ({\"zstd_level\": N}); encrypted ones are declared in the config", Rule::Admin, put(admin::create_bucket))
        .add("PATCH", "/buckets/{b}", "Update a bucket's config ({\"version\": N, \"zstd_level\": N})", Rule::Admin, patch(admin::update_bucket))
        .add("DELETE", "/buckets/{b}", "Remove a bucket and its blocks", Rule::Admin, delete(admin::delete_bucket))
        .add("GET", "/volume", "The event log's volume: backend, peer id, blocks, bytes", Rule::Admin, get(admin::volume))
        .add("POST", "/volume/verify", "Re-hash every stored block", Rule::Admin, post(admin::verify))
        .add("POST", "/gc", "Collect garbage (?bucket=)", Rule::Admin, post(admin::gc))
        .add("POST", "/scavenge", "Remove events no read can return", Rule::Admin, post(admin::scavenge))
        .add("POST", "/reindex", "Rebuild the event log's indexes", Rule::Admin, post(admin::reindex))
        .add("GET", "/replication", "Replica buckets, their streams and objects: peers, progress, what is behind, last success and error; p2p counters", Rule::Admin, get(p2p::replication))
        .add("GET", "/replication/lag", "How far each replica bucket's streams and objects are behind its best peer now (asked of the peers); caught_up when nothing is", Rule::Admin, get(p2p::lag))
        .add("GET", "/peers", "This node's peer id and listen addresses, and the peers connected now (addresses, ping)", Rule::Admin, get(p2p::peers))
        .add("POST", "/peers", "Connect to a peer ({\"addr\": MULTIADDR})", Rule::Admin, post(p2p::connect))
        .add("GET", "/export", "Streams (?stream=S, repeatable), a bucket (?bucket=B) or everything (?all=true, a backup) as a CARv1 file", Rule::Export, get(admin::export))
        .add("POST", "/import", "Verify a CARv1 export (streams or a bucket) completely, then apply it (?writer=PEER_ID|HEX to trust only that signer)", Rule::Admin, post(admin::import).layer(DefaultBodyLimit::disable()))
        .add("GET", "/tokens", "API tokens: names, scopes, creation times (never secrets)", Rule::Admin, get(admin::list_tokens))
        .add("POST", "/tokens", "Create a token ({\"name\": N, \"scopes\": [S]}); the answer holds its secret, shown once", Rule::Admin, post(admin::create_token))
        .add("DELETE", "/tokens/{name}", "Revoke a token: its requests are refused and its subscriptions end", Rule::Admin, delete(admin::revoke_token))
        .add("PUT", "/buckets/{b}/blocks", "Store a block (the body; ?pin=true keeps it through gc); returns its ref", Rule::BucketWrite(Of::Bucket), put(blobs::put_block))
        .add("GET", "/buckets/{b}/blocks", "List a bucket's blocks", Rule::BucketRead(Of::Bucket), get(blobs::list_blocks))
        .add("GET", "/buckets/{b}/blocks/{ref}", "A block's bytes", Rule::BucketRead(Of::Bucket), get(blobs::get_block))
        .add("DELETE", "/buckets/{b}/blocks/{ref}", "Delete a block", Rule::BucketWrite(Of::Bucket), delete(blobs::delete_block))
        .add("GET", "/buckets/{b}/objects", "List objects (?prefix=)", Rule::BucketRead(Of::Bucket), get(blobs::list_objects))
        .add("PUT", "/buckets/{b}/objects/{*key}", "Store an object (streamed body, any size)", Rule::BucketWrite(Of::Bucket), put(blobs::put_object).layer(DefaultBodyLimit::disable()))
        .add("GET", "/buckets/{b}/objects/{*key}", "An object's bytes (streamed)", Rule::BucketRead(Of::Bucket), get(blobs::get_object))
        .add("DELETE", "/buckets/{b}/objects/{*key}", "Remove an object", Rule::BucketWrite(Of::Bucket), delete(blobs::delete_object))
}

/// The router and its OpenAPI document.
pub fn router(app: Shared, body_limit: usize) -> (axum::Router, serde_json::Value) {
    let api = routes();
    let doc = Api::openapi(&api.routes);
    let router = api
        .router
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(axum::Extension(app.clone()))
        .layer(axum::Extension(Arc::new(doc.clone())))
        .with_state(app);
    (router, doc)
}

async fn health(State(app): State<Shared>) -> impl IntoResponse {
    Json(json!({
        "status": "ok",
        "version": env!("CARGO_PKG_VERSION"),
        "peer_id": app.log.identity().peer_id().to_string(),
        "public_key": hydra_volume::hex::encode(&app.log.identity().public_key()),
        "next_position": app.log.next_position(),
    }))
}

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

async fn openapi(
    axum::Extension(doc): axum::Extension<Arc<serde_json::Value>>,
) -> impl IntoResponse {
    Json((*doc).clone())
}

async fn serve(config: Config) -> Result<()> {
    let app = Arc::new(open(&config)?);
    let tls = config.api.tls.as_ref().map(tls::load).transpose()?;
    let acceptor = |alpn| tls.as_ref().map(|t| tls::acceptor(t, alpn));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let addr = config.api.http.clone().expect("validated: http is set");
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("api.http: cannot listen on {addr}"))?;
    let local = listener.local_addr()?;
    let data_dir = config.eventlog_volume().path.clone();
    let address_file = data_dir.join(ADDRESS_FILE);
    let _ = std::fs::write(&address_file, format!("{scheme}://{local}\n"));
    let (router, _) = router(app.clone(), config.limits.body_bytes);
    if let Some(addr) = &config.api.grpc {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("api.grpc: cannot listen on {addr}"))?;
        println!("grpc listening on {}", listener.local_addr()?);
        let (a, tls) = (app.clone(), acceptor(tls::Alpn::Grpc));
        tokio::spawn(async move {
            if let Err(e) = grpc::serve(a, listener, tls).await {
                tracing::error!("grpc server: {e}");
            }
        });
    }
    if let Some(addr) = &config.api.resp {
        let (listener, local) = resp::bind(addr)
            .await
            .with_context(|| format!("api.resp: cannot listen on {addr}"))?;
        println!("resp listening on {local}");
        tokio::spawn(resp::serve(
            app.clone(),
            listener,
            acceptor(tls::Alpn::None),
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
    // Served as a make-service: a bare `Router` rebuilds its route table
    // for every connection (axum turns its routes into services then), 30
    // KB a connection with ours, most of the daemon's memory with 10,000
    // subscribers (heaptrack); this builds it once and shares it.
    let router = router.into_make_service();
    match acceptor(tls::Alpn::Http) {
        None => {
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await?
        }
        Some(acceptor) => {
            let tls = tls::Listener {
                incoming: tls::incoming(listener, acceptor),
                local,
            };
            axum::serve(tls, router)
                .with_graceful_shutdown(shutdown)
                .await?
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
