//! Replication catch-up: a follower with nothing fetches a writer's streams
//! over libp2p on loopback and imports them, verifying every block, beside
//! the export alone, the same import from a local file (no network) and
//! BLAKE3 over the same bytes (the cost of hashing alone) in the same run.
//!
//! Run: `cargo bench -p hydra-net --bench replicate` (prints Markdown).
//! `HYDRA_BENCH_STREAMS` and `HYDRA_BENCH_EVENTS` (per stream) size the
//! writer's log (default 16 x 10,000 events of 256 bytes).

use std::time::{Duration, Instant};

use hydra_eventlog::{EventLog, ExpectedVersion, NewEvent, Options, StreamId};
use hydra_net::{Follow, Node};

const EVENT: usize = 256;
const BATCH: u64 = 1000;
const LAG_SAMPLES: u64 = 200;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn open(dir: &std::path::Path) -> EventLog {
    EventLog::open_dir(dir, Options::default()).unwrap()
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let (streams, per) = (
        env("HYDRA_BENCH_STREAMS", 16),
        env("HYDRA_BENCH_EVENTS", 10_000),
    );
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let writer = open(dirs[0].path());
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
            writer.append(id, ExpectedVersion::Any, events).unwrap();
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
    let local = open(&dirs[2].path().join("local"));
    let t = Instant::now();
    let r = local.import(&file, &[key]).unwrap();
    let local_import = t.elapsed();
    assert_eq!(r.events, events);

    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let a = Node::start(writer.clone(), |_: &str| None, listen)
        .await
        .unwrap();
    let follower = open(dirs[1].path());
    let b = Node::start(follower.clone(), |_: &str| None, Vec::new())
        .await
        .unwrap();
    let follow = Follow {
        from: vec![a.listening()[0].clone()],
        writer: key,
        prefix: "bench-".into(),
        retry: Duration::from_secs(1),
    };
    let t = Instant::now();
    let mut got = 0;
    // One round per stream export that fits a response; a round asks for
    // every stream it is behind on.
    while got < events {
        got += follow.round(&b, &follower).await.unwrap();
    }
    let network = t.elapsed();
    assert_eq!(follower.stream_version(&ids[0]).unwrap(), Some(per - 1));

    // Lag: from the writer's acknowledged (durable) append to the event
    // being readable on a live follower.
    let live = Follow {
        prefix: "lag".into(),
        ..follow
    };
    let status = live.status();
    let task = tokio::spawn(live.run(b.clone(), follower.clone(), status));
    let lag_stream = StreamId::new("lag").unwrap();
    let mut lags = Vec::new();
    for i in 0..LAG_SAMPLES {
        let w = writer.clone();
        let s = lag_stream.clone();
        tokio::task::spawn_blocking(move || {
            w.append(
                &s,
                ExpectedVersion::Any,
                vec![NewEvent::new("Lag", vec![0; EVENT])],
            )
            .unwrap()
        })
        .await
        .unwrap();
        let acked = Instant::now();
        while follower.stream_version(&lag_stream).unwrap() != Some(i) {
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        lags.push(acked.elapsed());
    }
    task.abort();
    lags.sort();
    let at = |q: f64| lags[((lags.len() as f64 * q) as usize).min(lags.len() - 1)];

    println!(
        "{streams} streams x {per} events of {EVENT} B: export {:.1} MB, durability sync\n",
        bytes as f64 / 1e6
    );
    println!("| work | time | MB/s | events/s |");
    println!("| --- | ---: | ---: | ---: |");
    for (what, d) in [
        ("BLAKE3 over the export's bytes (hashing alone)", hash),
        ("export to memory (read + encode)", export),
        ("import from a local file (verify + apply)", local_import),
        (
            "catch-up over libp2p, loopback (fetch + verify + apply)",
            network,
        ),
    ] {
        println!(
            "| {what} | {:.0} ms | {:.0} | {:.0} |",
            d.as_secs_f64() * 1000.0,
            mbps(bytes, d),
            events as f64 / d.as_secs_f64()
        );
    }
    println!(
        "\nlag over {LAG_SAMPLES} appends, acknowledged on the writer to readable on the follower: p50 {:.2} ms, p99 {:.2} ms",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0
    );
}
