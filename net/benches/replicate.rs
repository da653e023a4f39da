//! Replication catch-up over libp2p on loopback, every block verified,
//! beside a plain TCP copy of the same bytes in the same run:
//!
//! - streams: a follower with nothing fetches a writer's streams and
//!   applies them, and one without the bucket's key holds them blind
//!   (also: the export alone, the same import from a local file, a whole
//!   store's export and its import, BLAKE3 over the bytes);
//! - an object: a replica bucket fetches a large object by want-lists;
//! - lag: the writer appends at a steady rate, and each event's time from
//!   its acknowledged (durable) append to readable on a live follower.
//!
//! Run: `cargo bench -p hydra-net --bench replicate` (prints Markdown).
//! `HYDRA_BENCH_STREAMS`, `HYDRA_BENCH_EVENTS` (per stream; default
//! 100 x 10,000 events of 256 bytes), `HYDRA_BENCH_OBJECT_MB` (default
//! 1024), `HYDRA_BENCH_RATE` (lag appends per second, default 1000),
//! `HYDRA_BENCH_SEALED=1` (the streams in a zstd + ChaCha20-Poly1305
//! bucket; default a plain one), `HYDRA_BENCH_LAG_STREAM` (the stream the
//! lag part appends to: default `lag`, a new one; `bench-0` is the first
//! caught-up stream, as long as `HYDRA_BENCH_EVENTS`).
//!
//! Built with mimalloc and without transparent huge pages, as the `hydra`
//! binary runs.

use std::time::{Duration, Instant};

use hydra_bucket::{BucketName, CreateOptions, Key};
use hydra_eventlog::{EventLog, ExpectedVersion, NewEvent, Options, StreamId};
use hydra_net::{BucketFollow, Node, Serving};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT: usize = 256;
const BATCH: u64 = 1000;
const LAG_SAMPLES: u64 = 2000;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &std::path::Path) -> EventLog {
    EventLog::open_dir(dir, Options::default()).unwrap()
}

/// The bucket the streams go to, when sealed, and its key.
fn sealed() -> Option<(BucketName, Key)> {
    (env("HYDRA_BENCH_SEALED", 0) == 1)
        .then(|| ("vault".parse().unwrap(), Key::from_bytes([4; 32])))
}

/// A log in `dir` that holds the sealed bucket and its key (when sealed).
fn open_keyed(dir: &std::path::Path) -> EventLog {
    let log = open(dir);
    if let Some((name, key)) = sealed() {
        let options = CreateOptions {
            zstd_level: Some(3),
            key: Some(&key),
        };
        log.store().create_bucket(&name, options).unwrap();
        log.unlock(&name, &key).unwrap();
    }
    log
}

/// The streams' bucket, replicated from `a`, written by `key`.
fn streams_of(a: &Node, key: [u8; 32]) -> BucketFollow {
    BucketFollow {
        bucket: sealed().map_or_else(BucketName::default_bucket, |(name, _)| name),
        from: vec![a.listening()[0].clone()],
        writers: vec![key],
        retry: Duration::from_secs(1),
    }
}

/// A node for `log` that serves every bucket (and so every stream) to
/// every peer, listening on `listen`.
async fn serve_all(log: &EventLog, listen: Vec<hydra_net::Multiaddr>) -> Node {
    let serving = Serving::everything(log.store().clone());
    Node::start(log.clone(), serving, listen).await.unwrap()
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

fn listen() -> Vec<hydra_net::Multiaddr> {
    vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]
}

/// Time to send `bytes` bytes over a plain loopback TCP connection (the
/// same kernel path libp2p uses, without noise, yamux or any checking).
async fn tcp_copy(bytes: u64) -> Duration {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let t = Instant::now();
    let sender = tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let chunk = vec![7u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            s.write_all(&chunk[..n]).await.unwrap();
            left -= n as u64;
        }
    });
    let mut c = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < bytes {
        got += c.read(&mut buf).await.unwrap() as u64;
    }
    sender.await.unwrap();
    t.elapsed()
}

