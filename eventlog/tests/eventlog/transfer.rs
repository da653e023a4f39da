use hydra_bucket::Key;
use hydra_eventlog::{Direction, Error, EventLog, ExpectedVersion, NewEvent, verify_event};

use crate::buckets::{disk_contains, in_bucket, open_with_vault};
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
    assert!(err.to_string().contains("not a trusted writer"), "{err}");
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
fn an_import_stores_the_writers_blocks_as_they_are_and_relays_them() {
    let key = Key::from_bytes([4; 32]);
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = open_with_vault(da.path(), Some(&key), vec![]);
    let (b, c) = (
        open_with_vault(db.path(), Some(&key), vec![]),
        open_with_vault(dc.path(), Some(&key), vec![]),
    );
    let writer = a.identity().public_key();
    let s = sid("patient-7");
    let secret = |i: u64| NewEvent::new("Visit", format!("SecretMarkerT{i}").into_bytes());
    let write = |log: &EventLog, from: u64, n: u64| {
        for chunk in (from..from + n).collect::<Vec<_>>().chunks(100) {
            log.write(in_bucket(
                "patient-7",
                "vault",
                chunk.iter().map(|i| secret(*i)).collect(),
            ))
            .unwrap();
        }
    };
    // Three bundles and 232 events on the open edge.
    write(&a, 0, 1000);
    let file = da.path().join("export.car");
    export(&a, &["patient-7"], &file);
    let r = b.import(&file, &[writer]).unwrap();
    assert_eq!((r.streams, r.events, r.skipped), (1, 1000, 0));
    // Block for block what the writer stores: its stored head checks out
    // here, without a key.
    b.check_stored(&a.stored_head(&s).unwrap(), &writer)
        .unwrap();
    assert_eq!(read_all_of(&b, &s).len(), 1000);

    // The writer seals bundle 3, which the replica held on its edge, and
    // goes on: the replica takes the bundle and drops its edge records.
    write(&a, 1000, 30);
    export(&a, &["patient-7"], &file);
    let r = b.import(&file, &[writer]).unwrap();
    assert_eq!((r.events, r.skipped), (30, 1000));
    let stored = a.stored_head(&s).unwrap();
    b.check_stored(&stored, &writer).unwrap();
    assert_eq!(
        b.import(&file, &[writer]).unwrap().events,
        0,
        "importing twice changes nothing"
    );
    let strip = |v: Vec<hydra_eventlog::RecordedEvent>| {
        v.into_iter()
            .map(|e| (e.id, e.version, e.event_type, e.data, e.timestamp))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(read_all_of(&b, &s)), strip(read_all_of(&a, &s)));
    let e = &read_all_of(&b, &s)[1010];
    let (head, proof) = b.prove(&s, 1010).unwrap();
    verify_event(&head, &writer, e, &proof).unwrap();
    assert_eq!(b.get_event(e.id).unwrap().version, 1010);

    // The replica hands on what it holds, as the writer signed it.
    assert_eq!(b.storage(&s).unwrap().stored, stored);
    let relayed = db.path().join("relayed.car");
    export(&b, &["patient-7"], &relayed);
    let r = c.import(&relayed, &[writer]).unwrap();
    assert_eq!((r.events, r.skipped), (1030, 0));
    c.check_stored(&stored, &writer).unwrap();
    assert_eq!(strip(read_all_of(&c, &s)), strip(read_all_of(&a, &s)));
    let verified = b.verify(|_| {}).unwrap();
    assert!(verified.corrupt.is_empty(), "{:?}", verified.corrupt);
    assert_eq!(verified.bundles, 4);

    for (log, dir) in [(b, &db), (c, &dc)] {
        log.close().unwrap();
        drop(log);
        assert!(
            !disk_contains(dir.path(), b"SecretMarkerT"),
            "an event readable on a replica's disk"
        );
    }
}

#[test]
fn an_import_without_the_key_holds_the_stream_blind_until_the_key_comes() {
    let key = Key::from_bytes([4; 32]);
    let (da, db, dc) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let a = open_with_vault(da.path(), Some(&key), vec![]);
    let s = sid("patient-1");
    for i in 0..300 {
        a.write(in_bucket(
            "patient-1",
            "vault",
            vec![ev("E", &format!("BlindMarker{i}"))],
        ))
        .unwrap();
    }
    let writer = a.identity().public_key();
    let file = da.path().join("export.car");
    export(&a, &["patient-1"], &file);

    // A store with no bucket vault makes it as the writer's, and holds
    // the stream blind: stored and checked, not readable.
    let b = open(db.path());
    let r = b.import(&file, &[writer]).unwrap();
    assert_eq!((r.events, r.skipped), (300, 0));
    assert!(!b.exists(&s).unwrap());
    let err = b
        .read(
            &s,
            hydra_eventlog::ReadFrom::Edge,
            1,
            hydra_eventlog::Direction::Forward,
        )
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("bucket vault is encrypted and this peer has no key"),
        "{err}"
    );
    assert_eq!(b.held_length(&s).unwrap(), 300);
    assert_eq!(
        b.import(&file, &[writer]).unwrap().events,
        0,
        "held already"
    );
    // A collection without the key keeps every block of it.
    let gc = b
        .store()
        .bucket(&"vault".parse().unwrap(), None)
        .unwrap()
        .gc()
        .unwrap();
    assert_eq!(gc.freed, 0, "{gc:?}");
    // It hands on what it holds, as the writer signed it.
    assert_eq!(b.storage(&s).unwrap().stored, a.stored_head(&s).unwrap());
    let relayed = db.path().join("relayed.car");
    export(&b, &["patient-1"], &relayed);
    b.close().unwrap();
    drop(b);
    assert!(!disk_contains(db.path(), b"BlindMarker"));

    // With the key, what it held is indexed and read.
    let b = open(db.path());
    b.unlock(&"vault".parse().unwrap(), &key).unwrap();
    assert_eq!(read_all_of(&b, &s).len(), 300);
    b.check_stored(&a.stored_head(&s).unwrap(), &writer)
        .unwrap();
    // And a keyed store reads it from the blind one's export.
    let c = open_with_vault(dc.path(), Some(&key), vec![]);
    assert_eq!(c.import(&relayed, &[writer]).unwrap().events, 300);
    assert_eq!(read_all_of(&c, &s).len(), 300);

    // A bucket of that name with another key: refused, nothing held.
    let dd = tempfile::tempdir().unwrap();
    let d = open_with_vault(dd.path(), Some(&Key::from_bytes([5; 32])), vec![]);
    let err = d.import(&file, &[]).unwrap_err();
    assert!(matches!(err, Error::OtherTransforms { .. }), "{err}");
    assert_eq!(d.held_length(&s).unwrap(), 0);
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

