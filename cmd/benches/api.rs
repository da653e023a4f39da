//! API load: durable single-event appends from 1, 8 and 64 concurrent
//! clients over HTTP, gRPC and RESP3 (with `redis-benchmark`, pipelined and
//! not), against one real daemon (release build) on loopback; then
//! Server-Sent Events fan-out to 100 subscribers; then a subscription
//! catching up on a stream of 200,000 events over each API; then the load
//! an operator would run: 8 appending clients for some seconds with 0,
//! 1,000 and 10,000 subscribers (`HYDRA_BENCH_SUBSCRIBERS`,
//! comma-separated; `HYDRA_BENCH_SECONDS`, default 10) over SSE, gRPC (a
//! connection each, or 100 connections shared) and RESP3
//! (`HYDRA_BENCH_SUBSCRIBE_WITH=sse,grpc,grpc-shared,resp`), each on a
//! fresh daemon. With `SIERRADB=<path to the sierradb-server binary>`,
//! the same `redis-benchmark` load runs against SierraDB in the same run,
//! for the ratio. `HYDRA_BENCH_ONLY=load` runs only the last part (`apis`,
//! `fanout`, `catchup`, `load`, comma-separated).
//!
//! Run: `cargo bench -p hydra --bench api` (prints Markdown).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use hydra::proto as pb;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The daemon, with its HTTP URL, RESP and gRPC addresses.
struct Daemon {
    server: Server,
    url: String,
    resp: String,
    grpc: String,
}

