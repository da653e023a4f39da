//! The bank, embedded and against a daemon: the same scenario, and
//! concurrent withdrawals that must never overdraw.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn bank(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_bank"))
        .args(args)
        .env_remove("HYDRA_DATA")
        .env_remove("HYDRA_API")
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = bank(args);
    assert!(
        out.status.success(),
        "bank {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs one scenario against `target` (`--data DIR` or `--api URL`).
fn scenario(target: &[&str]) {
    fn join<'a>(target: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
        [target, args].concat()
    }
    let with = |args: &[&'static str]| join(target, args);
    assert_eq!(
        ok(&with(&["open", "alice", "--owner", "Alice"])),
        "opened alice\n"
    );
    assert!(
        !bank(&with(&["open", "alice", "--owner", "Eve"]))
            .status
            .success()
    );
    for _ in 0..7 {
        ok(&with(&["deposit", "alice", "10"]));
    }
    assert_eq!(ok(&with(&["withdraw", "alice", "30"])), "balance 40\n");
    let out = bank(&with(&["withdraw", "alice", "100"]));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "bank: insufficient funds: balance 40, withdrawal 100\n"
    );
    assert_eq!(ok(&with(&["balance", "alice"])), "40\n");
    let history = ok(&with(&["history", "alice"]));
    assert_eq!(history.lines().count(), 9);
    assert!(history.starts_with("0\t{\"type\":\"Opened\",\"data\":{\"owner\":\"Alice\"}}"));
    assert!(!bank(&with(&["deposit", "bob", "1"])).status.success());

    // Ten concurrent withdrawals of 10 from 40: exactly four succeed.
    let threads: Vec<_> = (0..10)
        .map(|_| {
            let args: Vec<String> = with(&["withdraw", "alice", "10"])
                .iter()
                .map(|s| s.to_string())
                .collect();
            std::thread::spawn(move || {
                let a: Vec<&str> = args.iter().map(String::as_str).collect();
                bank(&a).status.success()
            })
        })
        .collect();
    let succeeded = threads
        .into_iter()
        .map(|t| t.join().unwrap())
        .filter(|s| *s)
        .count();
    if target[0] == "--api" {
        assert_eq!(succeeded, 4, "the invariant held under concurrency");
        assert_eq!(ok(&with(&["balance", "alice"])), "0\n");
    } else {
        // Embedded: the data directory admits one process at a time, so
        // concurrent processes are refused rather than racing.
        let balance: u64 = ok(&with(&["balance", "alice"])).trim().parse().unwrap();
        assert_eq!(balance, 40 - 10 * succeeded as u64);
    }
}

#[test]
fn embedded() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    scenario(&["--data", data.to_str().unwrap()]);
}

/// The `hydra` binary, built by `cargo test --workspace` beside this one.
fn hydra_binary() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let dir = exe.parent().unwrap().parent().unwrap();
    let hydra = dir.join("hydra");
    assert!(
        hydra.exists(),
        "{} is missing: build it with `cargo build -p hydra` (cargo test --workspace does)",
        hydra.display()
    );
    hydra
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_daemon(data: &Path) -> (Daemon, String) {
    let mut child = Command::new(hydra_binary())
        .arg("--data")
        .arg(data)
        .args(["daemon", "--http", "127.0.0.1:0"])
        .env_remove("HYDRA_CONFIG")
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

#[test]
fn against_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let (_daemon, url) = start_daemon(&dir.path().join("data"));
    scenario(&["--api", &url]);
}
