//! Bucket and stream replication between real daemons on loopback,
//! configured by YAML and watched with the CLI: a blind replica, a keyed
//! third peer reading through it, a follower killed mid-sync that resumes,
//! and a peer that dies under a follower that knows another.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::blocking::Client;
use serde_json::Value;

use crate::daemon::Daemon;
use crate::{fails, noise, ok, run};

/// A daemon config: one redb volume under `dir`, the buckets and p2p
/// sections given as YAML.
fn config(dir: &Path, buckets: &str, p2p: &str) -> String {
    let path = dir.join("hydra.yaml");
    std::fs::write(
        &path,
        format!(
            "volumes:\n  - id: main\n    path: {}\napi:\n  http: 127.0.0.1:0\nbuckets:\n{buckets}p2p:\n{p2p}",
            dir.join("data").display()
        ),
    )
    .unwrap();
    path.to_str().unwrap().to_owned()
}

fn get(url: &str) -> Value {
    Client::new().get(url).send().unwrap().json().unwrap()
}

fn peer_id(d: &Daemon) -> String {
    get(&d.at("/health"))["peer_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Polls `GET /replication` until `done` holds; panics with the last
/// answer after `secs`.
fn wait_until(d: &Daemon, secs: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = get(&d.at("/replication"));
        if done(&v) {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out: {v:#}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A file with a plaintext marker every 4 KiB among noise.
fn marked(dir: &Path, len: usize, marker: &[u8]) -> (std::path::PathBuf, Vec<u8>) {
    let mut data = noise(11, len);
    for i in (0..len - marker.len()).step_by(4096) {
        data[i..i + marker.len()].copy_from_slice(marker);
    }
    let path = dir.join("object.bin");
    std::fs::write(&path, &data).unwrap();
    (path, data)
}

#[test]
fn an_encrypted_bucket_replicates_through_a_blind_peer() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let key = dirs[0].path().join("vault.key");
    let a = Daemon::start(
        dirs[0].path(),
        &[
            "--config",
            &config(
                dirs[0].path(),
                &format!(
                    "  - id: vault\n    compress: zstd\n    encrypt: true\n    key_file: {}\n    serve: true\n",
                    key.display()
                ),
                "  listen: [/ip4/127.0.0.1/tcp/0]\n",
            ),
        ],
    );
    let marker = b"DAEMON-BLIND-PLAINTEXT";
    let (file, data) = marked(dirs[0].path(), 3_000_000, marker);
    let put = |args: &[&str]| ok(dirs[0].path(), &[&["--api", &a.url][..], args].concat());
    put(&[
        "object",
        "put",
        "--bucket",
        "vault",
        "big",
        file.to_str().unwrap(),
    ]);
    let writer = peer_id(&a);
    let a_addr = a.p2p.clone().unwrap();

    // B: blind (no key), serves what it stores.
    let b = Daemon::start(
        dirs[1].path(),
        &[
            "--config",
            &config(
                dirs[1].path(),
                &format!(
                    "  - id: vault\n    serve: true\n    replicate:\n      from: [{a_addr}]\n      writers: [{writer}]\n      retry_ms: 100\n"
                ),
                "  listen: [/ip4/127.0.0.1/tcp/0]\n",
            ),
        ],
    );
    let b_addr = b.p2p.clone().unwrap();
    // C: the writer's key, and only B to fetch from.
    let c = Daemon::start(
        dirs[2].path(),
        &[
            "--config",
            &config(
                dirs[2].path(),
                &format!(
                    "  - id: vault\n    key_file: {}\n    replicate:\n      from: [{b_addr}]\n      writers: [{writer}]\n      retry_ms: 100\n",
                    key.display()
                ),
                "  listen: []\n",
            ),
        ],
    );
    let api = |d: &Daemon, args: &[&str]| {
        run(
            dirs[2].path(),
            &[&["--api", &d.url][..], args].concat(),
            b"",
        )
    };
    let out = api(&c, &["replicate", "wait", "--timeout", "60"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("caught up:"));

    // C reads the object; B cannot.
    let out = api(&c, &["object", "get", "--bucket", "vault", "big"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == data, "C's copy differs");
    let err = fails(
        dirs[1].path(),
        &["--api", &b.url, "object", "get", "--bucket", "vault", "big"],
    );
    assert!(err.contains("this peer has no key"), "{err}");
    // A 3 MB upload: refused with the reason, not a broken pipe.
    let err = fails(
        dirs[1].path(),
        &[
            "--api",
            &b.url,
            "object",
            "put",
            "--bucket",
            "vault",
            "mine",
            file.to_str().unwrap(),
        ],
    );
    assert!(
        err.contains(&format!("is a replica of writer {writer}")),
        "{err}"
    );

    // A new object reaches C through B, live.
    put(&[
        "object",
        "put",
        "--bucket",
        "vault",
        "later",
        file.to_str().unwrap(),
    ]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !api(&c, &["object", "ls", "--bucket", "vault"])
        .stdout
        .windows(5)
        .any(|w| w == b"later")
    {
        assert!(Instant::now() < deadline, "the new object did not arrive");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Status, peers, metrics.
    let status = String::from_utf8(api(&c, &["replicate", "status"]).stdout).unwrap();
    assert!(
        status.contains("bucket vault from") && status.trim_end().ends_with("ok"),
        "{status}"
    );
    let v: Value =
        serde_json::from_slice(&api(&c, &["replicate", "status", "--json"]).stdout).unwrap();
    assert!(
        v["buckets"][0]["blocks_received"].as_u64().unwrap() > 40,
        "{v:#}"
    );
    assert_eq!(v["buckets"][0]["bad_blocks"], 0);
    let peers = String::from_utf8(api(&c, &["peer", "ls"]).stdout).unwrap();
    assert!(peers.contains(&peer_id(&b)), "{peers}");
    let metrics = Client::new()
        .get(c.at("/metrics"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("hydra_p2p_blocks_received_total ") && !l.ends_with(" 0")),
        "{metrics}"
    );
    // Peer ids: the CLI on a stopped volume and the daemon agree.
    let id_api = String::from_utf8(api(&a, &["peer", "id"]).stdout).unwrap();
    assert!(id_api.starts_with(&writer), "{id_api}");

    // Nothing B stored holds the plaintext.
    assert!(b.stop().success());
    let mut files = 0;
    for f in std::fs::read_dir(dirs[1].path().join("data")).unwrap() {
        let p = f.unwrap().path();
        if p.is_file() {
            files += 1;
            let bytes = std::fs::read(&p).unwrap();
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "plaintext in {}",
                p.display()
            );
        }
    }
    assert!(files > 0);
    let id_local = ok(dirs[1].path(), &["peer", "id"]);
    assert!(id_local.starts_with("12D3KooW"), "{id_local}");
}

/// A writer with `events` events in stream `orders` and a `size`-byte
/// object `big` in bucket `docs`, serving both.
fn writer(dir: &Path, events: u64, size: usize) -> (Daemon, Vec<u8>) {
    let a = Daemon::start(
        dir,
        &[
            "--config",
            &config(
                dir,
                "  - id: default\n    serve: true\n  - id: docs\n    compress: zstd:1\n    serve: true\n",
                "  listen: [/ip4/127.0.0.1/tcp/0]\n",
            ),
        ],
    );
    let c = Client::new();
    for batch in 0..events.div_ceil(1000) {
        let body: Vec<Value> = (batch * 1000..((batch + 1) * 1000).min(events))
            .map(|i| serde_json::json!({"type": "Placed", "data": {"n": i}}))
            .collect();
        let r = c.post(a.at("/streams/orders")).json(&body).send().unwrap();
        assert_eq!(r.status(), 201);
    }
    let data = noise(21, size);
    let r = c
        .put(a.at("/buckets/docs/objects/big"))
        .body(data.clone())
        .send()
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    (a, data)
}

/// A replica of `peers`' buckets `default` (stream `orders`) and `docs`,
/// trusting `writer`.
fn follower(dir: &Path, peers: &[&str], writer: &str, listen: bool) -> Daemon {
    let peers = peers.join(", ");
    let replica = |id: &str| {
        format!(
            "  - id: {id}\n    serve: true\n    replicate:\n      from: [{peers}]\n      writers: [{writer}]\n      retry_ms: 100\n"
        )
    };
    Daemon::start(
        dir,
        &[
            "--config",
            &config(
                dir,
                &(replica("default") + &replica("docs")),
                &format!(
                    "  listen: [{}]\n",
                    if listen { "/ip4/127.0.0.1/tcp/0" } else { "" }
                ),
            ),
        ],
    )
}

/// Whether every loop (each replica bucket's streams and objects) has
/// caught up.
fn caught_up(v: &Value) -> bool {
    ["follows", "buckets"].iter().all(|k| {
        let loops = v[k].as_array().cloned().unwrap_or_default();
        !loops.is_empty() && loops.iter().all(|l| l["caught_up"] == true)
    })
}

/// Mid-catch-up: some blocks in, some still behind.
/// The loop of `kind` (`follows`: streams, `buckets`: objects) of
/// replica bucket `bucket` in a `GET /replication` answer.
fn of<'a>(v: &'a Value, kind: &str, bucket: &str) -> &'a Value {
    v[kind]
        .as_array()
        .and_then(|l| l.iter().find(|l| l["bucket"] == bucket))
        .unwrap_or(&Value::Null)
}

/// Bucket `docs`' objects loop.
fn docs(v: &Value) -> &Value {
    of(v, "buckets", "docs")
}

fn midway(v: &Value) -> bool {
    docs(v)["blocks_received"].as_u64() > Some(0) && docs(v)["blocks_behind"].as_u64() > Some(0)
}

fn json_of(dir: &Path, args: &[&str]) -> Value {
    serde_json::from_str(&ok(dir, args)).unwrap()
}

#[test]
fn a_follower_killed_mid_sync_resumes_without_fetching_again() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, data) = writer(dirs[0].path(), 5000, 64 << 20);
    let writer_id = peer_id(&a);
    let a_addr = a.p2p.clone().unwrap();
    let b = follower(dirs[1].path(), &[&a_addr], &writer_id, false);
    wait_until(&b, 60, midway);
    b.kill();

    // What survived the kill, read from B's volume directly.
    let had = json_of(dirs[1].path(), &["bucket", "show", "docs", "--json"])["blocks"]
        .as_u64()
        .unwrap();
    let needed = get(&a.at("/buckets/docs"))["blocks"].as_u64().unwrap();
    assert!(had < needed, "killed after the end ({had} of {needed})");

    let b = follower(dirs[1].path(), &[&a_addr], &writer_id, false);
    let v = wait_until(&b, 120, caught_up);
    // Only what B lacked was fetched (the manifest's closure block was
    // stored before the kill, or is counted in both).
    let fetched = docs(&v)["blocks_received"].as_u64().unwrap();
    assert_eq!(fetched + had, needed, "{v:#}");
    let events = of(&v, "follows", "default")["events"].as_u64().unwrap();
    assert!(events <= 5000, "{v:#}");

    // Identical to the writer: heads, every event, the object, no corruption.
    let head = |d: &Daemon| get(&d.at("/streams/orders/head"));
    assert_eq!(head(&a), head(&b));
    let all = Client::new()
        .get(b.at("/streams/orders?count=10000"))
        .send()
        .unwrap()
        .json::<Vec<Value>>()
        .unwrap();
    assert_eq!(all.len(), 5000);
    let got = Client::new()
        .get(b.at("/buckets/docs/objects/big"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(got == data, "the object differs");
    assert!(b.stop().success());
    let report = json_of(dirs[1].path(), &["volume", "verify", "--json"]);
    assert_eq!(
        report[0]["report"]["corrupt"],
        serde_json::json!([]),
        "{report:#}"
    );
}

#[test]
fn a_follower_finishes_from_the_writer_when_its_relay_dies() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, data) = writer(dirs[0].path(), 3000, 48 << 20);
    let writer_id = peer_id(&a);
    let a_addr = a.p2p.clone().unwrap();
    // A -> B: B catches up fully, and serves.
    let b = follower(dirs[1].path(), &[&a_addr], &writer_id, true);
    wait_until(&b, 120, caught_up);
    let b_addr = b.p2p.clone().unwrap();
    // B -> C, C also knows A: it starts with B (listed first).
    let c = follower(dirs[2].path(), &[&b_addr, &a_addr], &writer_id, false);
    let v = wait_until(&c, 60, midway);
    assert_eq!(docs(&v)["peer"], b_addr.as_str(), "{v:#}");
    b.kill();
    let v = wait_until(&c, 120, caught_up);
    // B (listed first) failed and lost score; A served the rest.
    let scores = &docs(&v)["peers"];
    assert!(scores[0]["score"].as_i64() < Some(0), "{v:#}");
    assert!(scores[1]["score"].as_i64() > Some(0), "{v:#}");
    assert_eq!(docs(&v)["bad_blocks"], 0);
    let got = Client::new()
        .get(c.at("/buckets/docs/objects/big"))
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    assert!(got == data, "the object differs");
    let head = |d: &Daemon| get(&d.at("/streams/orders/head"));
    assert_eq!(head(&a), head(&c));

    // `replicate wait` right after a write asks the peers, so it returns
    // only once the new event and object are here.
    let file = dirs[0].path().join("later.bin");
    std::fs::write(&file, noise(5, 300_000)).unwrap();
    let at_a = |args: &[&str]| ok(dirs[0].path(), &[&["--api", &a.url][..], args].concat());
    at_a(&["stream", "append", "orders", "-t", "Late", "-d", "{}"]);
    at_a(&[
        "object",
        "put",
        "--bucket",
        "docs",
        "later",
        file.to_str().unwrap(),
    ]);
    let out = ok(
        dirs[2].path(),
        &["--api", &c.url, "replicate", "wait", "--timeout", "60"],
    );
    assert!(out.starts_with("caught up:"), "{out}");
    let got = run(
        dirs[2].path(),
        &[
            "--api", &c.url, "object", "get", "--bucket", "docs", "later",
        ],
        b"",
    );
    assert!(got.status.success() && got.stdout == noise(5, 300_000));
    assert_eq!(head(&a), head(&c));
}

/// mDNS does not run on loopback, and tests keep off real networks: the
/// two daemons share a veth pair in a network namespace of their own
/// (`unshare -n`, as root), with fixed ports nothing else can see. The
/// follower names the writer by `/p2p/<peer id>` alone.
#[test]
fn with_mdns_a_follower_finds_its_writer_by_peer_id_alone() {
    let dir = tempfile::tempdir().unwrap();
    let script = r#"
set -eu
trap 'kill $(jobs -p) 2>/dev/null || true' EXIT
ip link set lo up
ip link add v0 type veth peer name v1
ip addr add 10.77.0.1/24 dev v0
ip addr add 10.77.0.2/24 dev v1
ip link set v0 up
ip link set v1 up
D=$DIR
WRITER=$($HYDRA --data "$D/a" peer id | head -1)
printf 'volumes: [{id: main, path: %s/a}]\napi: {http: 127.0.0.1:8081}\nbuckets: [{id: default, serve: true}]\np2p: {listen: [/ip4/10.77.0.1/tcp/4001], mdns: true}\n' "$D" > "$D/a.yaml"
printf 'volumes: [{id: main, path: %s/b}]\napi: {http: 127.0.0.1:8082}\nbuckets: [{id: default, replicate: {from: [/p2p/%s], writers: [%s], retry_ms: 200}}]\np2p: {mdns: true}\n' "$D" "$WRITER" "$WRITER" > "$D/b.yaml"
$HYDRA daemon --config "$D/a.yaml" > "$D/a.log" 2>&1 &
$HYDRA daemon --config "$D/b.yaml" > "$D/b.log" 2>&1 &
for i in $(seq 100); do
  $HYDRA --api http://127.0.0.1:8081 stream append orders -t Placed -d '{}' >/dev/null 2>&1 && break
  sleep 0.1
done
for i in $(seq 300); do
  if [ "$($HYDRA --api http://127.0.0.1:8082 stream version orders 2>/dev/null)" = 0 ]; then exit 0; fi
  sleep 0.1
done
echo "not replicated; follower log:"; cat "$D/b.log"; exit 1
"#;
    let out = std::process::Command::new("unshare")
        .args(["-n", "bash", "-c", script])
        .env("HYDRA", env!("CARGO_BIN_EXE_hydra"))
        .env("DIR", dir.path())
        .output()
        .expect("unshare (util-linux) runs the daemons in a network namespace");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
