//! The command line: what the user typed (clap), dispatched to one module
//! per command group.

pub(crate) mod block;
pub(crate) mod bucket;
pub(crate) mod gc;
pub(crate) mod object;
pub(crate) mod peer;
pub(crate) mod replicate;
pub(crate) mod snapshot;
pub(crate) mod stream;
pub(crate) mod token;
pub(crate) mod transfer;
pub(crate) mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use hydra_bucket::{BlobStore, BucketName};
use hydra_eventlog::{Admin, EventStore};
use hydra_volume::Backend;

use crate::context::Ctx;

const KEY_HELP: &str = "\
Encrypted buckets need their 256-bit key for every read or write of plain \
bytes. Give it with --key-file FILE (32 raw bytes or 64 hex digits) or with \
the environment variable HYDRA_KEY (64 hex digits). The key is never stored \
in the volume.";

/// Hydra: a content-addressed block store and event store.
///
/// Works on a data directory (--data, HYDRA_DATA, default ./hydra-data),
/// created on first use with the redb backend unless --backend says
/// otherwise.
#[derive(Debug, Parser)]
#[command(name = "hydra", version, after_long_help = KEY_HELP)]
pub struct Cli {
    /// Data directory (give it before the subcommand: `--data` after
    /// `stream append` is the event's payload).
    #[arg(long, env = "HYDRA_DATA", default_value = "hydra-data")]
    pub data: PathBuf,

    /// Storage engine for a new data directory: redb, lmdb or mem.
    #[arg(long, global = true, env = "HYDRA_BACKEND", value_parser = parse_backend)]
    pub backend: Option<Backend>,

    /// Talk to a running daemon at this URL instead of opening --data.
    #[arg(long, global = true, env = "HYDRA_API")]
    pub api: Option<String>,

    /// API token for --api (see `hydra token`).
    #[arg(long, global = true, env = "HYDRA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// CA certificate (PEM) to trust for an https:// --api, beside the
    /// system's roots.
    #[arg(long, global = true, env = "HYDRA_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,

