//! The Redis protocol on a real daemon: redis-py and redis-cli (clients
//! nobody here wrote), and raw sockets for what clients never send.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Command;
use std::time::Duration;

use crate::daemon::Daemon;

fn start(dir: &std::path::Path) -> (Daemon, String) {
    let d = Daemon::start(dir, &["--resp", "127.0.0.1:0"]);
    let addr = d.resp.clone().expect("the daemon printed its RESP address");
    (d, addr)
}

fn port(addr: &str) -> &str {
    addr.rsplit(':').next().unwrap()
}

#[test]
fn redis_py_black_box_suite() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/resp_blackbox.py");
    let out = Command::new("python3")
        .args([script, port(&addr)])
        .output()
        .expect("python3 runs (.ci/run installs redis-py)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "redis-py suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.trim_end().ends_with("11 passed, 0 failed"),
        "{stdout}"
    );
}

#[test]
fn redis_cli_script() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path());
    let cli = |args: &[&str]| {
        let out = Command::new("redis-cli")
            .args(["-p", port(&addr)])
            .args(args)
            .output()
            .expect("redis-cli is installed (.ci/run installs redis-tools)");
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(cli(&["PING"]), "PONG\n");
    let appended = cli(&[
        "EAPPEND",
        "user-123",
        "UserRegistered",
        "PAYLOAD",
        r#"{"name":"Alice"}"#,
    ]);
    assert!(appended.contains("stream_version\n0\n"), "{appended}");
    cli(&[
        "EAPPEND",
        "user-123",
        "EmailVerified",
        "EXPECTED_VERSION",
        "0",
    ]);
    assert_eq!(
        cli(&["EAPPEND", "user-123", "X", "EXPECTED_VERSION", "0"]),
        "WRONGVER stream user-123 is at version 1, expected 0\n\n"
    );
    let scan = cli(&["ESCAN", "user-123", "-", "+"]);
    assert!(
        scan.contains("UserRegistered") && scan.contains("EmailVerified"),
        "{scan}"
    );
    assert_eq!(cli(&["ESVER", "user-123"]), "1\n");
    let partition = hydra_eventlog::partition_of(&hydra_eventlog::stream_partition_key(
        &hydra_eventlog::StreamId::new("user-123").unwrap(),
    ));
    assert_eq!(cli(&["EPSEQ", &partition.to_string()]), "1\n");
    assert_eq!(cli(&["NOPE"]).trim_end(), "ERR unknown command 'NOPE'");
    let hello = cli(&["-3", "HELLO", "3"]);
    assert!(hello.contains("hydra"), "{hello}");
    // Interactive redis-cli asks COMMAND DOCS first; piped input exercises that path.
    let mut child = Command::new("redis-cli")
        .args(["-p", port(&addr)])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"ESVER user-123\nPING\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\nPONG\n");
}

fn send(s: &mut TcpStream, bytes: &[u8]) -> Vec<u8> {
    s.write_all(bytes).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// A command as clients send it: an array of bulk strings.
pub fn cmd(words: &[&str]) -> Vec<u8> {
    let mut f = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        f.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    f
}

#[test]
fn raw_protocol_edges() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path());

    // RESP2 until HELLO 3: a map is a flat array; then a real map.
    let mut s = TcpStream::connect(&addr).unwrap();
    let r2 = send(&mut s, &cmd(&["EAPPEND", "raw", "E"]));
    assert!(
        r2.starts_with(b"*12\r\n"),
        "{}",
        String::from_utf8_lossy(&r2)
    );
    let r3 = send(
        &mut s,
        &[cmd(&["HELLO", "3"]), cmd(&["EAPPEND", "raw", "E"])].concat(),
    );
    let text = String::from_utf8_lossy(&r3);
    assert!(text.matches("%").count() >= 2, "{text}");

    // Pipelining: 50 commands in one write, 50 replies in order.
    let many: Vec<u8> = (0..50).flat_map(|_| cmd(&["ESVER", "raw"])).collect();
    let replies = send(&mut s, &many);
    assert_eq!(
        String::from_utf8_lossy(&replies).matches(":1\r\n").count(),
        50
    );

    // Inline commands, as telnet sends them.
    assert_eq!(send(&mut s, b"PING\r\n"), b"+PONG\r\n");

    // Malformed: an error, then the connection closes.
    let mut bad = TcpStream::connect(&addr).unwrap();
    let reply = send(&mut bad, b"*1\r\n:notanumber\r\n");
    assert!(
        reply.starts_with(b"-ERR Protocol error"),
        "{}",
        String::from_utf8_lossy(&reply)
    );
    assert_eq!(
        bad.read(&mut [0u8; 8]).unwrap_or(0),
        0,
        "closed after a protocol error"
    );

    // A bulk string larger than the frame limit: refused, connection closed,
    // the daemon still serves others.
    let mut big = TcpStream::connect(&addr).unwrap();
    big.write_all(b"*2\r\n$4\r\nPING\r\n$100000000\r\n")
        .unwrap();
    let chunk = vec![b'x'; 1 << 20];
    let mut refused = false;
    for _ in 0..80 {
        if big.write_all(&chunk).is_err() {
            refused = true;
            break;
        }
    }
    let mut rest = Vec::new();
    big.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = big.read_to_end(&mut rest);
    assert!(
        refused || String::from_utf8_lossy(&rest).contains("exceeds"),
        "oversized frame not refused"
    );

    // Half-closed: the reply still comes, then a clean close.
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(&cmd(&["PING"])).unwrap();
    half.shutdown(Shutdown::Write).unwrap();
    let mut got = Vec::new();
    half.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    half.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"+PONG\r\n");

    let mut ok = TcpStream::connect(&addr).unwrap();
    assert_eq!(send(&mut ok, &cmd(&["PING"])), b"+PONG\r\n");
}

