//! The daemon, started for real on an ephemeral loopback port and driven
//! over HTTP (reqwest, and curl as a client nobody here wrote).

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::{Value, json};

use crate::{hydra, noise};

pub struct Daemon {
    child: Option<Child>,
    pub url: String,
    /// The RESP address, when started with `--resp`.
    pub resp: Option<String>,
    /// The gRPC address, when started with `--grpc`.
    pub grpc: Option<String>,
    /// The libp2p address (ending in /p2p/<peer id>), with `--p2p`.
    pub p2p: Option<String>,
    /// Kept open so that the daemon's stdout never breaks.
    _stdout: BufReader<std::process::ChildStdout>,
}

impl Daemon {
    pub fn start(dir: &Path, extra: &[&str]) -> Daemon {
        let mut args = vec!["--http", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        Daemon::start_with(dir, &args)
    }

    /// `hydra daemon --config` of a file with one volume in `dir/data`
    /// (`volume` adds keys to it) and then `rest`.
    pub fn configured(dir: &Path, volume: &str, rest: &str) -> Daemon {
        Daemon::start(dir, &["--config", &config(dir, volume, rest)])
    }

    /// `hydra daemon ARGS` (no default `--http`).
    pub fn start_with(dir: &Path, args: &[&str]) -> Daemon {
        let mut child = hydra(dir)
            .arg("daemon")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let (mut resp, mut grpc, mut p2p) = (None, None, None);
        let url = loop {
            let mut line = String::new();
            assert!(
                out.read_line(&mut line).unwrap() > 0,
                "the daemon exited before listening"
            );
            if let Some(addr) = line.trim().strip_prefix("resp listening on ") {
                resp = Some(addr.to_owned());
            } else if let Some(addr) = line.trim().strip_prefix("grpc listening on ") {
                grpc = Some(addr.to_owned());
            } else if let Some(addr) = line.trim().strip_prefix("p2p listening on ") {
                p2p.get_or_insert_with(|| addr.to_owned());
            } else if let Some(url) = line.trim().strip_prefix("listening on ") {
                break url.to_owned();
            }
        };
        Daemon {
            child: Some(child),
            url,
            resp,
            grpc,
            p2p,
            _stdout: out,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap()
    }

    /// SIGKILL: no shutdown, nothing flushed that was not durable.
    pub fn kill(mut self) {
        let mut child = self.child.take().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    pub fn at(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

fn json_of(r: reqwest::blocking::Response) -> Value {
    r.json().unwrap()
}

#[test]
fn every_event_route_and_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = client();
    let r = c
        .post(d.at("/streams/order-1?expected_version=no_stream"))
        .body(r#"{"type":"Placed","data":{"total": 42}}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let partition = hydra_eventlog::partition_of(&hydra_eventlog::stream_partition_key(
        &hydra_eventlog::StreamId::new("order-1").unwrap(),
    ));
    assert_eq!(
        json_of(r),
        json!({"first_version":0,"version":0,"first_position":0,"position":0,
               "partition":partition,"first_partition_sequence":0})
    );
    let r = c.post(d.at("/streams/order-1")).header("Expected-Version", "0")
        .body(r#"[{"type":"Paid","data":{"amount":42}},{"type":"Shipped","data_base64":"AP8=","metadata":{"by":"ops"}}]"#).send().unwrap();
    assert_eq!(r.status(), 201);
    let r = c
        .post(d.at("/streams/order-1"))
        .header("Expected-Version", "0")
        .body(r#"{"type":"Late"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 409);
    assert_eq!(
        json_of(r),
        json!({"error": "stream order-1 is at version 2, expected 0", "actual_version": 2})
    );
    for (body, why) in [
        ("nope", "the body must be"),
        (r#"{"data":1}"#, "missing field"),
        (r#"{"type":"A","x":1}"#, "unknown field"),
    ] {
        let r = c.post(d.at("/streams/s")).body(body).send().unwrap();
        assert_eq!(r.status(), 400, "{body}");
        assert!(
            json_of(r)["error"].as_str().unwrap().contains(why),
            "{body}"
        );
    }
    let r = c
        .post(d.at("/streams/s?expected_version=sometimes"))
        .body(r#"{"type":"A"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(d.at("/streams/%24all"))
        .body(r#"{"type":"A"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    // Idempotent retry.
    let body = r#"{"id":"6f1f7e4e-3b7a-4f0e-9a55-2a1c1f9b0a01","type":"Once"}"#;
    let first = json_of(c.post(d.at("/streams/idem")).body(body).send().unwrap());
    let again = c.post(d.at("/streams/idem")).body(body).send().unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(json_of(again), first);

    let events = json_of(c.get(d.at("/streams/order-1")).send().unwrap());
    assert_eq!(events.as_array().unwrap().len(), 3);
    assert_eq!(events[0]["data"], json!({"total": 42}));
    assert_eq!(events[2]["data_base64"], "AP8=");
    assert_eq!(events[2]["metadata"]["by"], "ops");
    let back = json_of(
        c.get(d.at("/streams/order-1?direction=backwards&count=1"))
            .send()
            .unwrap(),
    );
    assert_eq!(back[0]["version"], 2);
    let from = json_of(
        c.get(d.at("/streams/order-1?from=1&count=1"))
            .send()
            .unwrap(),
    );
    assert_eq!(from[0]["type"], "Paid");
    let nd = c
        .get(d.at("/streams/order-1"))
        .header("Accept", "application/x-ndjson")
        .send()
        .unwrap();
    assert_eq!(nd.headers()["content-type"], "application/x-ndjson");
    assert_eq!(nd.text().unwrap().lines().count(), 3);
    assert_eq!(
        c.get(d.at("/streams/missing")).send().unwrap().status(),
        404
    );
    assert_eq!(
        c.get(d.at("/streams/order-1?direction=sideways"))
            .send()
            .unwrap()
            .status(),
        400
    );

    let all = json_of(c.get(d.at("/all?type=Paid,Placed")).send().unwrap());
    assert_eq!(all.as_array().unwrap().len(), 2);
    let all = json_of(
        c.get(d.at("/all?prefix=idem&direction=backwards"))
            .send()
            .unwrap(),
    );
    assert_eq!(all[0]["stream"], "idem");
    let id = events[1]["id"].as_str().unwrap();
    assert_eq!(
        json_of(c.get(d.at(&format!("/events/{id}"))).send().unwrap())["type"],
        "Paid"
    );
    assert_eq!(
        c.get(d.at("/events/6f1f7e4e-3b7a-4f0e-9a55-2a1c1f9b0aff"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(d.at("/events/not-a-uuid")).send().unwrap().status(),
        400
    );
    let listed = json_of(c.get(d.at("/streams?prefix=order")).send().unwrap());
    assert_eq!(listed[0]["stream"], "order-1");
    assert_eq!(
        json_of(c.get(d.at("/streams/order-1/version")).send().unwrap())["version"],
        2
    );

    let r = c
        .put(d.at("/streams/order-1/metadata"))
        .body(r#"{"max_count":2}"#)
        .send()
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        json_of(c.get(d.at("/streams/order-1/metadata")).send().unwrap())["max_count"],
        2
    );
    assert_eq!(
        json_of(c.get(d.at("/streams/order-1")).send().unwrap())
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Snapshots.
    assert_eq!(
        c.put(d.at("/streams/order-1/snapshots/1"))
            .body(r#"{"state":"paid"}"#)
            .send()
            .unwrap()
            .status(),
        201
    );
    let snap = c.get(d.at("/streams/order-1/snapshot")).send().unwrap();
    assert_eq!(snap.headers()["snapshot-version"], "1");
    assert_eq!(snap.text().unwrap(), r#"{"state":"paid"}"#);
    assert_eq!(
        json_of(c.get(d.at("/streams/order-1/snapshots")).send().unwrap())
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.get(d.at("/streams/order-1/snapshot?at=0"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.delete(d.at("/streams/order-1/snapshots/1"))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.delete(d.at("/streams/order-1/snapshots/1"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        json_of(c.delete(d.at("/streams/order-1/snapshots")).send().unwrap())["deleted"],
        0
    );

    // Proofs verify with the library, using only the public key.
    let head = json_of(c.get(d.at("/streams/order-1/head")).send().unwrap());
    assert_eq!(head["length"], 3);
    let p = json_of(c.get(d.at("/streams/order-1/proof/1")).send().unwrap());
    let head: hydra_eventlog::Head = serde_json::from_value(p["head"].clone()).unwrap();
    let proof: hydra_eventlog::InclusionProof = serde_json::from_value(p["proof"].clone()).unwrap();
    let event: Value = p["event"].clone();
    let decode = |v: &Value, name: &str| {
        use base64::Engine;
        v.get(format!("{name}_base64"))
            .map(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.as_str().unwrap())
                    .unwrap()
            })
            .unwrap_or_default()
    };
    let recorded = hydra_eventlog::RecordedEvent {
        id: event["id"].as_str().unwrap().parse().unwrap(),
        stream: "order-1".parse().unwrap(),
        version: 1,
        position: event["position"].as_u64().unwrap(),
        event_type: event["type"].as_str().unwrap().into(),
        data: decode(&event, "data"),
        metadata: decode(&event, "metadata"),
        timestamp: event["timestamp"].as_u64().unwrap(),
    };
    hydra_eventlog::verify_event(&head, &head.signer, &recorded, &proof).unwrap();
    let forged = hydra_eventlog::RecordedEvent {
        event_type: "Forged".into(),
        ..recorded
    };
    assert!(hydra_eventlog::verify_event(&head, &head.signer, &forged, &proof).is_err());
    let c2 = json_of(
        c.get(d.at("/streams/order-1/consistency?from_length=1"))
            .send()
            .unwrap(),
    );
    assert_eq!(c2["consistency"]["new_length"], 3);
    assert_eq!(
        c.get(d.at("/streams/order-1/proof/9"))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(d.at("/streams/order-1/consistency"))
            .send()
            .unwrap()
            .status(),
        400
    );

    // Persistent subscriptions.
    let r = c
        .put(d.at("/subscriptions/billing"))
        .body(r#"{"stream":"order-1","from":0,"window":2}"#)
        .header("content-type", "application/json")
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let got = json_of(
        c.get(d.at("/subscriptions/billing/events?max=10"))
            .send()
            .unwrap(),
    );
    assert_eq!(got.as_array().unwrap().len(), 2, "window of 2");
    let r = c
        .post(d.at("/subscriptions/billing/ack"))
        .json(&json!({"position": 0}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.post(d.at("/subscriptions/billing/ack"))
            .json(&json!({"position": 9}))
            .send()
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        json_of(c.get(d.at("/subscriptions/billing")).send().unwrap())["acked"],
        0
    );
    assert_eq!(
        json_of(c.get(d.at("/subscriptions")).send().unwrap())
            .as_array()
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        c.delete(d.at("/subscriptions/billing"))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(d.at("/subscriptions/billing"))
            .send()
            .unwrap()
            .status(),
        404
    );

    // Deletes: soft (404 to readers), then hard (410).
    assert_eq!(
        c.delete(d.at("/streams/order-1")).send().unwrap().status(),
        204
    );
    assert_eq!(
        c.get(d.at("/streams/order-1")).send().unwrap().status(),
        404
    );
    assert_eq!(
        c.delete(d.at("/streams/order-1?hard=true"))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(d.at("/streams/order-1")).send().unwrap().status(),
        410
    );
    assert_eq!(
        c.post(d.at("/streams/order-1"))
            .body(r#"{"type":"X"}"#)
            .send()
            .unwrap()
            .status(),
        410
    );

    let health = json_of(c.get(d.at("/health")).send().unwrap());
    assert_eq!(health["status"], "ok");
    let metrics = c.get(d.at("/metrics")).send().unwrap().text().unwrap();
    for name in [
        "hydra_appends_total",
        "hydra_events_read_total",
        "hydra_append_duration_seconds_bucket",
        "hydra_commits",
        "hydra_subscriptions",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
    assert!(d.stop().success());
}

#[test]
fn blocks_objects_and_buckets() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = client();
    let r = json_of(
        c.put(d.at("/buckets/default/blocks"))
            .body("hello")
            .send()
            .unwrap(),
    );
    let reference = r["reference"].as_str().unwrap().to_owned();
    assert!(reference.starts_with("bafkr4i"));
    assert_eq!(
        c.get(d.at(&format!("/buckets/default/blocks/{reference}")))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "hello"
    );
    assert_eq!(
        c.get(d.at("/buckets/default/blocks/nonsense"))
            .send()
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        c.delete(d.at(&format!("/buckets/default/blocks/{reference}")))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(d.at(&format!("/buckets/default/blocks/{reference}")))
            .send()
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        c.get(d.at("/buckets/nope/blocks/x"))
            .send()
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        c.put(d.at("/buckets/nope/blocks"))
            .body("x")
            .send()
            .unwrap()
            .status(),
        404
    );

    let data = noise(9, 5_000_000);
    let r = c
        .put(d.at("/buckets/default/objects/photos/a.raw"))
        .body(data.clone())
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(json_of(r)["size"], 5_000_000);
    let got = c
        .get(d.at("/buckets/default/objects/photos/a.raw"))
        .send()
        .unwrap();
    assert_eq!(got.headers()["content-length"], "5000000");
    assert!(got.bytes().unwrap() == data);
    let listed = json_of(
        c.get(d.at("/buckets/default/objects?prefix=photos/"))
            .send()
            .unwrap(),
    );
    assert_eq!(listed[0]["key"], "photos/a.raw");
    assert_eq!(
        c.delete(d.at("/buckets/default/objects/photos/a.raw"))
            .send()
            .unwrap()
            .status(),
        204
    );
    assert_eq!(
        c.get(d.at("/buckets/default/objects/photos/a.raw"))
            .send()
            .unwrap()
            .status(),
        404
    );
    let buckets = json_of(c.get(d.at("/buckets")).send().unwrap());
    assert!(
        buckets
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["config"]["id"] == "default")
    );
    assert_eq!(
        json_of(c.get(d.at("/buckets/default")).send().unwrap())["config"]["id"],
        "default"
    );
}

/// The document lists every route, and every route it lists is served
/// (no 405, and a 404 only as a JSON error from a handler).
#[test]
fn openapi_matches_the_router() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = client();
    let doc = json_of(c.get(d.at("/openapi.json")).send().unwrap());
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "{} paths", paths.len());
    let mut checked = 0;
    for (path, methods) in paths {
        let concrete = path
            .replace("{id}", "s1")
            .replace("{version}", "0")
            .replace("{event_id}", "6f1f7e4e-3b7a-4f0e-9a55-2a1c1f9b0a01")
            .replace("{name}", "sub")
            .replace("{b}", "default")
            .replace(
                "{ref}",
                "bafkr4ihkr4ld3m4gqkjf4reryxsy2s5tkbxprqkow6fin2iiyvreuzzab4",
            )
            .replace("{key}", "k");
        for method in methods.as_object().unwrap().keys() {
            if path.starts_with("/subscribe/") {
                continue; // long-lived; covered by the SSE test
            }
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let r = c.request(m, d.at(&concrete)).body("{}").send().unwrap();
            let status = r.status();
            assert_ne!(status, 405, "{method} {path}");
            if status == 404 {
                let body: Value = r.json().unwrap_or_else(|_| {
                    panic!("{method} {path}: 404 without a JSON error: no such route")
                });
                assert!(body["error"].is_string(), "{method} {path}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 30);
    // And a route that does not exist is not in it.
    assert_eq!(c.get(d.at("/nowhere")).send().unwrap().status(), 404);
}

/// Reads SSE messages: (id, data) pairs.
fn sse_events(r: reqwest::blocking::Response, n: usize, deadline: Duration) -> Vec<(u64, Value)> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut id = None;
    for line in BufReader::new(r).lines() {
        let line = line.unwrap();
        if let Some(v) = line.strip_prefix("id:") {
            id = Some(v.trim().parse::<u64>().unwrap());
        } else if let Some(v) = line.strip_prefix("data:") {
            out.push((id.take().unwrap(), serde_json::from_str(v.trim()).unwrap()));
            if out.len() >= n {
                break;
            }
        }
        assert!(
            start.elapsed() < deadline,
            "only {} events before the deadline",
            out.len()
        );
    }
    out
}

#[test]
fn sse_catches_up_then_goes_live_without_gaps_and_resumes_from_last_event_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = client();
    for i in 0..50 {
        c.post(d.at("/streams/feed"))
            .body(format!(r#"{{"type":"Old","data":{i}}}"#))
            .send()
            .unwrap();
    }
    let sse = Client::builder()
        .build()
        .unwrap()
        .get(d.at("/subscribe/all?from=0"))
        .send()
        .unwrap();
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let url = d.at(&format!("/streams/live-{w}"));
            std::thread::spawn(move || {
                let c = client();
                for i in 0..50 {
                    let r = c
                        .post(&url)
                        .body(format!(r#"{{"type":"New","data":{i}}}"#))
                        .send()
                        .unwrap();
                    assert_eq!(r.status(), 201);
                }
            })
        })
        .collect();
    let got = sse_events(sse, 250, Duration::from_secs(60));
    for w in writers {
        w.join().unwrap();
    }
    let ids: Vec<u64> = got.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ids,
        (0..250).collect::<Vec<_>>(),
        "every event once, in order"
    );
    assert!(got.iter().all(|(id, e)| e["position"] == *id));

    // A reconnect with Last-Event-ID resumes right after it.
    let r = Client::builder()
        .build()
        .unwrap()
        .get(d.at("/subscribe/streams/feed"))
        .header("Last-Event-ID", "41")
        .send()
        .unwrap();
    let resumed = sse_events(r, 3, Duration::from_secs(20));
    assert_eq!(
        resumed.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        [42, 43, 44]
    );
    // Graceful shutdown ends open subscriptions.
    let _open = Client::builder()
        .build()
        .unwrap()
        .get(d.at("/subscribe/all"))
        .send()
        .unwrap();
    let started = Instant::now();
    assert!(d.stop().success());
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Peak resident memory of a process, in KiB (Linux).
fn peak_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// A reader of `len` bytes of a repeating pattern, made on demand.
struct Pattern {
    data: Vec<u8>,
    left: u64,
    pos: usize,
}

impl Read for Pattern {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.left as usize)
            .min(buf.len())
            .min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos = (self.pos + n) % self.data.len();
        self.left -= n as u64;
        Ok(n)
    }
}

#[test]
fn a_256_mib_object_streams_through_the_daemon_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let len: u64 = 256 << 20;
    let pattern = noise(3, 3 << 20);
    let before = peak_kib(d.pid());
    let body = reqwest::blocking::Body::new(Pattern {
        data: pattern.clone(),
        left: len,
        pos: 0,
    });
    let r = client()
        .put(d.at("/buckets/default/objects/big"))
        .body(body)
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(json_of(r)["size"], len);
    let mut got = client()
        .get(d.at("/buckets/default/objects/big"))
        .send()
        .unwrap();
    let mut expected = blake3::Hasher::new();
    std::io::copy(
        &mut Pattern {
            data: pattern,
            left: len,
            pos: 0,
        },
        &mut HashW(&mut expected),
    )
    .unwrap();
    let mut h = blake3::Hasher::new();
    let n = std::io::copy(&mut got, &mut HashW(&mut h)).unwrap();
    assert_eq!(n, len);
    assert_eq!(h.finalize(), expected.finalize());
    let peak = peak_kib(d.pid());
    assert!(
        peak < 200 * 1024,
        "daemon peak RSS {peak} KiB (before {before}) for a 256 MiB object"
    );
}

struct HashW<'a>(&'a mut blake3::Hasher);

impl std::io::Write for HashW<'_> {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.update(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_restart_finds_everything_and_the_cli_points_at_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--durability", "async"]);
    let c = client();
    for i in 0..20 {
        c.post(d.at("/streams/kept"))
            .body(format!(r#"{{"type":"E","data":{i}}}"#))
            .send()
            .unwrap();
    }
    // Embedded mode on a held directory says where the daemon is.
    let out = hydra(dir.path())
        .args(["stream", "read", "kept"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "held by a running hydra daemon; use --api {}",
            d.url
        )),
        "{err}"
    );
    assert!(d.stop().success());
    let d = Daemon::start(dir.path(), &[]);
    let events = json_of(client().get(d.at("/streams/kept")).send().unwrap());
    assert_eq!(events.as_array().unwrap().len(), 20);
    assert_eq!(events[19]["data"], 19);
}

#[test]
fn bad_configs_are_refused_with_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("hydra.yaml");
    std::fs::write(
        &cfg,
        "volumes:\n  - id: main\n    path: data\n    colour: red\n",
    )
    .unwrap();
    let out = hydra(dir.path())
        .args(["daemon", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("colour") && err.contains('4'), "{err}");
    std::fs::write(
        &cfg,
        "volumes:\n  - id: main\n    path: data\n    durability: often\n",
    )
    .unwrap();
    let out = hydra(dir.path())
        .args(["daemon", "--config", cfg.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("volumes[0].durability"));
    // --write-config writes the merged config back.
    let data = dir.path().join("data");
    std::fs::write(
        &cfg,
        format!("volumes:\n  - id: main\n    path: {}\n", data.display()),
    )
    .unwrap();
    let d = Daemon::start(
        dir.path(),
        &[
            "--config",
            cfg.to_str().unwrap(),
            "--write-config",
            "--durability",
            "none",
        ],
    );
    let written = std::fs::read_to_string(&cfg).unwrap();
    assert!(written.contains("durability: none"), "{written}");
    assert!(written.contains("http: 127.0.0.1:0"), "{written}");
    drop(d);
}

#[test]
fn defaults_fill_what_a_config_leaves_out_and_the_daemon_takes_data_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Only the API: the volume is the default one, in --data.
    let cfg = d.join("api.yaml");
    std::fs::write(&cfg, "api:\n  http: 127.0.0.1:0\n").unwrap();
    let daemon = Daemon::start_with(d, &["--config", cfg.to_str().unwrap()]);
    let posted = client()
        .post(daemon.at("/streams/s-1"))
        .body(r#"{"type":"T","data":{}}"#)
        .send()
        .unwrap();
    assert_eq!(posted.status(), 201);
    drop(daemon);
    assert!(d.join("data").join("volume.redb").is_file());
    // `hydra daemon --data DIR`: the directory given after the subcommand.
    let daemon = Daemon::start(d, &["--data", d.join("other").to_str().unwrap()]);
    drop(daemon);
    assert!(d.join("other").join("volume.redb").is_file());
    // A config that lists its volumes names their paths itself.
    let listed = crate::daemon::config(d, "", "");
    let out = hydra(d)
        .args(["daemon", "--config", &listed, "--data", "elsewhere"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim_end(),
        "hydra: --data names the default volume's directory, and the config lists its volumes: set their paths there"
    );
}

/// A change that outlasts the request timeout is answered when it is done,
/// never with a 503 while it goes on to commit.
#[test]
fn an_append_that_outlasts_the_request_timeout_is_answered_when_it_commits() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::configured(dir.path(), "", "limits:\n  request_timeout_secs: 1\n");
    let c = client();
    let batch = format!(
        "[{}]",
        (0..1000)
            .map(|i| format!(r#"{{"type":"Bulk","data":{i}}}"#))
            .collect::<Vec<_>>()
            .join(",")
    );
    for i in 0..300 {
        let r = c
            .post(d.at(&format!("/streams/bulk-{}", i % 10)))
            .body(batch.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    // A reindex of 300,000 events holds the writer for seconds; an append
    // queued behind it waits longer than the timeout.
    let url = d.at("/reindex");
    let reindex = std::thread::spawn(move || client().post(url).send().unwrap().status());
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    let r = c
        .post(d.at("/streams/late"))
        .body(r#"{"type":"Late","data":1}"#)
        .send()
        .unwrap();
    let waited = t.elapsed();
    assert_eq!(r.status(), 201, "answered when it committed");
    assert!(
        waited > Duration::from_secs(1),
        "the append waited {waited:?}: the writer was not held past the timeout"
    );
    assert_eq!(reindex.join().unwrap(), 200);
    let events = json_of(c.get(d.at("/streams/late")).send().unwrap());
    assert_eq!(events.as_array().unwrap().len(), 1);
}

/// curl: a client nobody here wrote.
#[test]
fn curl_drives_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "10"])
            .args(args)
            .output()
            .expect("curl is installed");
        String::from_utf8(out.stdout).unwrap()
    };
    let created = curl(&[
        "-X",
        "POST",
        "-H",
        "Expected-Version: no_stream",
        "-d",
        r#"{"type":"Greeted","data":{"hello":"world"}}"#,
        "-w",
        " %{http_code}",
        &d.at("/streams/greetings"),
    ]);
    assert!(created.ends_with(" 201"), "{created}");
    let read = curl(&[
        "-H",
        "Accept: application/x-ndjson",
        &d.at("/streams/greetings"),
    ]);
    let e: Value = serde_json::from_str(read.lines().next().unwrap()).unwrap();
    assert_eq!(e["data"]["hello"], "world");
    let sse = curl(&[
        "-N",
        "--max-time",
        "2",
        &d.at("/subscribe/streams/greetings?from=0"),
    ]);
    assert!(sse.contains("id: 0") || sse.contains("id:0"), "{sse}");
    assert!(sse.contains(r#""hello":"world""#), "{sse}");
    let conflict = curl(&[
        "-X",
        "POST",
        "-H",
        "Expected-Version: 7",
        "-d",
        r#"{"type":"X"}"#,
        "-w",
        " %{http_code}",
        &d.at("/streams/greetings"),
    ]);
    assert!(conflict.ends_with(" 409"), "{conflict}");
    let metrics = curl(&[&d.at("/metrics")]);
    assert!(metrics.contains("hydra_appends_total 1"), "{metrics}");
}

/// A stream of 192 events of 1 MiB read through every kind of read (HTTP
/// JSON and NDJSON, `$all`, gRPC): each answer streams a page at a time,
/// so the daemon holds one page per request, not the 192 MiB answer. (The
/// volume's page cache is set small: redb's default of 1 GiB would fill
/// with the stream's pages and hide what the reads hold.)
#[test]
fn reads_of_a_192_mib_stream_stay_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::configured(
        dir.path(),
        "    cache_mb: 16\n",
        "api:\n  grpc: 127.0.0.1:0\n",
    );
    let c = client();
    let pad = "x".repeat(1 << 20);
    for batch in 0..24 {
        let events: Vec<Value> = (0..8)
            .map(|i| json!({"type": "Big", "data": {"n": batch * 8 + i, "pad": pad}}))
            .collect();
        let r = c.post(d.at("/streams/big")).json(&events).send().unwrap();
        assert_eq!(r.status(), 201);
    }
    let before = peak_kib(d.pid());
    // With redb's default cache the appends alone took 540 MiB.
    assert!(
        before < 320 * 1024,
        "{before} KiB after appending, cache_mb: 16"
    );
    let count = |r: reqwest::blocking::Response| {
        let mut n = 0;
        for line in BufReader::new(r).split(b'\n') {
            n += line
                .unwrap()
                .windows(6)
                .filter(|w| w == b"\"Big\",")
                .count();
        }
        n
    };
    let r = c
        .get(d.at("/streams/big"))
        .header("accept", "application/x-ndjson")
        .send()
        .unwrap();
    assert_eq!(count(r), 192);
    assert_eq!(count(c.get(d.at("/streams/big")).send().unwrap()), 192);
    assert_eq!(count(c.get(d.at("/all")).send().unwrap()), 192);
    let grpc = d.grpc.clone().unwrap();
    let n = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async move {
            use crate::grpc::pb;
            let mut client =
                pb::event_store_client::EventStoreClient::connect(format!("http://{grpc}"))
                    .await
                    .unwrap();
            let mut s = client
                .read_stream(pb::ReadStreamRequest {
                    stream: "big".into(),
                    from: Some(0),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut n = 0;
            while let Some(e) = s.message().await.unwrap() {
                assert!(e.data.len() > 1 << 20);
                n += 1;
            }
            n
        });
    assert_eq!(n, 192);
    let peak = peak_kib(d.pid());
    println!("daemon peak RSS: {before} KiB appending, {peak} KiB reading");
    // A page (at most a 16 MiB bundle), gRPC's queue of 64 events, the
    // log's cache of opened bundles (64 MiB, shared): well under the 192
    // MiB answer, which a read that collected it would hold twice over.
    assert!(
        peak < before + 160 * 1024,
        "daemon peak RSS {peak} KiB (before the reads {before}) reading a 192 MiB stream"
    );
}

/// Writes `dir/hydra.yaml`: one volume in `dir/data` (`volume` adds keys
/// to it), then `rest`; returns its path.
pub fn config(dir: &Path, volume: &str, rest: &str) -> String {
    let path = dir.join("hydra.yaml");
    let yaml = format!(
        "volumes:\n  - id: main\n    path: {}\n{volume}{rest}",
        dir.join("data").display()
    );
    std::fs::write(&path, yaml).unwrap();
    path.to_str().unwrap().to_owned()
}
