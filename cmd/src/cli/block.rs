//! `hydra block put|get|has|rm|ls`.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use hydra_block::{Codec, Ref};
use hydra_bucket::MAX_BLOCK_SIZE;

use super::BucketArg;
use crate::context::{Ctx, input};
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

/// The root that pins a block put with `--pin`.
fn pin_name(r: &Ref) -> String {
    format!("pin/{r}")
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

pub fn run(ctx: &Ctx, cmd: BlockCmd) -> Result<ExitCode> {
    let store = ctx.store()?;
    match cmd {
        BlockCmd::Put { bucket, pin, file } => {
            let bucket = ctx.bucket(&store, &bucket.bucket)?;
            let (reader, _) = input(file.as_deref())?;
            // Read one byte past the limit to tell "too large" from "fits".
            let mut data = Vec::new();
            reader
                .take(MAX_BLOCK_SIZE as u64 + 1)
                .read_to_end(&mut data)
                .context("reading the block")?;
            let r = bucket.put(Codec::Raw, &data)?;
            if pin {
                bucket.set_root(&pin_name(&r), r)?;
            }
            println!("{r}");
        }
        BlockCmd::Get { bucket, reference } => {
            let bucket = ctx.bucket(&store, &bucket.bucket)?;
            let data = bucket.get(&reference)?;
            let mut out = std::io::stdout().lock();
            out.write_all(&data)?;
            out.flush()?;
        }
        BlockCmd::Has { bucket, reference } => {
            let bucket = ctx.bucket(&store, &bucket.bucket)?;
            if bucket.has(&reference)? {
                println!("yes");
            } else {
                println!("no");
                return Ok(ExitCode::from(1));
            }
        }
        BlockCmd::Rm { bucket, reference } => {
            let name = bucket.bucket;
            let bucket = ctx.bucket(&store, &name)?;
            bucket.remove_root(&pin_name(&reference))?;
            if !bucket.delete(&reference)? {
                anyhow::bail!("block {reference} not found in bucket {name}");
            }
            println!("removed {reference}");
        }
        BlockCmd::Ls { bucket, json } => {
            let bucket = ctx.bucket(&store, &bucket.bucket)?;
            if json {
                let all = bucket
                    .blocks()
                    .map(|b| {
                        b.map(|(reference, stored_bytes)| Listed {
                            reference,
                            stored_bytes,
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                output::json(&all)?;
            } else {
                let mut out = std::io::stdout().lock();
                for b in bucket.blocks() {
                    let (r, size) = b?;
                    writeln!(out, "{r}\t{size}")?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
