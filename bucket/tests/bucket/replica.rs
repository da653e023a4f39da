//! Object replication at the bucket level: a writer's signed manifest,
//! closures, a blind replica that stores without the key, and a keyed
//! replica that reads through the blind one's bytes.

use hydra_bucket::{BucketError, BucketName, Closure, CreateOptions, Key, Manifest, Store};
use hydra_volume::{Backend, Identity, data_files};

use crate::{noise, store};

/// Copies every object `manifest` lists from `from` into `to`, as the
/// network follower does: closure first, then the blocks `to` lacks.
fn replicate(
    from: &hydra_bucket::Bucket,
    to: &hydra_bucket::Bucket,
    signed: &[u8],
    manifest: &Manifest,
) -> u64 {
    let mut fetched = 0;
    for o in &manifest.objects {
        let bytes = from.get_stored(&o.closure).unwrap().unwrap();
        let closure = Closure::decode(&bytes).unwrap();
        let mut rx = to.receiver();
        rx.block(o.closure, bytes).unwrap();
        for r in to.lacking(&closure.blocks).unwrap() {
            rx.block(r, from.get_stored(&r).unwrap().unwrap()).unwrap();
            fetched += 1;
        }
        rx.finish(o, &closure).unwrap();
    }
    to.apply_manifest(signed, manifest).unwrap();
    fetched
}

/// An encrypted, compressed bucket holding `big` (`data`) and `small`.
fn writer_bucket(s: &Store, name: &BucketName, key: &Key, data: &[u8]) -> hydra_bucket::Bucket {
    s.create_bucket(
        name,
        CreateOptions {
            zstd_level: Some(3),
            key: Some(key),
        },
    )
    .unwrap();
    let b = s.bucket(name, Some(key)).unwrap();
    b.put_object("big", data, |_| {}).unwrap();
    b.put_object("small", &b"tiny"[..], |_| {}).unwrap();
    b
}

#[test]
fn a_blind_replica_stores_and_reserves_what_it_cannot_read() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let key = Key::generate().unwrap();
    let name: BucketName = "vault".parse().unwrap();
    let writer_id = Identity::from_seed([7; 32]);
    let marker = b"BLIND-REPLICA-PLAINTEXT-MARKER";
    let mut data = noise(1, 600_000);
    for i in 0..200 {
        data[i * 2000..i * 2000 + marker.len()].copy_from_slice(marker);
    }

    let a = store(dirs[0].path(), Backend::Redb);
    let wa = writer_bucket(&a, &name, &key, &data);
    let manifest = wa.manifest(&writer_id, 1).unwrap();
    assert_eq!(manifest.objects.len(), 2);
    let signed = manifest.sign(&writer_id);
    let trusted = [writer_id.public_key()];
    assert_eq!(Manifest::open(&signed, &name, &trusted).unwrap(), manifest);

    // B holds no key: it stores and verifies, and cannot read.
    let b = store(dirs[1].path(), Backend::Redb);
    let wb = b.replica(&name, &manifest, None).unwrap();
    let n = replicate(&wa, &wb, &signed, &manifest);
    assert!(n > 5, "{n} blocks");
    let err = wb.get_object("big", std::io::sink(), |_| {}).unwrap_err();
    assert!(matches!(err, BucketError::KeyRequired(_)), "{err}");
    assert!(err.to_string().contains("this peer has no key"), "{err}");
    assert_eq!(wb.replica_manifest().unwrap().unwrap(), signed);
    drop((b, wb));
    for file in data_files(dirs[1].path(), Backend::Redb) {
        let bytes = std::fs::read(&file).unwrap();
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext in {}",
            file.display()
        );
    }

    // C holds the key and replicates from B alone, checking A's signature
    // on the manifest B kept.
    let b = store(dirs[1].path(), Backend::Redb);
    let wb = b.bucket(&name, None).unwrap();
    let relayed = wb.replica_manifest().unwrap().unwrap();
    let m = Manifest::open(&relayed, &name, &trusted).unwrap();
    let c = store(dirs[2].path(), Backend::Redb);
    let wc = c.replica(&name, &m, Some(&key)).unwrap();
    replicate(&wb, &wc, &relayed, &m);
    let mut out = Vec::new();
    wc.get_object("big", &mut out, |_| {}).unwrap();
    assert_eq!(out, data);

    // Again: nothing is fetched twice.
    assert_eq!(replicate(&wb, &wc, &relayed, &m), 0);

    // The writer removes an object: the next manifest removes it here.
    wa.remove_object("small").unwrap();
    let m2 = wa.manifest(&writer_id, 2).unwrap();
    replicate(&wa, &wc, &m2.sign(&writer_id), &m2);
    assert!(wc.object("small").unwrap().is_none());
    assert!(wc.object("big").unwrap().is_some());
}