#[test]
fn a_bundle_the_replica_held_whole_on_its_edge_is_taken_in_when_the_writer_seals_it() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(da.path()), open(db.path()));
    let writer = a.identity().public_key();
    let names = ["s0", "s1", "s2"];
    for s in names {
        fill(&a, &sid(s), 200);
    }
    // One append completes bundle 0 of all three: it seals one and queues
    // the others, which stay whole on the edge until later commits.
    let writes = names
        .iter()
        .map(|s| {
            let events = (0..100).map(|i| ev("Together", &i.to_string())).collect();
            hydra_eventlog::StreamWrite::new(sid(s), ExpectedVersion::Any, events)
        })
        .collect();
    a.append_multi(writes).unwrap();
    let unsealed = names
        .iter()
        .filter(|s| a.stored_head(&sid(s)).unwrap().tree.is_none())
        .count();
    assert_eq!(unsealed, 2, "two bundles wait in the queue");
    let file = da.path().join("export.car");
    export(&a, &names, &file);
    assert_eq!(b.import(&file, &[writer]).unwrap().events, 900);
    for s in names {
        b.check_stored(&a.stored_head(&sid(s)).unwrap(), &writer)
            .unwrap();
    }
    // Two more commits seal them.
    fill(&a, &sid("other"), 1);
    fill(&a, &sid("other"), 1);
    for s in names {
        assert!(a.stored_head(&sid(s)).unwrap().tree.is_some());
    }
    export(&a, &names, &file);
    let r = b.import(&file, &[writer]).unwrap();
    assert_eq!((r.events, r.skipped), (0, 900));
    for s in names {
        b.check_stored(&a.stored_head(&sid(s)).unwrap(), &writer)
            .unwrap();
        assert_eq!(read_all_of(&b, &sid(s)).len(), 300);
    }
    assert_eq!(
        all_events(&b),
        all_events(&a)
            .into_iter()
            .filter(|e| e.0 != "other")
            .collect::<Vec<_>>()
    );
    let verified = b.verify(|_| {}).unwrap();
    assert!(verified.corrupt.is_empty(), "{:?}", verified.corrupt);
    assert_eq!(verified.bundles, 3);
}

