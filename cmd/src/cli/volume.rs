//! `hydra volume info|verify`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;

use hydra_bucket::VerifyReport;
use hydra_eventlog::{Admin, EventsReport};

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

/// `volume info` and `volume verify` on any [`Admin`]; `at` says where
/// the volume is (its directory, or the daemon's URL).
pub async fn run<A: Admin>(admin: &A, at: &str, cmd: VolumeCmd) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        VolumeCmd::Info { json } => {
            let info = admin.volume().await?;
            if json {
                output::json(&info)?;
            } else {
                writeln!(out, "backend:  {}", info.backend)?;
                writeln!(out, "at:       {at}")?;
                writeln!(out, "peer id:  {}", info.peer_id)?;
                writeln!(out, "buckets:  {}", info.buckets)?;
                writeln!(out, "blocks:   {}", info.blocks)?;
                let bytes = info.stored_bytes;
                writeln!(out, "bytes:    {bytes} ({})", human(bytes))?;
            }
            Ok(ExitCode::SUCCESS)
        }
        VolumeCmd::Verify { json } => {
            let volumes = admin.verify().await?;
            if json {
                output::json(&volumes)?;
            }
            let mut all = VerifyReport::default();
            let mut events = EventsReport::default();
            for v in &volumes {
                if !json {
                    // A daemon's volumes are named; one volume needs no name.
                    let name = (volumes.len() > 1).then_some(v.volume.as_str());
                    print_verify(&mut out, name, &v.report, v.events.as_ref())?;
                }
                all.corrupt.extend(v.report.corrupt.iter().cloned());
                if let Some(e) = &v.events {
                    events.corrupt.extend(e.corrupt.iter().cloned());
                }
            }
            Ok(verdict(&all, &events))
        }
    }
}

/// Prints what `volume verify` found on one volume (`name`, when the
/// daemon serves several): each corrupt block and event, then the counts.
fn print_verify(
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
fn verdict(report: &VerifyReport, events: &EventsReport) -> ExitCode {
    let events = events.corrupt.len();
    if report.corrupt.is_empty() && events == 0 {
        return ExitCode::SUCCESS;
    }
    eprintln!(
        "hydra: {} corrupt blocks, {events} corrupt events",
        report.corrupt.len()
    );
    ExitCode::from(1)
}
