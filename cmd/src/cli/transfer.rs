//! `hydra export` and `hydra import`: streams as verifiable CARv1 files.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use hydra_eventlog::StreamId;

use super::stream::open;
use crate::context::Ctx;

/// `hydra export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A stream to export (repeatable): its signed head and every event.
    #[arg(long = "stream", short = 's', required = true)]
    pub streams: Vec<StreamId>,
    /// The CARv1 file to write.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
}

/// `hydra import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// A CARv1 file written by `hydra export`.
    pub file: PathBuf,
    /// Accept only heads signed by this writer (64 hex digits of its
    /// public key; repeatable). Without it, any valid signature.
    #[arg(long = "writer")]
    pub writers: Vec<String>,
}

pub fn export(ctx: &Ctx, args: ExportArgs) -> Result<ExitCode> {
    let log = open(ctx)?;
    let file = std::fs::File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let r = log.export(&args.streams, std::io::BufWriter::new(file))?;
    println!(
        "exported {} streams, {} events, {} blocks to {}",
        r.streams,
        r.events,
        r.blocks,
        args.output.display()
    );
    log.close()?;
    Ok(ExitCode::SUCCESS)
}

pub fn import(ctx: &Ctx, args: ImportArgs) -> Result<ExitCode> {
    let writers = args
        .writers
        .iter()
        .map(|w| super::stream::parse_key(w))
        .collect::<Result<Vec<_>>>()?;
    let log = open(ctx)?;
    let r = log.import(&args.file, &writers)?;
    println!(
        "imported {} streams: {} new events, {} already here",
        r.streams, r.events, r.skipped
    );
    log.close()?;
    Ok(ExitCode::SUCCESS)
}
