use std::io::{Read, Write};
use std::process::Stdio;
use std::time::Duration;

use crate::{fails, hydra, noise, ok, run};

#[test]
fn put_get_ls_rm_and_gc() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = noise(3, 3_000_000);
    let file = d.join("photo.raw");
    std::fs::write(&file, &data).unwrap();
    let put = ok(d, &["object", "put", "photos/1", file.to_str().unwrap()]);
    let root = put.split('\t').next().unwrap().to_owned();
    assert!(put.ends_with("\t3000000\tphotos/1\n"), "{put}");
    run(d, &["object", "put", "notes"], b"short note");
    let got = run(d, &["object", "get", "photos/1"], b"");
    assert!(got.stdout == data);
    assert_eq!(
        ok(d, &["object", "ls", "photos/"]),
        format!("photos/1\t2.86 MiB\t{root}\n")
    );
    let ls: serde_json::Value = serde_json::from_str(&ok(d, &["object", "ls", "--json"])).unwrap();
    assert_eq!(ls.as_array().unwrap().len(), 2);
    assert_eq!(ls[1]["size"], 3_000_000);
    assert_eq!(ok(d, &["object", "rm", "photos/1"]), "removed photos/1\n");
    let gc = ok(d, &["gc", "--bucket", "default"]);
    assert!(gc.starts_with("default: freed "), "{gc}");
    assert!(!gc.starts_with("default: freed 0 "), "{gc}");
    assert_eq!(ok(d, &["object", "get", "notes"]), "short note");
    assert_eq!(
        fails(d, &["object", "get", "photos/1"]),
        "hydra: object \"photos/1\" not found in bucket default"
    );
    assert_eq!(
        fails(d, &["object", "rm", "photos/1"]),
        "hydra: object \"photos/1\" not found in bucket default"
    );
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    run(d, &["object", "put", "big"], &noise(5, 8_000_000));
    let mut child = hydra(d)
        .args(["object", "get", "big"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 10];
    child
        .stdout
        .as_mut()
        .unwrap()
        .read_exact(&mut head)
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}

/// Peak resident memory of a running process, in KiB (Linux).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A 2 GiB stream goes in through stdin and out through stdout while the
/// process stays far below 2 GiB of memory.
#[test]
fn a_2_gib_object_streams_in_bounded_memory() {
    let len: u64 = (2 << 30) + 4321;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pattern = noise(77, 3 << 20);
    let mut expected = blake3::Hasher::new();

    let mut child = hydra(d)
        .args(["object", "put", "huge", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let mut peak = 0;
    let mut sent = 0u64;
    while sent < len {
        let n = (len - sent).min(pattern.len() as u64) as usize;
        stdin.write_all(&pattern[..n]).unwrap();
        expected.update(&pattern[..n]);
        sent += n as u64;
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).ends_with(&format!("\t{len}\thuge\n")));

    let mut child = hydra(d)
        .args(["object", "get", "huge"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut stdout = child.stdout.take().unwrap();
    let mut got = blake3::Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut received = 0u64;
    loop {
        let n = stdout.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.update(&buf[..n]);
        received += n as u64;
        peak = peak.max(peak_rss_kib(pid).unwrap_or(0));
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(received, len);
    assert_eq!(got.finalize(), expected.finalize());
    assert!(peak > 0, "memory was measured");
    assert!(peak < 256 * 1024, "peak RSS {peak} KiB for a 2 GiB object");
    std::thread::sleep(Duration::from_millis(1));
}
