//! `hydra gc`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use hydra_bucket::BucketName;
use hydra_eventlog::Admin;

use super::parse_bucket;
use crate::output::{self, human};

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Collect only this bucket (default: every bucket that can be read;
    /// encrypted buckets need their key, except a replica's, collected
    /// blind through its objects' closures when named here).
    #[arg(long, short, value_parser = parse_bucket)]
    pub bucket: Option<BucketName>,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `hydra gc` on any [`Admin`].
pub async fn run<A: Admin>(admin: &A, args: GcArgs) -> Result<ExitCode> {
    let collected = admin.gc(args.bucket.as_ref()).await?;
    if args.bucket.is_none() {
        for c in admin.buckets().await? {
            if !collected.iter().any(|g| g.bucket == c.id.as_str()) {
                eprintln!(
                    "hydra: skipping encrypted bucket {} (no key for it here)",
                    c.id
                );
            }
        }
    }
    if args.json {
        output::json(&collected)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    for c in &collected {
        let r = &c.report;
        writeln!(
            out,
            "{}: freed {} blocks ({}), kept {}, from {} roots",
            c.bucket,
            r.freed,
            human(r.freed_bytes),
            r.kept,
            r.roots
        )?;
        for m in &r.missing {
            writeln!(out, "{}: missing block {m} (reached from a root)", c.bucket)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
