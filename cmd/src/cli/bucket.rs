//! `hydra bucket create|ls|show|update|rm`.

use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use hydra_bucket::{BucketConfig, BucketName, BucketUpdate, CreateOptions, Key};

use super::parse_bucket;
use crate::context::Ctx;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum BucketCmd {
    /// Create a bucket.
    Create {
        #[arg(value_parser = parse_bucket)]
        name: BucketName,
        /// Compress blocks: zstd or zstd:LEVEL (1-22, default 3).
        #[arg(long, value_name = "zstd[:LEVEL]", value_parser = parse_compress)]
        compress: Option<i32>,
        /// Encrypt blocks (ChaCha20-Poly1305) with the key from --key-file
        /// or HYDRA_KEY; a --key-file that does not exist is created with a
        /// new random key (mode 0600).
        #[arg(long)]
        encrypt: bool,
    },
    /// List buckets.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show a bucket's config and size.
    Show {
        #[arg(value_parser = parse_bucket)]
        name: BucketName,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Change a bucket's config; its version must increase.
    Update {
        #[arg(value_parser = parse_bucket)]
        name: BucketName,
        /// New zstd level (zstd:LEVEL), for a compressed bucket.
        #[arg(long, value_name = "zstd:LEVEL", value_parser = parse_compress)]
        compress: Option<i32>,
        /// New version (default: current + 1).
        #[arg(long)]
        version: Option<u64>,
    },
    /// Remove a bucket and all its blocks.
    Rm {
        #[arg(value_parser = parse_bucket)]
        name: BucketName,
    },
}

pub fn parse_compress(s: &str) -> Result<i32, String> {
    match s.split_once(':') {
        None if s == "zstd" => Ok(3),
        Some(("zstd", level)) => level
            .parse()
            .map_err(|_| format!("{level:?} is not a zstd level (1-22)")),
        _ => Err(format!("{s:?}: expected zstd or zstd:LEVEL")),
    }
}

#[derive(serde::Serialize)]
struct Shown<'a> {
    #[serde(flatten)]
    config: &'a BucketConfig,
    blocks: u64,
    stored_bytes: u64,
}

pub fn run(ctx: &Ctx, cmd: BucketCmd) -> Result<ExitCode> {
    let store = ctx.store()?;
    match cmd {
        BucketCmd::Create {
            name,
            compress,
            encrypt,
        } => {
            let key = if encrypt {
                Some(creation_key(ctx)?)
            } else {
                None
            };
            let c = store.create_bucket(
                &name,
                CreateOptions {
                    zstd_level: compress,
                    key: key.as_ref(),
                },
            )?;
            println!("created bucket {} ({})", c.id, describe(&c));
        }
        BucketCmd::Ls { json } => {
            let buckets = store.buckets()?;
            if json {
                output::json(&buckets)?;
            } else {
                for c in buckets {
                    println!("{}\tv{}\t{}", c.id, c.version, describe(&c));
                }
            }
        }
        BucketCmd::Show { name, json } => {
            let config = store.bucket_config(&name)?;
            let stats = store.bucket(&name, None)?.stats()?;
            let shown = Shown {
                config: &config,
                blocks: stats.blocks,
                stored_bytes: stats.stored_bytes,
            };
            if json {
                output::json(&shown)?;
            } else {
                println!("bucket:      {}", config.id);
                println!("version:     {}", config.version);
                println!("transforms:  {}", describe(&config));
                println!("blocks:      {}", stats.blocks);
                println!("bytes:       {}", output::human(stats.stored_bytes));
            }
        }
        BucketCmd::Update {
            name,
            compress,
            version,
        } => {
            let current = store.bucket_config(&name)?.version;
            let c = store.update_bucket(
                &name,
                BucketUpdate {
                    version: version.unwrap_or(current + 1),
                    zstd_level: compress,
                    policies: None,
                },
            )?;
            println!(
                "updated bucket {} to version {} ({})",
                c.id,
                c.version,
                describe(&c)
            );
        }
        BucketCmd::Rm { name } => {
            drop(store);
            let blocks = crate::cli::stream::open(ctx)?.remove_bucket(&name)?;
            println!("removed bucket {name} and {blocks} blocks");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The key for a new encrypted bucket: from --key-file (created when it
/// does not exist) or HYDRA_KEY.
fn creation_key(ctx: &Ctx) -> Result<Key> {
    if let Some(path) = &ctx.key_file {
        if !path.exists() {
            let key = Key::generate()?;
            key.write_new_file(path)?;
            eprintln!(
                "hydra: wrote a new key to {} (keep it safe: without it the bucket cannot be read)",
                path.display()
            );
            return Ok(key);
        }
        return Key::from_file(path).context("reading the bucket key");
    }
    match Key::from_env()? {
        Some(k) => Ok(k),
        None => bail!("--encrypt needs a key: --key-file FILE (created if absent) or HYDRA_KEY"),
    }
}

fn describe(c: &BucketConfig) -> String {
    let mut parts = Vec::new();
    if let Some(level) = c.transforms.zstd_level {
        parts.push(format!("zstd:{level}"));
    }
    if let Some(e) = &c.transforms.encryption {
        parts.push(e.cipher.clone());
    }
    if parts.is_empty() {
        "no transforms".into()
    } else {
        parts.join(", ")
    }
}
