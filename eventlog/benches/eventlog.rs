//! Event log throughput and latency, each beside raw redb doing the same
//! work on the same bytes in the same run.
//!
//! Run: `cargo bench -p hydra-eventlog --bench eventlog` (prints Markdown).
//! Built with mimalloc, as the `hydra` binary is.
//! `HYDRA_BENCH_OPEN_EVENTS` sets the size of the store whose open time is
//! measured (default 10,000,000; it takes a few minutes to build).
//! `HYDRA_BENCH_ONLY` (a comma-separated list of `writers`, `batches`,
//! `async`, `size` (with the reads of its store), `vault`, `interleaved`
//! (with the bytes on disk of 64 streams appended in turn), `open`) runs
//! only those sections, to iterate on one.

use std::cell::OnceCell;
use std::path::Path;
use std::time::{Duration, Instant};

use hydra_eventlog::{
    AllFilter, Direction, DurabilityMode, EventLog, ExpectedVersion, NewEvent, Options, ReadFrom,
    StreamId,
};
use redb::{Database, ReadableDatabase, TableDefinition};

/// The allocator the `hydra` binary runs with, for Hydra and raw redb
/// alike.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TABLE: TableDefinition<u64, &[u8]> = TableDefinition::new("raw");
const EVENT: usize = 256;

fn payload(i: u64) -> Vec<u8> {
    let mut v = format!("{{\"n\":{i},\"pad\":\"").into_bytes();
    v.resize(EVENT - 2, b'x');
    v.extend_from_slice(b"\"}");
    v
}

fn event(i: u64) -> NewEvent {
    NewEvent::new("Bench", payload(i))
}

fn open(dir: &Path, durability: DurabilityMode) -> EventLog {
    EventLog::open_dir(
        dir,
        Options {
            durability,
            ..Options::default()
        },
    )
    .unwrap()
}

/// A log whose streams all go to `vault`, a zstd + ChaCha20-Poly1305
/// bucket.
fn open_vault(dir: &Path, durability: DurabilityMode) -> EventLog {
    let volume = hydra_volume::open_dir(
        dir,
        hydra_volume::OpenOptions {
            backend: None,
            durability: match durability {
                DurabilityMode::Sync => hydra_volume::Durability::Immediate,
                _ => hydra_volume::Durability::Eventual,
            },
            cache_bytes: None,
        },
    )
    .unwrap();
    let store = hydra_bucket::Store::open(volume).unwrap();
    let key = hydra_bucket::Key::from_bytes([5; 32]);
    let vault: hydra_bucket::BucketName = "vault".parse().unwrap();
    store
        .create_bucket(
            &vault,
            hydra_bucket::CreateOptions {
                zstd_level: Some(3),
                key: Some(&key),
            },
        )
        .unwrap();
    store.unlock(&vault, &key).unwrap();
    EventLog::open(
        store,
        Options {
            durability,
            placements: vec![hydra_eventlog::Placement {
                prefix: String::new(),
                bucket: vault,
            }],
        },
    )
    .unwrap()
}

/// Bytes per event of the files in `dir` (the volume's file, with its
/// pages' slack and the free pages it keeps for later commits).
fn file_bytes_per_event(dir: &Path, events: u64) -> f64 {
    let bytes: u64 = std::fs::read_dir(dir)
        .unwrap()
        .map(|f| f.unwrap().metadata().unwrap().len())
        .sum();
    bytes as f64 / events as f64
}

/// Stored bytes per event: every key and value of the volume.
fn bytes_per_event(log: &EventLog, events: u64) -> f64 {
    let bytes: usize = log
        .volume()
        .scan(hydra_volume::KeyRange::prefix(b""), Direction::Forward)
        .map(|e| {
            let (k, v) = e.unwrap();
            k.len() + v.len()
        })
        .sum();
    bytes as f64 / events as f64
}

