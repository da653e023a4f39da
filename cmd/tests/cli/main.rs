//! Black-box tests of the `hydra` binary: each runs the real executable
//! on a data directory in a temporary folder.

mod auth;
mod blocks;
mod buckets;
mod client;
mod daemon;
mod grpc;
mod objects;
mod openapi;
mod readme;
mod remote;
mod replica;
mod resp;
mod sierradb;
mod streams;
mod streams_in_buckets;
mod subscribers;
mod transfer;
mod volume;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// A `hydra` command on data directory `dir`, with no HYDRA_* variables
/// leaking in from the environment.
pub fn hydra(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hydra"));
    for (k, _) in std::env::vars() {
        if k.starts_with("HYDRA_") {
            c.env_remove(k);
        }
    }
    c.arg("--data").arg(dir.join("data"));
    c
}

/// Runs `hydra ARGS`, feeding `stdin`; returns the output.
pub fn run(dir: &Path, args: &[&str], stdin: &[u8]) -> Output {
    feed(hydra(dir).args(args), stdin)
}

/// Runs a prepared command, feeding `stdin`; returns the output.
pub fn feed(cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    out
}

/// Runs and expects success; returns stdout as text.
pub fn ok(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args, b"");
    assert!(
        out.status.success(),
        "hydra {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs and expects failure with exit code 1 and exactly one line on
/// stderr, starting `hydra: `; returns that line.
pub fn fails(dir: &Path, args: &[&str]) -> String {
    let out = run(dir, args, b"");
    assert_eq!(out.status.code(), Some(1), "hydra {args:?} should fail");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "one line on stderr, got {err:?}");
    assert!(err.starts_with("hydra: "), "{err:?}");
    err.trim_end().to_owned()
}

/// Every file below `dir`.
pub fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

pub fn noise(seed: u64, len: usize) -> Vec<u8> {
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
