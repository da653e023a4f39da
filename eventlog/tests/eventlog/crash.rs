//! Crash recovery: a child process appends from several threads in `sync`
//! mode and reports every acknowledged append; the parent kills it with
//! SIGKILL at a random moment, reopens, and checks that every acknowledged
//! event is there and readable, that no append is there in part, and that
//! proofs verify. 30 rounds by default; `HYDRA_CRASH_ROUNDS` for more.
//! Two of the four streams live in an encrypted, compressed bucket: their
//! events cross bundle boundaries and are sealed mid-crash like the
//! others, and no marker of their types, data or metadata ever reaches
//! the disk, however the process died.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use hydra_eventlog::{AllFilter, Direction, ExpectedVersion, verify_event};

use hydra_bucket::{BucketName, CreateOptions, Key, Store};
use hydra_eventlog::{EventLog, NewEvent, Options, Placement};

use crate::{read_all_of, sid};

/// The log, with streams `crash-1` and `crash-3` in the encrypted `vault`.
fn open(dir: &std::path::Path) -> EventLog {
    let volume = hydra_volume::open_dir(
        dir,
        hydra_volume::OpenOptions {
            backend: None,
            durability: hydra_volume::Durability::Immediate,
            cache_bytes: None,
        },
    )
    .unwrap();
    let store = Store::open(volume).unwrap();
    let vault: BucketName = "vault".parse().unwrap();
    let key = Key::from_bytes([3; 32]);
    if store.bucket_config(&vault).is_err() {
        store
            .create_bucket(
                &vault,
                CreateOptions {
                    zstd_level: Some(3),
                    key: Some(&key),
                },
            )
            .unwrap();
    }
    store.unlock(&vault, &key).unwrap();
    let placements = ["crash-1", "crash-3"]
        .map(|prefix| Placement {
            prefix: prefix.into(),
            bucket: vault.clone(),
        })
        .to_vec();
    EventLog::open(
        store,
        Options {
            placements,
            ..Options::default()
        },
    )
    .unwrap()
}

/// Event `i` of thread `t`: odd threads' carry markers in every field.
fn event(t: u64, i: u64) -> NewEvent {
    if t % 2 == 1 {
        NewEvent::new("CrashSecretType", data(t, i).into_bytes())
            .with_metadata(b"CrashSecretMeta".to_vec())
    } else {
        NewEvent::new("Crash", data(t, i).into_bytes())
    }
}

fn data(t: u64, i: u64) -> String {
    if t % 2 == 1 {
        format!("CrashSecretData{t}:{i}")
    } else {
        format!("{t}:{i}")
    }
}

const CHILD_ENV: &str = "HYDRA_EVENTLOG_CRASH_CHILD";
const THREADS: u64 = 4;
const PER_APPEND: u64 = 3;

#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = open(std::path::Path::new(&dir));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || -> std::convert::Infallible {
                let s = sid(&format!("crash-{t}"));
                let mut next = log.stream_version(&s).unwrap().map_or(0, |v| v + 1);
                loop {
                    let exp = next
                        .checked_sub(1)
                        .map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
                    let events = (0..PER_APPEND).map(|i| event(t, next + i)).collect();
                    let r = log.append(&s, exp, events).unwrap();
                    println!("acked {t} {}", r.version);
                    next = r.version + 1;
                }
            })
        })
        .collect();
    // The writers loop until the parent kills the process.
    let _ = threads.into_iter().map(|t| t.join()).collect::<Vec<_>>();
}

/// A small deterministic pseudo-random sequence (no extra dependency).
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let rounds: u64 = std::env::var("HYDRA_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let dir = tempfile::tempdir().unwrap();
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut acked = vec![None::<u64>; THREADS as usize];
    for round in 0..rounds {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "crash::crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let target = 5 + rng(&mut seed) % 80;
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut seen = 0;
        while let Some(Ok(line)) = lines.next() {
            if let Some(rest) = line.strip_prefix("acked ") {
                let (t, v) = rest.split_once(' ').unwrap();
                let (t, v): (usize, u64) = (t.parse().unwrap(), v.parse().unwrap());
                acked[t] = Some(acked[t].map_or(v, |a: u64| a.max(v)));
                seen += 1;
                if seen >= target {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let log = open(dir.path());
        let key = log.identity().public_key();
        let mut total = 0;
        for (t, a) in acked.iter().enumerate() {
            let s = sid(&format!("crash-{t}"));
            let Some(a) = a else { continue };
            let events = read_all_of(&log, &s);
            assert!(
                events.len() as u64 > *a,
                "round {round}: stream {s} has {} events, {a} was acknowledged",
                events.len()
            );
            assert_eq!(
                events.len() as u64 % PER_APPEND,
                0,
                "round {round}: a partial append of {s}"
            );
            for (i, e) in events.iter().enumerate() {
                assert_eq!(e.version, i as u64);
                assert_eq!(e.data, data(t as u64, i as u64).as_bytes());
            }
            let last = events.last().unwrap();
            let (head, proof) = log.prove(&s, last.version).unwrap();
            verify_event(&head, &key, last, &proof).unwrap();
            total += events.len();
        }
        let all: Vec<_> = log
            .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
            .map(|e| e.unwrap().position)
            .collect();
        assert_eq!(
            all,
            (0..total as u64).collect::<Vec<_>>(),
            "round {round}: $all has gaps"
        );
        log.close().unwrap();
        drop(log);
        for file in std::fs::read_dir(dir.path()).unwrap() {
            let bytes = std::fs::read(file.unwrap().path()).unwrap();
            assert!(
                !bytes.windows(11).any(|w| w == b"CrashSecret"),
                "round {round}: an encrypted stream's marker is on disk"
            );
        }
    }
    assert!(acked.iter().all(Option::is_some));
    // Every stream sealed bundles along the way.
    assert!(acked.iter().all(|a| a.unwrap() >= 256), "{acked:?}");
}
