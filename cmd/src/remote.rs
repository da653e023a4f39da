//! The CLI's commands on buckets, the volume, export, import and
//! replication against a running daemon (`--api URL`): the same output as
//! embedded mode, over the HTTP API. (The commands on events, blocks and
//! objects go through `hydra-client`, one body for both modes:
//! `cli::events`, `cli::blobs`.)

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::cli::Command;
use crate::cli::bucket::BucketCmd;
use crate::cli::peer::PeerCmd;
use crate::cli::volume::VolumeCmd;
use crate::output::{self, human};
use hydra_client::path_segment as seg;

/// A client of one daemon.
pub struct Remote {
    base: String,
    client: Client,
}

/// How the CLI proves itself to a daemon: its token, and the CA that
/// signed the daemon's certificate when it is not a public one.
pub struct Access {
    pub token: Option<String>,
    pub cacert: Option<std::path::PathBuf>,
}

impl Remote {
    pub fn new(base: &str, access: &Access) -> Result<Remote> {
        let mut client = Client::builder().timeout(None::<Duration>);
        if let Some(token) = &access.token {
            let mut value = reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .context("--token: not a valid header value")?;
            value.set_sensitive(true);
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(reqwest::header::AUTHORIZATION, value);
            client = client.default_headers(headers);
        }
        if let Some(path) = &access.cacert {
            let pem = std::fs::read(path)
                .with_context(|| format!("--cacert: reading {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("--cacert: {} is not a PEM certificate", path.display()))?
            {
                client = client.add_root_certificate(cert);
            }
        }
        Ok(Remote {
            base: base.trim_end_matches('/').to_owned(),
            client: client.build().context("building the HTTP client")?,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends, and turns an error status into the daemon's one-line error.
    fn send(&self, req: RequestBuilder) -> Result<Response> {
        let r = req
            .send()
            .with_context(|| format!("cannot reach the daemon at {}", self.base))?;
        if r.status().is_success() {
            return Ok(r);
        }
        let status = r.status();
        let text = r.text().unwrap_or_default();
        match serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
        {
            Some(msg) => bail!("{msg}"),
            None => bail!("the daemon answered {status}: {text}"),
        }
    }

    fn json(&self, req: RequestBuilder) -> Result<Value> {
        Ok(self.send(req)?.json()?)
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }
}

pub fn run(remote: &Remote, command: Command) -> Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match command {
        Command::Volume(VolumeCmd::Info { json }) => {
            let v = remote.json(remote.get("/volume"))?;
            if json {
                output::json(&v)?;
            } else {
                writeln!(out, "backend:  {}", v["backend"].as_str().unwrap_or("?"))?;
                writeln!(out, "api:      {}", remote.base)?;
                writeln!(out, "peer id:  {}", v["peer_id"].as_str().unwrap_or("?"))?;
                writeln!(out, "buckets:  {}", v["buckets"])?;
                writeln!(out, "blocks:   {}", v["blocks"])?;
                let bytes = v["stored_bytes"].as_u64().unwrap_or(0);
                writeln!(out, "bytes:    {bytes} ({})", human(bytes))?;
            }
        }
        Command::Volume(VolumeCmd::Verify { json }) => {
            /// One volume's part of `POST /volume/verify`.
            #[derive(serde::Deserialize)]
            struct Verified {
                volume: String,
                report: hydra_bucket::VerifyReport,
                events: Option<hydra_eventlog::EventsReport>,
            }
            let v = remote.json(remote.client.post(remote.url("/volume/verify")))?;
            if json {
                output::json(&v)?;
            }
            let volumes: Vec<Verified> = serde_json::from_value(v)?;
            let mut all = hydra_bucket::VerifyReport::default();
            let mut events = hydra_eventlog::EventsReport::default();
            for vol in &volumes {
                if !json {
                    crate::cli::volume::print_verify(
                        &mut out,
                        Some(&vol.volume),
                        &vol.report,
                        vol.events.as_ref(),
                    )?;
                }
                all.corrupt.extend(vol.report.corrupt.iter().cloned());
                if let Some(e) = &vol.events {
                    events.corrupt.extend(e.corrupt.iter().cloned());
                }
            }
            return Ok(crate::cli::volume::verdict(&all, Some(&events)));
        }
        Command::Bucket(cmd) => bucket(remote, cmd, &mut out)?,
        Command::Gc(args) => {
            let mut req = remote.client.post(remote.url("/gc"));
            if let Some(b) = &args.bucket {
                req = req.query(&[("bucket", b.as_str())]);
            }
            let v = remote.json(req)?;
            if args.json {
                output::json(&v)?;
            } else {
                for c in v.as_array().into_iter().flatten() {
                    let r = &c["report"];
                    writeln!(
                        out,
                        "{}: freed {} blocks ({}), kept {}, from {} roots",
                        c["bucket"].as_str().unwrap_or("?"),
                        r["freed"],
                        human(r["freed_bytes"].as_u64().unwrap_or(0)),
                        r["kept"],
                        r["roots"]
                    )?;
                }
            }
        }
        Command::Stream(_)
        | Command::Event(_)
        | Command::Snapshot(_)
        | Command::Block(_)
        | Command::Object(_) => {
            unreachable!("these go through hydra-client (cli::events, cli::blobs)")
        }
        Command::Export(args) => {
            let mut names: Vec<(&str, String)> = args
                .streams
                .iter()
                .map(|s| ("stream", s.to_string()))
                .collect();
            if let Some(b) = &args.bucket {
                names.push(("bucket", b.to_string()));
            }
            if args.all {
                names.push(("all", "true".into()));
            }
            let mut r = remote.send(remote.get("/export").query(&names))?;
            let mut f = std::fs::File::create(&args.output)
                .with_context(|| format!("creating {}", args.output.display()))?;
            let n = std::io::copy(&mut r, &mut f)?;
            let what = match &args.bucket {
                Some(b) => format!("bucket {b}"),
                None if args.all => "everything".to_owned(),
                None => format!("{} streams", args.streams.len()),
            };
            writeln!(
                out,
                "exported {what} ({}) to {}",
                human(n),
                args.output.display()
            )?;
        }
        Command::Import(args) => {
            let f = std::fs::File::open(&args.file)
                .with_context(|| format!("opening {}", args.file.display()))?;
            let q: Vec<(&str, String)> =
                args.writers.iter().map(|w| ("writer", w.clone())).collect();
            let v = remote.json(
                remote
                    .client
                    .post(remote.url("/import"))
                    .query(&q)
                    .body(reqwest::blocking::Body::new(f)),
            )?;
            writeln!(out, "{}", crate::cli::transfer::imported(&v))?;
        }
        Command::Replicate(crate::cli::replicate::ReplicateCmd::Status { json }) => {
            drop(out);
            let v = remote.json(remote.get("/replication"))?;
            return crate::cli::replicate::print(&v, json);
        }
        Command::Replicate(crate::cli::replicate::ReplicateCmd::Wait { timeout }) => {
            drop(out);
            return crate::cli::replicate::wait(
                || remote.json(remote.get("/replication/lag")),
                || remote.json(remote.get("/replication")),
                Duration::from_secs(timeout),
            );
        }
        Command::Peer(PeerCmd::Id) => {
            let v = remote.json(remote.get("/health"))?;
            crate::cli::peer::print_id(
                &mut out,
                v["peer_id"].as_str().unwrap_or(""),
                v["public_key"].as_str().unwrap_or(""),
            )?;
        }
        Command::Peer(PeerCmd::Ls { json }) => {
            crate::cli::peer::print_peers(&mut out, &remote.json(remote.get("/peers"))?, json)?;
        }
        Command::Peer(PeerCmd::Connect { addr }) => {
            let v = remote.json(
                remote
                    .client
                    .post(remote.url("/peers"))
                    .json(&json!({ "addr": addr })),
            )?;
            writeln!(out, "connected to {}", v["peer_id"].as_str().unwrap_or(""))?;
        }
        Command::Token(cmd) => {
            drop(out);
            return crate::cli::token::run(remote, cmd);
        }
        Command::Daemon(_) => bail!("--api talks to a running daemon; start one without --api"),
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn bucket(remote: &Remote, cmd: BucketCmd, out: &mut impl Write) -> Result<()> {
    match cmd {
        BucketCmd::Create {
            name,
            compress,
            encrypt,
        } => {
            if encrypt {
                bail!(
                    "encrypted buckets are declared in the daemon's config (buckets: encrypt, key_file), which keeps their key"
                );
            }
            let c = remote.json(
                remote
                    .client
                    .put(remote.url(&format!("/buckets/{name}")))
                    .json(&json!({"zstd_level": compress})),
            )?;
            writeln!(out, "created bucket {} ({})", name, describe(&c))?;
        }
        BucketCmd::Ls { json } => {
            let v = remote.json(remote.get("/buckets"))?;
            if json {
                output::json(
                    &v.as_array()
                        .map(|a| a.iter().map(|b| b["config"].clone()).collect::<Vec<_>>()),
                )?;
            } else {
                for b in v.as_array().into_iter().flatten() {
                    let c = &b["config"];
                    writeln!(
                        out,
                        "{}\tv{}\t{}",
                        c["id"].as_str().unwrap_or("?"),
                        c["version"],
                        describe(c)
                    )?;
                }
            }
        }
        BucketCmd::Show { name, json } => {
            let v = remote.json(remote.get(&format!("/buckets/{name}")))?;
            if json {
                let mut c = v["config"].clone();
                c["blocks"] = v["blocks"].clone();
                c["stored_bytes"] = v["stored_bytes"].clone();
                output::json(&c)?;
            } else {
                let c = &v["config"];
                writeln!(out, "bucket:      {}", c["id"].as_str().unwrap_or("?"))?;
                writeln!(out, "version:     {}", c["version"])?;
                writeln!(out, "transforms:  {}", describe(c))?;
                writeln!(out, "blocks:      {}", v["blocks"])?;
                writeln!(
                    out,
                    "bytes:       {}",
                    human(v["stored_bytes"].as_u64().unwrap_or(0))
                )?;
            }
        }
        BucketCmd::Update {
            name,
            compress,
            version,
        } => {
            let c = remote.json(
                remote
                    .client
                    .patch(remote.url(&format!("/buckets/{name}")))
                    .json(&json!({"zstd_level": compress, "version": version})),
            )?;
            writeln!(
                out,
                "updated bucket {} to version {} ({})",
                name,
                c["version"],
                describe(&c)
            )?;
        }
        BucketCmd::Rm { name } => {
            let v = remote.json(
                remote
                    .client
                    .delete(remote.url(&format!("/buckets/{name}"))),
            )?;
            writeln!(out, "removed bucket {name} and {} blocks", v["blocks"])?;
        }
    }
    Ok(())
}

fn describe(c: &Value) -> String {
    let t = &c["transforms"];
    let mut parts = Vec::new();
    if let Some(l) = t["zstd_level"].as_i64() {
        parts.push(format!("zstd:{l}"));
    }
    if let Some(e) = t["encryption"]["cipher"].as_str() {
        parts.push(e.to_owned());
    }
    if parts.is_empty() {
        "no transforms".into()
    } else {
        parts.join(", ")
    }
}

impl crate::cli::token::TokenAdmin for Remote {
    fn create(&self, name: &str, scopes: &[String]) -> Result<crate::access::TokenInfo> {
        let req = self
            .client
            .post(self.url("/tokens"))
            .json(&json!({ "name": name, "scopes": scopes }));
        Ok(self.send(req)?.json()?)
    }

    fn list(&self) -> Result<Vec<crate::access::TokenInfo>> {
        Ok(self.send(self.get("/tokens"))?.json()?)
    }

    fn revoke(&self, name: &str) -> Result<()> {
        self.send(
            self.client
                .delete(self.url(&format!("/tokens/{}", seg(name)))),
        )?;
        Ok(())
    }
}
