//! `hydra bucket create|ls|show|update|rm`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use hydra_bucket::{BucketConfig, BucketName, CreateOptions, Key};
use hydra_eventlog::Admin;

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

/// The bucket commands on any [`Admin`]; `key` gives the key of a new
/// encrypted bucket.
pub async fn run<A: Admin>(
    admin: &A,
    cmd: BucketCmd,
    key: impl FnOnce() -> Result<Key>,
) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        BucketCmd::Create {
            name,
            compress,
            encrypt,
        } => {
            let key = if encrypt { Some(key()?) } else { None };
            let c = admin
                .create_bucket(
                    &name,
                    CreateOptions {
                        zstd_level: compress,
                        key: key.as_ref(),
                    },
                )
                .await?;
            writeln!(out, "created bucket {} ({})", c.id, describe(&c))?;
        }
        BucketCmd::Ls { json } => {
            let buckets = admin.buckets().await?;
            if json {
                output::json(&buckets)?;
            } else {
                for c in buckets {
                    writeln!(out, "{}\tv{}\t{}", c.id, c.version, describe(&c))?;
                }
            }
        }
        BucketCmd::Show { name, json } => {
            let shown = admin.bucket(&name).await?;
            let config = &shown.config;
            if json {
                output::json(&Shown {
                    config,
                    blocks: shown.blocks,
                    stored_bytes: shown.stored_bytes,
                })?;
            } else {
                writeln!(out, "bucket:      {}", config.id)?;
                writeln!(out, "version:     {}", config.version)?;
                writeln!(out, "transforms:  {}", describe(config))?;
                writeln!(out, "blocks:      {}", shown.blocks)?;
                writeln!(out, "bytes:       {}", output::human(shown.stored_bytes))?;
                if let Some(why) = &shown.writes_refused {
                    writeln!(out, "writes:      refused ({why})")?;
                }
            }
        }
        BucketCmd::Update {
            name,
            compress,
            version,
        } => {
            let c = admin.update_bucket(&name, version, compress).await?;
            writeln!(
                out,
                "updated bucket {} to version {} ({})",
                c.id,
                c.version,
                describe(&c)
            )?;
        }
        BucketCmd::Rm { name } => {
            let blocks = admin.remove_bucket(&name).await?;
            writeln!(out, "removed bucket {name} and {blocks} blocks")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The key for a new encrypted bucket: from --key-file (created when it
/// does not exist) or HYDRA_KEY.
pub fn creation_key(ctx: &Ctx) -> Result<Key> {
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
