use hydra_eventlog::{Error, EventLog, ExpectedVersion, verify_event};

use crate::{ev, fill, open, read_all_of, sid};

fn export(log: &EventLog, streams: &[&str], path: &std::path::Path) {
    let ids: Vec<_> = streams.iter().map(|s| sid(s)).collect();
    let f = std::fs::File::create(path).unwrap();
    log.export(&ids, std::io::BufWriter::new(f)).unwrap();
}

#[test]
fn a_replica_gets_the_writers_events_heads_and_proofs() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(da.path()), open(db.path()));
    let writer = a.identity().public_key();
    // Past two of the importer's writer batches (4,096 records each).
    fill(&a, &sid("orders"), 9000);
    fill(&a, &sid("users"), 3);
    let file = da.path().join("export.car");
    export(&a, &["orders", "users"], &file);
    let r = b.import(&file, &[writer]).unwrap();
    assert_eq!((r.streams, r.events, r.skipped), (2, 9003, 0));
    for s in ["orders", "users"] {
        let (ours, theirs) = (read_all_of(&a, &sid(s)), read_all_of(&b, &sid(s)));
        let strip = |v: Vec<hydra_eventlog::RecordedEvent>| {
            v.into_iter()
                .map(|e| (e.id, e.version, e.event_type, e.data, e.timestamp))
                .collect::<Vec<_>>()
        };
        assert_eq!(strip(ours), strip(theirs));
        assert_eq!(
            b.head(&sid(s)).unwrap(),
            a.head(&sid(s)).unwrap(),
            "the replica serves the writer's head"
        );
    }
    let e = &read_all_of(&b, &sid("orders"))[8650];
    let (head, proof) = b.prove(&sid("orders"), 8650).unwrap();
    verify_event(&head, &writer, e, &proof).unwrap();
    assert_eq!(b.get_event(e.id).unwrap().version, 8650);
    let err = b
        .append(&sid("orders"), ExpectedVersion::Any, vec![ev("Local", "x")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "stream orders is replicated from writer {}: append there",
            a.identity().peer_id()
        )
    );

    // Later appends on the writer: a new export applies only what is new.
    fill(&a, &sid("orders"), 10);
    export(&a, &["orders"], &file);
    let r = b.import(&file, &[writer]).unwrap();
    assert_eq!((r.events, r.skipped), (10, 9000));
    assert_eq!(
        b.head(&sid("orders")).unwrap(),
        a.head(&sid("orders")).unwrap()
    );
    let again = b.import(&file, &[]).unwrap();
    assert_eq!(
        (again.events, again.skipped),
        (0, 9010),
        "importing twice changes nothing"
    );
}

#[test]
fn tampered_truncated_untrusted_and_forked_files_change_nothing() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(da.path()), open(db.path()));
    fill(&a, &sid("s"), 600);
    let file = da.path().join("export.car");
    export(&a, &["s"], &file);
    let bytes = std::fs::read(&file).unwrap();

    let mut flipped = bytes.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0x01;
    let bad = da.path().join("bad.car");
    std::fs::write(&bad, &flipped).unwrap();
    let err = b.import(&bad, &[]).unwrap_err();
    assert!(err.to_string().contains("does not match its CID"), "{err}");
    assert!(!b.exists(&sid("s")).unwrap(), "nothing applied");

    std::fs::write(&bad, &bytes[..bytes.len() - 100]).unwrap();
    let err = b.import(&bad, &[]).unwrap_err();
    assert!(err.to_string().contains("ends in the middle"), "{err}");
    assert!(!b.exists(&sid("s")).unwrap());

    let err = b.import(&file, &[[7u8; 32]]).unwrap_err();
    assert!(err.to_string().contains("not the trusted signer"), "{err}");
    assert!(!b.exists(&sid("s")).unwrap());

    // A fork: the same writer key signs two histories that share 600
    // events. The replica takes one and refuses the other.
    b.import(&file, &[]).unwrap();
    let dc = tempfile::tempdir().unwrap();
    a.close().unwrap();
    drop(a);
    copy_dir(da.path(), dc.path());
    let (a, c) = (open(da.path()), open(dc.path()));
    fill(&a, &sid("s"), 5);
    export(&a, &["s"], &file);
    assert_eq!(b.import(&file, &[]).unwrap().events, 5);
    for n in [1, 5, 9] {
        // Shorter, as long, and longer than what the replica has: each a
        // history that the replica's copy is not a prefix of.
        c.append(
            &sid("s"),
            ExpectedVersion::Any,
            vec![ev("Fork", "other history")],
        )
        .unwrap();
        fill(&c, &sid("s"), n - 1);
        export(&c, &["s"], &file);
        let err = b.import(&file, &[]).unwrap_err();
        assert!(matches!(err, Error::Inconsistent { .. }), "{err}");
        assert_eq!(
            read_all_of(&b, &sid("s")).len(),
            605,
            "the fork changed nothing"
        );
    }

    // A stream written here is never overwritten by an import.
    let local = tempfile::tempdir().unwrap();
    let l = open(local.path());
    fill(&l, &sid("s"), 1);
    assert!(matches!(
        l.import(&file, &[]),
        Err(Error::NotAReplica { .. })
    ));
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" && !e.file_name().to_string_lossy().ends_with(".car") {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn an_export_from_a_version_carries_only_what_a_replica_lacks() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(da.path()), open(db.path()));
    let writer = a.identity().public_key();
    fill(&a, &sid("orders"), 1000);
    let (full, part) = (da.path().join("full.car"), da.path().join("part.car"));
    export(&a, &["orders"], &full);
    b.import(&full, &[writer]).unwrap();
    fill(&a, &sid("orders"), 10);
    let partial = |from: u64| {
        let f = std::fs::File::create(&part).unwrap();
        a.export_from(&[(sid("orders"), from)], f).unwrap()
    };
    assert_eq!(partial(1000).events, 10);
    assert!(std::fs::metadata(&part).unwrap().len() < std::fs::metadata(&full).unwrap().len() / 20);
    let r = b.import(&part, &[writer]).unwrap();
    assert_eq!((r.events, r.skipped), (10, 0));
    assert_eq!(
        b.head(&sid("orders")).unwrap(),
        a.head(&sid("orders")).unwrap()
    );
    let e = &read_all_of(&b, &sid("orders"))[1005];
    let (head, proof) = b.prove(&sid("orders"), 1005).unwrap();
    verify_event(&head, &writer, e, &proof).unwrap();

    // A partial export that starts past what the replica holds leaves a
    // gap: refused, nothing changes.
    fill(&a, &sid("orders"), 5);
    partial(1012);
    let err = b.import(&part, &[writer]).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ImportGap {
                expected: 1010,
                found: 1012,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(b.stream_version(&sid("orders")).unwrap(), Some(1009));
    // From the replica's length it applies.
    partial(1010);
    assert_eq!(b.import(&part, &[writer]).unwrap().events, 5);
}

