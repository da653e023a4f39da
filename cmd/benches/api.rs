//! API load: durable single-event appends from 1, 8 and 64 concurrent
//! clients over HTTP, RESP3 (with `redis-benchmark`, pipelined and not) and
//! gRPC, against one real daemon (release build) on loopback; then
//! Server-Sent Events fan-out to 100 subscribers. With `SIERRADB=<path to
//! the sierradb-server binary>`, the same `redis-benchmark` load runs
//! against SierraDB in the same run, for the ratio.
//!
//! Run: `cargo bench -p hydra --bench api` (prints Markdown).

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(dir: &std::path::Path) -> (Daemon, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_hydra"))
        .arg("--data")
        .arg(dir)
        .args(["daemon", "--http", "127.0.0.1:0", "--log-level", "warn"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap()
        .to_owned();
    (Daemon(child), url)
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// `clients` threads, each posting `each` single-event appends.
fn appends(url: &str, clients: usize, each: usize) -> (f64, Duration, Duration) {
    let body = format!(
        r#"{{"type":"Bench","data":{{"pad":"{}"}}}}"#,
        "x".repeat(220)
    );
    let started = Instant::now();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let url = format!("{url}/streams/bench-{clients}-{c}");
            let body = body.clone();
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut lat = Vec::with_capacity(each);
                for _ in 0..each {
                    let t = Instant::now();
                    let r = client.post(&url).body(body.clone()).send().unwrap();
                    assert_eq!(r.status(), 201);
                    lat.push(t.elapsed());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let rate = lat.len() as f64 / started.elapsed().as_secs_f64();
    lat.sort();
    (rate, percentile(&lat, 0.5), percentile(&lat, 0.99))
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

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, url) = start(dir.path());
    println!("| workload | appends/s | p50 ms | p99 ms |");
    println!("|---|---|---|---|");
    for (clients, each) in [(1, 1000), (8, 500), (64, 150)] {
        let (rate, p50, p99) = appends(&url, clients, each);
        println!(
            "| HTTP POST, 1 event, sync, {clients} client(s) | {rate:.0} | {} | {} |",
            ms(p50),
            ms(p99)
        );
    }
    let (rate, took) = fan_out(&url, 100, 2000);
    println!();
    println!("| SSE fan-out | deliveries/s | all delivered in |");
    println!("|---|---|---|");
    println!(
        "| 100 subscribers x 2,000 events | {rate:.0} | {} ms |",
        ms(took)
    );
}