/// Everything in `$all` here, as (stream, version, id), sorted.
fn all_events(log: &EventLog) -> Vec<(String, u64, uuid::Uuid)> {
    let mut all: Vec<_> = log
        .read_all(
            None,
            u64::MAX,
            hydra_eventlog::Direction::Forward,
            Default::default(),
        )
        .map(|e| {
            let e = e.unwrap();
            (e.stream.to_string(), e.version, e.id)
        })
        .collect();
    all.sort();
    all
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(16))]

    /// A replica that imports the writer's storage now and then, while
    /// three streams grow in runs of any size (so bundles seal in the
    /// append that fills them, or, when one append fills several, later
    /// from the queue) and the writer scavenges their oldest events (up
    /// to a part of what the replica holds), always ends with the
    /// writer's storage block for block, every event it shows readable
    /// in its stream and in `$all`; so does a store that takes it all at
    /// the end.
    #[test]
    fn a_replica_importing_at_any_moment_holds_the_writers_storage(
        steps in proptest::collection::vec(
            (0usize..3, 1u64..400, proptest::bool::ANY, proptest::bool::ANY, 0u64..4),
            1..12,
        ),
    ) {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (a, mut b) = (open(da.path()), open(db.path()));
        let writer = a.identity().public_key();
        let names = ["s0", "s1", "s2"];
        let file = da.path().join("export.car");
        for (stream, n, import, together, cut) in steps {
            // Runs of 7 events, three streams in turn: interleaved appends.
            // Or all three in one append each time, which seals one
            // bundle and queues the others.
            let mut left = n;
            while together && left > 0 {
                let k = left.min(50);
                let writes = names
                    .iter()
                    .map(|s| {
                        let events = (0..k).map(|i| ev("Together", &i.to_string())).collect();
                        hydra_eventlog::StreamWrite::new(sid(s), ExpectedVersion::Any, events)
                    })
                    .collect();
                a.append_multi(writes).unwrap();
                left -= k;
            }
            while left > 0 {
                for (i, s) in names.iter().enumerate() {
                    let k = left.min(7);
                    if i == stream || k < 7 {
                        fill(&a, &sid(s), k);
                    }
                }
                left = left.saturating_sub(7);
            }
            // The oldest events of one stream scavenged: at most what the
            // replica holds, so that it can follow.
            let s = sid(names[stream]);
            let held = b.stream_version(&s).unwrap().map_or(0, |v| v + 1);
            if cut > 0 && held > 0 {
                let mut meta = a.metadata(&s).unwrap();
                let upto = meta.truncate_before.unwrap_or(0).max(held * cut / 4);
                meta.truncate_before = Some(upto);
                a.set_metadata(&s, meta).unwrap();
                a.scavenge().unwrap();
            }
            if import {
                let have: Vec<&str> = names.iter().copied().filter(|s| a.exists(&sid(s)).unwrap()).collect();
                export(&a, &have, &file);
                b.import(&file, &[writer]).unwrap();
                for s in &have {
                    b.check_stored(&a.stored_head(&sid(s)).unwrap(), &writer).unwrap();
                }
                // Reopened, it holds the same.
                b.close().unwrap();
                drop(b);
                b = open(db.path());
            }
        }
        let have: Vec<&str> = names.iter().copied().filter(|s| a.exists(&sid(s)).unwrap()).collect();
        export(&a, &have, &file);
        b.import(&file, &[writer]).unwrap();
        for s in &have {
            b.check_stored(&a.stored_head(&sid(s)).unwrap(), &writer).unwrap();
            proptest::prop_assert_eq!(
                read_all_of(&b, &sid(s)).into_iter().map(|e| (e.id, e.data)).collect::<Vec<_>>(),
                read_all_of(&a, &sid(s)).into_iter().map(|e| (e.id, e.data)).collect::<Vec<_>>()
            );
            proptest::prop_assert_eq!(b.head(&sid(s)).unwrap(), a.head(&sid(s)).unwrap());
        }
        proptest::prop_assert_eq!(all_events(&b), all_events(&a));
        let verified = b.verify(|_| {}).unwrap();
        proptest::prop_assert!(verified.corrupt.is_empty(), "{:?}", verified.corrupt);
        let dc = tempfile::tempdir().unwrap();
        let c = open(dc.path());
        c.import(&file, &[writer]).unwrap();
        for s in &have {
            proptest::prop_assert_eq!(
                read_all_of(&c, &sid(s)).into_iter().map(|e| (e.id, e.data)).collect::<Vec<_>>(),
                read_all_of(&a, &sid(s)).into_iter().map(|e| (e.id, e.data)).collect::<Vec<_>>()
            );
            proptest::prop_assert_eq!(c.head(&sid(s)).unwrap(), a.head(&sid(s)).unwrap());
        }
        proptest::prop_assert_eq!(all_events(&c), all_events(&a));
    }
}

#[test]
fn a_whole_store_backup_restores_every_stream_object_and_proof_elsewhere() {
    let key = Key::from_bytes([4; 32]);
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open_with_vault(da.path(), Some(&key), vec![]);
    let writer = a.identity().public_key();
    // Three streams interleaved in `$all`, one of them encrypted.
    for round in 0..140 {
        let batch = |n: u64, t: &str| (0..n).map(|i| ev(t, &format!("{round}.{i}"))).collect();
        a.append(&sid("orders-1"), ExpectedVersion::Any, batch(5, "Placed"))
            .unwrap();
        if round < 40 {
            a.append(&sid("orders-2"), ExpectedVersion::Any, batch(1, "Placed"))
                .unwrap();
        }
        if round < 100 {
            a.write(in_bucket("patient-1", "vault", batch(3, "Visit")))
                .unwrap();
        }
    }
    let docs: hydra_bucket::BucketName = "docs".parse().unwrap();
    a.store()
        .create_bucket(&docs, hydra_bucket::CreateOptions::default())
        .unwrap();
    let bucket = a.store().bucket(&docs, None).unwrap();
    let photo = vec![7u8; 3 << 20];
    bucket.put_object("photo.jpg", &photo[..], |_| {}).unwrap();
    // A stream deleted is not in the backup.
    fill(&a, &sid("gone"), 3);
    a.delete(&sid("gone"), ExpectedVersion::Any, false).unwrap();

    let file = da.path().join("backup.car");
    let f = std::fs::File::create(&file).unwrap();
    let r = a.export_all(std::io::BufWriter::new(f)).unwrap();
    assert_eq!((r.buckets, r.objects, r.streams, r.events), (1, 1, 3, 1040));

    // `$all` as it was, but for the deleted stream's events (the last).
    let all = |log: &EventLog| -> Vec<hydra_eventlog::RecordedEvent> {
        log.read_all(None, u64::MAX, Direction::Forward, Default::default())
            .map(Result::unwrap)
            .filter(|e| e.stream.as_str() != "gone")
            .collect()
    };
    // Into an empty directory, the key offered first: every event in the
    // same place in `$all`.
    let keyed = tempfile::tempdir().unwrap();
    let k = open(keyed.path());
    k.offer_key(&key).unwrap();
    let r = k.import(&file, &[writer]).unwrap();
    assert_eq!((r.streams, r.events, r.all_order), (3, 1040, true));
    assert_eq!(all(&k), all(&a));
    // A second import brings nothing new.
    let r = k.import(&file, &[writer]).unwrap();
    assert_eq!((r.events, r.skipped), (0, 1040));
    drop(k);

    // Into an empty directory, the key given afterwards: the encrypted
    // stream, held blind, comes after the others, which keep their order.
    let b = open(db.path());
    let r = b.import(&file, &[writer]).unwrap();
    assert_eq!((r.buckets, r.objects, r.streams, r.events), (1, 1, 3, 1040));
    assert!(r.all_order);
    b.unlock_with(&key).unwrap();
    let plain = |log: &EventLog| -> Vec<(String, u64)> {
        all(log)
            .into_iter()
            .filter(|e| e.stream.as_str() != "patient-1")
            .map(|e| (e.stream.to_string(), e.version))
            .collect()
    };
    assert_eq!(plain(&b), plain(&a));
    for s in ["orders-1", "orders-2", "patient-1"] {
        let s = sid(s);
        assert_eq!(
            read_all_of(&b, &s),
            read_all_of(&a, &s)
                .into_iter()
                .map(|mut e| {
                    e.position = read_all_of(&b, &s)[e.version as usize].position;
                    e
                })
                .collect::<Vec<_>>()
        );
        b.check_stored(&a.stored_head(&s).unwrap(), &writer)
            .unwrap();
        let (head, proof) = b.prove(&s, 20).unwrap();
        verify_event(&head, &writer, &read_all_of(&b, &s)[20], &proof).unwrap();
    }
    assert!(!b.exists(&sid("gone")).unwrap());
    let mut out = Vec::new();
    b.store()
        .bucket(&docs, None)
        .unwrap()
        .get_object("photo.jpg", &mut out, |_| {})
        .unwrap();
    assert!(out == photo);
    let mut ours: Vec<_> = all_events(&a)
        .into_iter()
        .filter(|e| e.0 != "gone")
        .collect();
    ours.sort();
    assert_eq!(all_events(&b), ours, "$all holds every event");

    // A tampered backup changes nothing, streams and buckets alike.
    let dc = tempfile::tempdir().unwrap();
    let c = open(dc.path());
    let good = std::fs::read(&file).unwrap();
    let bad = dc.path().join("bad.car");
    // A byte of the photo (the bucket comes first), then of the last
    // stream's edge.
    for at in [good.len() / 4, good.len() - 40] {
        let mut bytes = good.clone();
        bytes[at] ^= 1;
        std::fs::write(&bad, &bytes).unwrap();
        let err = c.import(&bad, &[writer]).unwrap_err();
        assert!(err.to_string().contains("does not match its CID"), "{err}");
        assert!(c.list_streams("").next().is_none());
        assert!(c.store().bucket(&docs, None).is_err(), "no bucket made");
    }
}