/// Reads `stream` and `$all` whole, warm; returns both figures.
fn reads(log: &EventLog, stream: &StreamId) -> (Figure, Figure) {
    let read_stream = || {
        log.read(stream, ReadFrom::Edge, u64::MAX, Direction::Forward)
            .unwrap()
            .fold(0u64, |n, e| n + u64::from(!e.unwrap().data.is_empty()))
    };
    read_stream();
    let t = Instant::now();
    let n = read_stream();
    let one = figure(n, t.elapsed(), vec![]);
    let t = Instant::now();
    let n = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .fold(0u64, |n, e| n + u64::from(!e.unwrap().data.is_empty()));
    (one, figure(n, t.elapsed(), vec![]))
}

fn sid(s: String) -> StreamId {
    StreamId::new(s).unwrap()
}

struct Figure {
    rate: f64,
    p50: Duration,
    p99: Duration,
}

fn figure(n: u64, elapsed: Duration, mut lat: Vec<Duration>) -> Figure {
    lat.sort();
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figure {
        rate: n as f64 / elapsed.as_secs_f64(),
        p50: at(0.5),
        p99: at(0.99),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Raw redb: `commits` write transactions of `per_commit` sequential
/// 256-byte inserts each.
fn raw_redb(per_commit: u64, commits: u64, durable: bool) -> Figure {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("raw.redb")).unwrap();
    let mut lat = Vec::with_capacity(commits as usize);
    let value = payload(0);
    let t = Instant::now();
    let mut k = 0u64;
    for _ in 0..commits {
        let c = Instant::now();
        let mut txn = db.begin_write().unwrap();
        if !durable {
            txn.set_durability(redb::Durability::None).unwrap();
        }
        {
            let mut table = txn.open_table(TABLE).unwrap();
            for _ in 0..per_commit {
                table.insert(k, value.as_slice()).unwrap();
                k += 1;
            }
        }
        txn.commit().unwrap();
        lat.push(c.elapsed());
    }
    figure(per_commit * commits, t.elapsed(), lat)
}

/// Raw redb: a warm range scan over a table of 1,000,000 256-byte values.
fn raw_scan() -> Figure {
    let n = 1_000_000;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("scan.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut table = txn.open_table(TABLE).unwrap();
        let v = payload(0);
        for k in 0..n {
            table.insert(k, v.as_slice()).unwrap();
        }
    }
    txn.commit().unwrap();
    let t = Instant::now();
    let txn = db.begin_read().unwrap();
    let table = txn.open_table(TABLE).unwrap();
    let mut bytes = 0;
    for e in table.range(0..).unwrap() {
        bytes += e.unwrap().1.value().len();
    }
    assert!(bytes > 0);
    figure(n, t.elapsed(), vec![])
}

/// Raw redb, 100 sequential inserts per durable commit, measured at 1k
/// rows and again after growing the table to 3M rows.
fn raw_sag() -> (Figure, Figure) {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::create(dir.path().join("sag.redb")).unwrap();
    let value = payload(0);
    let mut k = 0u64;
    let mut commit = |n: u64, k: &mut u64| {
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(TABLE).unwrap();
            for _ in 0..n {
                table.insert(*k, value.as_slice()).unwrap();
                *k += 1;
            }
        }
        txn.commit().unwrap();
    };
    commit(1000, &mut k);
    let measure = |commit: &mut dyn FnMut(u64, &mut u64), k: &mut u64| {
        let t = Instant::now();
        let mut lat = Vec::new();
        for _ in 0..500 {
            let c = Instant::now();
            commit(100, k);
            lat.push(c.elapsed());
        }
        figure(50_000, t.elapsed(), lat)
    };
    let small = measure(&mut commit, &mut k);
    while k < 3_000_000 {
        commit(100_000, &mut k);
    }
    let large = measure(&mut commit, &mut k);
    (small, large)
}

/// `writers` threads, each appending `each` batches of `batch` events to
/// its own stream.
fn appends(log: &EventLog, writers: u64, each: u64, batch: u64, tag: &str) -> Figure {
    let t = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|w| {
            let log = log.clone();
            let s = sid(format!("{tag}-{w}"));
            std::thread::spawn(move || {
                let mut lat = Vec::with_capacity(each as usize);
                for i in 0..each {
                    let events = (0..batch).map(|j| event(i * batch + j)).collect();
                    let c = Instant::now();
                    log.append(&s, ExpectedVersion::Any, events).unwrap();
                    lat.push(c.elapsed());
                }
                lat
            })
        })
        .collect();
    let lat: Vec<Duration> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    figure(writers * each * batch, t.elapsed(), lat)
}