    /// Key file of an encrypted bucket (or set HYDRA_KEY).
    #[arg(long, global = true, env = "HYDRA_KEY_FILE", long_help = KEY_HELP)]
    pub key_file: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

fn parse_backend(s: &str) -> Result<Backend, String> {
    s.parse()
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The volume: identity, size, integrity.
    #[command(subcommand)]
    Volume(volume::VolumeCmd),
    /// Buckets: named block collections with transforms.
    #[command(subcommand)]
    Bucket(bucket::BucketCmd),
    /// Blocks: content-addressed byte strings.
    #[command(subcommand)]
    Block(block::BlockCmd),
    /// Objects: named byte streams of any size, chunked into blocks.
    #[command(subcommand)]
    Object(object::ObjectCmd),
    /// Free blocks no root reaches and print what was freed.
    Gc(gc::GcArgs),
    /// Event streams: append, read, $all, delete, proofs.
    #[command(subcommand)]
    Stream(stream::StreamCmd),
    /// Events by id.
    #[command(subcommand)]
    Event(EventCmd),
    /// Snapshots of streams.
    #[command(subcommand)]
    Snapshot(snapshot::SnapshotCmd),
    /// Write streams (signed heads and every event) to a CARv1 file.
    Export(transfer::ExportArgs),
    /// Verify a file from `hydra export` completely, then apply it.
    Import(transfer::ImportArgs),
    /// API tokens: who may use the daemon's APIs, and for what.
    #[command(subcommand)]
    Token(token::TokenCmd),
    /// Replication over libp2p, as the daemon runs it.
    #[command(subcommand)]
    Replicate(replicate::ReplicateCmd),
    /// This node's libp2p identity, and the daemon's peers.
    #[command(subcommand)]
    Peer(peer::PeerCmd),
    /// Run the daemon: HTTP, gRPC and RESP3 APIs over the event log and
    /// the stores.
    Daemon(crate::daemon::DaemonArgs),
}

#[derive(Debug, Subcommand)]
pub enum EventCmd {
    /// Print one event (JSON) by its id.
    Get { id: uuid::Uuid },
}

/// `--bucket`, shared by the block, object and gc commands.
#[derive(Debug, clap::Args)]
pub struct BucketArg {
    /// Bucket to use.
    #[arg(long, short, default_value = "default", value_parser = parse_bucket)]
    pub bucket: BucketName,
}

pub use bucket::parse_compress;

pub fn parse_bucket(s: &str) -> Result<BucketName, String> {
    s.parse()
        .map_err(|e: hydra_bucket::BucketError| e.to_string())
}

/// How the CLI proves itself to a daemon: its token, and the CA that
/// signed the daemon's certificate when it is not a public one.
pub struct Access {
    pub token: Option<String>,
    pub cacert: Option<PathBuf>,
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    let access = Access {
        token: cli.token,
        cacert: cli.cacert,
    };
    let ctx = Ctx {
        data: cli.data,
        backend: cli.backend,
        key_file: cli.key_file,
    };
    let api = cli.api.as_deref();
    match cli.command {
        Command::Stream(c) => events(api, &access, &ctx, OnEvents::Stream(c)),
        Command::Event(EventCmd::Get { id }) => events(api, &access, &ctx, OnEvents::Event(id)),
        Command::Snapshot(c) => events(api, &access, &ctx, OnEvents::Snapshot(c)),
        Command::Block(c) => blobs(api, &access, &ctx, OnBlobs::Block(c)),
        Command::Object(c) => blobs(api, &access, &ctx, OnBlobs::Object(c)),
        Command::Volume(c) => admin(api, &access, &ctx, OnAdmin::Volume(c)),
        Command::Bucket(c) => admin(api, &access, &ctx, OnAdmin::Bucket(c)),
        Command::Gc(a) => admin(api, &access, &ctx, OnAdmin::Gc(a)),
        Command::Export(a) => admin(api, &access, &ctx, OnAdmin::Export(a)),
        Command::Import(a) => admin(api, &access, &ctx, OnAdmin::Import(a)),
        Command::Token(c) => {
            let runtime = runtime()?;
            match api {
                Some(url) => runtime.block_on(token::run(&client(url, &access)?, c)),
                None => {
                    let tokens = crate::access::Tokens::new(ctx.store()?.volume().clone());
                    runtime.block_on(token::run(&tokens, c))
                }
            }
        }
        Command::Peer(peer::PeerCmd::Id) if api.is_none() => {
            peer::id(&ctx).map(|()| ExitCode::SUCCESS)
        }
        Command::Replicate(c) => {
            let url = daemon(api, &ctx)?;
            replicate::run(&runtime()?, &client(&url, &access)?, c)
        }
        Command::Peer(c) => {
            let url = daemon(api, &ctx)?;
            peer::run(&runtime()?, &client(&url, &access)?, c)
        }
        Command::Daemon(_) if api.is_some() => {
            bail!("--api talks to a running daemon; start one without --api")
        }
        Command::Daemon(a) => crate::daemon::run(&ctx, a),
    }
}

/// The daemon a command that only a daemon runs (replication, peers)
/// asks: `--api`, or the one that holds the data directory.
fn daemon(api: Option<&str>, ctx: &Ctx) -> Result<String> {
    match api {
        Some(url) => Ok(url.to_owned()),
        None => replicate::daemon_url(ctx),
    }
}

/// The commands on blocks and objects: one body each for the daemon at
/// `--api` and the data directory's buckets, since both are a
/// [`BlobStore`].
enum OnBlobs {
    Block(block::BlockCmd),
    Object(object::ObjectCmd),
}

fn blobs(api: Option<&str>, access: &Access, ctx: &Ctx, cmd: OnBlobs) -> Result<ExitCode> {
    let runtime = runtime()?;
    if let Some(url) = api {
        return runtime.block_on(on_blobs(&client(url, access)?, cmd));
    }
    let store = ctx.store()?;
    let bucket = match &cmd {
        OnBlobs::Block(c) => c.bucket(),
        OnBlobs::Object(c) => c.bucket(),
    };
    if let Some(key) = ctx.key()? {
        unlock(&store, bucket, &key)?;
    }
    runtime.block_on(on_blobs(&store, cmd))
}

/// Unlocks the bucket a command names with the key given, which must be
/// its own (a plain bucket needs none, and ignores it).
fn unlock(store: &hydra_bucket::Store, bucket: &BucketName, key: &hydra_bucket::Key) -> Result<()> {
    match store.unlock(bucket, key) {
        Ok(()) | Err(hydra_bucket::BucketError::KeyNotNeeded(_)) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn on_blobs<B: BlobStore>(store: &B, cmd: OnBlobs) -> Result<ExitCode> {
    match cmd {
        OnBlobs::Block(c) => block::run(store, c).await,
        OnBlobs::Object(c) => object::run(store, c).await,
    }
}

/// The commands on the volume, buckets, gc, export and import: one body
/// each for the daemon at `--api` and the data directory, since both are
/// an [`Admin`].
enum OnAdmin {
    Volume(volume::VolumeCmd),
    Bucket(bucket::BucketCmd),
    Gc(gc::GcArgs),
    Export(transfer::ExportArgs),
    Import(transfer::ImportArgs),
}

fn admin(api: Option<&str>, access: &Access, ctx: &Ctx, cmd: OnAdmin) -> Result<ExitCode> {
    let runtime = runtime()?;
    if let Some(url) = api {
        // A daemon refuses the key of a new encrypted bucket: its config
        // keeps them. None is written for it.
        let key = || Ok(hydra_bucket::Key::generate()?);
        return runtime.block_on(on_admin(&client(url, access)?, url, cmd, key));
    }
    // A new encrypted bucket's key file may not exist yet (`creation_key`
    // makes it).
    let key = match &cmd {
        OnAdmin::Bucket(bucket::BucketCmd::Create { .. }) => None,
        _ => ctx.key()?,
    };
    let log = stream::open_with(ctx, key.as_ref())?;
    match (&cmd, &key) {
        (
            OnAdmin::Gc(gc::GcArgs {
                bucket: Some(b), ..
            }),
            Some(k),
        ) => unlock(log.store(), b, k)?,
        // It reads the buckets an import makes as their streams come (so
        // their events take the file's `$all` order).
        (OnAdmin::Import(_), Some(k)) => {
            log.offer_key(k)?;
        }
        _ => {}
    }
    let import = matches!(cmd, OnAdmin::Import(_));
    let at = ctx.data.display().to_string();
    let done = runtime.block_on(on_admin(&log, &at, cmd, || bucket::creation_key(ctx)))?;
    if let (true, Some(k)) = (import, &key) {
        // And those that brought only objects, once it is done.
        log.unlock_with(k)?;
    }
    log.close()?;
    Ok(done)
}

async fn on_admin<A: Admin>(
    admin: &A,
    at: &str,
    cmd: OnAdmin,
    key: impl FnOnce() -> Result<hydra_bucket::Key>,
) -> Result<ExitCode> {
    match cmd {
        OnAdmin::Volume(c) => volume::run(admin, at, c).await,
        OnAdmin::Bucket(c) => bucket::run(admin, c, key).await,
        OnAdmin::Gc(a) => gc::run(admin, a).await,
        OnAdmin::Export(a) => transfer::export(admin, a).await,
        OnAdmin::Import(a) => transfer::import(admin, a).await,
    }
}

/// The commands on events: one body each for the daemon at `--api`
/// (through `hydra-client`) and the data directory's event log, since
/// both are an [`EventStore`].
enum OnEvents {
    Stream(stream::StreamCmd),
    Event(uuid::Uuid),
    Snapshot(snapshot::SnapshotCmd),
}

fn events(api: Option<&str>, access: &Access, ctx: &Ctx, cmd: OnEvents) -> Result<ExitCode> {
    let runtime = runtime()?;
    if let OnEvents::Stream(stream::StreamCmd::Verify { signer }) = cmd {
        // A proof needs no store, only whom to trust.
        let signer = match (signer, api) {
            (Some(s), _) => s,
            (None, Some(url)) => {
                runtime
                    .block_on(client(url, access)?.identity())?
                    .public_key
            }
            (None, None) => stream::own_key(ctx)?,
        };
        return stream::verify_with(&signer);
    }
    match api {
        Some(url) => runtime.block_on(on_events(&client(url, access)?, cmd)),
        None => {
            let log = stream::open(ctx)?;
            let done = runtime.block_on(on_events(&log, cmd))?;
            log.close()?;
            Ok(done)
        }
    }
}

async fn on_events<S: EventStore>(store: &S, cmd: OnEvents) -> Result<ExitCode> {
    match cmd {
        OnEvents::Stream(c) => stream::run(store, c).await,
        OnEvents::Event(id) => stream::get_event(store, id).await,
        OnEvents::Snapshot(c) => snapshot::run(store, c).await,
    }
}

/// Where a command's store calls run: this thread (the embedded stores
/// answer on it; a client waits on it).
fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// The daemon at `url`, with the token and CA the flags give.
fn client(url: &str, access: &Access) -> Result<hydra_client::Client> {
    let mut builder = hydra_client::Client::builder(url);
    if let Some(token) = &access.token {
        builder = builder.token(token);
    }
    if let Some(path) = &access.cacert {
        let pem =
            std::fs::read(path).with_context(|| format!("--cacert: reading {}", path.display()))?;
        builder = builder
            .root_certificates_pem(&pem)
            .with_context(|| format!("--cacert: {}", path.display()))?;
    }
    Ok(builder.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_flags_parse_anywhere() {
        let r = hydra_block::Ref::raw(b"x").to_string();
        let cli = Cli::try_parse_from([
            "hydra",
            "--data",
            "/tmp/d",
            "block",
            "get",
            "--key-file",
            "k",
            "--bucket",
            "b1",
            &r,
        ])
        .unwrap();
        assert_eq!(cli.data, PathBuf::from("/tmp/d"));
        assert_eq!(cli.key_file, Some(PathBuf::from("k")));
        assert!(matches!(cli.command, Command::Block(_)));
    }

    #[test]
    fn bad_backends_and_bucket_names_are_usage_errors() {
        let e = Cli::try_parse_from(["hydra", "--backend", "rocks", "volume", "info"]).unwrap_err();
        assert!(e.to_string().contains("unknown backend \"rocks\""), "{e}");
        let e = Cli::try_parse_from(["hydra", "gc", "--bucket", "Bad/Name"]).unwrap_err();
        assert!(
            e.to_string()
                .contains("bucket name \"Bad/Name\" is invalid"),
            "{e}"
        );
    }

    #[test]
    fn data_before_the_subcommand_is_the_directory_after_it_the_payload() {
        let cli = Cli::try_parse_from([
            "hydra", "--data", "dir", "stream", "append", "s", "-t", "T", "--data", "{}",
        ])
        .unwrap();
        assert_eq!(cli.data, PathBuf::from("dir"));
        let Command::Stream(stream::StreamCmd::Append { data, .. }) = cli.command else {
            panic!("not an append");
        };
        assert_eq!(data.as_deref(), Some("{}"));
    }

    #[test]
    fn compress_flag_forms() {
        use bucket::parse_compress;
        assert_eq!(parse_compress("zstd").unwrap(), 3);
        assert_eq!(parse_compress("zstd:19").unwrap(), 19);
        assert!(parse_compress("gzip").is_err());
        assert!(parse_compress("zstd:x").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
