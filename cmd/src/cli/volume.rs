//! `hydra volume info|verify`.

use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde::Serialize;

use hydra_bucket::VerifyReport;
use hydra_eventlog::EventsReport;

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
                return Ok(verdict(&report, Some(&events)));
            }
            print_verify(&mut std::io::stdout().lock(), None, &report, Some(&events))?;
            Ok(verdict(&report, Some(&events)))
        }
    }
}

/// Prints what `volume verify` found on one volume (`name`, when the
/// daemon serves several): each corrupt block and event, then the counts.
pub(crate) fn print_verify(
    out: &mut impl std::io::Write,
    name: Option<&str>,
    report: &VerifyReport,
    events: Option<&EventsReport>,
) -> std::io::Result<()> {
    for c in &report.corrupt {
        let bucket = c
            .bucket
            .as_ref()
            .map_or("(removed)".into(), |b| b.to_string());
        writeln!(
            out,
            "corrupt {} bucket {bucket} hashes to {}",
            c.reference, c.actual
        )?;
    }
    if let Some(events) = events {
        for c in &events.corrupt {
            writeln!(out, "corrupt {c}")?;
        }
        writeln!(
            out,
            "{} event records, {} bundles and {} bundle tree tiles checked, {} locked (no key), {} corrupt",
            events.records,
            events.bundles,
            events.tiles,
            events.locked,
            events.corrupt.len()
        )?;
    }
    writeln!(
        out,
        "{}{} blocks, {} checked, {} corrupt",
        name.map(|n| format!("{n}: ")).unwrap_or_default(),
        report.blocks,
        human(report.stored_bytes),
        report.corrupt.len()
    )
}

/// The exit code for what `volume verify` found: 1, with one line on
/// stderr, if anything is corrupt.
pub(crate) fn verdict(report: &VerifyReport, events: Option<&EventsReport>) -> ExitCode {
    let events = events.map_or(0, |e| e.corrupt.len());
    if report.corrupt.is_empty() && events == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "hydra: {} corrupt blocks, {events} corrupt events",
        report.corrupt.len()
    );
    ExitCode::from(1)
}
