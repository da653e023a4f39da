//! `hydra replicate status`: how the daemon's follow loops are doing.
//! Replication runs inside the daemon, so this always asks one: `--api`,
//! or the daemon that holds the data directory.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Result, bail};
use clap::Subcommand;
use serde_json::Value;

use crate::context::Ctx;
use crate::output;

#[derive(Debug, Subcommand)]
pub enum ReplicateCmd {
    /// Each followed writer: peer, prefix, rounds, events replicated,
    /// the peer's log position, the last success and the last error.
    Status {
        #[arg(long)]
        json: bool,
    },
}

/// The daemon that holds the data directory, from the address file it
/// writes there.
pub fn daemon_url(ctx: &Ctx) -> Result<String> {
    match std::fs::read_to_string(ctx.data.join(crate::daemon::ADDRESS_FILE)) {
        Ok(url) => Ok(url.trim().to_owned()),
        Err(_) => bail!(
            "replication runs in the daemon, and none holds {}: start `hydra daemon --follow WRITER@MULTIADDR`, or pass --api URL",
            ctx.data.display()
        ),
    }
}

/// Prints a `GET /replication` answer; exits 1 if a follow loop's last
/// round failed, so scripts can alert on it.
pub fn print(v: &Value, json: bool) -> Result<ExitCode> {
    let follows = v["follows"].as_array().cloned().unwrap_or_default();
    let failing = follows
        .iter()
        .filter(|f| !f["last_error"].is_null())
        .count();
    if json {
        output::json(v)?;
    } else {
        let mut out = std::io::stdout().lock();
        if follows.is_empty() {
            writeln!(out, "following nothing (see p2p.follow or --follow)")?;
        }
        for f in &follows {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_owned();
            writeln!(
                out,
                "{} prefix {:?}: {} events in {} rounds, peer at position {}, {}",
                s("peer"),
                s("prefix"),
                f["events"],
                f["rounds"],
                f["peer_next_position"],
                match f["last_error"].as_str() {
                    Some(e) => format!("failing: {e}"),
                    None if f["last_ok_unix_ms"].is_null() => "not answered yet".into(),
                    None => "ok".into(),
                }
            )?;
        }
    }
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
