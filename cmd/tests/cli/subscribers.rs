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
        let append = |s: usize, i: u64| {
            let c = c.clone();
            let url = d.at(&format!("/streams/feed-{s:04}"));
            async move {
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
        };
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
