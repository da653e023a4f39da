//! `hydra snapshot save|load|ls|rm`.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use hydra_eventlog::{EventStore, StreamId};
use serde_json::json;

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

/// One body for the data directory's event log and a daemon's.
pub async fn run<S: EventStore>(store: &S, cmd: SnapshotCmd) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        SnapshotCmd::Save {
            stream,
            version,
            data,
            metadata,
        } => {
            let r = store
                .save_snapshot(
                    &stream,
                    version,
                    input_bytes(Some(&data))?,
                    input_bytes(metadata.as_deref())?,
                )
                .await?;
            writeln!(out, "saved snapshot of {stream} at version {version}: {r}")?;
        }
        SnapshotCmd::Load { stream, at, json } => {
            let s = store.load_snapshot(&stream, at).await?;
            if json {
                output::json(&as_json(&s))?;
            } else {
                out.write_all(&s.data)?;
            }
        }
        SnapshotCmd::Ls { stream } => {
            for s in store.list_snapshots(&stream).await? {
                writeln!(out, "{}\t{}", s.version, s.reference)?;
            }
        }
        SnapshotCmd::Rm {
            stream,
            version,
            all,
        } => {
            if all {
                let n = store.delete_snapshots(&stream).await?;
                writeln!(out, "removed {n} snapshots of {stream}")?;
            } else {
                let v = version.expect("clap requires it");
                if !store.delete_snapshot(&stream, v).await? {
                    anyhow::bail!("no snapshot of stream {stream} at version {v}");
                }
                writeln!(out, "removed snapshot of {stream} at version {v}")?;
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// A snapshot as `snapshot load --json` prints it.
fn as_json(s: &hydra_eventlog::Snapshot) -> serde_json::Value {
    json!({
        "stream": s.stream.as_str(),
        "version": s.version,
        "timestamp": s.timestamp,
        "data": String::from_utf8_lossy(&s.data),
        "metadata": String::from_utf8_lossy(&s.metadata),
    })
}
