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
        out.starts_with("exported 1 streams, 300 events, 4 blocks"),
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
    // The client counts what the daemon streamed, as an embedded export
    // counts what it writes.
    let out = api(
        &a.url,
        &["export", "--stream", "orders", "-o", file.to_str().unwrap()],
    );
    assert!(out.starts_with("exported 1 streams, 50 events, "), "{out}");
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
    // A bucket too: the default one, by file.
    c.put(format!("{}/buckets/default/objects/notes.txt", a.url))
        .body("hello")
        .send()
        .unwrap();
    let bucket_file = da.path().join("default.car");
    let out = api(
        &a.url,
        &[
            "export",
            "--bucket",
            "default",
            "-o",
            bucket_file.to_str().unwrap(),
        ],
    );
    assert!(out.starts_with("exported bucket default"), "{out}");
    let out = api(&b.url, &["import", bucket_file.to_str().unwrap()]);
    assert!(
        out.starts_with("imported bucket default: 1 objects"),
        "{out}"
    );
    assert_eq!(api(&b.url, &["object", "get", "notes.txt"]), "hello");
    // Refusals come as statuses, before any body.
    for (query, status) in [
        ("?stream=nope", 404),
        ("?bucket=nope", 404),
        ("", 400),
        ("?stream=orders&bucket=default", 400),
    ] {
        let r = c.get(format!("{}/export{query}", a.url)).send().unwrap();
        assert_eq!(r.status(), status, "{query}");
    }
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