#[test]
fn a_long_stream_moves_in_parts_each_with_its_own_signed_head() {
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let (a, b, c) = (open(da.path()), open(db.path()), open(dc.path()));
    let writer = a.identity().public_key();
    fill(&a, &sid("orders"), 1000);
    // Parts of about 10 KB: each ends where its records pass the bound,
    // with the writer's head at that length.
    let mut parts = 0;
    while b.stream_version(&sid("orders")).unwrap() != Some(999) {
        let from = b
            .stream_version(&sid("orders"))
            .unwrap()
            .map_or(0, |v| v + 1);
        let mut car = Vec::new();
        let r = a
            .export_part(&[(sid("orders"), from)], Some(10_000), &mut car)
            .unwrap();
        assert!(r.events > 0 && r.events < 1000, "{r:?}");
        assert_eq!(b.import_bytes(&car, &[writer]).unwrap().events, r.events);
        let v = b.stream_version(&sid("orders")).unwrap().unwrap();
        assert_eq!(
            b.head(&sid("orders")).unwrap(),
            a.head_at(&sid("orders"), v + 1).unwrap()
        );
        parts += 1;
    }
    assert!(parts > 3, "{parts} parts");
    assert_eq!(
        b.head(&sid("orders")).unwrap(),
        a.head(&sid("orders")).unwrap()
    );

    // A replica cannot sign a head for its writer: it cuts its parts at
    // the writer heads its own imports brought.
    let mut relayed = 0;
    while c.stream_version(&sid("orders")).unwrap() != Some(999) {
        let from = c
            .stream_version(&sid("orders"))
            .unwrap()
            .map_or(0, |v| v + 1);
        let mut car = Vec::new();
        let r = b
            .export_part(&[(sid("orders"), from)], Some(10_000), &mut car)
            .unwrap();
        assert!(r.events < 1000, "{r:?}");
        c.import_bytes(&car, &[writer]).unwrap();
        relayed += 1;
    }
    assert!(relayed > 3, "{relayed} parts");
    assert_eq!(
        c.head(&sid("orders")).unwrap(),
        a.head(&sid("orders")).unwrap()
    );
    // One that got everything at once has no head to cut at but its last.
    let dd = tempfile::tempdir().unwrap();
    let d = open(dd.path());
    let mut whole = Vec::new();
    a.export(&[sid("orders")], &mut whole).unwrap();
    d.import_bytes(&whole, &[writer]).unwrap();
    let mut car = Vec::new();
    let r = d
        .export_part(&[(sid("orders"), 0)], Some(10_000), &mut car)
        .unwrap();
    assert_eq!(r.events, 1000);
}

#[test]
fn an_extension_tells_a_bad_export_from_a_writer_that_forked() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let s = sid("orders");
    {
        let a = open(da.path());
        fill(&a, &s, 10);
    }
    // The same volume, so the same writer key, copied: two histories.
    copy_dir(da.path(), db.path());
    let (a, b) = (open(da.path()), open(db.path()));
    let writer = a.identity().public_key();
    assert_eq!(writer, b.identity().public_key());
    fill(&a, &s, 5);
    b.append(&s, ExpectedVersion::Any, vec![ev("Forked", "{}")])
        .unwrap();

    let ext = a.extension(&s, 11).unwrap();
    ext.verify(&writer).unwrap();
    assert_eq!((ext.proof.old_length, ext.head.length), (11, 15));
    // Against the writer's own head at 11: consistent.
    assert!(!ext.contradicts(&a.head_at(&s, 11).unwrap()));
    // Against the other history's head at 11: equivocation.
    assert!(ext.contradicts(&b.head(&s).unwrap()));
    // A tampered old root or path does not verify.
    let mut bad = ext.clone();
    bad.old_root[0] ^= 1;
    assert!(bad.verify(&writer).is_err());
    assert!(ext.verify(&[9; 32]).is_err(), "another signer");
}
