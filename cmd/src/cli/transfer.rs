//! `hydra export` and `hydra import`: streams, a bucket, or everything,
//! as verifiable CARv1 files, on any [`Admin`] (the data directory's log
//! or a daemon).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use hydra_bucket::BucketName;
use hydra_eventlog::{Admin, Export, ExportReport, Imported, StreamId};

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

/// The writers given, by peer id or public key.
pub fn writers(given: &[String]) -> Result<Vec<[u8; 32]>> {
    given
        .iter()
        .map(|w| crate::daemon::config::parse_writer(w))
        .collect()
}

pub async fn export<A: Admin>(admin: &A, args: ExportArgs) -> Result<ExitCode> {
    let what = match (args.bucket, args.all) {
        (Some(b), _) => Export::Bucket(b),
        (None, true) => Export::All,
        (None, false) => Export::Streams(args.streams),
    };
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let report = admin.export(&what, std::io::BufWriter::new(file)).await?;
    println!("{}", exported(&what, &report, &args.output));
    Ok(ExitCode::SUCCESS)
}

/// One line for an export.
fn exported(what: &Export, r: &ExportReport, to: &Path) -> String {
    let to = to.display();
    if let Export::Bucket(b) = what {
        return format!(
            "exported bucket {b}: {} objects, {} blocks to {to}",
            r.objects, r.blocks
        );
    }
    let buckets = match r.buckets {
        0 => String::new(),
        n => format!("{n} buckets ({} objects), ", r.objects),
    };
    format!(
        "exported {buckets}{} streams, {} events, {} blocks to {to}",
        r.streams, r.events, r.blocks
    )
}

pub async fn import<A: Admin>(admin: &A, args: ImportArgs) -> Result<ExitCode> {
    let writers = writers(&args.writers)?;
    let r = admin.import(&args.file, &writers).await?;
    println!("{}", imported(&r));
    Ok(ExitCode::SUCCESS)
}

/// One line for an import's report, whichever kind it was.
fn imported(r: &Imported) -> String {
    match r {
        Imported::Bucket(b) => format!(
            "imported bucket {}: {} objects, {} new blocks, {} already here",
            b.bucket, b.objects, b.blocks, b.skipped
        ),
        Imported::Streams(r) => {
            let buckets = match r.buckets {
                0 => String::new(),
                n => format!("{n} buckets ({} objects) and ", r.objects),
            };
            let order = if r.all_order {
                ", in the file's $all order"
            } else {
                ""
            };
            format!(
                "imported {buckets}{} streams: {} new events{order}, {} already here",
                r.streams, r.events, r.skipped
            )
        }
    }
}