/// `file`'s backup with its `$all` order replaced by `runs`.
fn with_order(file: &std::path::Path, runs: &[(u32, u64)], out: &std::path::Path) {
    use hydra_block::{CarReader, CarWriter, Codec, Node, Ref};
    let mut car = CarReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let roots = car.roots().to_vec();
    let chunk = postcard::to_allocvec(runs).unwrap();
    let chunk_ref = Ref::of(Codec::Raw, &chunk);
    let order = Node {
        kind: hydra_eventlog::ALL_ORDER,
        links: vec![chunk_ref],
        body: runs.iter().map(|(_, n)| *n).fold(0u64, u64::saturating_add),
    }
    .encode();
    let order_ref = Ref::of(Codec::PlainNode, &order);
    let old = *roots.last().unwrap();
    let mut new_roots = roots.clone();
    *new_roots.last_mut().unwrap() = order_ref;
    let mut w = CarWriter::new(std::fs::File::create(out).unwrap(), &new_roots).unwrap();
    let mut skipping = false;
    while let Some((r, bytes)) = car.next_block().unwrap() {
        if r == old {
            skipping = true;
            continue;
        }
        // The old order's chunks follow it, and nothing else does.
        if skipping && r.codec() == Codec::Raw {
            continue;
        }
        w.write(&r, &bytes).unwrap();
    }
    w.write(&order_ref, &order).unwrap();
    w.write(&chunk_ref, &chunk).unwrap();
    w.finish().unwrap();
}

#[test]
fn an_order_that_does_not_fit_its_streams_is_not_followed() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = open(da.path());
    let writer = a.identity().public_key();
    for round in 0..20 {
        for s in ["orders-1", "orders-2"] {
            a.append(
                &sid(s),
                ExpectedVersion::Any,
                vec![ev("E", &round.to_string())],
            )
            .unwrap();
        }
    }
    let file = da.path().join("backup.car");
    a.export_all(std::fs::File::create(&file).unwrap()).unwrap();
    let bad = da.path().join("bad.car");
    // Too many events for a stream, a stream the file does not have,
    // counts that would overflow, and gaps past any order's positions:
    // each imported whole, a stream at a time.
    let gap = u32::MAX;
    for runs in [
        vec![(0, 21), (1, 20)],
        vec![(0, 20), (1, 20), (2, 1)],
        vec![(0, u64::MAX), (0, 2), (1, 20)],
        vec![(gap, 1 << 40), (0, 20), (1, 20)],
        vec![(0, 20), (gap, u64::MAX), (gap, 2), (1, 20)],
    ] {
        with_order(&file, &runs, &bad);
        let dir = tempfile::tempdir().unwrap();
        let b = open(dir.path());
        let r = b.import(&bad, &[writer]).unwrap();
        assert_eq!(
            (r.streams, r.events, r.all_order),
            (2, 40, false),
            "{runs:?}"
        );
        for s in ["orders-1", "orders-2"] {
            assert_eq!(b.stream_version(&sid(s)).unwrap(), Some(19));
        }
    }
    // The true order, written the same way, is followed, and so are its
    // gaps (positions whose events the writer no longer has).
    let mut runs: Vec<(u32, u64)> = (0..40).map(|i| (i % 2, 1)).collect();
    runs.insert(10, (gap, 5));
    with_order(&file, &runs, &bad);
    let b = open(db.path());
    let r = b.import(&bad, &[writer]).unwrap();
    assert_eq!((r.events, r.all_order), (40, true));
    let at: Vec<u64> = b
        .read_all(None, u64::MAX, Direction::Forward, Default::default())
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(at, (0..10).chain(15..45).collect::<Vec<_>>());
    let order = |log: &EventLog| -> Vec<String> {
        log.read_all(None, u64::MAX, Direction::Forward, Default::default())
            .map(|e| e.unwrap().stream.to_string())
            .collect()
    };
    assert_eq!(order(&b), order(&a));
}

