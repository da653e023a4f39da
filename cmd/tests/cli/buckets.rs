use crate::{fails, hydra, noise, ok, run, walk};

#[test]
fn create_ls_show_update_rm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    assert_eq!(
        ok(d, &["bucket", "create", "logs", "--compress", "zstd:7"]),
        "created bucket logs (zstd:7)\n"
    );
    let ls: serde_json::Value = serde_json::from_str(&ok(d, &["bucket", "ls", "--json"])).unwrap();
    let ids: Vec<_> = ls
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    // `eventlog` holds the event log's snapshots.
    assert_eq!(ids, ["default", "eventlog", "logs"]);
    let r =
        String::from_utf8(run(d, &["block", "put", "-b", "logs"], &[b'x'; 5000]).stdout).unwrap();
    let show: serde_json::Value =
        serde_json::from_str(&ok(d, &["bucket", "show", "logs", "--json"])).unwrap();
    assert_eq!(show["transforms"]["zstd_level"], 7);
    assert_eq!(show["blocks"], 1);
    assert!(
        show["stored_bytes"].as_u64().unwrap() < 100,
        "compressed: {show}"
    );
    assert_eq!(
        ok(d, &["bucket", "update", "logs", "--compress", "zstd:1"]),
        "updated bucket logs to version 2 (zstd:1)\n"
    );
    let err = fails(d, &["bucket", "update", "logs", "--version", "2"]);
    assert_eq!(
        err,
        "hydra: bucket logs is at version 2; an update must give a higher version, not 2"
    );
    // Blocks stored at level 7 still read after the level changed.
    let got = run(d, &["block", "get", "-b", "logs", r.trim()], b"");
    assert_eq!(got.stdout, vec![b'x'; 5000]);
    assert_eq!(
        ok(d, &["bucket", "rm", "logs"]),
        "removed bucket logs and 1 blocks\n"
    );
    assert_eq!(
        fails(d, &["bucket", "show", "logs"]),
        "hydra: bucket logs does not exist"
    );
    assert_eq!(
        fails(d, &["bucket", "create", "default"]),
        "hydra: bucket default already exists"
    );
}

#[test]
fn encrypted_buckets_need_their_key_and_keep_plaintext_off_disk() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("vault.key");
    let key_s = key.to_str().unwrap();
    let out = run(
        d,
        &[
            "bucket",
            "create",
            "vault",
            "--encrypt",
            "--key-file",
            key_s,
        ],
        b"",
    );
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("wrote a new key to"));
    assert_eq!(std::fs::read_to_string(&key).unwrap().trim().len(), 64);

    let marker = b"PLAINTEXT-MARKER-THAT-MUST-NOT-BE-ON-DISK";
    let mut data = marker.repeat(50);
    data.extend(noise(4, 100_000));
    let r = run(
        d,
        &["block", "put", "-b", "vault", "--pin", "--key-file", key_s],
        &data,
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = String::from_utf8(r.stdout).unwrap().trim().to_owned();
    let o = run(
        d,
        &["object", "put", "-b", "vault", "doc", "--key-file", key_s],
        &data,
    );
    assert!(o.status.success());

    for entry in walk(&d.join("data")) {
        let bytes = std::fs::read(&entry).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext in {}",
            entry.display()
        );
    }
    assert_eq!(
        fails(d, &["block", "get", "-b", "vault", &r]),
        "hydra: bucket vault is encrypted and this peer has no key: give it with --key-file FILE or HYDRA_KEY"
    );
    let wrong = d.join("wrong.key");
    std::fs::write(&wrong, "11".repeat(32)).unwrap();
    assert_eq!(
        fails(
            d,
            &[
                "block",
                "get",
                "-b",
                "vault",
                &r,
                "--key-file",
                wrong.to_str().unwrap()
            ]
        ),
        "hydra: wrong key for bucket vault"
    );
    // With the key, from the file or from HYDRA_KEY.
    let got = run(
        d,
        &["block", "get", "-b", "vault", &r, "--key-file", key_s],
        b"",
    );
    assert!(got.stdout == data);
    let hex = std::fs::read_to_string(&key).unwrap();
    let got = hydra(d)
        .args(["object", "get", "-b", "vault", "doc"])
        .env("HYDRA_KEY", hex.trim())
        .output()
        .unwrap();
    assert!(got.status.success());
    assert!(got.stdout == data);
    // Verify needs no key.
    assert!(ok(d, &["volume", "verify"]).ends_with("0 corrupt\n"));
    // gc over all buckets skips the one it cannot read.
    let gc = run(d, &["gc"], b"");
    assert!(gc.status.success());
    assert!(String::from_utf8_lossy(&gc.stderr).contains("skipping encrypted bucket vault"));
    // So does a scavenge, which still does the other buckets' streams.
    for (stream, bucket) in [("chart", "vault"), ("notes", "default")] {
        ok(
            d,
            &[
                "stream",
                "append",
                stream,
                "-t",
                "Note",
                "-d",
                "{}",
                "--bucket",
                bucket,
                "--key-file",
                key_s,
            ],
        );
        ok(d, &["stream", "delete", stream, "--hard"]);
    }
    let scavenge = run(d, &["stream", "scavenge"], b"");
    assert!(scavenge.status.success());
    let out = String::from_utf8_lossy(&scavenge.stdout);
    assert!(
        out.starts_with("scavenged 1 events (") && out.ends_with(" from 1 streams\n"),
        "{out}"
    );
    assert_eq!(
        String::from_utf8_lossy(&scavenge.stderr),
        "hydra: skipping the streams of encrypted bucket vault (no key for it here)\n"
    );
    assert!(ok(d, &["stream", "scavenge", "--key-file", key_s]).starts_with("scavenged 1 events"));
}

#[test]
fn encrypt_without_a_key_source_says_how_to_give_one() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(
        fails(dir.path(), &["bucket", "create", "v", "--encrypt"]),
        "hydra: --encrypt needs a key: --key-file FILE (created if absent) or HYDRA_KEY"
    );
}

#[test]
fn help_says_where_keys_come_from() {
    let out = hydra(std::path::Path::new("/nonexistent"))
        .args(["bucket", "create", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    assert!(help.contains("--key-file"), "{help}");
    assert!(help.contains("HYDRA_KEY"), "{help}");
}
