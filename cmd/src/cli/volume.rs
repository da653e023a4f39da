//! `hydra volume info|verify`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use crate::context::Ctx;
use crate::output::{self, human};

#[derive(Debug, Subcommand)]
pub enum VolumeCmd {
    /// Backend, path, peer id, block count and bytes.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Re-hash every stored block and check every stored event against
    /// its hash; list what is corrupt (exit 1 if anything is).
    Verify {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Serialize)]
struct Info {
    backend: String,
    path: String,
    peer_id: String,
    buckets: usize,
    blocks: u64,
    stored_bytes: u64,
}

pub fn run(ctx: &Ctx, cmd: VolumeCmd) -> Result<ExitCode> {
    let store = ctx.store()?;
    match cmd {
        VolumeCmd::Info { json } => {
            let identity = hydra_volume::Identity::load_or_create(&**store.volume())?;
            let stats = store.block_stats()?;
            let info = Info {
                backend: store.volume().backend().to_string(),
                path: ctx.data.display().to_string(),
                peer_id: identity.peer_id().to_string(),
                buckets: store.buckets()?.len(),
                blocks: stats.blocks,
                stored_bytes: stats.stored_bytes,
            };
            if json {
                output::json(&info)?;
            } else {
                println!("backend:  {}", info.backend);
                println!("path:     {}", info.path);
                println!("peer id:  {}", info.peer_id);
                println!("buckets:  {}", info.buckets);
                println!("blocks:   {}", info.blocks);
                println!(
                    "bytes:    {} ({})",
                    info.stored_bytes,
                    human(info.stored_bytes)
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        VolumeCmd::Verify { json } => {
            drop(store);
            let log = crate::cli::stream::open(ctx)?;
            let report = log.store().verify(|_| {})?;
            let events = log.verify(|_| {})?;
            if json {
                let mut v = serde_json::to_value(&report)?;
                v["events"] = serde_json::to_value(&events)?;
                output::json(&v)?;
            } else {
                for c in &report.corrupt {
                    let bucket = c
                        .bucket
                        .as_ref()
                        .map_or("(removed)".into(), |b| b.to_string());
                    println!(
                        "corrupt {} bucket {bucket} hashes to {}",
                        c.reference, c.actual
                    );
                }
                for c in &events.corrupt {
                    println!("corrupt {c}");
                }
                println!(
                    "{} event records and {} bundles checked, {} locked (no key), {} corrupt",
                    events.records,
                    events.bundles,
                    events.locked,
                    events.corrupt.len()
                );
                println!(
                    "{} blocks, {} checked, {} corrupt",
                    report.blocks,
                    human(report.stored_bytes),
                    report.corrupt.len()
                );
            }
            if report.corrupt.is_empty() && events.corrupt.is_empty() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "hydra: {} corrupt blocks, {} corrupt events",
                    report.corrupt.len(),
                    events.corrupt.len()
                );
                Ok(ExitCode::from(1))
            }
        }
    }
}