fn row(name: &str, f: &Figure, raw: Option<&Figure>, note: &str) {
    let (raw_rate, ratio) = match raw {
        Some(r) => (format!("{:.0}", r.rate), format!("{:.2}", f.rate / r.rate)),
        None => ("".into(), "".into()),
    };
    println!(
        "| {name} | {:.0} | {} | {} | {raw_rate} | {ratio} | {note} |",
        f.rate,
        ms(f.p50),
        ms(f.p99)
    );
}

/// Whether to run section `name` (see `HYDRA_BENCH_ONLY`).
fn section(name: &str) -> bool {
    std::env::var("HYDRA_BENCH_ONLY").map_or(true, |only| only.split(',').any(|s| s == name))
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // As the `hydra` binary does (see `no_huge_pages` there).
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    println!("| workload | events/s | p50 ms | p99 ms | raw redb/s | ratio | note |");
    println!("|---|---|---|---|---|---|---|");
    // The engine's figures, each measured once, when a section first
    // needs it.
    let raw1 = OnceCell::new();
    let raw1 = || raw1.get_or_init(|| raw_redb(1, 2000, true));
    let raw_batch = OnceCell::new();
    let raw_batch = || raw_batch.get_or_init(|| raw_redb(1000, 200, true));
    let scan = OnceCell::new();
    let raw_scan = || scan.get_or_init(raw_scan);

    if section("writers") {
        writers(raw1());
    }
    if section("batches") {
        batches(raw_batch());
    }
    if section("async") {
        asynchronous();
    }
    if section("size") {
        size_and_reads(raw_scan());
    }
    if section("vault") {
        vault(raw1(), raw_batch(), raw_scan());
    }
    if section("interleaved") {
        interleaved(raw_scan());
        turns_on_disk();
    }
    if section("open") {
        open_time();
    }
}

/// Durable single appends and group commit.
fn writers(raw1: &Figure) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), DurabilityMode::Sync);
    let one = appends(&log, 1, 2000, 1, "one");
    row(
        "sync, 1 event/append, 1 writer",
        &one,
        Some(raw1),
        "raw: 1 insert per durable commit",
    );
    // Events per commit: how many appends each group commit carried.
    let per_commit = |events: u64, before: u64| events as f64 / (log.commits() - before) as f64;
    let before = log.commits();
    let eight = appends(&log, 8, 1000, 1, "eight");
    row(
        "sync, 1 event/append, 8 writers",
        &eight,
        Some(raw1),
        &format!(
            "{:.1}x one writer (target 5x); {:.1} appends per commit",
            eight.rate / one.rate,
            per_commit(8000, before)
        ),
    );
    let before = log.commits();
    let many = appends(&log, 64, 300, 1, "many");
    row(
        "sync, 1 event/append, 64 writers",
        &many,
        Some(raw1),
        &format!(
            "{:.1}x one writer (target 15x); {:.1} appends per commit",
            many.rate / one.rate,
            per_commit(64 * 300, before)
        ),
    );
}

/// Durable batched appends.
fn batches(raw_batch: &Figure) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), DurabilityMode::Sync);
    let b100 = appends(&log, 1, 2000, 100, "b100");
    row(
        "sync, 100 events/append",
        &b100,
        Some(raw_batch),
        "raw: 1,000 inserts per durable commit",
    );
    let b1000 = appends(&log, 1, 200, 1000, "b1000");
    row(
        "sync, 1,000 events/append",
        &b1000,
        Some(raw_batch),
        "target 0.33x",
    );
}

/// `async` mode.
fn asynchronous() {
    let raw_none = raw_redb(1, 20000, false);
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), DurabilityMode::async_default());
    let asy = appends(&log, 1, 20000, 1, "async");
    row(
        "async, 1 event/append, 1 writer",
        &asy,
        Some(&raw_none),
        "raw: Durability::None commits; target 0.8x",
    );
}

