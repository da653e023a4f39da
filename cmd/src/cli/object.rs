//! `hydra object put|get|ls|rm`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use super::BucketArg;
use crate::context::{Ctx, input};
use crate::output::{self, bytes_bar, human};

#[derive(Debug, Subcommand)]
pub enum ObjectCmd {
    /// Store a file (or stdin) of any size as object KEY.
    Put {
        #[command(flatten)]
        bucket: BucketArg,
        key: String,
        /// File to store; - or nothing for stdin.
        file: Option<PathBuf>,
    },
    /// Write object KEY's bytes to stdout.
    Get {
        #[command(flatten)]
        bucket: BucketArg,
        key: String,
    },
    /// List objects, optionally those whose key starts with PREFIX.
    Ls {
        #[command(flatten)]
        bucket: BucketArg,
        #[arg(default_value = "")]
        prefix: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove object KEY (its blocks go at the next gc).
    Rm {
        #[command(flatten)]
        bucket: BucketArg,
        key: String,
    },
}

pub fn run(ctx: &Ctx, cmd: ObjectCmd) -> Result<ExitCode> {
    let store = ctx.store()?;
    match cmd {
        ObjectCmd::Put { bucket, key, file } => {
            let bucket = ctx.bucket(&store, &bucket.bucket)?;
            let (reader, len) = input(file.as_deref())?;
            let bar = bytes_bar(len);
            let info = bucket.put_object(&key, reader, |n| bar.set_position(n))?;
            bar.finish_and_clear();
            println!("{}\t{}\t{}", info.root, info.size, info.key);
        }
        ObjectCmd::Get { bucket, key } => {
            let bucket = ctx.bucket(&store, &bucket.bucket)?;
            let size = bucket.object(&key)?.map(|o| o.size);
            let bar = bytes_bar(size);
            let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
            bucket.get_object(&key, out, |n| bar.set_position(n))?;
            bar.finish_and_clear();
        }
        ObjectCmd::Ls {
            bucket,
            prefix,
            json,
        } => {
            let bucket = ctx.bucket(&store, &bucket.bucket)?;
            let objects = bucket.objects(&prefix);
            if json {
                output::json(&objects.collect::<Result<Vec<_>, _>>()?)?;
            } else {
                let mut out = std::io::stdout().lock();
                for o in objects {
                    let o = o?;
                    writeln!(out, "{}\t{}\t{}", o.key, human(o.size), o.root)?;
                }
            }
        }
        ObjectCmd::Rm { bucket, key } => {
            let name = bucket.bucket;
            let bucket = ctx.bucket(&store, &name)?;
            if !bucket.remove_object(&key)? {
                anyhow::bail!("object {key:?} not found in bucket {name}");
            }
            println!("removed {key}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