#[test]
fn manifests_from_other_signers_or_tampered_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let name: BucketName = "pub".parse().unwrap();
    let s: Store = store(dir.path(), Backend::Mem);
    s.create_bucket(&name, CreateOptions::default()).unwrap();
    let w = s.bucket(&name, None).unwrap();
    w.put_object("k", &b"value"[..], |_| {}).unwrap();
    let writer = Identity::from_seed([1; 32]);
    let other = Identity::from_seed([2; 32]);
    let m = w.manifest(&writer, 5).unwrap();

    let theirs = w.manifest(&other, 5).unwrap();
    let err = Manifest::open(&theirs.sign(&other), &name, &[writer.public_key()]).unwrap_err();
    assert!(matches!(err, BucketError::UntrustedWriter { .. }), "{err}");
    // Claiming to be the writer, signed by another: the signature fails.
    let err = Manifest::open(&m.sign(&other), &name, &[writer.public_key()]).unwrap_err();
    assert!(err.to_string().contains("signature"), "{err}");
    let err = Manifest::open(&m.sign(&writer), &name, &[other.public_key()]).unwrap_err();
    assert!(
        err.to_string().contains(&writer.peer_id().to_string()),
        "names the signer: {err}"
    );

    // A flipped byte anywhere: refused, never a panic.
    let signed = m.sign(&writer);
    for i in 0..signed.len() {
        let mut bad = signed.clone();
        bad[i] ^= 0x40;
        assert!(Manifest::open(&bad, &name, &[writer.public_key()]).is_err());
    }
    // For another bucket.
    let err =
        Manifest::open(&signed, &"other".parse().unwrap(), &[writer.public_key()]).unwrap_err();
    assert!(err.to_string().contains("describes bucket"), "{err}");

    // A replica whose bucket transforms differently is refused.
    let r = store(tempfile::tempdir().unwrap().path(), Backend::Mem);
    r.create_bucket(
        &name,
        CreateOptions {
            zstd_level: Some(1),
            key: None,
        },
    )
    .unwrap();
    let err = r.replica(&name, &m, None).err().unwrap();
    assert!(
        matches!(err, BucketError::TransformMismatch { .. }),
        "{err}"
    );
}

#[test]
fn a_receiver_refuses_bytes_that_do_not_match_their_ref() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path(), Backend::Mem);
    let b = s.bucket(&"default".parse().unwrap(), None).unwrap();
    let r = hydra_block::Ref::raw(b"good");
    let mut rx = b.receiver();
    let err = rx.block(r, b"evil".to_vec()).unwrap_err();
    assert!(matches!(err, BucketError::Corrupt { .. }), "{err}");
    drop(rx);
    assert!(!b.has(&r).unwrap());
}