fn start(dir: &std::path::Path) -> Daemon {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hydra"))
        .arg("--data")
        .arg(dir)
        .args(["daemon", "--http", "127.0.0.1:0", "--resp", "127.0.0.1:0"])
        .args(["--grpc", "127.0.0.1:0", "--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (mut resp, mut grpc) = (String::new(), String::new());
    let url = loop {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let line = line.trim();
        if let Some(a) = line.strip_prefix("resp listening on ") {
            resp = a.to_owned();
        } else if let Some(a) = line.strip_prefix("grpc listening on ") {
            grpc = a.to_owned();
        } else if let Some(u) = line.strip_prefix("listening on ") {
            break u.to_owned();
        }
    };
    // Keep the pipe open for the daemon's lifetime.
    std::mem::forget(out);
    Daemon {
        server: Server(child),
        url,
        resp,
        grpc,
    }
}

/// SierraDB (when `SIERRADB` names its binary) and its address.
fn start_sierradb(dir: &std::path::Path) -> Option<(Server, String)> {
    let bin = std::env::var("SIERRADB").ok()?;
    let addr = format!("127.0.0.1:{}", 19090 + (std::process::id() % 1000) as u16);
    // SierraDB 0.3.1 refuses EXPECTED_VERSION any unless strict versioning
    // is off; Hydra's load uses `any` too.
    let config = dir.join("sierradb.toml");
    std::fs::write(&config, "[append]\nstrict_versioning = false\n").ok()?;
    let child = Command::new(bin)
        .arg("--dir")
        .arg(dir.join("data"))
        .arg("-c")
        .arg(&config)
        .args(["--client-address", &addr])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let server = Server(child);
    for _ in 0..300 {
        if std::net::TcpStream::connect(&addr).is_ok() {
            std::thread::sleep(Duration::from_secs(1));
            return Some((server, addr));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Appends/s, p50, p99.
type Figure = (f64, Duration, Duration);

fn figure(started: Instant, mut lat: Vec<Duration>) -> Figure {
    let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
}

/// `clients` threads, each posting `each` single-event appends.
fn http_appends(url: &str, clients: usize, each: usize) -> Figure {
    let body = format!(
        r#"{{"type":"Bench","data":{{"pad":"{}"}}}}"#,
        "x".repeat(220)
    );
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = format!("{url}/streams/http-{clients}-{c}");
            let body = body.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                (0..each)
                    .map(|_| {
                        let t = Instant::now();
                        let r = client.post(&url).body(body.clone()).send().unwrap();
                        assert_eq!(r.status(), 201);
                        t.elapsed()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let lat = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    figure(started, lat)
}

/// `clients` concurrent tonic clients, each appending `each` events.
fn grpc_appends(addr: &str, clients: usize, each: usize) -> Figure {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let started = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|c| {
                let url = format!("http://{addr}");
                tokio::spawn(async move {
                    let mut client = pb::event_store_client::EventStoreClient::connect(url)
                        .await
                        .unwrap();
                    let mut lat = Vec::with_capacity(each);
                    for _ in 0..each {
                        let req = pb::AppendRequest {
                            stream: format!("grpc-{clients}-{c}"),
                            expected: None,
                            events: vec![pb::NewEvent {
                                r#type: "Bench".into(),
                                data: vec![b'x'; 240],
                                ..Default::default()
                            }],
                            bucket: None,
                        };
                        let t = Instant::now();
                        client.append(req).await.unwrap();
                        lat.push(t.elapsed());
                    }
                    lat
                })
            })
            .collect();
        let mut lat = Vec::new();
        for t in tasks {
            lat.extend(t.await.unwrap());
        }
        figure(started, lat)
    })
}

/// One `redis-benchmark` run of EAPPEND over RESP3: (rps, p50 ms, p99 ms).
fn redis_benchmark(
    addr: &str,
    clients: usize,
    requests: usize,
    pipeline: usize,
) -> Option<(f64, f64, f64)> {
    let (host, port) = addr.rsplit_once(':')?;
    let payload = "x".repeat(230);
    let out = Command::new("redis-benchmark")
        .args(["-h", host, "-p", port, "-3", "--csv", "-r", "1000000"])
        .args([
            "-c",
            &clients.to_string(),
            "-n",
            &requests.to_string(),
            "-P",
            &pipeline.to_string(),
        ])
        .args([
            "EAPPEND",
            "bench-__rand_int__",
            "Bench",
            "PAYLOAD",
            &payload,
        ])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text.lines().last()?;
    // "test","rps","avg","min","p50","p95","p99","max"
    let cols: Vec<f64> = row
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse().unwrap_or(0.0))
        .collect();
    (cols.len() >= 6 && cols[0] > 0.0).then(|| (cols[0], cols[3], cols[5]))
}

/// 100 SSE subscribers from now; then `events` appends; the time until
/// every subscriber has every event.
fn fan_out(url: &str, subscribers: usize, events: usize) -> (f64, Duration) {
    let ready = std::sync::Arc::new(std::sync::Barrier::new(subscribers + 1));
    let subs: Vec<_> = (0..subscribers)
        .map(|_| {
            let url = format!("{url}/subscribe/all");
            let ready = ready.clone();
            std::thread::spawn(move || {
                let r = reqwest::blocking::Client::new().get(&url).send().unwrap();
                ready.wait();
                let mut got = 0;
                for line in BufReader::new(r).lines() {
                    if line.unwrap().starts_with("data:") {
                        got += 1;
                        if got == events {
                            break;
                        }
                    }
                }
                Instant::now()
            })
        })
        .collect();
    ready.wait();
    let client = reqwest::blocking::Client::new();
    let started = Instant::now();
    for chunk in 0..events / 100 {
        let batch: Vec<String> = (0..100)
            .map(|i| format!(r#"{{"type":"Fan","data":{}}}"#, chunk * 100 + i))
            .collect();
        let r = client
            .post(format!("{url}/streams/fan"))
            .body(format!("[{}]", batch.join(",")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    let last = subs.into_iter().map(|t| t.join().unwrap()).max().unwrap();
    let took = last - started;
    ((subscribers * events) as f64 / took.as_secs_f64(), took)
}

/// What a load run measured.
struct Load {
    appends: Figure,
    deliveries: f64,
    errors: usize,
    rss_mib: u64,
}

/// How the load's subscribers subscribe.
#[derive(Clone, Copy)]
enum Via {
    Sse,
    /// Each subscriber on a connection of its own.
    Grpc,
    /// Subscribers multiplexed on [`SHARED_CHANNELS`] connections, as a
    /// gRPC client's channel carries them.
    GrpcShared,
    Resp,
}

/// The connections [`Via::GrpcShared`] subscribers share.
const SHARED_CHANNELS: usize = 100;

impl Via {
    fn name(self) -> &'static str {
        match self {
            Via::Sse => "SSE",
            Via::Grpc => "gRPC",
            Via::GrpcShared => "gRPC (100 connections)",
            Via::Resp => "RESP3",
        }
    }
}

/// Counts a marker in bytes read in chunks, one of which may straddle
/// two of them.
struct Markers {
    marker: &'static [u8],
    /// The end of the bytes so far, too short to hold a marker.
    tail: Vec<u8>,
}

impl Markers {
    fn new(marker: &'static [u8]) -> Markers {
        Markers {
            marker,
            tail: Vec::new(),
        }
    }

    /// The markers that end in `chunk`.
    fn count(&mut self, chunk: &[u8]) -> usize {
        let m = self.marker.len();
        let matches = |b: &[u8]| b.windows(m).filter(|w| *w == self.marker).count();
        // The tail and the start of `chunk` hold only the markers that
        // straddle the two.
        self.tail
            .extend_from_slice(&chunk[..chunk.len().min(m - 1)]);
        let n = matches(&self.tail) + matches(chunk);
        if chunk.len() >= m - 1 {
            self.tail.clear();
            self.tail.extend_from_slice(&chunk[chunk.len() - (m - 1)..]);
        } else {
            let cut = self.tail.len().saturating_sub(m - 1);
            self.tail.drain(..cut);
        }
        n
    }
}

/// What a subscriber follows: a stream, or `$all` filtered to a stream
/// prefix; from a version or position (`None`: from now).
struct Follow {
    stream: String,
    all: bool,
    from: Option<u64>,
}

/// One subscriber on its own connection (RESP3 has no `$all`
/// subscription: a stream there too). Counts each event it receives until
/// `done`.
async fn subscriber(
    via: Via,
    d: (String, String, String),
    channel: Option<tonic::transport::Channel>,
    follow: Follow,
    delivered: &std::sync::atomic::AtomicUsize,
    connected: &std::sync::atomic::AtomicUsize,
    done: &std::sync::atomic::AtomicBool,
) -> Result<(), String> {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (url, grpc, resp) = d;
    let Follow { stream, all, from } = follow;
    match via {
        Via::Sse => {
            let mut query: Vec<(&str, String)> =
                from.map(|f| ("from", f.to_string())).into_iter().collect();
            let url = if all {
                query.push(("prefix", stream));
                format!("{url}/subscribe/all")
            } else {
                format!("{url}/subscribe/streams/{stream}")
            };
            let mut r = reqwest::Client::new()
                .get(url)
                .query(&query)
                .send()
                .await
                .map_err(|e| e.to_string())?;
            connected.fetch_add(1, Ordering::Relaxed);
            let mut messages = Markers::new(b"data:");
            while !done.load(Ordering::Relaxed) {
                match r.chunk().await.map_err(|e| e.to_string())? {
                    Some(c) => {
                        delivered.fetch_add(messages.count(&c), Ordering::Relaxed);
                    }
                    None => break,
                }
            }
        }
        Via::Grpc | Via::GrpcShared => {
            let channel = match channel {
                Some(c) => c,
                None => tonic::transport::Endpoint::from_shared(format!("http://{grpc}"))
                    .map_err(|e| e.to_string())?
                    .connect()
                    .await
                    .map_err(|e| e.to_string())?,
            };
            let mut c = pb::event_store_client::EventStoreClient::new(channel);
            let mut sub = if all {
                c.subscribe_to_all(pb::SubscribeToAllRequest {
                    stream_prefix: stream,
                    from,
                    ..Default::default()
                })
                .await
            } else {
                c.subscribe_to_stream(pb::SubscribeToStreamRequest { stream, from })
                    .await
            }
            .map_err(|e| e.to_string())?
            .into_inner();
            connected.fetch_add(1, Ordering::Relaxed);
            while !done.load(Ordering::Relaxed) {
                match sub.message().await.map_err(|e| e.to_string())? {
                    Some(_) => {
                        delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    None => break,
                }
            }
        }
        Via::Resp => {
            let mut s = tokio::net::TcpStream::connect(&resp)
                .await
                .map_err(|e| e.to_string())?;
            let mut words = vec!["ESUB".to_owned(), stream];
            if let Some(f) = from {
                words.extend(["FROM".to_owned(), f.to_string()]);
            }
            let mut esub = "*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n".to_owned();
            esub.push_str(&format!("*{}\r\n", words.len()));
            for w in &words {
                esub.push_str(&format!("${}\r\n{w}\r\n", w.len()));
            }
            s.write_all(esub.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
            // Subscribed once the confirmation push `[subscribe, id, n]`
            // has come, as an SSE or gRPC subscriber is once its answer
            // has: counted before it, 10,000 subscribers connecting at
            // once had the appends start while the daemon still set up
            // their subscriptions.
            const SUBSCRIBED: &[u8] = b"+subscribe\r\n";
            let mut head = Vec::new();
            let at = loop {
                if s.read_buf(&mut head).await.map_err(|e| e.to_string())? == 0 {
                    return Err("closed before subscribing".into());
                }
                if let Some(i) = head.windows(SUBSCRIBED.len()).position(|w| w == SUBSCRIBED) {
                    break i;
                }
            };
            connected.fetch_add(1, Ordering::Relaxed);
            // Each event is a push `[message, id, version, event]`.
            let mut messages = Markers::new(b"+message\r\n");
            delivered.fetch_add(messages.count(&head[at..]), Ordering::Relaxed);
            let mut buf = vec![0u8; 64 << 10];
            while !done.load(Ordering::Relaxed) {
                let n = s.read(&mut buf).await.map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                delivered.fetch_add(messages.count(&buf[..n]), Ordering::Relaxed);
            }
        }
    }
    Ok(())
}

/// `appenders` clients appending single events to 100 streams for
/// `seconds`, while `subscribers` subscribers (see [`subscriber`]) count
/// what they receive.
fn load(via: Via, subscribers: usize, appenders: usize, seconds: u64) -> Load {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    hydra::raise_open_files();
    let streams = 100;
    let (delivered, errors) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let connected = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let channels: Vec<_> = match via {
        Via::GrpcShared => rt.block_on(async {
            let endpoint =
                tonic::transport::Endpoint::from_shared(format!("http://{}", d.grpc)).unwrap();
            let connects = (0..SHARED_CHANNELS).map(|_| endpoint.connect());
            futures_util::future::try_join_all(connects).await.unwrap()
        }),
        _ => Vec::new(),
    };
    for k in 0..subscribers {
        let channel = (!channels.is_empty()).then(|| channels[k % channels.len()].clone());
        let addresses = (d.url.clone(), d.grpc.clone(), d.resp.clone());
        let (delivered, errors, connected, done) = (
            delivered.clone(),
            errors.clone(),
            connected.clone(),
            done.clone(),
        );
        // Subscriber `k` follows stream `load-{k % 100}`, or for odd `k`
        // `$all` filtered to that stream's prefix.
        let follow = Follow {
            stream: format!("load-{:04}", k % streams),
            all: k % 2 == 1,
            from: None,
        };
        rt.spawn(async move {
            if let Err(e) = subscriber(
                via, addresses, channel, follow, &delivered, &connected, &done,
            )
            .await
                && !done.load(Ordering::Relaxed)
                && errors.fetch_add(1, Ordering::Relaxed) < 3
            {
                eprintln!("subscriber {k}: {e}");
            }
        });
    }
    while connected.load(Ordering::Relaxed) + errors.load(Ordering::Relaxed) < subscribers {
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = format!(
        r#"{{"type":"Load","data":{{"pad":"{}"}}}}"#,
        "x".repeat(200)
    );
    let started = Instant::now();
    let threads: Vec<_> = (0..appenders)
        .map(|c| {
            let (url, body, errors) = (d.url.clone(), body.clone(), errors.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut lat = Vec::new();
                let mut i = c;
                while started.elapsed() < Duration::from_secs(seconds) {
                    let t = Instant::now();
                    match client
                        .post(format!("{url}/streams/load-{:04}", i % streams))
                        .body(body.clone())
                        .send()
                    {
                        Ok(r) if r.status() == 201 => lat.push(t.elapsed()),
                        _ => {
                            errors.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    i += appenders;
                }
                lat
            })
        })
        .collect();
    let lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let appends = figure(started, lat);
    // Deliveries still on their way count, up to a second after.
    std::thread::sleep(Duration::from_secs(1));
    let deliveries = delivered.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    let rss_mib = std::fs::read_to_string(format!("/proc/{}/status", d.server.0.id()))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .unwrap_or(0)
        / 1024;
    done.store(true, Ordering::Relaxed);
    drop(rt);
    Load {
        appends,
        deliveries,
        errors: errors.load(Ordering::Relaxed),
        rss_mib,
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let only = std::env::var("HYDRA_BENCH_ONLY").ok();
    let runs = |part: &str| {
        only.as_deref()
            .is_none_or(|o| o.split(',').any(|p| p == part))
    };
    if runs("apis") {
        apis();
    }
    if runs("fanout") {
        let dir = tempfile::tempdir().unwrap();
        let d = start(dir.path());
        let (rate, took) = fan_out(&d.url, 100, 2000);
        println!();
        println!("| SSE fan-out | deliveries/s | all delivered in |");
        println!("|---|---|---|");
        println!(
            "| 100 subscribers x 2,000 events | {rate:.0} | {} ms |",
            ms(took)
        );
    }
    if runs("catchup") {
        catch_ups();
    }
    if runs("load") {
        loads();
    }
}

/// Appends over each API, beside SierraDB when it is there.
fn apis() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    println!(
        "| API | clients | appends/s | p50 ms | p99 ms | SierraDB 0.3.1, same load | Hydra / SierraDB |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (clients, each) in [(1, 1000), (8, 500), (64, 150)] {
        let (rate, p50, p99) = http_appends(&d.url, clients, each);
        println!(
            "| HTTP POST | {clients} | {rate:.0} | {} | {} | | |",
            ms(p50),
            ms(p99)
        );
    }
    for (clients, each) in [(1, 1000), (8, 500), (64, 150)] {
        let (rate, p50, p99) = grpc_appends(&d.grpc, clients, each);
        println!(
            "| gRPC Append | {clients} | {rate:.0} | {} | {} | | |",
            ms(p50),
            ms(p99)
        );
    }
    let sierra_dir = tempfile::tempdir().unwrap();
    let sierra = start_sierradb(sierra_dir.path());
    for pipeline in [1usize, 16] {
        for clients in [1usize, 8, 64] {
            let requests = if pipeline == 1 {
                1000 * clients.min(10)
            } else {
                20_000
            };
            let label = if pipeline == 1 {
                "RESP3 EAPPEND".to_owned()
            } else {
                format!("RESP3 EAPPEND, pipeline {pipeline}")
            };
            let Some((rps, p50, p99)) = redis_benchmark(&d.resp, clients, requests, pipeline)
            else {
                println!("| {label} | {clients} | redis-benchmark failed or is missing | | | | |");
                continue;
            };
            let theirs = sierra
                .as_ref()
                .and_then(|(_, addr)| redis_benchmark(addr, clients, requests.min(1000), pipeline));
            let (s, ratio) = match theirs {
                Some((s_rps, s50, s99)) => (
                    format!("{s_rps:.0}/s (p50 {s50:.2}, p99 {s99:.2} ms)"),
                    format!("{:.1}x", rps / s_rps),
                ),
                None => ("(not run)".into(), String::new()),
            };
            println!("| {label} | {clients} | {rps:.0} | {p50:.2} | {p99:.2} | {s} | {ratio} |");
        }
    }
}

/// A subscription from the start of a stream of 200,000 events (of about
/// 256 bytes) over each API: events/s until the last has come.
fn catch_ups() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (events, batch) = (200_000, 1000);
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path());
    let client = reqwest::blocking::Client::new();
    let event = format!(
        r#"{{"type":"Load","data":{{"pad":"{}"}}}}"#,
        "x".repeat(200)
    );
    let body = format!("[{}]", vec![event; batch].join(","));
    for _ in 0..events / batch {
        let r = client
            .post(format!("{}/streams/history", d.url))
            .body(body.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    println!();
    println!("| catch-up of a stream of {events} events | events/s |");
    println!("|---|---|");
    for via in [Via::Sse, Via::Grpc, Via::Resp] {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let delivered = Arc::new(AtomicUsize::new(0));
        let (connected, done) = (AtomicUsize::new(0), AtomicBool::new(false));
        let follow = Follow {
            stream: "history".into(),
            all: false,
            from: Some(0),
        };
        let addresses = (d.url.clone(), d.grpc.clone(), d.resp.clone());
        let started = Instant::now();
        let count = delivered.clone();
        rt.spawn(async move {
            if let Err(e) =
                subscriber(via, addresses, None, follow, &count, &connected, &done).await
            {
                eprintln!("{} catch-up: {e}", via.name());
            }
        });
        while delivered.load(Ordering::Relaxed) < events {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "catch-up stalled"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        let rate = events as f64 / started.elapsed().as_secs_f64();
        println!("| {} | {rate:.0} |", via.name());
    }
}

/// The operator's load at each number of subscribers.
fn loads() {
    let seconds = std::env::var("HYDRA_BENCH_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let counts: Vec<usize> = std::env::var("HYDRA_BENCH_SUBSCRIBERS")
        .unwrap_or_else(|_| "0,1000,10000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    println!();
    println!(
        "| load: 8 appenders, {seconds} s | appends/s | p50 ms | p99 ms | deliveries/s | errors | daemon peak RSS MiB |"
    );
    println!("|---|---|---|---|---|---|---|");
    let vias: Vec<Via> = std::env::var("HYDRA_BENCH_SUBSCRIBE_WITH")
        .unwrap_or_else(|_| "sse,grpc,grpc-shared,resp".into())
        .split(',')
        .filter_map(|v| match v.trim() {
            "sse" => Some(Via::Sse),
            "grpc" => Some(Via::Grpc),
            "grpc-shared" => Some(Via::GrpcShared),
            "resp" => Some(Via::Resp),
            _ => None,
        })
        .collect();
    for m in counts {
        // Without subscribers, how they would subscribe makes no odds.
        let vias = if m == 0 { &vias[..1] } else { &vias[..] };
        for &via in vias {
            let l = load(via, m, 8, seconds);
            let who = if m == 0 {
                "0 subscribers".to_owned()
            } else {
                format!("{m} {} subscribers", via.name())
            };
            println!(
                "| {who} | {:.0} | {} | {} | {:.0} | {} | {} |",
                l.appends.0,
                ms(l.appends.1),
                ms(l.appends.2),
                l.deliveries,
                l.errors,
                l.rss_mib
            );
        }
    }
}
