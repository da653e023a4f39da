//! Storage throughput: block put/get on every backend, with and without
//! transforms, each beside the raw volume doing the same work in the same
//! run; then a 1 GiB object.
//!
//! Run: `cargo bench -p hydra-bucket --bench storage` (prints a Markdown
//! table). `HYDRA_BENCH_OBJECT_MIB` sets the object size (default 1024).

use std::io::Read;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hydra_block::Codec;
use hydra_bucket::{Bucket, BucketName, CreateOptions, Key, Store};
use hydra_volume::{
    Backend, Direction, Durability, KeyRange, OpenOptions, Volume, WriteBatch, open_dir,
};

/// Bytes written per case (per size), so that every case runs long enough.
const CASE_BYTES: usize = 64 << 20;
/// Batch size for the writer and for the raw baseline alike.
const BATCH_BYTES: usize = 8 << 20;

fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Half random, half zeros: compressible about 2:1, like typical data.
fn block(seed: u64, size: usize) -> Vec<u8> {
    let mut b = noise(seed, size / 2);
    b.resize(size, 0);
    b
}

fn open(dir: &std::path::Path, backend: Backend) -> Arc<dyn Volume> {
    open_dir(
        dir,
        OpenOptions {
            backend: Some(backend),
            durability: Durability::Immediate,
            cache_bytes: None,
        },
    )
    .unwrap()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn mib_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / (1 << 20) as f64
}

/// The same puts straight on the volume: 37-byte hash-like keys, values of
/// the same size, commits at the same batch size. Returns (put/s, get/s).
fn raw(vol: &dyn Volume, blocks: &[Vec<u8>]) -> (f64, f64) {
    let keys: Vec<Vec<u8>> = blocks
        .iter()
        .map(|b| {
            let mut k = b"raw/".to_vec();
            k.extend_from_slice(blake3::hash(b).as_bytes());
            k.push(0);
            k
        })
        .collect();
    let t = Instant::now();
    let mut batch = WriteBatch::new();
    for (k, v) in keys.iter().zip(blocks) {
        batch.put(k.clone(), v.clone());
        if batch.bytes() >= BATCH_BYTES {
            vol.commit(std::mem::take(&mut batch)).unwrap();
        }
    }
    vol.commit(batch).unwrap();
    let put = rate(blocks.len(), t.elapsed());
    let t = Instant::now();
    for k in &keys {
        std::hint::black_box(vol.get(k).unwrap().unwrap());
    }
    (put, rate(keys.len(), t.elapsed()))
}

fn hydra(bucket: &Bucket, blocks: &[Vec<u8>]) -> (f64, f64) {
    let t = Instant::now();
    let mut w = bucket.writer();
    let refs: Vec<_> = blocks
        .iter()
        .map(|b| w.put(Codec::Raw, b).unwrap())
        .collect();
    w.flush().unwrap();
    drop(w);
    let put = rate(blocks.len(), t.elapsed());
    let t = Instant::now();
    for r in &refs {
        std::hint::black_box(bucket.get(r).unwrap());
    }
    (put, rate(refs.len(), t.elapsed()))
}

fn block_table() {
    let key = Key::from_bytes([42; 32]);
    let transforms: [(&str, Option<i32>, bool); 4] = [
        ("none", None, false),
        ("zstd:3", Some(3), false),
        ("chacha20", None, true),
        ("zstd:3+chacha20", Some(3), true),
    ];
    println!(
        "| backend | block | transforms | put/s | raw put/s | ratio | get/s | raw get/s | ratio | put MiB/s |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for backend in [Backend::Mem, Backend::Redb, Backend::Lmdb] {
        for size in [256usize, 4 << 10, 1 << 20] {
            let count = (CASE_BYTES / size).min(40_000);
            for (i, (label, level, encrypt)) in transforms.iter().enumerate() {
                let dir = tempfile::tempdir().unwrap();
                let vol = open(dir.path(), backend);
                let store = Store::open(vol.clone()).unwrap();
                let name: BucketName = "bench".parse().unwrap();
                let k = encrypt.then_some(&key);
                store
                    .create_bucket(
                        &name,
                        CreateOptions {
                            zstd_level: *level,
                            key: k,
                        },
                    )
                    .unwrap();
                let bucket = store.bucket(&name, k).unwrap();
                let seed = (size * 10 + i) as u64;
                let blocks: Vec<Vec<u8>> = (0..count as u64)
                    .map(|n| block(seed * 1_000_003 + n, size))
                    .collect();
                let (raw_put, raw_get) = raw(&*vol, &blocks);
                let blocks: Vec<Vec<u8>> = (0..count as u64)
                    .map(|n| block(seed * 7_000_003 + n, size))
                    .collect();
                let (put, get) = hydra(&bucket, &blocks);
                println!(
                    "| {backend} | {} | {label} | {put:.0} | {raw_put:.0} | {:.2} | {get:.0} | {raw_get:.0} | {:.2} | {:.0} |",
                    human(size),
                    put / raw_put,
                    get / raw_get,
                    put * size as f64 / (1 << 20) as f64,
                );
            }
        }
    }
}

