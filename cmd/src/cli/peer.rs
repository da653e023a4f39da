//! `hydra peer id|ls|connect`: this node's libp2p identity and its peers.
//! `id` reads the volume (or asks the daemon with `--api`); `ls` and
//! `connect` ask the daemon, which runs the node.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use clap::Subcommand;
use serde_json::Value;

use crate::context::Ctx;

#[derive(Debug, Subcommand)]
pub enum PeerCmd {
    /// This volume's peer id (what other nodes name in /p2p/ and
    /// `writers`), and its public key.
    Id,
    /// Peers the daemon is connected to: addresses and ping time.
    Ls {
        #[arg(long)]
        json: bool,
    },
    /// Connect the daemon to a peer: /ip4/A/tcp/P/p2p/<peer id>.
    Connect { addr: String },
}

/// `hydra peer id` on the data directory.
pub fn id(ctx: &Ctx) -> Result<()> {
    let store = ctx.store()?;
    let identity = hydra_volume::Identity::load_or_create(store.volume().as_ref())?;
    print_id(
        &mut std::io::stdout().lock(),
        &identity.peer_id().to_string(),
        &hydra_volume::hex::encode(&identity.public_key()),
    )
}

/// `peer` commands asked of the daemon `client` talks to.
pub fn run(
    runtime: &tokio::runtime::Runtime,
    client: &hydra_client::Client,
    cmd: PeerCmd,
) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        PeerCmd::Id => {
            let who = runtime.block_on(client.identity())?;
            print_id(&mut out, &who.peer_id, &who.public_key)?;
        }
        PeerCmd::Ls { json } => print_peers(&mut out, &runtime.block_on(client.peers())?, json)?,
        PeerCmd::Connect { addr } => {
            let peer = runtime.block_on(client.connect(&addr))?;
            writeln!(out, "connected to {peer}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_id(out: &mut impl Write, peer_id: &str, public_key: &str) -> Result<()> {
    writeln!(out, "{peer_id}")?;
    writeln!(out, "public key: {public_key}")?;
    Ok(())
}

/// Prints a `GET /peers` answer.
fn print_peers(out: &mut impl Write, v: &Value, json: bool) -> Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, v)?;
        writeln!(out)?;
        return Ok(());
    }
    if v["p2p"] != true {
        writeln!(out, "p2p is off (start the daemon with --p2p MULTIADDR)")?;
        return Ok(());
    }
    for p in v["peers"].as_array().into_iter().flatten() {
        let addrs: Vec<&str> = p["addresses"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let rtt = p["rtt_ms"]
            .as_f64()
            .map_or("-".into(), |ms| format!("{ms:.2} ms"));
        writeln!(
            out,
            "{} {} {rtt}",
            p["peer_id"].as_str().unwrap_or(""),
            addrs.join(",")
        )?;
    }
    Ok(())
}
