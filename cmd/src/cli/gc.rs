//! `hydra gc`.

use std::process::ExitCode;

use anyhow::Result;
use hydra_bucket::{BucketError, BucketName};

use super::parse_bucket;
use crate::context::Ctx;
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

#[derive(serde::Serialize)]
struct Collected {
    bucket: BucketName,
    #[serde(flatten)]
    report: hydra_bucket::GcReport,
}

pub fn run(ctx: &Ctx, args: GcArgs) -> Result<ExitCode> {
    let store = ctx.store()?;
    let names = match args.bucket {
        Some(b) => vec![b],
        None => store.buckets()?.into_iter().map(|c| c.id).collect(),
    };
    let all = names.len() > 1;
    let mut reports = Vec::new();
    for name in names {
        let bucket = match ctx.bucket(&store, &name) {
            Ok(b) if all && b.is_encrypted() && ctx.key()?.is_none() => {
                eprintln!("hydra: skipping encrypted bucket {name} (no key given)");
                continue;
            }
            Err(e) if all && matches!(e.downcast_ref(), Some(BucketError::WrongKey(_))) => {
                eprintln!("hydra: skipping encrypted bucket {name} (the key given is not its key)");
                continue;
            }
            b => b?,
        };
        let report = bucket.gc()?;
        reports.push(Collected {
            bucket: name,
            report,
        });
    }
    if args.json {
        output::json(&reports)?;
    } else {
        for c in &reports {
            println!(
                "{}: freed {} blocks ({}), kept {}, from {} roots",
                c.bucket,
                c.report.freed,
                human(c.report.freed_bytes),
                c.report.kept,
                c.report.roots
            );
            for m in &c.report.missing {
                println!("{}: missing block {m} (reached from a root)", c.bucket);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