#[test]
fn a_daemon_follows_another_over_libp2p() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // The writer serves bucket `default` (its streams); `misc` is not
    // replicated.
    let a = Daemon::start(
        da.path(),
        &[
            "--p2p",
            "/ip4/127.0.0.1/tcp/0",
            "--serve",
            "default",
            "--serve",
            "misc",
        ],
    );
    let c = reqwest::blocking::Client::new();
    let append = |stream: &str, i: u64| {
        let bucket = if stream == "audit" { "misc" } else { "default" };
        let r = c
            .post(format!("{}/streams/{stream}?bucket={bucket}", a.url))
            .body(format!(r#"{{"type":"Placed","data":{i}}}"#))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    };
    for i in 0..40 {
        append("orders-1", i);
    }
    append("audit", 0);
    let health: serde_json::Value = c
        .get(format!("{}/health", a.url))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let writer = health["public_key"].as_str().unwrap();
    let peer = a.p2p.clone().expect("the daemon printed its p2p address");
    assert!(peer.contains("/p2p/12D3KooW"), "{peer}");

    // The flag makes bucket `default` a replica of the writer's, its
    // streams with it; no listener.
    let b = Daemon::start(
        db.path(),
        &["--replicate", &format!("default={writer}@{peer}")],
    );
    let version = |stream: &str| -> Option<u64> {
        let r = c
            .get(format!("{}/streams/{stream}/version", b.url))
            .send()
            .unwrap();
        (r.status() == 200).then(|| r.json::<serde_json::Value>().unwrap()["version"].as_u64())?
    };
    let wait_for = |stream: &str, v: u64| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while version(stream) != Some(v) {
            assert!(
                std::time::Instant::now() < deadline,
                "{stream} not replicated to version {v}: {:?}",
                version(stream)
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for("orders-1", 39);
    // Live: new appends and new streams arrive too.
    append("orders-1", 40);
    append("orders-2", 0);
    wait_for("orders-1", 40);
    wait_for("orders-2", 0);
    assert_eq!(version("audit"), None, "in another bucket");
    // `hydra replicate status` finds the daemon holding the directory.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let status = loop {
        let v: serde_json::Value =
            serde_json::from_str(&ok(db.path(), &["replicate", "status", "--json"])).unwrap();
        if v["follows"][0]["events"] == 42 || std::time::Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let f = &status["follows"][0];
    assert_eq!(
        (f["peer"].as_str(), f["bucket"].as_str()),
        (Some(peer.as_str()), Some("default"))
    );
    assert_eq!(f["events"], 42, "{status}");
    assert!(
        f["last_error"].is_null() && f["last_ok_unix_ms"].is_u64(),
        "{status}"
    );
    let text = ok(db.path(), &["--api", &b.url, "replicate", "status"]);
    assert!(
        text.contains("streams of bucket default by 12D3KooW")
            && text.contains(": 42 events in")
            && text.trim_end().ends_with(", ok"),
        "{text}"
    );
    let nowhere = tempfile::tempdir().unwrap();
    let err = fails(nowhere.path(), &["replicate", "status"]);
    assert!(err.contains("replication runs in the daemon"), "{err}");
    let head = |url: &str| -> serde_json::Value {
        c.get(format!("{url}/streams/orders-1/head"))
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(head(&a.url), head(&b.url));
    assert_eq!(
        c.post(format!("{}/streams/orders-1", b.url))
            .body(r#"{"type":"X"}"#)
            .send()
            .unwrap()
            .status(),
        409,
        "a replica refuses local appends"
    );
}

#[test]
fn bad_replicate_settings_are_refused_at_start() {
    let d = tempfile::tempdir().unwrap();
    let peer = "/ip4/127.0.0.1/tcp/1/p2p/12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
    for (flag, value, why) in [
        ("--replicate", "nope", "expected BUCKET=WRITER@MULTIADDR"),
        (
            "--replicate",
            &format!("docs=abcd@{peer}"),
            "buckets[0].replicate.writers: writer \"abcd\"",
        ),
        (
            "--replicate",
            &format!("docs={}@not-a-multiaddr", "ab".repeat(32)),
            "not a multiaddr",
        ),
        (
            "--replicate",
            &format!("no/such={}@{peer}", "ab".repeat(32)),
            "buckets[0].id",
        ),
        // The flag of the old model says where streams went.
        (
            "--follow",
            &format!("{}@{peer}", "ab".repeat(32)),
            "streams replicate with their bucket now: --replicate BUCKET=WRITER@MULTIADDR",
        ),
    ] {
        let err = fails(d.path(), &["daemon", "--http", "127.0.0.1:0", flag, value]);
        assert!(err.contains(why), "{value}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    // So does an old config.
    let config = d.path().join("old.yaml");
    std::fs::write(
        &config,
        format!(
            "p2p:\n  follow: [{{peers: [{peer}], writer: {}}}]\n",
            "ab".repeat(32)
        ),
    )
    .unwrap();
    let err = fails(d.path(), &["daemon", "--config", config.to_str().unwrap()]);
    assert!(
        err.contains("p2p.follow: streams replicate with their bucket now"),
        "{err}"
    );
}

#[test]
fn a_bucket_moves_as_a_file_blind_then_keyed() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let key = dirs[0].path().join("vault.key");
    let k = key.to_str().unwrap();
    ok(
        dirs[0].path(),
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
    );
    let data = crate::noise(3, 400_000);
    let src = dirs[0].path().join("big.bin");
    std::fs::write(&src, &data).unwrap();
    ok(
        dirs[0].path(),
        &[
            "object",
            "put",
            "-b",
            "vault",
            "--key-file",
            k,
            "big",
            src.to_str().unwrap(),
        ],
    );
    let file = dirs[0].path().join("vault.car");
    let out = ok(
        dirs[0].path(),
        &[
            "export",
            "--bucket",
            "vault",
            "--key-file",
            k,
            "-o",
            file.to_str().unwrap(),
        ],
    );
    assert!(out.starts_with("exported bucket vault: 1 objects"), "{out}");
    let writer = ok(dirs[0].path(), &["peer", "id"]);
    let writer = writer.lines().next().unwrap();

    // Without the key: imported, verified, unreadable.
    let out = ok(
        dirs[1].path(),
        &["import", file.to_str().unwrap(), "--writer", writer],
    );
    assert!(out.starts_with("imported bucket vault: 1 objects"), "{out}");
    let err = fails(dirs[1].path(), &["object", "get", "-b", "vault", "big"]);
    assert!(err.contains("this peer has no key"), "{err}");
    // Another writer named: refused.
    let err = fails(
        dirs[2].path(),
        &[
            "import",
            file.to_str().unwrap(),
            "--writer",
            &"ab".repeat(32),
        ],
    );
    assert!(err.contains("not a trusted writer"), "{err}");
    // Re-exported by the blind one, read with the key elsewhere.
    let relayed = dirs[1].path().join("relayed.car");
    ok(
        dirs[1].path(),
        &["export", "-b", "vault", "-o", relayed.to_str().unwrap()],
    );
    ok(
        dirs[2].path(),
        &["import", relayed.to_str().unwrap(), "--writer", writer],
    );
    let got = crate::run(
        dirs[2].path(),
        &["object", "get", "-b", "vault", "--key-file", k, "big"],
        b"",
    );
    assert!(got.status.success() && got.stdout == data);
}

#[test]
fn a_whole_store_backs_up_to_one_file_and_restores_into_an_empty_directory() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for i in 0..20 {
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
    // Its first five scavenged: the restored ledger begins at 5 too.
    ok(
        a.path(),
        &["stream", "meta", "ledger", "--truncate-before", "5"],
    );
    ok(a.path(), &["stream", "scavenge"]);
    ok(a.path(), &["bucket", "create", "docs"]);
    let note = a.path().join("note.txt");
    std::fs::write(&note, b"a note kept beside the ledger").unwrap();
    let put = hydra(a.path())
        .args(["object", "put", "-b", "docs", "note"])
        .stdin(std::fs::File::open(&note).unwrap())
        .output()
        .unwrap();
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    let file = a.path().join("backup.car");
    let out = ok(a.path(), &["export", "--all", "-o", file.to_str().unwrap()]);
    assert!(
        out.starts_with("exported 1 buckets (1 objects), 1 streams, 20 events"),
        "{out}"
    );
    assert_eq!(
        ok(b.path(), &["import", file.to_str().unwrap()]),
        "imported 1 buckets (1 objects) and 1 streams: 15 new events, in the file's $all order, 0 already here\n"
    );
    assert_eq!(
        ok(b.path(), &["stream", "read", "ledger"]),
        ok(a.path(), &["stream", "read", "ledger"])
    );
    // Version 5, at position 5 as on the writer.
    assert!(ok(b.path(), &["stream", "read", "ledger"]).starts_with("ledger\t5\t5\t"));
    assert_eq!(
        ok(b.path(), &["object", "get", "-b", "docs", "note"]),
        "a note kept beside the ledger"
    );
    let both = hydra(a.path())
        .args(["export", "--all", "--stream", "ledger", "-o", "x.car"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&both.stderr);
    assert!(
        !both.status.success() && err.contains("cannot be used with"),
        "{err}"
    );
}

/// A backup of an encrypted bucket's stream restored without its key is
/// held blind (no marker on disk, listed as such, reads refused naming
/// the bucket); the
/// key given to any later command (`--key-file`) indexes it, and it reads
/// as on the writer.
#[test]
fn a_blind_restore_reads_once_a_command_is_given_the_key() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let key = a.path().join("vault.key");
    let key = key.to_str().unwrap();
    ok(
        a.path(),
        &[
            "bucket",
            "create",
            "vault",
            "--compress",
            "zstd",
            "--encrypt",
            "--key-file",
            key,
        ],
    );
    for i in 0..3 {
        ok(
            a.path(),
            &[
                "stream",
                "append",
                "patient-1",
                "--bucket",
                "vault",
                "--key-file",
                key,
                "-t",
                "Admitted",
                "-d",
                &format!("{{\"ward\":\"MARKER-{i}\"}}"),
            ],
        );
    }
    let file = a.path().join("backup.car");
    ok(a.path(), &["export", "--all", "-o", file.to_str().unwrap()]);
    ok(b.path(), &["import", file.to_str().unwrap()]);
    for f in crate::walk(b.path()) {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(7).any(|w| w == b"MARKER-"),
            "{} holds a marker",
            f.display()
        );
    }
    // Listed among the streams it can read, by id, marked.
    for s in ["alpha", "zulu"] {
        ok(b.path(), &["stream", "append", s, "-t", "Note", "-d", "{}"]);
    }
    assert_eq!(
        ok(b.path(), &["stream", "ls"]),
        "alpha\t0\tdefault\t\npatient-1\t2\tvault\tblind (no key)\nzulu\t0\tdefault\t\n"
    );
    assert_eq!(
        ok(b.path(), &["stream", "ls", "zu"]),
        "zulu\t0\tdefault\t\n"
    );
    let err = fails(b.path(), &["stream", "read", "patient-1"]);
    assert!(
        err.contains("bucket vault is encrypted and this peer has no key"),
        "{err}"
    );
    let read = ["stream", "read", "patient-1", "--key-file", key];
    // The same events; at positions after alpha's and zulu's, which it
    // indexed first.
    let without_positions = |out: String| {
        out.lines()
            .map(|l| {
                let mut cols: Vec<&str> = l.split('\t').collect();
                cols.remove(2);
                cols.join("\t")
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        without_positions(ok(b.path(), &read)),
        without_positions(ok(a.path(), &read))
    );
    // Indexed now: it reads without the key being given again to open it.
    assert!(ok(b.path(), &["stream", "ls"]).contains("\npatient-1\t2\tvault\t\n"));
}
