//! `hydra export` / `hydra import`: embedded, and between two daemons.

use std::process::Command;

use crate::daemon::Daemon;
use crate::{fails, hydra, ok};

#[test]
fn export_then_import_between_data_directories() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for i in 0..300 {
        ok(
            a.path(),
            &[
                "stream",
                "append",
                "ledger",
                "-t",
                "Entry",
                "-d",
                &format!("{{\"i\":{i}}}"),
            ],
        );
    }
    let file = a.path().join("ledger.car");
    let out = ok(
        a.path(),
        &["export", "--stream", "ledger", "-o", file.to_str().unwrap()],
    );
    assert!(
        out.starts_with("exported 1 streams, 300 events, 3 blocks"),
        "{out}"
    );
    let key: serde_json::Value =
        serde_json::from_str(&ok(a.path(), &["stream", "head", "ledger"])).unwrap();
    let signer = key["signer"].as_str().unwrap();
    assert_eq!(
        ok(
            b.path(),
            &["import", file.to_str().unwrap(), "--writer", signer]
        ),
        "imported 1 streams: 300 new events, 0 already here\n"
    );
    assert_eq!(
        ok(b.path(), &["stream", "read", "ledger"]),
        ok(a.path(), &["stream", "read", "ledger"])
    );
    assert_eq!(
        ok(b.path(), &["stream", "head", "ledger"]),
        ok(a.path(), &["stream", "head", "ledger"])
    );
    let err = fails(b.path(), &["stream", "append", "ledger", "-t", "X"]);
    assert!(err.contains("is replicated from writer 12D3KooW"), "{err}");
    // A tampered copy is refused and changes nothing.
    let mut bytes = std::fs::read(&file).unwrap();
    let n = bytes.len();
    bytes[n - 10] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let c = tempfile::tempdir().unwrap();
    let err = fails(c.path(), &["import", file.to_str().unwrap()]);
    assert!(err.contains("does not match its CID"), "{err}");
    let out = hydra(c.path()).args(["stream", "ls"]).output().unwrap();
    assert!(out.stdout.is_empty());
}

#[test]
fn export_from_one_daemon_import_into_another() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (Daemon::start(da.path(), &[]), Daemon::start(db.path(), &[]));
    let c = reqwest::blocking::Client::new();
    for i in 0..50 {
        c.post(format!("{}/streams/orders", a.url))
            .body(format!(r#"{{"type":"Placed","data":{i}}}"#))
            .send()
            .unwrap();
    }
    let file = da.path().join("orders.car");
    let api = |url: &str, args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_hydra"))
            .arg("--api")
            .arg(url)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    api(
        &a.url,
        &["export", "--stream", "orders", "-o", file.to_str().unwrap()],
    );
    assert_eq!(
        api(&b.url, &["import", file.to_str().unwrap()]),
        "imported 1 streams: 50 new events, 0 already here\n"
    );
    let head_a: serde_json::Value = c
        .get(format!("{}/streams/orders/head", a.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let head_b: serde_json::Value = c
        .get(format!("{}/streams/orders/head", b.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(head_a, head_b);
    let events: serde_json::Value = c
        .get(format!("{}/streams/orders", b.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(events.as_array().unwrap().len(), 50);
    assert_eq!(
        c.post(format!("{}/streams/orders", b.url))
            .body(r#"{"type":"X"}"#)
            .send()
            .unwrap()
            .status(),
        409
    );
}