/// Asserts two stores show the same (see [`shown`]), naming the first
/// difference.
fn same_shown(a: &[String], b: &[String]) {
    let differ = a.iter().zip(b).find(|(x, y)| x != y);
    assert_eq!(differ, None);
    assert_eq!(a.len(), b.len());
}

/// What a store shows of `streams` and `$all`, positions left out (they
/// are each store's own): every event in `$all` order, each stream read
/// both ways, its head.
fn shown(log: &EventLog, streams: &[&str]) -> Vec<String> {
    let strip = |e: hydra_eventlog::RecordedEvent| {
        format!(
            "{} {} {} {} {:?}",
            e.stream, e.version, e.id, e.event_type, e.data
        )
    };
    let mut out: Vec<String> = log
        .read_all(None, u64::MAX, Direction::Forward, Default::default())
        .map(|e| strip(e.unwrap()))
        .collect();
    for s in streams {
        let s = sid(s);
        out.extend(read_all_of(log, &s).into_iter().map(strip));
        let back = log
            .read(
                &s,
                hydra_eventlog::ReadFrom::Edge,
                u64::MAX,
                Direction::Backward,
            )
            .unwrap();
        out.extend(back.map(|e| strip(e.unwrap())));
        out.push(format!("{:?}", log.head(&s).unwrap()));
    }
    out
}

/// Proves the first and last event `log` shows of each stream, and
/// checks that the one before the first (scavenged) is refused.
fn proves(log: &EventLog, writer: &[u8; 32], streams: &[(&str, u64)]) {
    for &(s, first) in streams {
        let s = sid(s);
        let events = read_all_of(log, &s);
        assert_eq!(events.first().map(|e| e.version), Some(first), "{s}");
        for e in [events.first().unwrap(), events.last().unwrap()] {
            let (head, proof) = log.prove(&s, e.version).unwrap();
            verify_event(&head, writer, e, &proof).unwrap();
        }
        if first > 0 {
            assert!(
                matches!(log.prove(&s, first - 1), Err(Error::Scavenged { .. })),
                "{s}"
            );
        }
        // The stream at its first shown length is a prefix of it now.
        let ext = log.extension(&s, first + 1).unwrap();
        ext.verify(writer).unwrap();
    }
    let verified = log.verify(|_| {}).unwrap();
    assert!(verified.corrupt.is_empty(), "{:?}", verified.corrupt);
}

