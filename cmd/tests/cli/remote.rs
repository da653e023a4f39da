//! Every CLI command with `--api`, against a real daemon.

use std::process::Output;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::{feed, hydra, noise};

fn api(d: &Daemon, dir: &std::path::Path, args: &[&str], stdin: &[u8]) -> Output {
    feed(hydra(dir).arg("--api").arg(&d.url).args(args), stdin)
}

fn ok(d: &Daemon, dir: &std::path::Path, args: &[&str]) -> String {
    let out = api(d, dir, args, b"");
    assert!(
        out.status.success(),
        "hydra --api {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(d: &Daemon, dir: &std::path::Path, args: &[&str]) -> String {
    let out = api(d, dir, args, b"");
    assert_eq!(
        out.status.code(),
        Some(1),
        "hydra --api {args:?} should fail"
    );
    String::from_utf8(out.stderr).unwrap().trim_end().to_owned()
}

#[test]
fn every_command_works_against_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let p = dir.path();

    // Blocks and objects.
    let r = String::from_utf8(api(&d, p, &["block", "put", "--pin"], b"hello").stdout).unwrap();
    let r = r.trim();
    assert!(r.starts_with("bafkr4i"));
    assert_eq!(ok(&d, p, &["block", "get", r]), "hello");
    assert_eq!(ok(&d, p, &["block", "has", r]), "yes\n");
    assert!(ok(&d, p, &["block", "ls"]).contains(r));
    assert!(ok(&d, p, &["gc"]).starts_with("default: freed 0 blocks"));
    assert_eq!(ok(&d, p, &["block", "rm", r]), format!("removed {r}\n"));
    let out = api(&d, p, &["block", "has", r], b"");
    assert_eq!(
        (out.status.code(), out.stdout.as_slice()),
        (Some(1), &b"no\n"[..])
    );
    assert_eq!(
        fails(&d, p, &["block", "get", r]),
        format!("hydra: block {r} not found in bucket default")
    );
    let data = noise(4, 3_000_000);
    let put = api(&d, p, &["object", "put", "docs/a b.bin"], &data);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert!(String::from_utf8_lossy(&put.stdout).ends_with("\t3000000\tdocs/a b.bin\n"));
    assert!(api(&d, p, &["object", "get", "docs/a b.bin"], b"").stdout == data);
    assert!(ok(&d, p, &["object", "ls", "docs/"]).starts_with("docs/a b.bin\t2.86 MiB\t"));
    assert_eq!(
        ok(&d, p, &["object", "rm", "docs/a b.bin"]),
        "removed docs/a b.bin\n"
    );

    // Buckets and the volume.
    assert_eq!(
        ok(&d, p, &["bucket", "create", "logs", "--compress", "zstd:5"]),
        "created bucket logs (zstd:5)\n"
    );
    assert!(ok(&d, p, &["bucket", "ls"]).contains("logs\tv1\tzstd:5"));
    let show: Value =
        serde_json::from_str(&ok(&d, p, &["bucket", "show", "logs", "--json"])).unwrap();
    assert_eq!(show["blocks"], 0);
    assert_eq!(
        ok(&d, p, &["bucket", "update", "logs", "--compress", "zstd:1"]),
        "updated bucket logs to version 2 (zstd:1)\n"
    );
    assert_eq!(
        ok(&d, p, &["bucket", "rm", "logs"]),
        "removed bucket logs and 0 blocks\n"
    );
    assert!(
        fails(&d, p, &["bucket", "create", "secret", "--encrypt"])
            .contains("declared in the daemon's config")
    );
    let info: Value = serde_json::from_str(&ok(&d, p, &["volume", "info", "--json"])).unwrap();
    assert_eq!(info["backend"], "redb");
    assert!(ok(&d, p, &["volume", "verify"]).ends_with("0 corrupt\n"));

    // Streams, events, proofs, snapshots.
    assert_eq!(
        ok(
            &d,
            p,
            &[
                "stream",
                "append",
                "acct/1",
                "-t",
                "Opened",
                "-d",
                r#"{"owner":"ada"}"#,
                "-e",
                "no_stream"
            ]
        ),
        "version 0 position 0\n"
    );
    ok(
        &d,
        p,
        &[
            "stream",
            "append",
            "acct/1",
            "-t",
            "Deposited",
            "-d",
            r#"{"amount":5}"#,
            "-e",
            "0",
        ],
    );
    ok(
        &d,
        p,
        &[
            "stream", "append", "acct/1", "-t", "Binary", "-d", "not json",
        ],
    );
    assert_eq!(
        fails(&d, p, &["stream", "append", "acct/1", "-t", "X", "-e", "0"]),
        "hydra: stream acct/1 is at version 2, expected 0"
    );
    let read = ok(&d, p, &["stream", "read", "acct/1", "--json"]);
    let lines: Vec<Value> = read
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["data"]["amount"], 5);
    assert_eq!(
        ok(&d, p, &["stream", "read", "acct/1", "--from", "2"]),
        "acct/1\t2\t2\tBinary\tnot json\n"
    );
    assert_eq!(
        ok(
            &d,
            p,
            &["stream", "read", "acct/1", "--backward", "-n", "1"]
        )
        .lines()
        .count(),
        1
    );
    assert_eq!(
        ok(&d, p, &["stream", "read", "acct/1", "--at-length", "1"])
            .lines()
            .count(),
        1
    );
    assert_eq!(
        ok(&d, p, &["stream", "all", "-t", "Deposited"])
            .lines()
            .count(),
        1
    );
    assert_eq!(ok(&d, p, &["stream", "version", "acct/1"]), "2\n");
    assert_eq!(ok(&d, p, &["stream", "ls"]), "acct/1\t2\tdefault\t\n");
    let id = lines[0]["id"].as_str().unwrap();
    let e: Value = serde_json::from_str(&ok(&d, p, &["event", "get", id])).unwrap();
    assert_eq!(e["data"]["owner"], "ada");
    let proof = ok(&d, p, &["stream", "prove", "acct/1", "2"]);
    let verified = api(&d, p, &["stream", "verify"], proof.as_bytes());
    assert_eq!(
        String::from_utf8_lossy(&verified.stdout),
        "ok: acct/1 version 2 is in the head of length 3\n"
    );
    let c = ok(&d, p, &["stream", "prove", "acct/1", "--from-length", "1"]);
    assert!(
        api(&d, p, &["stream", "verify"], c.as_bytes())
            .status
            .success()
    );
    let head: Value = serde_json::from_str(&ok(&d, p, &["stream", "head", "acct/1"])).unwrap();
    assert_eq!(head["length"], 3);
    ok(
        &d,
        p,
        &["snapshot", "save", "acct/1", "1", "-d", r#"{"balance":5}"#],
    );
    assert_eq!(
        ok(&d, p, &["snapshot", "load", "acct/1"]),
        r#"{"balance":5}"#
    );
    assert_eq!(ok(&d, p, &["snapshot", "ls", "acct/1"]).lines().count(), 1);
    assert_eq!(
        ok(&d, p, &["snapshot", "rm", "acct/1", "--all"]),
        "removed 1 snapshots of acct/1\n"
    );
    assert_eq!(
        ok(
            &d,
            p,
            &["stream", "subscribe", "acct/1", "--from", "0", "-n", "3"]
        )
        .lines()
        .count(),
        3
    );
    assert_eq!(
        ok(
            &d,
            p,
            &[
                "stream",
                "subscribe",
                "--all",
                "--from",
                "1",
                "-n",
                "1",
                "--json"
            ]
        )
        .lines()
        .count(),
        1
    );
    ok(&d, p, &["stream", "meta", "acct/1", "--max-count", "1"]);
    assert_eq!(ok(&d, p, &["stream", "read", "acct/1"]).lines().count(), 1);
    assert_eq!(
        ok(&d, p, &["stream", "delete", "acct/1", "--hard"]),
        "tombstoned acct/1\n"
    );
    assert!(ok(&d, p, &["stream", "scavenge"]).starts_with("scavenged 3 events"));
    assert_eq!(
        ok(&d, p, &["stream", "reindex"]),
        "reindexed 0 events in 1 streams\n"
    );
    assert!(fails(&d, p, &["stream", "read", "acct/1"]).contains("tombstoned"));
    assert!(fails(&d, p, &["daemon"]).contains("--api talks to a running daemon"));
    drop(d);
    let gone = api_to("http://127.0.0.1:9", p, &["stream", "ls"]);
    assert!(
        gone.contains("cannot reach the daemon at http://127.0.0.1:9"),
        "{gone}"
    );
}

