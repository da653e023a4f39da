//! Many subscribers on one daemon: each gets every event of its stream or
//! filtered `$all` once and in order, appends keep going, and a
//! subscriber that stops reading holds up nobody and misses nothing.

use std::io::{BufRead, BufReader};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::daemon::Daemon;

/// Resident memory of a process now, in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn quantile(mut v: Vec<Duration>, q: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 * q) as usize).min(v.len() - 1)]
}

/// Appends a `Tick` event with data `i` over HTTP; how long it took.
async fn tick(c: reqwest::Client, url: String, i: u64) -> Duration {
    let t = Instant::now();
    let r = c
        .post(url)
        .body(format!(r#"{{"type":"Tick","data":{i}}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    t.elapsed()
}

/// Reads SSE messages from `r` until `n` have come; returns each one's
/// (stream, version).
async fn sse(mut r: reqwest::Response, n: usize) -> Vec<(String, u64)> {
    let mut text = String::new();
    let mut out = Vec::new();
    while out.len() < n {
        let Some(chunk) = r.chunk().await.unwrap() else {
            break;
        };
        text.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = text.find("\n\n") {
            let message: String = text.drain(..end + 2).collect();
            if let Some(data) = message.lines().find_map(|l| l.strip_prefix("data:")) {
                let e: Value = serde_json::from_str(data.trim()).unwrap();
                out.push((
                    e["stream"].as_str().unwrap().to_owned(),
                    e["version"].as_u64().unwrap(),
                ));
            }
        }
    }
    out
}

/// 2,000 subscribers on 10 streams; `HYDRA_TEST_SUBSCRIBERS=10000` (and
/// `--release`) for the load the daemon is built for, spread over 100
/// streams.
#[test]
fn thousands_of_subscribers_each_get_every_event_once_while_appends_go_on() {
    // Our own side of 2,000 connections.
    hydra::raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let total: usize = std::env::var("HYDRA_TEST_SUBSCRIBERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let (streams, per_kind, rounds) = ((total / 200).max(1), total / 2, 20u64);
    let idle = rss_kib(d.pid());
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let c = reqwest::Client::new();
        let append = |s: usize, i: u64| tick(c.clone(), d.at(&format!("/streams/feed-{s:04}")), i);
        // Appends with nobody subscribed, for comparison.
        let mut quiet = Vec::new();
        for i in 0..10 * streams {
            quiet.push(append(i % streams, 0).await);
        }
        // Half on a stream each (from now), half on `$all` filtered to
        // one stream's prefix.
        let connected = Arc::new(AtomicUsize::new(0));
        let mut subscribers = Vec::new();
        for k in 0..2 * per_kind {
            let s = k % streams;
            let url = if k < per_kind {
                d.at(&format!("/subscribe/streams/feed-{s:04}"))
            } else {
                d.at(&format!("/subscribe/all?prefix=feed-{s:04}"))
            };
            let (c, connected) = (c.clone(), connected.clone());
            subscribers.push(tokio::spawn(async move {
                let r = c.get(url).send().await.unwrap();
                assert_eq!(r.status(), 200);
                connected.fetch_add(1, Ordering::SeqCst);
                (s, sse(r, rounds as usize).await)
            }));
        }
        let t = Instant::now();
        while connected.load(Ordering::SeqCst) < 2 * per_kind {
            assert!(t.elapsed() < Duration::from_secs(60), "subscribers connect");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rss = rss_kib(d.pid());
        // The streams' current lengths: the stream subscribers started
        // from now, so they get what comes next.
        let first = 10;
        let mut busy = Vec::new();
        for round in 0..rounds {
            for s in 0..streams {
                busy.push(append(s, round).await);
            }
        }
        let got = tokio::time::timeout(
            Duration::from_secs(120),
            futures_util::future::join_all(subscribers),
        )
        .await
        .expect("every subscriber gets its events");
        for r in got {
            let (s, events) = r.unwrap();
            let want: Vec<(String, u64)> = (first..first + rounds)
                .map(|v| (format!("feed-{s:04}"), v))
                .collect();
            assert_eq!(events, want, "every event of feed-{s:04}, once, in order");
        }
        let (q50, q99, b50, b99) = (
            quantile(quiet.clone(), 0.5),
            quantile(quiet, 0.99),
            quantile(busy.clone(), 0.5),
            quantile(busy.clone(), 0.99),
        );
        let each = (rss - idle) / (2 * per_kind) as u64;
        println!(
            "appends: alone p50 {q50:?} p99 {q99:?}; with {} subscribers p50 {b50:?} p99 {b99:?}; daemon RSS {} MiB, {each} KiB a subscriber",
            2 * per_kind,
            rss / 1024
        );
        // About 20 KiB each (connection buffers, channels); a route table
        // rebuilt per connection made it 55.
        assert!(each <= 32, "{each} KiB a subscriber, daemon RSS {rss} KiB");
        assert!(
            busy.iter().all(|t| *t < Duration::from_secs(5)),
            "no append waits on subscribers"
        );
    });
}

#[test]
fn a_subscriber_that_stops_reading_holds_up_nobody_and_misses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let c = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .unwrap();
    // Subscribed, and not read until every append is done: 2,000 commits,
    // more than the live feed keeps, so it falls behind and reads the log.
    let stalled = c.get(d.at("/subscribe/all?from=0")).send().unwrap();
    let batch: String = format!(
        "[{}]",
        (0..10)
            .map(|i| format!(
                r#"{{"type":"Bulk","data":{{"i":{i},"pad":"{}"}}}}"#,
                "x".repeat(200)
            ))
            .collect::<Vec<_>>()
            .join(",")
    );
    let t = Instant::now();
    for i in 0..2000 {
        let r = c
            .post(d.at(&format!("/streams/bulk-{}", i % 7)))
            .body(batch.clone())
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    println!(
        "20,000 events appended in {:?} past a stalled subscriber",
        t.elapsed()
    );
    let mut positions = Vec::new();
    for line in BufReader::new(stalled).lines() {
        let line = line.unwrap();
        if let Some(id) = line.strip_prefix("id:") {
            positions.push(id.trim().parse::<u64>().unwrap());
            if positions.len() == 20_000 {
                break;
            }
        }
    }
    assert_eq!(positions, (0..20_000).collect::<Vec<_>>());
}

/// Waits until the daemon's `hydra_subscriber_lane_connections` gauge
/// reads `n`.
async fn lane_reads(d: &Daemon, n: u64) {
    let t = Instant::now();
    loop {
        let text = reqwest::get(d.at("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let now: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("hydra_subscriber_lane_connections "))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        if now == n {
            return;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "{now} connections in the subscribers' lane, not {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Takes the next `n` events of a gRPC stream subscription, checking they
/// are versions 0 to `n - 1` in order.
async fn grpc_versions(sub: &mut tonic::Streaming<crate::grpc::pb::Event>, n: u64) {
    for v in 0..n {
        let e = tokio::time::timeout(Duration::from_secs(10), sub.message())
            .await
            .unwrap_or_else(|_| panic!("version {v} delivered"))
            .unwrap()
            .unwrap();
        assert_eq!(e.version, v);
    }
}

/// Reads RESP from `socket` until `marker` has come `n` times.
async fn resp_until(socket: &mut tokio::net::TcpStream, marker: &str, n: usize) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches(marker).count() < n {
        let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buf))
            .await
            .expect("the daemon answers")
            .unwrap();
        assert!(
            read > 0,
            "the daemon closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..read]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// A subscription of any API moves its connection to the subscribers'
/// lane, where it still gets every event live and can still ask; appends
/// and reads leave theirs in the daemon's lane.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_of_any_api_moves_its_connection_to_the_subscribers_lane() {
    use crate::grpc::pb;
    use crate::resp::cmd;
    use pb::event_store_client::EventStoreClient;
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &["--grpc", "127.0.0.1:0", "--resp", "127.0.0.1:0"],
    );
    let (grpc, resp) = (
        format!("http://{}", d.grpc.clone().unwrap()),
        d.resp.clone().unwrap(),
    );
    let grpc_tick = |i: u64| pb::AppendRequest {
        stream: "feed".into(),
        events: vec![pb::NewEvent {
            r#type: "Tick".into(),
            data: i.to_string().into_bytes(),
            ..Default::default()
        }],
        ..Default::default()
    };
    let http = reqwest::Client::new();
    let append = |i: u64| tick(http.clone(), d.at("/streams/feed"), i);
    // Appends and reads of every API: no connection moves.
    append(0).await;
    let mut appender = EventStoreClient::connect(grpc.clone()).await.unwrap();
    appender.append(grpc_tick(1)).await.unwrap();
    let mut plain = tokio::net::TcpStream::connect(&resp).await.unwrap();
    let mut asked = cmd(&["EAPPEND", "feed", "Tick", "PAYLOAD", "2"]);
    asked.extend(cmd(&["ESCAN", "feed", "-", "+"]));
    asked.extend(cmd(&["PING"]));
    plain.write_all(&asked).await.unwrap();
    resp_until(&mut plain, "PONG", 1).await;
    let r = http.get(d.at("/streams/feed")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    lane_reads(&d, 0).await;

    // An SSE subscriber, a gRPC one and a RESP one: three connections move.
    let sse_sub = http
        .get(d.at("/subscribe/streams/feed?from=0"))
        .send()
        .await
        .unwrap();
    assert_eq!(sse_sub.status(), 200);
    let mut watcher = EventStoreClient::connect(grpc.clone()).await.unwrap();
    let mut grpc_sub = watcher
        .subscribe_to_stream(pb::SubscribeToStreamRequest {
            stream: "feed".into(),
            from: Some(0),
        })
        .await
        .unwrap()
        .into_inner();
    let mut resp_sub = tokio::net::TcpStream::connect(&resp).await.unwrap();
    let mut asked = cmd(&["HELLO", "3"]);
    asked.extend(cmd(&["ESUB", "feed", "FROM", "0"]));
    resp_sub.write_all(&asked).await.unwrap();
    resp_until(&mut resp_sub, "message", 3).await;
    lane_reads(&d, 3).await;

    // Live events reach each moved connection, and the moved gRPC
    // connection still answers requests multiplexed beside its stream.
    for i in 3..6 {
        append(i).await;
    }
    watcher.append(grpc_tick(6)).await.unwrap();
    grpc_versions(&mut grpc_sub, 7).await;
    let sse_events = tokio::time::timeout(Duration::from_secs(10), sse(sse_sub, 7))
        .await
        .expect("live over SSE");
    let want: Vec<(String, u64)> = (0..7).map(|v| ("feed".to_owned(), v)).collect();
    assert_eq!(sse_events, want);
    resp_until(&mut resp_sub, "message", 4).await;
    // The SSE subscriber has left; the appenders' connections never moved.
    lane_reads(&d, 2).await;

    // Subscribers gone: none left in the lane.
    drop((grpc_sub, watcher, resp_sub));
    lane_reads(&d, 0).await;
    drop((appender, plain));
}

/// 2,000 RESP3 subscribers each get a burst of 64 KiB of events, and
/// then cost the daemon little each: a connection's buffers go back to
/// a few KiB once written, not the most they ever held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_resp_subscribers_keep_little_after_a_burst() {
    use crate::resp::cmd;
    use tokio::io::AsyncWriteExt;

    hydra::raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--resp", "127.0.0.1:0"]);
    let resp = d.resp.clone().unwrap();
    let (total, streams, burst) = (2000, 20, 64);
    let idle = rss_kib(d.pid());
    let mut subscribers = Vec::new();
    for k in 0..total {
        let mut s = tokio::net::TcpStream::connect(&resp).await.unwrap();
        let mut asked = cmd(&["HELLO", "3"]);
        asked.extend(cmd(&["ESUB", &format!("feed-{}", k % streams)]));
        s.write_all(&asked).await.unwrap();
        subscribers.push(s);
    }
    // Subscribed: each has its confirmation.
    for s in &mut subscribers {
        resp_until(s, "subscribe", 1).await;
    }
    // One append of 64 events of 1 KiB to each stream.
    let http = reqwest::Client::new();
    let body = serde_json::to_string(&vec![
        serde_json::json!({"type": "Tick", "data": "x".repeat(1024)});
        burst
    ])
    .unwrap();
    for s in 0..streams {
        let r = http
            .post(d.at(&format!("/streams/feed-{s}")))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    for s in &mut subscribers {
        resp_until(s, "+message", burst).await;
    }
    let rss = rss_kib(d.pid());
    let each = (rss - idle) / total as u64;
    println!(
        "{each} KiB a RESP3 subscriber, daemon RSS {} MiB",
        rss / 1024
    );
    // About 40 KiB each, most of it what the allocator keeps of the
    // burst's buffers after they were freed; connections that kept the
    // buffers a burst grew (and a 64 KiB read buffer each) made it 120.
    assert!(each <= 64, "{each} KiB a subscriber, daemon RSS {rss} KiB");
}

/// 100 gRPC subscriptions on one connection whose client grants them
/// large windows and reads nothing hold a bounded buffer each of the
/// daemon's memory (HTTP/2's send buffer, 64 KiB), not what the client
/// would take; appends go on, and each subscription then gets every event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_subscriptions_that_stop_reading_hold_a_bounded_buffer() {
    use crate::grpc::pb;
    use pb::event_store_client::EventStoreClient;

    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--grpc", "127.0.0.1:0"]);
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://{}", d.grpc.clone().unwrap()))
            .unwrap()
            .initial_stream_window_size(16 << 20)
            .initial_connection_window_size(1 << 30)
            .connect()
            .await
            .unwrap();
    let c = EventStoreClient::new(channel);
    // 100 subscriptions of `bulk` from its start, none read.
    let subscribe = |mut c: EventStoreClient<tonic::transport::Channel>| async move {
        let mut subs = Vec::new();
        for _ in 0..100 {
            let request = pb::SubscribeToStreamRequest {
                stream: "bulk".into(),
                from: Some(0),
            };
            subs.push(c.subscribe_to_stream(request).await.unwrap().into_inner());
        }
        subs
    };
    let mut stalled = subscribe(c.clone()).await;
    let idle = rss_kib(d.pid());
    // 4 MiB: 40 appends of 100 events of 1 KiB.
    let http = reqwest::Client::new();
    let body = serde_json::to_string(&vec![
        serde_json::json!({"type": "Bulk", "data": "x".repeat(1024)});
        100
    ])
    .unwrap();
    for _ in 0..40 {
        let r = http
            .post(d.at("/streams/bulk"))
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let live = rss_kib(d.pid());
    let held = live - idle;
    println!("{held} KiB held for 100 stalled live gRPC subscriptions");
    // About 430 KiB each (HTTP/2's send buffer, what tonic encodes
    // ahead, what the allocator keeps of the events sent through), and
    // the events in the feed's ring; a send buffer of 64 KiB made it 550,
    // hyper's default (400 KiB) 1.5 MiB.
    assert!(held < 100 << 10, "{held} KiB held");
    // 100 more from the start, catching up from the log, stalled too:
    // each holds a page of the log as well.
    stalled.extend(subscribe(c).await);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = rss_kib(d.pid()) - live;
    println!("{held} KiB held for 100 stalled gRPC subscriptions catching up");
    // About 150 KiB each with the followers' page of 64 events (250 with
    // a send buffer of 64 KiB); the log's own page of 512 made it 560.
    assert!(held < 40 << 10, "{held} KiB held");
    for sub in &mut stalled {
        grpc_versions(sub, 4000).await;
    }
}

/// Thousands of clients connecting at once wait in each listener's queue
/// (HTTP, gRPC, RESP3) while the daemon is busy, not lose their SYNs and
/// retry a second later: with the daemon stopped, 1,500 connections to
/// each port complete (tokio's default backlog, 128, takes 129; one of
/// 1,024 took 1,025), and once it runs again it serves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_connections_waits_in_the_listen_queue() {
    use crate::resp::cmd;
    use tokio::io::AsyncWriteExt;

    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if somaxconn < 2048 {
        eprintln!("net.core.somaxconn is {somaxconn}: a queue of 1,500 cannot be tested here");
        return;
    }
    hydra::raise_open_files();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(
        dir.path(),
        &["--resp", "127.0.0.1:0", "--grpc", "127.0.0.1:0"],
    );
    let ports = [
        d.url.trim_start_matches("http://").to_owned(),
        d.grpc.clone().unwrap(),
        d.resp.clone().unwrap(),
    ];
    let signal = |s: &str| {
        let status = std::process::Command::new("kill")
            .args([s, &d.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    };
    signal("-STOP");
    let n = 1500;
    let mut queued = Vec::new();
    for port in &ports {
        let connects = (0..n).map(|_| {
            let port = port.clone();
            tokio::spawn(async move {
                tokio::time::timeout(
                    Duration::from_millis(700),
                    tokio::net::TcpStream::connect(port),
                )
                .await
            })
        });
        let mut done = 0;
        for c in futures_util::future::join_all(connects.collect::<Vec<_>>()).await {
            if let Ok(Ok(s)) = c.unwrap() {
                done += 1;
                queued.push(s);
            }
        }
        assert_eq!(
            done, n,
            "connections to {port} completed while the daemon was stopped"
        );
    }
    signal("-CONT");
    // The queued RESP3 connections are served.
    let mut resp: Vec<_> = queued.drain(2 * n..).collect();
    for s in &mut resp {
        s.write_all(&cmd(&["PING"])).await.unwrap();
    }
    for s in &mut resp {
        resp_until(s, "PONG", 1).await;
    }
}