/// The daemon's `hydra_commits` gauge.
fn commits(d: &Daemon) -> u64 {
    let text = reqwest::blocking::get(d.at("/metrics"))
        .unwrap()
        .text()
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("hydra_commits "))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// EAPPENDs pipelined on one connection share a commit and answer in
/// order, each on its own: a wrong expected version in the middle fails
/// alone, and a malformed one answers its own error.
#[test]
fn pipelined_appends_share_a_commit_and_answer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (d, addr) = start(dir.path());
    let mut s = TcpStream::connect(&addr).unwrap();
    send(&mut s, &cmd(&["HELLO", "3"]));
    let before = commits(&d);
    let mut pipeline = Vec::new();
    for i in 0..64u64 {
        let expected = match i {
            10 => "99".to_owned(),
            i => (i.saturating_sub(1) - u64::from(i > 10)).to_string(),
        };
        let expected = if i == 0 { "empty".to_owned() } else { expected };
        if i == 20 {
            pipeline.extend(cmd(&["EAPPEND", "piped"]));
        }
        pipeline.extend(cmd(&[
            "EAPPEND",
            "piped",
            "E",
            "EXPECTED_VERSION",
            &expected,
            "PAYLOAD",
            &i.to_string(),
        ]));
    }
    // 65 replies: 63 appends, a wrong version, a syntax error.
    let text = send_until(&mut s, &pipeline, "stream_version", 63);
    let versions: Vec<u64> = text
        .split("stream_version\r\n:")
        .skip(1)
        .map(|rest| rest.split("\r\n").next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(versions, (0..63).collect::<Vec<_>>(), "{text}");
    assert!(text.contains("-WRONGVER"), "{text}");
    assert!(
        commits(&d) - before <= 2,
        "{} commits",
        commits(&d) - before
    );
}

/// Sends `bytes`, then reads until `marker` has come `n` times.
fn send_until(s: &mut TcpStream, bytes: &[u8], marker: &str, n: usize) -> String {
    s.write_all(bytes).unwrap();
    let mut text = String::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while text.matches(marker).count() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n}",
            text.matches(marker).count()
        );
        text.push_str(&String::from_utf8_lossy(&send(s, b"")));
    }
    text
}

/// Scans answer in bounded pages: at most 10,000 events whatever the
/// COUNT, and no more events once 16 MiB of payload is in the page.
#[test]
fn scans_answer_in_bounded_pages() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path());
    let mut s = TcpStream::connect(&addr).unwrap();
    send(&mut s, &cmd(&["HELLO", "3"]));
    let appends: Vec<u8> = (0..12_000)
        .flat_map(|_| cmd(&["EAPPEND", "many", "E", "PAYLOAD", "x"]))
        .collect();
    send_until(&mut s, &appends, "stream_version", 12_000);
    let page = send_until(
        &mut s,
        &cmd(&["ESCAN", "many", "-", "+", "COUNT", "100000000"]),
        "event_id",
        10_000,
    );
    assert_eq!(page.matches("event_id").count(), 10_000);
    assert!(page.contains("has_more\r\n#t"), "more to come");

    let mib = "y".repeat(1 << 20);
    let big: Vec<u8> = (0..20)
        .flat_map(|_| cmd(&["EAPPEND", "large", "E", "PAYLOAD", &mib]))
        .collect();
    send_until(&mut s, &big, "stream_version", 20);
    let text = send_until(
        &mut s,
        &cmd(&["ESCAN", "large", "-", "+", "COUNT", "100"]),
        "has_more",
        1,
    );
    assert_eq!(text.matches("event_id").count(), 16, "16 MiB of payload");
    assert!(text.contains("has_more\r\n#t"));
}
