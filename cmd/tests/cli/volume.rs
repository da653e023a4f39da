use crate::{fails, noise, ok, run};

#[test]
fn info_reports_backend_identity_and_size() {
    for backend in ["redb", "lmdb", "mem"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let info: serde_json::Value =
            serde_json::from_str(&ok(d, &["--backend", backend, "volume", "info", "--json"]))
                .unwrap();
        assert_eq!(info["backend"], backend);
        assert!(info["peer_id"].as_str().unwrap().starts_with("12D3KooW"));
        if backend == "mem" {
            continue;
        }
        run(d, &["block", "put"], &noise(1, 1000));
        // Reopening detects the backend and keeps the identity.
        let again: serde_json::Value =
            serde_json::from_str(&ok(d, &["volume", "info", "--json"])).unwrap();
        assert_eq!(again["backend"], backend);
        assert_eq!(again["peer_id"], info["peer_id"]);
        assert_eq!(again["blocks"], 1);
        assert_eq!(again["stored_bytes"], 1000);
    }
}

#[test]
fn a_backend_flag_on_an_existing_directory_must_match() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["volume", "info"]);
    let err = fails(dir.path(), &["--backend", "lmdb", "volume", "info"]);
    assert!(
        err.ends_with("holds a redb volume; --backend lmdb applies only when a volume is created"),
        "{err}"
    );
}

#[test]
fn a_directory_in_use_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    ok(dir.path(), &["volume", "info"]);
    let _held = hydra_volume::open_dir(&dir.path().join("data"), Default::default()).unwrap();
    let err = fails(dir.path(), &["block", "ls"]);
    assert!(
        err.contains("is in use by another process; if a hydra daemon runs on it, use --api URL"),
        "{err}"
    );
}

/// Flip one byte of a stored value in the redb file: `block get` fails
/// naming the ref, `volume verify` lists it and exits 1.
#[test]
fn corruption_on_disk_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let marker = b"CORRUPT-ME-MARKER-0123456789abcdef";
    let mut data = marker.to_vec();
    data.extend(noise(8, 3000));
    let r = String::from_utf8(run(d, &["block", "put"], &data).stdout).unwrap();
    let r = r.trim();
    let file = d.join("data").join("volume.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .unwrap();
    bytes[at + 5] ^= 1;
    std::fs::write(&file, bytes).unwrap();

    let err = fails(d, &["block", "get", r]);
    assert!(
        err.starts_with(&format!(
            "hydra: block {r} in bucket default on the redb volume is corrupt"
        )),
        "{err}"
    );
    let out = run(d, &["volume", "verify"], b"");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.starts_with(&format!("corrupt {r} bucket default")),
        "{stdout}"
    );
    assert!(stdout.ends_with("1 corrupt\n"), "{stdout}");
}