fn row(what: &str, d: Duration, bytes: u64, items: u64, tcp: Duration) {
    println!(
        "| {what} | {:.0} ms | {:.0} | {:.0} | {:.2}x |",
        d.as_secs_f64() * 1000.0,
        mbps(bytes, d),
        items as f64 / d.as_secs_f64(),
        tcp.as_secs_f64() / d.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let dirs: Vec<_> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let writer = open_keyed(dirs[0].path());
    let a = serve_all(&writer, listen()).await;
    streams(&writer, &a, &dirs).await;
    // Each part is timed on its own: what the last one wrote reaches the
    // disk first.
    std::process::Command::new("sync").status().unwrap();
    object(&writer, &a, &dirs).await;
}

async fn streams(writer: &EventLog, a: &Node, dirs: &[tempfile::TempDir]) {
    let (streams, per) = (
        env("HYDRA_BENCH_STREAMS", 100),
        env("HYDRA_BENCH_EVENTS", 10_000),
    );
    let ids: Vec<StreamId> = (0..streams)
        .map(|s| StreamId::new(format!("bench-{s}")).unwrap())
        .collect();
    for id in &ids {
        for b in 0..per.div_ceil(BATCH) {
            let events = (b * BATCH..((b + 1) * BATCH).min(per))
                .map(|i| {
                    let mut data = format!("{{\"n\":{i},\"pad\":\"").into_bytes();
                    data.resize(EVENT - 2, b'x');
                    data.extend_from_slice(b"\"}");
                    NewEvent::new("Bench", data)
                })
                .collect();
            writer
                .write(hydra_eventlog::StreamWrite {
                    bucket: sealed().map(|(name, _)| name),
                    ..hydra_eventlog::StreamWrite::new(id.clone(), ExpectedVersion::Any, events)
                })
                .unwrap();
        }
    }
    let events = streams * per;

    // The same bytes the network carries: one export of every stream.
    let t = Instant::now();
    let mut car = Vec::new();
    writer.export(&ids, &mut car).unwrap();
    let export = t.elapsed();
    let bytes = car.len() as u64;
    let key = writer.identity().public_key();

    let t = Instant::now();
    let mut h = blake3::Hasher::new();
    h.update(&car);
    std::hint::black_box(h.finalize());
    let hash = t.elapsed();

    let file = dirs[2].path().join("export.car");
    std::fs::write(&file, &car).unwrap();
    drop(car);
    let local = open_keyed(&dirs[2].path().join("local"));
    let t = Instant::now();
    let r = local.import(&file, &[key]).unwrap();
    let local_import = t.elapsed();
    assert_eq!(r.events, events);
    drop(local);
    std::fs::remove_file(&file).unwrap();

    // A whole store's backup, and its restore into an empty directory.
    let file = dirs[2].path().join("backup.car");
    let t = Instant::now();
    let f = std::fs::File::create(&file).unwrap();
    writer.export_all(std::io::BufWriter::new(f)).unwrap();
    let backup = t.elapsed();
    let backup_bytes = std::fs::metadata(&file).unwrap().len();
    let restored = open_keyed(&dirs[2].path().join("restored"));
    let t = Instant::now();
    assert_eq!(restored.import(&file, &[key]).unwrap().events, events);
    let restore = t.elapsed();
    drop(restored);
    std::fs::remove_file(&file).unwrap();

    let follow = streams_of(a, key);
    // A follower with the key, then one without it (blind, when sealed).
    let mut catch_up = Vec::new();
    for (dir, keyed) in [(1, true), (5, false)] {
        if !keyed && sealed().is_none() {
            continue;
        }
        let log = if keyed {
            open_keyed(dirs[dir].path())
        } else {
            open(dirs[dir].path())
        };
        let node = serve_all(&log, Vec::new()).await;
        let t = Instant::now();
        let mut got = 0;
        // A round asks for every stream it is behind on.
        while got < events {
            got += follow.streams_round(&node, &log).await.unwrap();
        }
        catch_up.push((keyed, t.elapsed()));
        assert_eq!(log.held_length(&ids[0]).unwrap(), per);
        if keyed {
            lag(writer, a, &log, &node, key).await;
        }
    }
    // Rates are of the events' data (what an application wrote), so that
    // a compressed bucket's figures compare with a plain one's.
    let data = events * EVENT as u64;
    let tcp = tcp_copy(data).await;

    println!(
        "### Streams: {streams} x {per} events of {EVENT} B ({events} events, {:.1} MB of event data; the export is {:.1} MB, {}), durability sync\n",
        data as f64 / 1e6,
        bytes as f64 / 1e6,
        if sealed().is_some() {
            "in a zstd + ChaCha20-Poly1305 bucket"
        } else {
            "in a plain bucket"
        }
    );
    println!("| work | time | event MB/s | events/s | TCP copy time / this |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (what, d) in [
        ("plain TCP copy of the events' bytes, loopback", tcp),
        ("BLAKE3 over the export (hashing alone)", hash),
        ("export of the streams to memory (stored blocks)", export),
        ("import from a local file (verify + apply)", local_import),
    ] {
        row(what, d, data, events, tcp);
    }
    for (keyed, d) in catch_up {
        let what = if keyed {
            "catch-up over libp2p, loopback (fetch + verify + apply)"
        } else {
            "catch-up over libp2p by a blind follower (fetch + verify + keep)"
        };
        row(what, d, data, events, tcp);
    }
    let what = format!(
        "whole-store export to a file ({:.1} MB)",
        backup_bytes as f64 / 1e6
    );
    row(&what, backup, data, events, tcp);
    row(
        "its import into an empty directory",
        restore,
        data,
        events,
        tcp,
    );
}

/// Appends at a steady rate on the writer while a live follower follows;
/// reports how long each event took from acknowledged to readable there.
async fn lag(writer: &EventLog, a: &Node, follower: &EventLog, b: &Node, key: [u8; 32]) {
    let rate = env("HYDRA_BENCH_RATE", 1000);
    let live = streams_of(a, key);
    let task = tokio::spawn(live.clone().run_streams(
        b.clone(),
        follower.clone(),
        live.streams_status(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stream =
        StreamId::new(std::env::var("HYDRA_BENCH_LAG_STREAM").unwrap_or("lag".into())).unwrap();
    let before = follower
        .stream_version(&stream)
        .unwrap()
        .map_or(0, |v| v + 1);
    let (w, s) = (writer.clone(), stream.clone());
    // Paced appends on their own thread; each ack time by version.
    let appender = std::thread::spawn(move || {
        let start = Instant::now();
        let mut acked = Vec::new();
        for i in 0..LAG_SAMPLES {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(wait) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            w.write(hydra_eventlog::StreamWrite {
                bucket: sealed().map(|(name, _)| name),
                ..hydra_eventlog::StreamWrite::new(
                    s.clone(),
                    ExpectedVersion::Any,
                    vec![NewEvent::new("Lag", vec![0; EVENT])],
                )
            })
            .unwrap();
            acked.push(Instant::now());
        }
        (acked, start.elapsed())
    });
    let mut seen = Vec::new();
    while (seen.len() as u64) < LAG_SAMPLES {
        let visible = follower
            .stream_version(&stream)
            .unwrap()
            .map_or(0, |v| v + 1)
            - before;
        while (seen.len() as u64) < visible {
            seen.push(Instant::now());
        }
        tokio::time::sleep(Duration::from_micros(100)).await;
    }
    let (acked, took) = appender.join().unwrap();
    task.abort();
    let mut lags: Vec<Duration> = seen
        .iter()
        .zip(&acked)
        .map(|(s, a)| s.saturating_duration_since(*a))
        .collect();
    lags.sort();
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];
    println!(
        "\nLag, {LAG_SAMPLES} appends at {:.0}/s (target {rate}/s), acknowledged on the writer to readable on the follower: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms\n",
        LAG_SAMPLES as f64 / took.as_secs_f64(),
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        lags.last().unwrap().as_secs_f64() * 1000.0,
    );
}

async fn object(writer: &EventLog, a: &Node, dirs: &[tempfile::TempDir]) {
    let size = env("HYDRA_BENCH_OBJECT_MB", 1024) << 20;
    let name: BucketName = "bench".parse().unwrap();
    writer
        .store()
        .create_bucket(&name, CreateOptions::default())
        .unwrap();
    let bucket = writer.store().bucket(&name, None).unwrap();
    // Incompressible bytes, generated as they are stored.
    let xof = blake3::Hasher::new().update(b"bench").finalize_xof();
    let data = std::io::Read::take(XofReader(xof), size);
    let info = bucket.put_object("big", data, |_| {}).unwrap();
    let blocks = bucket.stats().unwrap().blocks;

    let replica = open(dirs[3].path());
    let b = serve_all(&replica, Vec::new()).await;
    let follow = BucketFollow {
        bucket: name.clone(),
        from: vec![a.listening()[0].clone()],
        writers: vec![writer.identity().public_key()],
        retry: Duration::from_secs(1),
    };
    let status = follow.status();
    let t = Instant::now();
    follow
        .round(&b, replica.store(), None, &status)
        .await
        .unwrap();
    let network = t.elapsed();
    let report = status.lock().unwrap().clone();
    assert_eq!(report.bad_blocks, 0);
    let got = replica.store().bucket(&name, None).unwrap();
    assert_eq!(got.object("big").unwrap().unwrap().root, info.root);
    let bytes = report.bytes_received;
    let tcp = tcp_copy(bytes).await;
    println!(
        "### Object: {} MiB, {} blocks (chunks, index nodes, the closure), replica fetches by want-lists\n",
        size >> 20,
        blocks
    );
    println!("| work | time | MB/s | blocks/s | TCP copy time / this |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    row(
        "plain TCP copy of the same bytes, loopback",
        tcp,
        bytes,
        report.blocks_received,
        tcp,
    );
    row(
        "catch-up over libp2p, loopback (fetch + verify each block + store)",
        network,
        bytes,
        report.blocks_received,
        tcp,
    );
}

/// BLAKE3's extendable output as a reader.
struct XofReader(blake3::OutputReader);

impl std::io::Read for XofReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.fill(buf);
        Ok(buf.len())
    }
}