#[test]
fn scavenged_streams_restore_from_a_backup_where_they_begin() {
    use hydra_eventlog::StreamMetadata;
    let key = Key::from_bytes([4; 32]);
    let da = tempfile::tempdir().unwrap();
    let a = open_with_vault(da.path(), Some(&key), vec![]);
    let writer = a.identity().public_key();
    // Interleaved in `$all`, then scavenged: `counted` keeps its last 300
    // (bundles 0 and 1 go, bundle 2 keeps 512..699 it no longer shows);
    // `truncated` loses bundle 0 whole; `edge` its first 40 edge records;
    // `patient-1`, encrypted, the first 10 of its bundle 0; `emptied`
    // every event; `whole` nothing.
    for round in 0..10 {
        let batch = |n: u64, t: &str| (0..n).map(|i| ev(t, &format!("{round}.{i}"))).collect();
        for (s, n) in [
            ("counted", 100),
            ("truncated", 60),
            ("edge", 10),
            ("emptied", 2),
            ("whole", 30),
        ] {
            a.append(&sid(s), ExpectedVersion::Any, batch(n, "Placed"))
                .unwrap();
        }
        a.write(in_bucket("patient-1", "vault", batch(30, "Visit")))
            .unwrap();
    }
    let meta = |s: &str, m: StreamMetadata| a.set_metadata(&sid(s), m).unwrap();
    let before = |v: u64| StreamMetadata {
        truncate_before: Some(v),
        ..Default::default()
    };
    meta(
        "counted",
        StreamMetadata {
            max_count: Some(300),
            ..Default::default()
        },
    );
    meta("truncated", before(256));
    meta("edge", before(40));
    meta("patient-1", before(10));
    meta("emptied", before(20));
    let r = a.scavenge().unwrap();
    assert_eq!(r.events, 700 + 256 + 40 + 10 + 20);
    let streams = ["counted", "truncated", "edge", "patient-1", "whole"];
    let firsts = [
        ("counted", 700),
        ("truncated", 256),
        ("edge", 40),
        ("patient-1", 10),
        ("whole", 0),
    ];
    proves(&a, &writer, &firsts);

    let file = da.path().join("backup.car");
    let f = std::fs::File::create(&file).unwrap();
    a.export_all(std::io::BufWriter::new(f)).unwrap();

    // Into an empty directory, the key offered first.
    let dk = tempfile::tempdir().unwrap();
    let k = open(dk.path());
    k.offer_key(&key).unwrap();
    let r = k.import(&file, &[writer]).unwrap();
    assert_eq!((r.events, r.all_order), (300 + 344 + 60 + 290 + 300, true));
    same_shown(&shown(&k, &streams), &shown(&a, &streams));
    // Every event at its position: scavenged ones left theirs empty.
    let positions = |log: &EventLog| -> Vec<(String, u64, u64)> {
        log.read_all(None, u64::MAX, Direction::Forward, Default::default())
            .map(|e| e.map(|e| (e.stream.to_string(), e.version, e.position)))
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(positions(&k), positions(&a));
    assert!(read_all_of(&k, &sid("emptied")).is_empty());
    proves(&k, &writer, &firsts);
    for s in streams {
        k.check_stored(&a.stored_head(&sid(s)).unwrap(), &writer)
            .unwrap();
    }
    // Its indexes rebuilt: the same, and proofs start from the peaks it
    // kept.
    k.reindex().unwrap();
    same_shown(&shown(&k, &streams), &shown(&a, &streams));
    proves(&k, &writer, &firsts);
    // The writer appends on: the replica takes the rest in.
    fill(&a, &sid("truncated"), 100);
    export(&a, &["truncated"], &file);
    assert_eq!(k.import(&file, &[writer]).unwrap().events, 100);
    same_shown(&shown(&k, &["truncated"]), &shown(&a, &["truncated"]));

    // Relayed: the replica's backup restores a third store the same,
    // the encrypted stream held blind until the key comes.
    let relayed = dk.path().join("relayed.car");
    let f = std::fs::File::create(&relayed).unwrap();
    k.export_all(std::io::BufWriter::new(f)).unwrap();
    let dc = tempfile::tempdir().unwrap();
    let c = open(dc.path());
    c.import(&relayed, &[writer]).unwrap();
    assert!(!c.exists(&sid("patient-1")).unwrap());
    c.unlock_with(&key).unwrap();
    let plain: Vec<&str> = streams.to_vec();
    let mut ours = shown(&a, &plain);
    let mut theirs = shown(&c, &plain);
    // The blind stream's events come after the others in `$all` there.
    ours.sort();
    theirs.sort();
    same_shown(&theirs, &ours);
    proves(&c, &writer, &firsts);
}

/// What a storage block tells beside its stored head, as postcard lays
/// it out: of the versions before (from, peaks, leaves), and what its
/// writer says (shown, max count, max age, truncate before, sealed custom
/// metadata, signature).
type Told = (Option<Before>, Said);
type Before = (u64, Vec<[u8; 32]>, Vec<[u8; 32]>);
type Said = (
    u64,
    Option<u64>,
    Option<u64>,
    Option<u64>,
    Option<Vec<u8>>,
    Vec<u8>,
);

/// `file`'s backup with what `stream`'s storage block tells beside its
/// stored head changed by `lie`.
fn lie_told(file: &std::path::Path, stream: &str, lie: impl Fn(&mut Told), out: &std::path::Path) {
    use hydra_block::{CarReader, CarWriter, Codec, Node, Ref};
    type Body = (
        hydra_eventlog::StoredHead,
        String,
        (Option<i32>, Option<String>),
    );
    type Block = (Body, Option<Before>, Said);
    let mut car = CarReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let mut roots = car.roots().to_vec();
    let mut blocks = Vec::new();
    while let Some((r, bytes)) = car.next_block().unwrap() {
        let node = Node::<Block>::decode(hydra_eventlog::STREAM_STORAGE_SAID, &bytes);
        match node {
            Ok(mut node) if node.body.0.0.head.stream.as_str() == stream => {
                let mut told = (node.body.1.clone(), node.body.2.clone());
                lie(&mut told);
                (node.body.1, node.body.2) = told;
                let bytes = node.encode();
                let new = Ref::of(Codec::PlainNode, &bytes);
                for root in roots.iter_mut().filter(|root| **root == r) {
                    *root = new;
                }
                blocks.push((new, bytes));
            }
            _ => blocks.push((r, bytes)),
        }
    }
    let mut w = CarWriter::new(std::fs::File::create(out).unwrap(), &roots).unwrap();
    for (r, bytes) in blocks {
        w.write(&r, &bytes).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn a_lie_about_the_versions_before_a_storage_changes_nothing() {
    use hydra_eventlog::StreamMetadata;
    let da = tempfile::tempdir().unwrap();
    let a = open(da.path());
    let writer = a.identity().public_key();
    fill(&a, &sid("s"), 800);
    let tb = StreamMetadata {
        truncate_before: Some(600),
        ..Default::default()
    };
    a.set_metadata(&sid("s"), tb).unwrap();
    a.scavenge().unwrap();
    let file = da.path().join("s.car");
    export(&a, &["s"], &file);
    let bad = da.path().join("bad.car");
    type Lie = fn(&mut Told);
    let lies: [(Lie, &str); 6] = [
        (
            |t| t.0.as_mut().unwrap().1[0][0] ^= 1,
            "give another root than the signed one",
        ),
        (
            |t| t.0.as_mut().unwrap().1.push([0; 32]),
            "peaks and 0 leaf hashes",
        ),
        (|t| t.0.as_mut().unwrap().0 = 256, "its first record is 512"),
        (|t| t.0 = None, "says nothing of the versions before"),
        (|t| t.1.0 = 601, "not signed with it"),
        (|t| t.1.3 = Some(700), "not signed with it"),
    ];
    for (lie, says) in lies {
        lie_told(&file, "s", lie, &bad);
        let db = tempfile::tempdir().unwrap();
        let b = open(db.path());
        let err = b.import(&bad, &[writer]).unwrap_err();
        assert!(err.to_string().contains(says), "{err}");
        assert!(b.list_streams("").next().is_none(), "nothing taken");
    }
    // Told the truth, it takes the stream from 600 on.
    let db = tempfile::tempdir().unwrap();
    let b = open(db.path());
    assert_eq!(b.import(&file, &[writer]).unwrap().events, 200);
    assert_eq!(shown(&b, &["s"]), shown(&a, &["s"]));
}

/// Truncates each stream before its version at `log`, and scavenges.
fn scavenged_before(log: &EventLog, marks: &[(&str, u64)]) {
    for (s, v) in marks {
        let tb = hydra_eventlog::StreamMetadata {
            truncate_before: Some(*v),
            ..Default::default()
        };
        log.set_metadata(&sid(s), tb).unwrap();
    }
    log.scavenge().unwrap();
}

#[test]
fn a_replica_follows_its_writers_scavenge() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(da.path()), open(db.path()));
    let writer = a.identity().public_key();
    let file = da.path().join("s.car");
    // `s` ends on the edge, `t` on a sealed bundle.
    fill(&a, &sid("s"), 700);
    fill(&a, &sid("t"), 800);
    export(&a, &["s", "t"], &file);
    assert_eq!(b.import(&file, &[writer]).unwrap().events, 1500);
    scavenged_before(&a, &[("s", 600), ("t", 300)]);
    // Here too: `s` its bundles 0 and 1 and edge records 512..599, `t`
    // its bundle 0, and 256..299 of bundle 1 no longer shown.
    export(&a, &["s", "t"], &file);
    assert_eq!(b.import(&file, &[writer]).unwrap().events, 0);
    same_shown(&shown(&b, &["s", "t"]), &shown(&a, &["s", "t"]));
    for s in ["s", "t"] {
        b.check_stored(&a.stored_head(&sid(s)).unwrap(), &writer)
            .unwrap();
    }
    fill(&a, &sid("s"), 200);
    fill(&a, &sid("t"), 200);
    export(&a, &["s", "t"], &file);
    assert_eq!(b.import(&file, &[writer]).unwrap().events, 400);
    same_shown(&shown(&b, &["s", "t"]), &shown(&a, &["s", "t"]));
    proves(&b, &writer, &[("s", 600), ("t", 300)]);
    b.reindex().unwrap();
    same_shown(&shown(&b, &["s", "t"]), &shown(&a, &["s", "t"]));
    proves(&b, &writer, &[("s", 600), ("t", 300)]);
    // The scavenged bundles are unlinked here too.
    let (ours, theirs) = (b.verify(|_| {}).unwrap(), a.verify(|_| {}).unwrap());
    assert_eq!((ours.bundles, ours.tiles), (theirs.bundles, theirs.tiles));
    assert!(ours.corrupt.is_empty(), "{:?}", ours.corrupt);
    // Relayed from here to a store that holds nothing: the same, with
    // the first version shown as the writer signed it.
    let relayed = db.path().join("relayed.car");
    export(&b, &["s", "t"], &relayed);
    let dc = tempfile::tempdir().unwrap();
    let c = open(dc.path());
    assert_eq!(c.import(&relayed, &[writer]).unwrap().events, 300 + 700);
    // A stream's events after another's in `$all` there.
    same_sorted(&c, &a);
    proves(&c, &writer, &[("s", 600), ("t", 300)]);
}

/// `$all` here read from every position both ways, and each event at
/// its position, agree with one forward read of the whole: a replica
/// writes one `$all` entry for a run of positions of a bundle, and a read
/// that begins inside a run finds its start. Returns the forward read.
fn all_alike(log: &EventLog) -> Vec<(u64, uuid::Uuid)> {
    let read = |from: Option<u64>, count: u64, direction: Direction| -> Vec<(u64, uuid::Uuid)> {
        log.read_all(from, count, direction, Default::default())
            .map(|e| e.map(|e| (e.position, e.id)).unwrap())
            .collect()
    };
    let all = read(None, u64::MAX, Direction::Forward);
    let mut backward = read(None, u64::MAX, Direction::Backward);
    backward.reverse();
    assert_eq!(backward, all);
    let last = all.last().map_or(0, |(p, _)| *p);
    let held: std::collections::HashMap<u64, usize> =
        all.iter().enumerate().map(|(i, (p, _))| (*p, i)).collect();
    for p in 0..=last + 1 {
        match held.get(&p) {
            Some(&i) => {
                let e = log.event_at(p).unwrap();
                assert_eq!((e.position, e.id), all[i], "the event at {p}");
                assert_eq!(
                    read(Some(p), 3, Direction::Forward),
                    all[i..(i + 3).min(all.len())]
                );
                let mut back = read(Some(p), 3, Direction::Backward);
                back.reverse();
                assert_eq!(back, all[i.saturating_sub(2)..=i], "backward from {p}");
            }
            None => assert!(
                matches!(log.event_at(p), Err(Error::NoSuchPosition(_))),
                "no event at {p}"
            ),
        }
    }
    all
}

/// The same events shown by `a` and `b`, in any `$all` order.
fn same_sorted(a: &EventLog, b: &EventLog) {
    let (mut ours, mut theirs) = (shown(a, &["s", "t"]), shown(b, &["s", "t"]));
    ours.sort();
    theirs.sort();
    same_shown(&ours, &theirs);
}

#[test]
fn a_replicas_all_reads_alike_from_every_position() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = (open(da.path()), open(db.path()));
    let writer = a.identity().public_key();
    let file = da.path().join("s.car");
    // Sealed bundles (runs of 256 positions here) and edges, and at the
    // writer the two streams interleaved.
    for _ in 0..4 {
        fill(&a, &sid("s"), 175);
        fill(&a, &sid("t"), 200);
    }
    export(&a, &["s", "t"], &file);
    assert_eq!(b.import(&file, &[writer]).unwrap().events, 1500);
    let first = all_alike(&b);
    assert_eq!(first.len(), 1500);
    found_by_id(&b, &first, &[]);
    same_sorted(&b, &a);

    // The writer scavenges `t` into a bundle (256..299 of bundle 1 go, the
    // run holding them is cut) and `s` from the middle of its edge.
    scavenged_before(&a, &[("t", 300), ("s", 600)]);
    fill(&a, &sid("t"), 100);
    export(&a, &["s", "t"], &file);
    assert_eq!(b.import(&file, &[writer]).unwrap().events, 100);
    let before = all_alike(&b);
    assert_eq!(before.len(), 100 + 500 + 100);
    let gone: Vec<_> = first.iter().filter(|e| !before.contains(e)).collect();
    assert_eq!(gone.len(), 600 + 300);
    found_by_id(&b, &before, &gone);
    same_sorted(&b, &a);
    proves(&b, &writer, &[("s", 600), ("t", 300)]);

    // Rebuilt from what is stored, the same.
    b.reindex().unwrap();
    assert_eq!(all_alike(&b), before);
    found_by_id(&b, &before, &gone);
    same_sorted(&b, &a);
}