/// Append rate at 1k and at 1M events stored, then warm reads of the 1M
/// store.
fn size_and_reads(raw_scan: &Figure) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), DurabilityMode::Sync);
    appends(&log, 1, 1, 1000, "fill");
    let at_1k = appends(&log, 1, 500, 100, "size");
    for i in 0..1000 {
        let s = sid(format!("fill-{}", i % 100));
        log.append(&s, ExpectedVersion::Any, (0..1000).map(event).collect())
            .unwrap();
    }
    let at_1m = appends(&log, 1, 500, 100, "size");
    // The engine's own sag: 100 sequential inserts per durable commit into
    // a table of 1k rows and of 3M rows (the log's three per-event keys
    // at 1M events).
    let (raw_1k, raw_3m) = raw_sag();
    row(
        "sync, 100/append, 1k events stored",
        &at_1k,
        Some(&raw_1k),
        "raw: 100 inserts/commit, 1k rows",
    );
    row(
        "sync, 100/append, 1M events stored",
        &at_1m,
        Some(&raw_3m),
        &format!(
            "{:.2}x the 1k rate (target 0.9x); raw redb at 3M rows: {:.2}x its 1k rate",
            at_1m.rate / at_1k.rate,
            raw_3m.rate / raw_1k.rate
        ),
    );

    // Reads, warm.
    let s = sid("fill-7".into());
    let count = log.stream_version(&s).unwrap().unwrap() + 1;
    let _ = log
        .read(&s, ReadFrom::Edge, u64::MAX, Direction::Forward)
        .unwrap()
        .count();
    let t = Instant::now();
    let n = log
        .read(&s, ReadFrom::Edge, u64::MAX, Direction::Forward)
        .unwrap()
        .fold(0u64, |n, e| n + u64::from(!e.unwrap().data.is_empty()));
    assert_eq!(n, count);
    let stream_read = figure(n, t.elapsed(), vec![]);
    let t = Instant::now();
    let n = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .fold(0u64, |n, e| n + u64::from(!e.unwrap().data.is_empty()));
    let all_read = figure(n, t.elapsed(), vec![]);
    row(
        &format!("read one stream ({count} events), warm"),
        &stream_read,
        Some(raw_scan),
        "raw: redb range scan",
    );
    row(
        &format!("read $all ({n} events), warm"),
        &all_read,
        Some(raw_scan),
        "target 2M events/s",
    );
    let events = log.next_position();
    println!(
        "| bytes stored per event (plain bucket, 256-B events) | {:.0} | | | | | keys and values, every keyspace |",
        bytes_per_event(&log, events)
    );
    log.close().unwrap();
    println!(
        "| bytes on disk per event (plain bucket, 256-B events) | {:.0} | | | | | the volume's file, closed |",
        file_bytes_per_event(dir.path(), events)
    );
}

/// The same workloads on a zstd + ChaCha20-Poly1305 bucket.
fn vault(raw1: &Figure, raw_batch: &Figure, raw_scan: &Figure) {
    let dir = tempfile::tempdir().unwrap();
    let log = open_vault(dir.path(), DurabilityMode::Sync);
    let one = appends(&log, 1, 2000, 1, "one");
    row(
        "zstd+chacha20: sync, 1 event/append, 1 writer",
        &one,
        Some(raw1),
        "raw: 1 insert per durable commit",
    );
    let eight = appends(&log, 8, 1000, 1, "eight");
    row(
        "zstd+chacha20: sync, 1 event/append, 8 writers",
        &eight,
        Some(raw1),
        &format!("{:.1}x one writer", eight.rate / one.rate),
    );
    let b1000 = appends(&log, 1, 200, 1000, "b1000");
    row(
        "zstd+chacha20: sync, 1,000 events/append",
        &b1000,
        Some(raw_batch),
        "raw: 1,000 inserts per durable commit",
    );
    let (one_read, all_read) = reads(&log, &sid("b1000-0".into()));
    row(
        "zstd+chacha20: read one stream (200,000 events), warm",
        &one_read,
        Some(raw_scan),
        "raw: redb range scan",
    );
    row(
        "zstd+chacha20: read $all, warm",
        &all_read,
        Some(raw_scan),
        "",
    );
    let events = log.next_position();
    println!(
        "| bytes stored per event (zstd+chacha20 bucket, 256-B events) | {:.0} | | | | | keys and values, every keyspace |",
        bytes_per_event(&log, events)
    );
    log.close().unwrap();
    println!(
        "| bytes on disk per event (zstd+chacha20 bucket, 256-B events) | {:.0} | | | | | the volume's file, closed |",
        file_bytes_per_event(dir.path(), events)
    );
}

