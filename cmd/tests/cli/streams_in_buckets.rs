//! Streams in buckets through the CLI and the daemon: `--bucket`, the
//! config's prefix map, `stream ls` and `GET /streams` naming each
//! stream's bucket, and an encrypted bucket's events off the disk.

use reqwest::blocking::Client;
use serde_json::Value;

use crate::daemon::Daemon;
use crate::{fails, hydra, ok, run};

/// Whether any file under `dir` holds `needle`.
fn on_disk(dir: &std::path::Path, needle: &[u8]) -> bool {
    crate::walk(dir).into_iter().any(|p| {
        std::fs::read(&p)
            .unwrap()
            .windows(needle.len())
            .any(|w| w == needle)
    })
}

#[test]
fn an_encrypted_bucket_holds_streams_the_disk_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("vault.key");
    let k = key.to_str().unwrap();
    let out = run(
        d,
        &[
            "bucket",
            "create",
            "vault",
            "--compress",
            "zstd",
            "--encrypt",
            "--key-file",
            k,
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for i in 0..3 {
        ok(
            d,
            &[
                "stream",
                "append",
                "patient-1",
                "--bucket",
                "vault",
                "-t",
                "DiagnosisMarkerT",
                "-d",
                &format!(r#"{{"note":"DataMarkerD{i}"}}"#),
                "-m",
                r#"{"doctor":"MetaMarkerM"}"#,
                "--key-file",
                k,
            ],
        );
    }
    ok(
        d,
        &[
            "stream",
            "append",
            "order-1",
            "-t",
            "Placed",
            "-d",
            r#"{"sku":"PlainMarkerP"}"#,
        ],
    );
    assert_eq!(
        ok(d, &["stream", "ls", "--key-file", k]),
        "order-1\t0\tdefault\t\npatient-1\t2\tvault\t\n"
    );
    let data = d.join("data");
    for m in ["DiagnosisMarkerT", "DataMarkerD", "MetaMarkerM"] {
        assert!(!on_disk(&data, m.as_bytes()), "{m} is readable on disk");
    }
    assert!(
        on_disk(&data, b"PlainMarkerP"),
        "the plain bucket's event is"
    );

    let read = ok(
        d,
        &["stream", "read", "patient-1", "--json", "--key-file", k],
    );
    assert_eq!(read.lines().count(), 3);
    assert!(read.contains("DataMarkerD2"), "{read}");
    // Without the key: one line naming the bucket; other streams work.
    assert_eq!(
        fails(d, &["stream", "read", "patient-1"]),
        "hydra: bucket vault is encrypted and this peer has no key: give it with --key-file FILE or HYDRA_KEY"
    );
    assert!(ok(d, &["stream", "read", "order-1"]).contains("PlainMarkerP"));
    // A stream's bucket is fixed.
    assert_eq!(
        fails(
            d,
            &[
                "stream",
                "append",
                "order-1",
                "--bucket",
                "vault",
                "-t",
                "X",
                "--key-file",
                k
            ]
        ),
        "hydra: stream order-1 is in bucket default, not vault: a stream's bucket is fixed when it is created"
    );
    // A bucket that holds streams is not removed with them.
    assert_eq!(
        fails(d, &["bucket", "rm", "vault"]),
        "hydra: bucket vault holds the events of 1 stream (patient-1): delete and scavenge them first, or they go with it"
    );
    // A proof carries the event, so it needs the key; it verifies.
    let proof = ok(d, &["stream", "prove", "patient-1", "1", "--key-file", k]);
    let v = crate::feed(hydra(d).args(["stream", "verify"]), proof.as_bytes());
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

#[test]
fn the_daemon_places_streams_by_prefix_and_by_request() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let cfg = d.join("hydra.yaml");
    std::fs::write(
        &cfg,
        format!(
            "volumes:\n  - id: main\n    path: {}\neventlog:\n  streams:\n    - prefix: \"patient-\"\n      bucket: vault\nbuckets:\n  - id: vault\n    compress: zstd:3\n    encrypt: true\n    key_file: {}\n  - id: audit\n",
            d.join("data").display(),
            d.join("vault.key").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(d, &["--config", cfg.to_str().unwrap()]);
    let c = Client::new();
    let post = |stream: &str, query: &str| {
        c.post(daemon.at(&format!("/streams/{stream}{query}")))
            .body(r#"{"type":"Noted","data":{"marker":"HttpMarkerH"}}"#)
            .send()
            .unwrap()
    };
    assert_eq!(post("patient-9", "").status(), 201);
    assert_eq!(post("log-1", "?bucket=audit").status(), 201);
    assert_eq!(post("order-2", "").status(), 201);
    let conflict = post("log-1", "?bucket=vault");
    assert_eq!(conflict.status(), 409);
    let body: Value = conflict.json().unwrap();
    assert_eq!(
        body["error"],
        "stream log-1 is in bucket audit, not vault: a stream's bucket is fixed when it is created"
    );
    assert_eq!(post("x-1", "?bucket=nowhere").status(), 404);
    let listed: Value = c.get(daemon.at("/streams")).send().unwrap().json().unwrap();
    let buckets: Vec<(&str, &str)> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stream"].as_str().unwrap(), s["bucket"].as_str().unwrap()))
        .collect();
    assert_eq!(
        buckets,
        [
            ("log-1", "audit"),
            ("order-2", "default"),
            ("patient-9", "vault")
        ]
    );
    let read: Value = c
        .get(daemon.at("/streams/patient-9"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(read[0]["data"]["marker"], "HttpMarkerH");
    // The remote CLI shows the bucket too.
    assert!(ok(d, &["--api", &daemon.url, "stream", "ls"]).contains("patient-9\t0\tvault\t"));
    // 300 more seal a bundle, linked from the stream's tree: verify,
    // through the daemon, checks both.
    let events: Vec<Value> = (0..300)
        .map(|i| serde_json::json!({"type": "Noted", "data": {"i": i}}))
        .collect();
    let appended = c
        .post(daemon.at("/streams/patient-9"))
        .json(&events)
        .send()
        .unwrap();
    assert_eq!(appended.status(), 201);
    let verified = ok(d, &["--api", &daemon.url, "volume", "verify"]);
    assert!(
        verified
            .contains("1 bundles and 1 bundle tree tiles checked, 0 locked (no key), 0 corrupt"),
        "{verified}"
    );
}