/// Every event of `shown` found by its id where it is (on a replica, the
/// ids its writer generated are indexed by runs of an append), the ids
/// of `gone` not found, and each id of `shown` refused to another stream
/// as a duplicate of its own.
fn found_by_id(log: &EventLog, shown: &[(u64, uuid::Uuid)], gone: &[&(u64, uuid::Uuid)]) {
    for (position, id) in shown {
        let e = log.get_event(*id).unwrap();
        assert_eq!((e.position, e.id), (*position, *id));
    }
    for (_, id) in gone {
        assert!(
            matches!(log.get_event(*id), Err(Error::EventNotFound(_))),
            "{id} is gone"
        );
    }
    for (position, id) in shown.iter().step_by(97) {
        let e = log.get_event(*id).unwrap();
        let again = NewEvent {
            id: Some(*id),
            ..ev("Again", "{}")
        };
        let err = log
            .append(&sid("elsewhere"), ExpectedVersion::Any, vec![again])
            .unwrap_err();
        assert!(
            matches!(&err, Error::DuplicateEventId { stream, version, .. }
                if *stream == e.stream && *version == e.version),
            "{id} at {position}: {err}"
        );
    }
}

#[test]
fn a_streams_metadata_travels_with_its_storage_signed_and_sealed() {
    use hydra_eventlog::StreamMetadata;
    let key = Key::from_bytes([4; 32]);
    let da = tempfile::tempdir().unwrap();
    let a = open_with_vault(da.path(), Some(&key), vec![]);
    let writer = a.identity().public_key();
    fill(&a, &sid("ledger"), 600);
    let batch = (0..600).map(|i| ev("Visit", &i.to_string())).collect();
    a.write(in_bucket("patient-1", "vault", batch)).unwrap();
    // Retention set and not yet scavenged, and application metadata; the
    // encrypted stream's is secret.
    let marker = "custom-metadata-marker-7f3a";
    let ledger = StreamMetadata {
        max_count: Some(100),
        custom: Some("{\"owner\":\"ops\"}".into()),
        ..Default::default()
    };
    let patient = StreamMetadata {
        truncate_before: Some(50),
        custom: Some(format!("{{\"note\":\"{marker}\"}}")),
        ..Default::default()
    };
    a.set_metadata(&sid("ledger"), ledger.clone()).unwrap();
    a.set_metadata(&sid("patient-1"), patient.clone()).unwrap();
    let file = da.path().join("backup.car");
    a.export_all(std::fs::File::create(&file).unwrap()).unwrap();

    // A store without the key holds the encrypted stream blind: its
    // metadata is nowhere readable on its disk.
    let db = tempfile::tempdir().unwrap();
    let b = open(db.path());
    b.import(&file, &[writer]).unwrap();
    b.close().unwrap();
    drop(b);
    assert!(!disk_contains(db.path(), marker.as_bytes()));
    let b = open(db.path());
    // Restored with the key: each stream's metadata is the writer's, and
    // it shows what the writer shows before any scavenge.
    b.unlock_with(&key).unwrap();
    assert_eq!(b.metadata(&sid("ledger")).unwrap(), ledger);
    assert_eq!(b.metadata(&sid("patient-1")).unwrap(), patient);
    for s in ["ledger", "patient-1"] {
        assert_eq!(read_all_of(&b, &sid(s)), read_all_of(&a, &sid(s)));
    }
    assert_eq!(read_all_of(&b, &sid("ledger"))[0].version, 500);
    // A replica never scavenges ahead of its writer; it follows it.
    assert_eq!(b.scavenge().unwrap().events, 0);
    a.scavenge().unwrap();
    a.set_metadata(
        &sid("ledger"),
        StreamMetadata {
            max_count: Some(50),
            ..Default::default()
        },
    )
    .unwrap();
    // What changed reaches the replica with its next import, even with
    // no new event.
    export(&a, &["ledger", "patient-1"], &file);
    assert_eq!(b.import(&file, &[writer]).unwrap().events, 0);
    assert_eq!(b.metadata(&sid("ledger")).unwrap().max_count, Some(50));
    for s in ["ledger", "patient-1"] {
        assert_eq!(read_all_of(&b, &sid(s)), read_all_of(&a, &sid(s)));
    }
    // Forged metadata is refused (it is signed with the stored head).
    let bad = da.path().join("bad.car");
    lie_told(&file, "ledger", |t| t.1.1 = Some(1), &bad);
    let dc = tempfile::tempdir().unwrap();
    let err = open(dc.path()).import(&bad, &[writer]).unwrap_err();
    assert!(err.to_string().contains("not signed with it"), "{err}");
}