/// One event to each of `streams` in one commit, numbered from `first`.
fn one_each(log: &EventLog, streams: &[StreamId], first: u64) {
    let writes = streams
        .iter()
        .zip(first..)
        .map(|(s, n)| {
            hydra_eventlog::StreamWrite::new(s.clone(), ExpectedVersion::Any, vec![event(n)])
        })
        .collect();
    log.append_multi(writes).unwrap();
}

/// A projection catching up on `$all` over 10,000 interleaved streams.
fn interleaved(raw_scan: &Figure) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), DurabilityMode::None);
    let (streams, rounds) = (10_000u64, 300u64);
    let ids: Vec<StreamId> = (0..streams).map(|i| sid(format!("agg-{i}"))).collect();
    // One event to each of 100 streams per commit: positions interleave
    // across all 10,000 streams, round after round.
    for r in 0..rounds {
        for (c, chunk) in ids.chunks(100).enumerate() {
            one_each(&log, chunk, r * streams + c as u64 * 100);
        }
    }
    // The first 500,000 events (each stream's first 50, all on the edge:
    // a stream's 256 events span 2.56M positions, too wide to seal): a
    // rate, bounded in time; first just after writing them (the engine's
    // cache holds none of their pages), then again.
    for pass in ["first read", "warm"] {
        let t = Instant::now();
        let n = log
            .read_all(None, 500_000, Direction::Forward, AllFilter::default())
            .fold(0u64, |n, e| n + u64::from(!e.unwrap().data.is_empty()));
        row(
            &format!(
                "read $all from 0 over {streams} interleaved streams of {rounds} events (first {n}), {pass}"
            ),
            &figure(n, t.elapsed(), vec![]),
            Some(raw_scan),
            "target 1M events/s",
        );
    }
    log.close().unwrap();
}

/// Bytes on disk of the shape most event-sourced applications write: 64
/// streams appended in turn, one event each per commit, so that every
/// bundle is sealed and compaction rewrites its events' `$all` entries.
fn turns_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), DurabilityMode::None);
    let ids: Vec<StreamId> = (0..64).map(|i| sid(format!("turn-{i}"))).collect();
    let rounds = 1_000_000 / 64;
    for r in 0..rounds {
        one_each(&log, &ids, r * 64);
    }
    let events = log.next_position();
    log.close().unwrap();
    println!(
        "| bytes on disk per event, 64 streams appended in turn ({events} events, plain bucket) | {:.0} | | | | | the volume's file, closed |",
        file_bytes_per_event(dir.path(), events)
    );
}

/// Open time of a large store.
fn open_time() {
    let target: u64 = std::env::var("HYDRA_BENCH_OPEN_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000_000);
    let dir = tempfile::tempdir().unwrap();
    {
        let log = open(dir.path(), DurabilityMode::None);
        let per = 1000;
        let t = Instant::now();
        for i in 0..target / per {
            let s = sid(format!("big-{}", i % 1000));
            log.append(
                &s,
                ExpectedVersion::Any,
                (0..per).map(|j| event(i * per + j)).collect(),
            )
            .unwrap();
        }
        let built = t.elapsed();
        log.close().unwrap();
        eprintln!("built {target} events in {:.1}s", built.as_secs_f64());
    }
    let mut opens = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        let log = open(dir.path(), DurabilityMode::Sync);
        opens.push(t.elapsed());
        assert_eq!(log.next_position(), target / 1000 * 1000);
        log.close().unwrap();
        drop(log);
    }
    opens.sort();
    println!(
        "| open a store of {target} events | | {} (median of 5) | | | | target < 100 ms |",
        ms(opens[2])
    );
}
