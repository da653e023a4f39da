//! Crash recovery: a child process commits batches as fast as it can and
//! reports each acknowledged one; the parent kills it with SIGKILL at a
//! random moment, reopens the volume and checks that every acknowledged
//! batch is there and that no batch is there in part.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hydra_volume::{Backend, Direction, KeyRange, WriteBatch};

use crate::open;

const CHILD_ENV: &str = "HYDRA_CRASH_CHILD";
const KEYS_PER_BATCH: u32 = 8;

/// Runs only inside the child process (when `HYDRA_CRASH_CHILD` is set).
#[test]
fn crash_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (backend, dir, start) = parse_spec(&spec);
    let vol = open(Path::new(&dir), backend);
    for n in start.. {
        let mut b = WriteBatch::new();
        for k in 0..KEYS_PER_BATCH {
            b.put(key(n, k), vec![n as u8; 300]);
        }
        vol.commit(b).unwrap();
        println!("acked {n}");
    }
}

fn parse_spec(spec: &str) -> (Backend, String, u32) {
    let mut parts = spec.splitn(3, ':');
    let backend = parts.next().unwrap().parse().unwrap();
    let start = parts.next().unwrap().parse().unwrap();
    (backend, parts.next().unwrap().to_owned(), start)
}

fn key(batch: u32, k: u32) -> Vec<u8> {
    format!("c/{batch:08}/{k}").into_bytes()
}

fn kill_and_check(backend: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let mut next = 0u32;
    for round in 0..4u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                CHILD_ENV,
                format!("{backend}:{next}:{}", dir.path().display()),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Kill after a pseudo-random number of acknowledged batches.
        let target = 20 + (round * 37 + backend as u64 * 11) % 60;
        let mut acked = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Some(Ok(line)) = lines.next() {
            if let Some(n) = line.strip_prefix("acked ") {
                acked = Some(n.parse::<u32>().unwrap());
                if acked.unwrap() - next >= target as u32 || Instant::now() > deadline {
                    break;
                }
            }
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let acked = acked.expect("the child acknowledged no batch");

        let vol = open(dir.path(), backend);
        let mut per_batch = std::collections::BTreeMap::<u32, u32>::new();
        for e in vol.scan(KeyRange::prefix(b"c/"), Direction::Forward) {
            let (k, v) = e.unwrap();
            let batch: u32 = std::str::from_utf8(&k[2..10]).unwrap().parse().unwrap();
            assert_eq!(v, vec![batch as u8; 300], "batch {batch} value corrupt");
            *per_batch.entry(batch).or_default() += 1;
        }
        for n in 0..=acked {
            assert_eq!(
                per_batch.get(&n),
                Some(&KEYS_PER_BATCH),
                "acknowledged batch {n} lost or partial after SIGKILL (round {round})"
            );
        }
        for (batch, count) in &per_batch {
            assert_eq!(*count, KEYS_PER_BATCH, "batch {batch} is partial");
        }
        next = per_batch.keys().last().map_or(0, |n| n + 1);
    }
}

#[test]
fn redb_survives_sigkill() {
    kill_and_check(Backend::Redb);
}

#[test]
fn lmdb_survives_sigkill() {
    kill_and_check(Backend::Lmdb);
}
