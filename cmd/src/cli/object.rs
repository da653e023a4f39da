//! `hydra object put|get|ls|rm`: one body for the data directory and a
//! daemon (`--api`), through [`BlobStore`].

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use hydra_bucket::{BlobStore, BucketName};

use super::BucketArg;
use crate::context::input;
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

impl ObjectCmd {
    /// The bucket it names.
    pub fn bucket(&self) -> &BucketName {
        match self {
            ObjectCmd::Put { bucket, .. }
            | ObjectCmd::Get { bucket, .. }
            | ObjectCmd::Ls { bucket, .. }
            | ObjectCmd::Rm { bucket, .. } => &bucket.bucket,
        }
    }
}

/// One body for the data directory's buckets and a daemon's.
pub async fn run<B: BlobStore>(store: &B, cmd: ObjectCmd) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        ObjectCmd::Put { bucket, key, file } => {
            let (reader, len) = input(file.as_deref())?;
            let bar = bytes_bar(len);
            let info = store
                .put_object(&bucket.bucket, &key, bar.wrap_read(reader))
                .await?;
            bar.finish_and_clear();
            writeln!(out, "{}\t{}\t{}", info.root, info.size, info.key)?;
        }
        ObjectCmd::Get { bucket, key } => {
            let size = store.object(&bucket.bucket, &key).await?.map(|o| o.size);
            let bar = bytes_bar(size);
            let sink = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout());
            store
                .get_object(&bucket.bucket, &key, bar.wrap_write(sink))
                .await?;
            bar.finish_and_clear();
        }
        ObjectCmd::Ls {
            bucket,
            prefix,
            json,
        } => {
            let objects = store.list_objects(&bucket.bucket, &prefix).await?;
            if json {
                output::json(&objects)?;
            } else {
                for o in objects {
                    writeln!(out, "{}\t{}\t{}", o.key, human(o.size), o.root)?;
                }
            }
        }
        ObjectCmd::Rm { bucket, key } => {
            let name = bucket.bucket;
            if !store.delete_object(&name, &key).await? {
                anyhow::bail!("object {key:?} not found in bucket {name}");
            }
            writeln!(out, "removed {key}")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}
