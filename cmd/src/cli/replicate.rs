//! `hydra replicate status|wait`: how the daemon's replication is doing.
//! Replication runs inside the daemon, so these always ask one: `--api`,
//! or the daemon that holds the data directory.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::context::Ctx;
use crate::output::{self, human};

#[derive(Debug, Subcommand)]
pub enum ReplicateCmd {
    /// Each replica bucket's streams and objects: peer, progress, what is
    /// behind, the last success and the last error; p2p counters.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Wait until every replica bucket's streams and objects have caught
    /// up with its peers (a progress bar on a terminal); exit 1 on timeout.
    Wait {
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 600)]
        timeout: u64,
    },
}

/// `replicate status` and `wait`, asked of the daemon `client` talks to.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    client: &hydra_client::Client,
    cmd: ReplicateCmd,
) -> Result<ExitCode> {
    match cmd {
        ReplicateCmd::Status { json } => print(&runtime.block_on(client.replication())?, json),
        ReplicateCmd::Wait { timeout } => wait(
            || Ok(runtime.block_on(client.replication_lag())?),
            || Ok(runtime.block_on(client.replication())?),
            Duration::from_secs(timeout),
        ),
    }
}

/// The daemon that holds the data directory, from the address file it
/// writes there.
pub fn daemon_url(ctx: &Ctx) -> Result<String> {
    match std::fs::read_to_string(ctx.data.join(crate::daemon::ADDRESS_FILE)) {
        Ok(url) => Ok(url.trim().to_owned()),
        Err(_) => bail!(
            "replication runs in the daemon, and none holds {}: start `hydra daemon --replicate BUCKET=WRITER@MULTIADDR` (or with buckets[].replicate in its config), or pass --api URL",
            ctx.data.display()
        ),
    }
}

fn loops(v: &Value) -> impl Iterator<Item = &Value> {
    let list = |k: &str| v[k].as_array().into_iter().flatten();
    list("follows").chain(list("buckets"))
}

/// The strings of a JSON array (none for anything else).
fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn state(f: &Value) -> String {
    match f["last_error"].as_str() {
        Some(e) => format!("failing: {e}"),
        None if f["last_ok_unix_ms"].is_null() => "not answered yet".into(),
        None => "ok".into(),
    }
}

/// Prints a `GET /replication` answer; exits 1 if a loop's last round
/// failed, so scripts can alert on it.
fn print(v: &Value, json: bool) -> Result<ExitCode> {
    let failing = loops(v).filter(|f| !f["last_error"].is_null()).count();
    if json {
        output::json(v)?;
    } else {
        let mut out = std::io::stdout().lock();
        if loops(v).next().is_none() {
            writeln!(
                out,
                "replicating nothing (see buckets[].replicate or --replicate)"
            )?;
        }
        for f in v["follows"].as_array().into_iter().flatten() {
            let s = |k: &str| f[k].as_str().unwrap_or("").to_owned();
            let (writers, forked) = (strings(&f["writers"]), strings(&f["equivocations"]));
            writeln!(
                out,
                "streams of bucket {} by {} from {}: {} events{} in {} rounds, peer at position {}{}, {}",
                s("bucket"),
                writers.join(", "),
                s("peer"),
                f["events"],
                match f["events_per_s"].as_u64() {
                    Some(r) if r > 0 => format!(" ({r}/s now)"),
                    _ => String::new(),
                },
                f["rounds"],
                f["peer_next_position"],
                if forked.is_empty() {
                    String::new()
                } else {
                    format!(", writer equivocated on {}", forked.join(", "))
                },
                state(f)
            )?;
            let behind = f["behind"].as_array().cloned().unwrap_or_default();
            for l in behind.iter().take(5) {
                writeln!(
                    out,
                    "  {} behind: {} of {} events",
                    l["stream"].as_str().unwrap_or(""),
                    l["local"],
                    l["remote"]
                )?;
            }
            if behind.len() > 5 {
                writeln!(out, "  and {} more streams behind", behind.len() - 5)?;
            }
        }
        for b in v["buckets"].as_array().into_iter().flatten() {
            let n = |k: &str| b[k].as_u64().unwrap_or(0);
            writeln!(
                out,
                "bucket {} from {}: manifest {} (peer {}), {} objects, {} behind ({} blocks), {} blocks / {} received{}, {} bad, {}",
                b["bucket"].as_str().unwrap_or(""),
                b["peer"].as_str().unwrap_or("-"),
                b["local_seq"],
                b["remote_seq"],
                n("objects"),
                n("objects_behind"),
                n("blocks_behind"),
                n("blocks_received"),
                human(n("bytes_received")),
                match n("bytes_per_s") {
                    0 => String::new(),
                    r => format!(" ({}/s now)", human(r)),
                },
                n("bad_blocks"),
                state(b)
            )?;
        }
    }
    Ok(if failing > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Asks the daemon (`lag`: `GET /replication/lag`, which asks the peers)
/// until nothing is behind; shows progress from `status` (`GET
/// /replication`) meanwhile.
fn wait(
    lag: impl Fn() -> Result<Value>,
    status: impl Fn() -> Result<Value>,
    timeout: Duration,
) -> Result<ExitCode> {
    let deadline = Instant::now() + timeout;
    let bar = if std::io::stderr().is_terminal() {
        let b = ProgressBar::new(0).with_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} blocks {msg}")
                .expect("valid template"),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        ProgressBar::hidden()
    };
    loop {
        let now = lag()?;
        let v = status()?;
        let (mut received, mut behind, mut events) = (0, 0, 0);
        for f in loops(&v) {
            received += f["blocks_received"].as_u64().unwrap_or(0);
            behind += f["blocks_behind"].as_u64().unwrap_or(0);
            events += f["events"].as_u64().unwrap_or(0);
        }
        bar.set_length(received + behind);
        bar.set_position(received);
        bar.set_message(format!("{events} events"));
        if now["caught_up"] == true {
            bar.finish_and_clear();
            println!(
                "caught up: {events} events, {received} blocks replicated since the daemon started"
            );
            return Ok(ExitCode::SUCCESS);
        }
        if Instant::now() >= deadline {
            bar.abandon();
            bail!(
                "not caught up after {} s: {}",
                timeout.as_secs(),
                why(&v, &now)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The first loop still behind, and why.
fn why(status: &Value, lag: &Value) -> String {
    let named = |kind: &str, i: usize| {
        let bucket = status[kind][i]["bucket"].as_str().unwrap_or("?");
        match kind {
            "buckets" => format!("bucket {bucket}"),
            _ => format!("streams of bucket {bucket}"),
        }
    };
    for kind in ["follows", "buckets"] {
        for (i, l) in lag[kind].as_array().into_iter().flatten().enumerate() {
            if let Some(e) = l["error"].as_str() {
                return format!("{}: {e}", named(kind, i));
            }
            if l["behind"].as_u64().unwrap_or(0) > 0 {
                return format!("{}: {} behind", named(kind, i), l["behind"]);
            }
        }
    }
    "no answer".into()
}
