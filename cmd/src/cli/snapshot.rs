//! `hydra snapshot save|load|ls|rm`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use hydra_eventlog::StreamId;
use serde_json::json;

use super::stream::open;
use crate::context::Ctx;
use crate::events::input_bytes;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum SnapshotCmd {
    /// Save a snapshot of STREAM at VERSION.
    Save {
        stream: StreamId,
        version: u64,
        /// The snapshot: JSON text, @FILE, or @- for stdin.
        #[arg(long, short = 'd')]
        data: String,
        #[arg(long, short = 'm')]
        metadata: Option<String>,
    },
    /// Write the latest snapshot's data (at or before --at) to stdout.
    Load {
        stream: StreamId,
        #[arg(long)]
        at: Option<u64>,
        /// Print JSON with the version and metadata.
        #[arg(long)]
        json: bool,
    },
    /// List a stream's snapshots.
    Ls { stream: StreamId },
    /// Delete the snapshot at VERSION, or every snapshot with --all.
    Rm {
        stream: StreamId,
        #[arg(required_unless_present = "all")]
        version: Option<u64>,
        #[arg(long)]
        all: bool,
    },
}

pub fn run(ctx: &Ctx, cmd: SnapshotCmd) -> Result<ExitCode> {
    let log = open(ctx)?;
    let mut out = std::io::stdout().lock();
    match cmd {
        SnapshotCmd::Save {
            stream,
            version,
            data,
            metadata,
        } => {
            let r = log.save_snapshot(
                &stream,
                version,
                input_bytes(Some(&data))?,
                input_bytes(metadata.as_deref())?,
            )?;
            writeln!(out, "saved snapshot of {stream} at version {version}: {r}")?;
        }
        SnapshotCmd::Load { stream, at, json } => {
            let s = log.load_snapshot(&stream, at)?;
            if json {
                output::json(&as_json(&s))?;
            } else {
                out.write_all(&s.data)?;
            }
        }
        SnapshotCmd::Ls { stream } => {
            for s in log.list_snapshots(&stream)? {
                writeln!(out, "{}\t{}", s.version, s.reference)?;
            }
        }
        SnapshotCmd::Rm {
            stream,
            version,
            all,
        } => {
            if all {
                let n = log.delete_snapshots(&stream)?;
                writeln!(out, "removed {n} snapshots of {stream}")?;
            } else {
                let v = version.expect("clap requires it");
                if !log.delete_snapshot(&stream, v)? {
                    anyhow::bail!("no snapshot of stream {stream} at version {v}");
                }
                writeln!(out, "removed snapshot of {stream} at version {v}")?;
            }
        }
    }
    out.flush()?;
    log.close()?;
    Ok(ExitCode::SUCCESS)
}

/// A snapshot as `snapshot load --json` prints it, embedded or remote.
pub(crate) fn as_json(s: &hydra_eventlog::Snapshot) -> serde_json::Value {
    json!({
        "stream": s.stream.as_str(),
        "version": s.version,
        "timestamp": s.timestamp,
        "data": String::from_utf8_lossy(&s.data),
        "metadata": String::from_utf8_lossy(&s.metadata),
    })
}