fn human(size: usize) -> String {
    match size {
        s if s >= 1 << 20 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// Lazily generated unique data: no chunk repeats, nothing compresses.
struct Noise {
    x: u64,
    left: usize,
}

impl Read for Noise {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.left) / 8 * 8;
        let n = if n == 0 { buf.len().min(self.left) } else { n };
        for chunk in buf[..n].chunks_mut(8) {
            self.x ^= self.x << 13;
            self.x ^= self.x >> 7;
            self.x ^= self.x << 17;
            let bytes = self.x.to_le_bytes();
            chunk.copy_from_slice(&bytes[..chunk.len()]);
        }
        self.left -= n;
        Ok(n)
    }
}

fn object_table() {
    let mib: usize = std::env::var("HYDRA_BENCH_OBJECT_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let len = mib << 20;
    println!();
    println!(
        "| backend | object | put MiB/s | raw put MiB/s | ratio | get MiB/s | raw scan MiB/s | ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for backend in [Backend::Redb, Backend::Lmdb] {
        // Raw: the same bytes as 64 KiB values in 8 MiB commits, then a scan.
        let dir = tempfile::tempdir().unwrap();
        let vol = open(dir.path(), backend);
        let mut src = Noise {
            x: 12345,
            left: len,
        };
        let t = Instant::now();
        let mut batch = WriteBatch::new();
        let mut buf = vec![0u8; 64 << 10];
        let mut i = 0u64;
        loop {
            let n = read_full(&mut src, &mut buf);
            if n == 0 {
                break;
            }
            batch.put([&b"obj/"[..], &i.to_be_bytes()].concat(), buf[..n].to_vec());
            i += 1;
            if batch.bytes() >= BATCH_BYTES {
                vol.commit(std::mem::take(&mut batch)).unwrap();
            }
        }
        vol.commit(batch).unwrap();
        let raw_put = mib_s(len, t.elapsed());
        let t = Instant::now();
        let mut read = 0;
        for e in vol.scan(KeyRange::all(), Direction::Forward) {
            read += e.unwrap().1.len();
        }
        assert_eq!(read, len);
        let raw_get = mib_s(len, t.elapsed());
        drop(vol);
        drop(dir);

        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(open(dir.path(), backend)).unwrap();
        let bucket = store.bucket(&BucketName::default_bucket(), None).unwrap();
        let t = Instant::now();
        let info = bucket
            .put_object("big", Noise { x: 777, left: len }, |_| {})
            .unwrap();
        assert_eq!(info.size as usize, len);
        let put = mib_s(len, t.elapsed());
        let t = Instant::now();
        bucket.get_object("big", std::io::sink(), |_| {}).unwrap();
        let get = mib_s(len, t.elapsed());
        println!(
            "| {backend} | {mib} MiB | {put:.0} | {raw_put:.0} | {:.2} | {get:.0} | {raw_get:.0} | {:.2} |",
            put / raw_put,
            get / raw_get
        );
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> usize {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]).unwrap() {
            0 => break,
            m => n += m,
        }
    }
    n
}

fn main() {
    // `cargo test --benches` runs this with --bench absent; keep that fast.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    block_table();
    object_table();
}
