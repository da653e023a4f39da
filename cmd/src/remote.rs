//! Every CLI command against a running daemon (`--api URL`): the same
//! output as embedded mode, over the HTTP API.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::blocking::{Client, RequestBuilder, Response};
use serde_json::{Value, json};

use crate::cli::block::BlockCmd;
use crate::cli::bucket::BucketCmd;
use crate::cli::object::ObjectCmd;
use crate::cli::peer::PeerCmd;
use crate::cli::snapshot::SnapshotCmd;
use crate::cli::stream::StreamCmd;
use crate::cli::volume::VolumeCmd;
use crate::cli::{Command, EventCmd};
use crate::events::{event_from_json, input_bytes, print_event};
use crate::output::{self, human};

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

/// Percent-encodes one path segment (stream ids, keys may hold anything).
fn seg(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// An object key: segments encoded, slashes kept.
fn key_path(k: &str) -> String {
    k.split('/').map(seg).collect::<Vec<_>>().join("/")
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
        Command::Block(cmd) => return block(remote, cmd, &mut out),
        Command::Object(cmd) => object(remote, cmd, &mut out)?,
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
        Command::Stream(cmd) => return stream(remote, cmd, &mut out),
        Command::Event(EventCmd::Get { id }) => {
            let v = remote.json(remote.get(&format!("/events/{id}")))?;
            output::json(&v)?;
        }
        Command::Snapshot(cmd) => snapshot(remote, cmd, &mut out)?,
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

fn block(remote: &Remote, cmd: BlockCmd, out: &mut impl Write) -> Result<ExitCode> {
    match cmd {
        BlockCmd::Put { bucket, pin, file } => {
            let (mut reader, _) = crate::context::input(file.as_deref())?;
            let mut data = Vec::new();
            reader.read_to_end(&mut data)?;
            let v = remote.json(
                remote
                    .client
                    .put(remote.url(&format!("/buckets/{}/blocks", bucket.bucket)))
                    .query(&[("pin", pin)])
                    .body(data),
            )?;
            writeln!(out, "{}", v["reference"].as_str().unwrap_or("?"))?;
        }
        BlockCmd::Get { bucket, reference } => {
            let mut r = remote
                .send(remote.get(&format!("/buckets/{}/blocks/{reference}", bucket.bucket)))?;
            std::io::copy(&mut r, out)?;
        }
        BlockCmd::Has { bucket, reference } => {
            let r = remote
                .client
                .head(remote.url(&format!("/buckets/{}/blocks/{reference}", bucket.bucket)))
                .send()
                .with_context(|| format!("cannot reach the daemon at {}", remote.base))?;
            if r.status().is_success() {
                writeln!(out, "yes")?;
            } else if r.status() == 404 {
                writeln!(out, "no")?;
                return Ok(ExitCode::from(1));
            } else {
                remote
                    .send(remote.get(&format!("/buckets/{}/blocks/{reference}", bucket.bucket)))?;
            }
        }
        BlockCmd::Rm { bucket, reference } => {
            remote.send(
                remote
                    .client
                    .delete(remote.url(&format!("/buckets/{}/blocks/{reference}", bucket.bucket))),
            )?;
            writeln!(out, "removed {reference}")?;
        }
        BlockCmd::Ls { bucket, json } => {
            let v = remote.json(remote.get(&format!("/buckets/{}/blocks", bucket.bucket)))?;
            if json {
                output::json(&v)?;
            } else {
                for b in v.as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "{}\t{}",
                        b["reference"].as_str().unwrap_or("?"),
                        b["stored_bytes"]
                    )?;
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn object(remote: &Remote, cmd: ObjectCmd, out: &mut impl Write) -> Result<()> {
    match cmd {
        ObjectCmd::Put { bucket, key, file } => {
            // Refusals before the upload: the daemon answers them without
            // reading the body, which a large upload would see as a
            // broken pipe instead of the reason.
            let shown = remote.json(remote.get(&format!("/buckets/{}", bucket.bucket)))?;
            if let Some(why) = shown["writes_refused"].as_str() {
                bail!("{why}");
            }
            let (reader, len) = crate::context::input(file.as_deref())?;
            let bar = output::bytes_bar(len);
            let progress = Progress {
                inner: reader,
                bar: bar.clone(),
                read: 0,
            };
            let body = reqwest::blocking::Body::new(progress);
            let v = remote.json(
                remote
                    .client
                    .put(remote.url(&format!(
                        "/buckets/{}/objects/{}",
                        bucket.bucket,
                        key_path(&key)
                    )))
                    .body(body),
            )?;
            bar.finish_and_clear();
            writeln!(
                out,
                "{}\t{}\t{}",
                v["root"].as_str().unwrap_or("?"),
                v["size"],
                v["key"].as_str().unwrap_or("?")
            )?;
        }
        ObjectCmd::Get { bucket, key } => {
            let r = remote.send(remote.get(&format!(
                "/buckets/{}/objects/{}",
                bucket.bucket,
                key_path(&key)
            )))?;
            let bar = output::bytes_bar(r.content_length());
            let mut progress = Progress {
                inner: r,
                bar: bar.clone(),
                read: 0,
            };
            let mut w = std::io::BufWriter::with_capacity(1 << 20, out);
            std::io::copy(&mut progress, &mut w)?;
            w.flush()?;
            bar.finish_and_clear();
        }
        ObjectCmd::Ls {
            bucket,
            prefix,
            json,
        } => {
            let v = remote.json(
                remote
                    .get(&format!("/buckets/{}/objects", bucket.bucket))
                    .query(&[("prefix", prefix)]),
            )?;
            if json {
                output::json(&v)?;
            } else {
                for o in v.as_array().into_iter().flatten() {
                    writeln!(
                        out,
                        "{}\t{}\t{}",
                        o["key"].as_str().unwrap_or("?"),
                        human(o["size"].as_u64().unwrap_or(0)),
                        o["root"].as_str().unwrap_or("?")
                    )?;
                }
            }
        }
        ObjectCmd::Rm { bucket, key } => {
            remote.send(remote.client.delete(remote.url(&format!(
                "/buckets/{}/objects/{}",
                bucket.bucket,
                key_path(&key)
            ))))?;
            writeln!(out, "removed {key}")?;
        }
    }
    Ok(())
}

/// A reader that advances a progress bar.
struct Progress<R> {
    inner: R,
    bar: indicatif::ProgressBar,
    read: u64,
}

impl<R: Read> Read for Progress<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        self.bar.set_position(self.read);
        Ok(n)
    }
}

/// Bytes as an event payload field: JSON as itself, else base64.
/// Puts `bytes` into an event body as `NAME_base64`: the daemon stores
/// exactly these bytes, as the embedded CLI does (JSON text re-serialised
/// on the way would change them, and with them the event's Merkle leaf).
fn payload(obj: &mut serde_json::Map<String, Value>, name: &str, bytes: Vec<u8>) {
    if !bytes.is_empty() {
        obj.insert(format!("{name}_base64"), STANDARD.encode(&bytes).into());
    }
}

/// The query of a ranged read: direction, and from and count when given.
fn range_query(from: Option<u64>, count: u64, backward: bool) -> Vec<(&'static str, String)> {
    let direction = if backward { "backwards" } else { "forwards" };
    let mut q = vec![("direction", direction.to_owned())];
    if let Some(f) = from {
        q.push(("from", f.to_string()));
    }
    if count != u64::MAX {
        q.push(("count", count.to_string()));
    }
    q
}

/// Reads NDJSON events from a response, printing each.
fn print_ndjson(r: Response, out: &mut impl Write, json: bool) -> Result<()> {
    for line in BufReader::new(r).lines() {
        let line = line?;
        if line.is_empty() {
            continue;
        }
        let e = event_from_json(&serde_json::from_str(&line)?)?;
        print_event(out, &e, json)?;
    }
    Ok(())
}

fn stream(remote: &Remote, cmd: StreamCmd, out: &mut impl Write) -> Result<ExitCode> {
    let ndjson = |path: String, query: Vec<(&str, String)>| -> Result<Response> {
        remote.send(
            remote
                .get(&path)
                .query(&query)
                .header("Accept", "application/x-ndjson"),
        )
    };
    match cmd {
        StreamCmd::Append {
            stream,
            event_type,
            expected,
            data,
            metadata,
            id,
            bucket,
            json,
        } => {
            let mut e = serde_json::Map::new();
            e.insert("type".into(), event_type.into());
            if let Some(id) = id {
                e.insert("id".into(), id.to_string().into());
            }
            payload(&mut e, "data", input_bytes(data.as_deref())?);
            payload(&mut e, "metadata", input_bytes(metadata.as_deref())?);
            let v = remote.json(
                remote
                    .client
                    .post(remote.url(&format!("/streams/{}", seg(stream.as_str()))))
                    .query(&[("bucket", bucket.as_ref().map(|b| b.as_str()))])
                    .header("Expected-Version", expected.to_string())
                    .json(&Value::Object(e)),
            )?;
            if json {
                output::json(&json!({"version": v["version"], "position": v["position"]}))?;
            } else {
                writeln!(out, "version {} position {}", v["version"], v["position"])?;
            }
        }
        StreamCmd::Read {
            stream,
            from,
            count,
            backward,
            at_length,
            json,
        } => {
            let mut q = range_query(from, count, backward);
            if let Some(l) = at_length {
                q.push(("length", l.to_string()));
            }
            print_ndjson(
                ndjson(format!("/streams/{}", seg(stream.as_str())), q)?,
                out,
                json,
            )?;
        }
        StreamCmd::All {
            from,
            count,
            backward,
            types,
            prefix,
            json,
        } => {
            let mut q = range_query(from, count, backward);
            if !types.is_empty() {
                q.push(("type", types.join(",")));
            }
            if let Some(p) = prefix {
                q.push(("prefix", p));
            }
            print_ndjson(ndjson("/all".into(), q)?, out, json)?;
        }
        StreamCmd::Version { stream } => {
            let v =
                remote.json(remote.get(&format!("/streams/{}/version", seg(stream.as_str()))))?;
            writeln!(out, "{}", v["version"])?;
        }
        StreamCmd::Ls { prefix, json } => {
            let v = remote.json(remote.get("/streams").query(&[("prefix", prefix)]))?;
            if json {
                output::json(&v)?;
            } else {
                for s in v.as_array().into_iter().flatten() {
                    let state = if s["tombstoned"] == true {
                        "tombstoned"
                    } else if s["deleted"] == true {
                        "deleted"
                    } else {
                        ""
                    };
                    let version = s["version"].as_u64().map_or("-".into(), |v| v.to_string());
                    writeln!(
                        out,
                        "{}\t{version}\t{}\t{state}",
                        s["stream"].as_str().unwrap_or("?"),
                        s["bucket"].as_str().unwrap_or("-")
                    )?;
                }
            }
        }
        StreamCmd::Delete {
            stream,
            hard,
            expected,
        } => {
            remote.send(
                remote
                    .client
                    .delete(remote.url(&format!("/streams/{}", seg(stream.as_str()))))
                    .query(&[("hard", hard)])
                    .header("Expected-Version", expected.to_string()),
            )?;
            writeln!(
                out,
                "{} {stream}",
                if hard { "tombstoned" } else { "deleted" }
            )?;
        }
        StreamCmd::Meta {
            stream,
            max_count,
            max_age,
            truncate_before,
        } => {
            remote.send(remote.client.put(remote.url(&format!("/streams/{}/metadata", seg(stream.as_str())))).json(&json!({"max_count": max_count, "max_age": max_age, "truncate_before": truncate_before})))?;
            writeln!(out, "metadata of {stream} set")?;
        }
        StreamCmd::Head { stream, at_length } => {
            let mut req = remote.get(&format!("/streams/{}/head", seg(stream.as_str())));
            if let Some(l) = at_length {
                req = req.query(&[("length", l)]);
            }
            output::json(&remote.json(req)?)?;
        }
        StreamCmd::Prove {
            stream,
            version,
            from_length,
        } => {
            let v = match (version, from_length) {
                (Some(v), _) => remote
                    .json(remote.get(&format!("/streams/{}/proof/{v}", seg(stream.as_str()))))?,
                (None, Some(l)) => remote.json(
                    remote
                        .get(&format!("/streams/{}/consistency", seg(stream.as_str())))
                        .query(&[("from_length", l)]),
                )?,
                (None, None) => bail!("give a VERSION or --from-length N"),
            };
            output::json(&v)?;
        }
        StreamCmd::Verify { signer } => {
            let signer = match signer {
                Some(s) => s,
                None => remote.json(remote.get("/health"))?["public_key"]
                    .as_str()
                    .context("the daemon did not say its key")?
                    .to_owned(),
            };
            return crate::cli::stream::verify_with(&signer);
        }
        StreamCmd::Scavenge => {
            let r = remote.json(remote.client.post(remote.url("/scavenge")))?;
            writeln!(
                out,
                "scavenged {} events ({}) from {} streams",
                r["events"],
                human(r["bytes"].as_u64().unwrap_or(0)),
                r["streams"]
            )?;
        }
        StreamCmd::Reindex => {
            let r = remote.json(remote.client.post(remote.url("/reindex")))?;
            writeln!(
                out,
                "reindexed {} events in {} streams",
                r["events"], r["streams"]
            )?;
        }
        StreamCmd::Subscribe {
            stream,
            all,
            from,
            json,
            count,
        } => {
            let path = match (&stream, all) {
                (Some(s), false) => format!("/subscribe/streams/{}", seg(s.as_str())),
                (None, true) => "/subscribe/all".into(),
                _ => bail!("give a STREAM or --all"),
            };
            let mut req = remote.get(&path);
            if let Some(f) = from {
                req = req.query(&[("from", f)]);
            }
            let r = remote.send(req)?;
            let mut seen = 0u64;
            for line in BufReader::new(r).lines() {
                let line = line?;
                if let Some(data) = line.strip_prefix("data:") {
                    let e = event_from_json(&serde_json::from_str(data.trim())?)?;
                    print_event(out, &e, json)?;
                    out.flush()?;
                    seen += 1;
                    if count.is_some_and(|c| seen >= c) {
                        break;
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn snapshot(remote: &Remote, cmd: SnapshotCmd, out: &mut impl Write) -> Result<()> {
    match cmd {
        SnapshotCmd::Save {
            stream,
            version,
            data,
            metadata,
        } => {
            let metadata = STANDARD.encode(input_bytes(metadata.as_deref())?);
            let v = remote.json(
                remote
                    .client
                    .put(remote.url(&format!(
                        "/streams/{}/snapshots/{version}",
                        seg(stream.as_str())
                    )))
                    .header(crate::daemon::SNAPSHOT_METADATA, metadata)
                    .body(input_bytes(Some(&data))?),
            )?;
            writeln!(
                out,
                "saved snapshot of {stream} at version {version}: {}",
                v["reference"].as_str().unwrap_or("?")
            )?;
        }
        SnapshotCmd::Load { stream, at, json } => {
            let mut req = remote.get(&format!("/streams/{}/snapshot", seg(stream.as_str())));
            if let Some(a) = at {
                req = req.query(&[("at", a)]);
            }
            let r = remote.send(req)?;
            let version = r
                .headers()
                .get("snapshot-version")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("?")
                .to_owned();
            let timestamp = r
                .headers()
                .get("snapshot-timestamp")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("0")
                .to_owned();
            let metadata = r
                .headers()
                .get(crate::daemon::SNAPSHOT_METADATA)
                .map(|v| STANDARD.decode(v.as_bytes()))
                .transpose()
                .context("the daemon's snapshot metadata is not base64")?
                .unwrap_or_default();
            let data = r.bytes()?;
            if json {
                output::json(&crate::cli::snapshot::as_json(&hydra_eventlog::Snapshot {
                    stream: stream.clone(),
                    version: version.parse().unwrap_or_default(),
                    timestamp: timestamp.parse().unwrap_or_default(),
                    data: data.to_vec(),
                    metadata,
                }))?;
            } else {
                out.write_all(&data)?;
            }
        }
        SnapshotCmd::Ls { stream } => {
            let v =
                remote.json(remote.get(&format!("/streams/{}/snapshots", seg(stream.as_str()))))?;
            for s in v.as_array().into_iter().flatten() {
                writeln!(
                    out,
                    "{}\t{}",
                    s["version"],
                    s["reference"].as_str().unwrap_or("?")
                )?;
            }
        }
        SnapshotCmd::Rm {
            stream,
            version,
            all,
        } => {
            if all {
                let v =
                    remote.json(remote.client.delete(
                        remote.url(&format!("/streams/{}/snapshots", seg(stream.as_str()))),
                    ))?;
                writeln!(out, "removed {} snapshots of {stream}", v["deleted"])?;
            } else {
                let v = version.expect("clap requires it");
                remote.send(remote.client.delete(
                    remote.url(&format!("/streams/{}/snapshots/{v}", seg(stream.as_str()))),
                ))?;
                writeln!(out, "removed snapshot of {stream} at version {v}")?;
            }
        }
    }
    Ok(())
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
