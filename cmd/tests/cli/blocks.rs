use crate::{fails, noise, ok, run};

#[test]
fn put_get_has_rm_round_trip_with_the_plain_blake3_ref() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = noise(1, 70_000);
    let file = d.join("in.bin");
    std::fs::write(&file, &data).unwrap();
    let r = ok(d, &["block", "put", file.to_str().unwrap()])
        .trim()
        .to_owned();
    assert!(r.starts_with("bafkr4i"), "{r}");
    // From stdin too, same ref.
    let out = run(d, &["block", "put"], &data);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r);
    let got = run(d, &["block", "get", &r], b"");
    assert!(got.status.success());
    assert!(got.stdout == data);
    assert_eq!(ok(d, &["block", "has", &r]), "yes\n");
    assert!(ok(d, &["block", "ls"]).starts_with(&format!("{r}\t70000")));
    assert_eq!(ok(d, &["block", "rm", &r]), format!("removed {r}\n"));
    let out = run(d, &["block", "has", &r], b"");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(out.stdout, b"no\n");
    let err = fails(d, &["block", "get", &r]);
    assert_eq!(err, format!("hydra: block {r} not found in bucket default"));
}

#[test]
fn pinned_blocks_survive_gc_and_loose_ones_do_not() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let pinned = run(d, &["block", "put", "--pin"], b"keep me").stdout;
    let loose = run(d, &["block", "put"], b"free me").stdout;
    let (pinned, loose) = (
        String::from_utf8(pinned).unwrap().trim().to_owned(),
        String::from_utf8(loose).unwrap().trim().to_owned(),
    );
    let gc = ok(d, &["gc"]);
    assert!(gc.starts_with("default: freed 1 blocks"), "{gc}");
    assert_eq!(ok(d, &["block", "has", &pinned]), "yes\n");
    assert_eq!(
        run(d, &["block", "has", &loose], b"").status.code(),
        Some(1)
    );
}

#[test]
fn bad_refs_are_usage_errors_naming_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let out = run(dir.path(), &["block", "get", "not-a-ref"], b"");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"not-a-ref\" is not a CID"), "{err}");
}

#[test]
fn a_block_over_the_limit_is_refused_with_advice() {
    let dir = tempfile::tempdir().unwrap();
    let big = vec![7u8; hydra_bucket::MAX_BLOCK_SIZE + 1];
    let out = run(dir.path(), &["block", "put"], &big);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("store large data as an object"), "{err}");
}