#[test]
fn a_bucket_export_imports_verified_blind_and_keyed() {
    let dirs: Vec<_> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let key = Key::generate().unwrap();
    let name: BucketName = "vault".parse().unwrap();
    let writer = Identity::from_seed([5; 32]);
    let a = store(dirs[0].path(), Backend::Redb);
    let data = noise(9, 700_000);
    let wa = writer_bucket(&a, &name, &key, &data);
    let mut file = Vec::new();
    let e = wa.export(&writer, 1, &mut file).unwrap();
    assert_eq!((e.bucket.as_str(), e.objects), ("vault", 2));

    // Blind: no key needed to import, verify and re-export.
    let trusted = [writer.public_key()];
    let b = store(dirs[1].path(), Backend::Redb);
    let r = b.import(&file[..], &trusted, None).unwrap();
    assert_eq!((r.objects, r.blocks, r.skipped), (2, e.blocks - 1, 0));
    let again = b.import(&file[..], &trusted, None).unwrap();
    assert_eq!(
        (again.blocks, again.skipped),
        (0, e.blocks - 1),
        "nothing twice"
    );
    let wb = b.bucket(&name, None).unwrap();
    let mut relayed = Vec::new();
    wb.export(&Identity::from_seed([6; 32]), 99, &mut relayed)
        .unwrap();

    // Keyed, from the blind replica's export: the writer's manifest.
    let c = store(dirs[2].path(), Backend::Redb);
    c.import(&relayed[..], &trusted, Some(&key)).unwrap();
    let mut out = Vec::new();
    c.bucket(&name, Some(&key))
        .unwrap()
        .get_object("big", &mut out, |_| {})
        .unwrap();
    assert!(out == data);

    // Truncated anywhere, a flipped byte anywhere past the header, or
    // another writer trusted: refused, and no bucket is left behind.
    let d = store(dirs[3].path(), Backend::Redb);
    for cut in [file.len() / 3, file.len() - 1] {
        assert!(d.import(&file[..cut], &trusted, None).is_err());
    }
    for at in (200..file.len()).step_by(file.len() / 17) {
        let mut bad = file.clone();
        bad[at] ^= 0x20;
        assert!(d.import(&bad[..], &trusted, None).is_err(), "byte {at}");
    }
    let err = d.import(&file[..], &[[1; 32]], None).unwrap_err();
    assert!(matches!(err, BucketError::UntrustedWriter { .. }), "{err}");
    assert!(d.bucket_config(&name).is_err(), "nothing left behind");

    // An older manifest than the replica holds is refused.
    wa.remove_object("small").unwrap();
    let mut newer = Vec::new();
    wa.export(&writer, 2, &mut newer).unwrap();
    b.import(&newer[..], &trusted, None).unwrap();
    assert!(
        wb.root("o/small").unwrap().is_none(),
        "removed with the writer's"
    );
    let err = b.import(&file[..], &trusted, None).unwrap_err();
    assert!(err.to_string().contains("older than"), "{err}");

    // The blind replica collects without the key, through closures: the
    // removed object's blocks go, and what remains is whole.
    let gc = wb.gc().unwrap();
    assert!(gc.freed >= 2 && gc.missing.is_empty(), "{gc:?}");
    let mut after = Vec::new();
    wb.export(&writer, 3, &mut after).unwrap();
    let e = store(tempfile::tempdir().unwrap().path(), Backend::Mem);
    e.import(&after[..], &trusted, Some(&key)).unwrap();
    let mut out = Vec::new();
    e.bucket(&name, Some(&key))
        .unwrap()
        .get_object("big", &mut out, |_| {})
        .unwrap();
    assert!(out == data, "intact after a blind collection");
    // An object with no closure yet (the writer's, never exported) cannot
    // be collected blind: refused, nothing freed.
    wa.put_object("fresh", &b"new"[..], |_| {}).unwrap();
    let err = a.bucket(&name, None).unwrap().gc().unwrap_err();
    assert!(matches!(err, BucketError::BlindGc { .. }), "{err}");
    assert!(wa.object("fresh").unwrap().is_some());
}
