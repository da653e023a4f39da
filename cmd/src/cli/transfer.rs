//! `hydra export` and `hydra import`: streams, or a bucket, as verifiable
//! CARv1 files.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hydra_bucket::BucketName;
use hydra_eventlog::StreamId;
use serde_json::{Value, json};

use super::stream::open;
use crate::context::Ctx;

/// `hydra export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A stream to export (repeatable): its storage as stored, under its
    /// writer's signed head.
    #[arg(long = "stream", short = 's', required_unless_present_any = ["bucket", "all"])]
    pub streams: Vec<StreamId>,
    /// Export a bucket instead: its signed manifest and every object's
    /// blocks (readable only with its key; importable without).
    #[arg(long, short = 'b', conflicts_with = "streams", value_parser = super::parse_bucket)]
    pub bucket: Option<BucketName>,
    /// Export everything instead, as a backup: every bucket's objects and
    /// every stream (restore with `hydra import` into an empty directory).
    #[arg(long, conflicts_with_all = ["streams", "bucket"])]
    pub all: bool,
    /// The CARv1 file to write.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// `hydra import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A CARv1 file written by `hydra export` (streams or a bucket).
    pub file: PathBuf,
    /// Accept only heads and manifests signed by this writer (its peer id
    /// or 64 hex digits of its public key; repeatable). Without it, any
    /// valid signature.
    #[arg(long = "writer")]
    pub writers: Vec<String>,
}

/// The bucket an export file holds, or `None` for streams or a whole
/// store: a bucket's manifest is a raw block, the file's one root and
/// its first block (its name is read here only to choose where to
/// import; the import checks everything).
pub fn bucket_of(path: &Path) -> Result<Option<String>> {
    let f = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut car = hydra_block::CarReader::new(std::io::BufReader::new(f))
        .with_context(|| format!("reading {}", path.display()))?;
    if !matches!(car.roots(), [r] if r.codec() == hydra_block::Codec::Raw) {
        return Ok(None);
    }
    let (_, signed) = car
        .next_block()
        .with_context(|| format!("reading {}", path.display()))?
        .with_context(|| format!("{} holds no block", path.display()))?;
    Ok(Some(hydra_bucket::Manifest::decode_stored(&signed)?.bucket))
}

/// The writers given, by peer id or public key.
pub fn writers(given: &[String]) -> Result<Vec<[u8; 32]>> {
    given
        .iter()
        .map(|w| crate::daemon::config::parse_writer(w))
        .collect()
}

/// Milliseconds since the epoch: the seq of a manifest signed now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub fn export(ctx: &Ctx, args: ExportArgs) -> Result<ExitCode> {
    let log = open(ctx)?;
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let out = std::io::BufWriter::new(file);
    if let Some(name) = &args.bucket {
        let bucket = ctx.bucket(log.store(), name)?;
        let r = bucket.export(log.identity(), now_ms(), out)?;
        println!("{}", exported_bucket(&json!(r), &args.output));
    } else {
        let r = if args.all {
            log.export_all(out)?
        } else {
            log.export(&args.streams, out)?
        };
        println!("{}", exported(&json!(r), &args.output));
    }
    log.close()?;
    Ok(ExitCode::SUCCESS)
}

pub fn exported_bucket(r: &Value, to: &Path) -> String {
    format!(
        "exported bucket {}: {} objects, {} blocks to {}",
        r["bucket"].as_str().unwrap_or(""),
        r["objects"],
        r["blocks"],
        to.display()
    )
}

/// One line for an export of streams or of a whole store.
pub fn exported(r: &Value, to: &Path) -> String {
    let buckets = match r["buckets"].as_u64() {
        Some(0) | None => String::new(),
        Some(n) => format!("{n} buckets ({} objects), ", r["objects"]),
    };
    format!(
        "exported {buckets}{} streams, {} events, {} blocks to {}",
        r["streams"],
        r["events"],
        r["blocks"],
        to.display()
    )
}

/// One line for an import's report, whichever kind it was.
pub fn imported(r: &Value) -> String {
    match r["bucket"].as_str() {
        Some(b) => format!(
            "imported bucket {b}: {} objects, {} new blocks, {} already here",
            r["objects"], r["blocks"], r["skipped"]
        ),
        None => {
            let buckets = match r["buckets"].as_u64() {
                Some(0) | None => String::new(),
                Some(n) => format!("{n} buckets ({} objects) and ", r["objects"]),
            };
            let order = match r["all_order"].as_bool() {
                Some(true) => ", in the file's $all order",
                _ => "",
            };
            format!(
                "imported {buckets}{} streams: {} new events{order}, {} already here",
                r["streams"], r["events"], r["skipped"]
            )
        }
    }
}

pub fn import(ctx: &Ctx, args: ImportArgs) -> Result<ExitCode> {
    let writers = writers(&args.writers)?;
    let bucket = bucket_of(&args.file)?;
    let log = open(ctx)?;
    let r = if bucket.is_some() {
        let f = std::fs::File::open(&args.file)?;
        json!(
            log.store()
                .import(std::io::BufReader::new(f), &writers, ctx.key()?.as_ref())?
        )
    } else {
        // The key reads the buckets the import makes as their streams
        // come (so their events take the file's `$all` order), and those
        // that brought only objects once it is done.
        let key = ctx.key()?;
        if let Some(key) = &key {
            log.offer_key(key)?;
        }
        let r = log.import(&args.file, &writers)?;
        if let Some(key) = &key {
            log.unlock_with(key)?;
        }
        json!(r)
    };
    println!("{}", imported(&r));
    log.close()?;
    Ok(ExitCode::SUCCESS)
}