fn api_to(url: &str, dir: &std::path::Path, args: &[&str]) -> String {
    let out = hydra(dir)
        .arg("--api")
        .arg(url)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    String::from_utf8(out.stderr).unwrap()
}

/// The same commands, embedded and through the daemon, store the same
/// bytes: payloads and metadata as given (JSON text is not re-serialised,
/// so the Merkle leaves agree), snapshots with their metadata.
#[test]
fn embedded_and_remote_commands_store_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path();
    let d = Daemon::start(p, &[]);
    let local = tempfile::tempdir().unwrap();
    let payloads: [(&str, &str); 3] = [
        (r#"{"b":1,  "a":2}"#, r#"{"z": [1, 2]}"#),
        ("not json at all", "\u{1}binary-ish"),
        (" 42 ", ""),
    ];
    let append = |args: Vec<&str>, remote: bool| {
        let out = if remote {
            api(&d, p, &args, b"")
        } else {
            crate::run(local.path(), &args, b"")
        };
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for remote in [false, true] {
        for (data, metadata) in payloads {
            let mut args = vec!["stream", "append", "same-1", "-t", "T", "-d", data];
            if !metadata.is_empty() {
                args.extend(["-m", metadata]);
            }
            append(args, remote);
        }
        append(
            vec![
                "snapshot",
                "save",
                "same-1",
                "2",
                "-d",
                r#"{"n": 3}"#,
                "-m",
                r#"{"v": 1}"#,
            ],
            remote,
        );
    }
    // Reads print payloads exactly; proofs carry them in base64.
    let read = |remote: bool, args: &[&str]| {
        if remote {
            ok(&d, p, args)
        } else {
            crate::ok(local.path(), args)
        }
    };
    let fields = |text: String| -> Vec<Value> {
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                serde_json::json!([
                    v["data"],
                    v["data_base64"],
                    v["metadata"],
                    v["metadata_base64"]
                ])
            })
            .collect()
    };
    let here = fields(read(false, &["stream", "read", "same-1", "--json"]));
    assert_eq!(
        here,
        fields(read(true, &["stream", "read", "same-1", "--json"]))
    );
    assert_eq!(here.len(), 3);
    for version in ["0", "1", "2"] {
        let leaf = |remote: bool| -> Value {
            let proof: Value =
                serde_json::from_str(&read(remote, &["stream", "prove", "same-1", version]))
                    .unwrap();
            let e = &proof["event"];
            serde_json::json!([e["data_base64"], e["metadata_base64"], e["type"]])
        };
        assert_eq!(leaf(false), leaf(true), "version {version}");
    }
    let snapshot = |remote: bool| -> Value {
        let mut v: Value =
            serde_json::from_str(&read(remote, &["snapshot", "load", "same-1", "--json"])).unwrap();
        v["timestamp"] = Value::Null;
        v
    };
    assert_eq!(snapshot(false), snapshot(true));
    assert_eq!(snapshot(true)["metadata"], r#"{"v": 1}"#);
}
