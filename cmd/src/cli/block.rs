//! `hydra block put|get|has|rm|ls`: one body for the data directory and
//! a daemon (`--api`), through [`BlobStore`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use hydra_block::Ref;
use hydra_bucket::{BlobStore, BucketName, MAX_BLOCK_SIZE};

use super::BucketArg;
use crate::context::input;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum BlockCmd {
    /// Store a file (or stdin) as one block; print its ref.
    ///
    /// A block that is neither pinned nor reached from an object is freed
    /// by the next `hydra gc`.
    Put {
        #[command(flatten)]
        bucket: BucketArg,
        /// Keep the block through gc (a root named pin/REF).
        #[arg(long)]
        pin: bool,
        /// File to store; - or nothing for stdin.
        file: Option<PathBuf>,
    },
    /// Write a block's bytes to stdout.
    Get {
        #[command(flatten)]
        bucket: BucketArg,
        #[arg(value_parser = parse_ref)]
        reference: Ref,
    },
    /// Print yes and exit 0 if the block is stored, else no and exit 1.
    Has {
        #[command(flatten)]
        bucket: BucketArg,
        #[arg(value_parser = parse_ref)]
        reference: Ref,
    },
    /// Delete a block (and its pin).
    Rm {
        #[command(flatten)]
        bucket: BucketArg,
        #[arg(value_parser = parse_ref)]
        reference: Ref,
    },
    /// List a bucket's blocks with their stored sizes.
    Ls {
        #[command(flatten)]
        bucket: BucketArg,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

pub fn parse_ref(s: &str) -> Result<Ref, String> {
    s.parse()
        .map_err(|e: hydra_block::RefParseError| e.to_string())
}

#[derive(serde::Serialize)]
struct Listed {
    reference: Ref,
    stored_bytes: u64,
}

impl BlockCmd {
    /// The bucket it names.
    pub fn bucket(&self) -> &BucketName {
        match self {
            BlockCmd::Put { bucket, .. }
            | BlockCmd::Get { bucket, .. }
            | BlockCmd::Has { bucket, .. }
            | BlockCmd::Rm { bucket, .. }
            | BlockCmd::Ls { bucket, .. } => &bucket.bucket,
        }
    }
}

/// One body for the data directory's buckets and a daemon's.
pub async fn run<B: BlobStore>(store: &B, cmd: BlockCmd) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        BlockCmd::Put { bucket, pin, file } => {
            let (reader, _) = input(file.as_deref())?;
            // Read one byte past the limit to tell "too large" from "fits".
            let mut data = Vec::new();
            reader
                .take(MAX_BLOCK_SIZE as u64 + 1)
                .read_to_end(&mut data)
                .context("reading the block")?;
            let r = store.put_block(&bucket.bucket, data, pin).await?;
            writeln!(out, "{r}")?;
        }
        BlockCmd::Get { bucket, reference } => {
            out.write_all(&store.get_block(&bucket.bucket, &reference).await?)?;
        }
        BlockCmd::Has { bucket, reference } => {
            if store.has_block(&bucket.bucket, &reference).await? {
                writeln!(out, "yes")?;
            } else {
                writeln!(out, "no")?;
                return Ok(ExitCode::from(1));
            }
        }
        BlockCmd::Rm { bucket, reference } => {
            let name = bucket.bucket;
            if !store.delete_block(&name, &reference).await? {
                anyhow::bail!("block {reference} not found in bucket {name}");
            }
            writeln!(out, "removed {reference}")?;
        }
        BlockCmd::Ls { bucket, json } => {
            let all = store.list_blocks(&bucket.bucket).await?;
            if json {
                let all: Vec<Listed> = all
                    .into_iter()
                    .map(|(reference, stored_bytes)| Listed {
                        reference,
                        stored_bytes,
                    })
                    .collect();
                output::json(&all)?;
            } else {
                for (r, size) in all {
                    writeln!(out, "{r}\t{size}")?;
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
