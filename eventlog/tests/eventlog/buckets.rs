//! Streams in buckets: placement, encryption and compression at rest,
//! keys, corruption caught on read, and the migration of the first layout.

use std::path::Path;

use hydra_bucket::{BucketName, CreateOptions, Key, Store};
use hydra_eventlog::{
    AllFilter, Direction, Error, EventLog, ExpectedVersion, NewEvent, Options, Placement, ReadFrom,
    RecordedEvent, StreamMetadata, StreamWrite,
};
use hydra_volume::{Durability, OpenOptions, open_dir};

use crate::{ev, read_all_of, sid};

pub(crate) fn bucket(name: &str) -> BucketName {
    name.parse().unwrap()
}

/// A store in `dir` with an encrypted, compressed bucket `vault`.
pub(crate) fn store_with_vault(dir: &Path, key: &Key) -> Store {
    let volume = open_dir(
        dir,
        OpenOptions {
            backend: None,
            durability: Durability::Immediate,
            cache_bytes: None,
        },
    )
    .unwrap();
    let store = Store::open(volume).unwrap();
    if store.bucket_config(&bucket("vault")).is_err() {
        store
            .create_bucket(
                &bucket("vault"),
                CreateOptions {
                    zstd_level: Some(3),
                    key: Some(key),
                },
            )
            .unwrap();
    }
    store
}

pub(crate) fn open_with_vault(
    dir: &Path,
    key: Option<&Key>,
    placements: Vec<Placement>,
) -> EventLog {
    let k = Key::from_bytes([7; 32]);
    let store = store_with_vault(dir, key.unwrap_or(&k));
    let log = EventLog::open(
        store,
        Options {
            placements,
            ..Options::default()
        },
    )
    .unwrap();
    if let Some(key) = key {
        log.unlock(&bucket("vault"), key).unwrap();
    }
    log
}

pub(crate) fn in_bucket(stream: &str, b: &str, events: Vec<NewEvent>) -> StreamWrite {
    StreamWrite {
        bucket: Some(bucket(b)),
        partition_key: None,
        ..StreamWrite::new(sid(stream), ExpectedVersion::Any, events)
    }
}

/// Whether any file under `dir` contains `needle`.
pub(crate) fn disk_contains(dir: &Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            return disk_contains(&p, needle);
        }
        let bytes = std::fs::read(&p).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[test]
fn a_stream_stays_in_the_bucket_it_was_created_in() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::from_bytes([1; 32]);
    let log = open_with_vault(
        dir.path(),
        Some(&key),
        vec![Placement {
            prefix: "patient-".into(),
            bucket: bucket("vault"),
        }],
    );
    log.write(in_bucket("notes-1", "vault", vec![ev("T", "{}")]))
        .unwrap();
    log.append(&sid("patient-7"), ExpectedVersion::Any, vec![ev("T", "{}")])
        .unwrap();
    log.append(&sid("order-1"), ExpectedVersion::Any, vec![ev("T", "{}")])
        .unwrap();
    // The bucket asked for beats the prefix.
    log.write(in_bucket("patient-8", "default", vec![ev("T", "{}")]))
        .unwrap();
    let listed: Vec<(String, String)> = log
        .list_streams("")
        .map(|i| {
            let i = i.unwrap();
            (i.stream.to_string(), i.bucket.unwrap().to_string())
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("notes-1", "vault"),
            ("order-1", "default"),
            ("patient-7", "vault"),
            ("patient-8", "default"),
        ]
        .map(|(s, b)| (s.to_owned(), b.to_owned()))
    );
    // Appending without a bucket keeps the stream where it is; naming
    // another one is refused, naming both.
    log.append(
        &sid("notes-1"),
        ExpectedVersion::Exact(0),
        vec![ev("T", "{}")],
    )
    .unwrap();
    let err = log
        .write(in_bucket("notes-1", "default", vec![ev("T", "{}")]))
        .unwrap_err();
    assert!(matches!(err, Error::OtherBucket { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "stream notes-1 is in bucket vault, not default: a stream's bucket is fixed when it is created"
    );
    assert_eq!(read_all_of(&log, &sid("notes-1")).len(), 2);
    // A missing bucket is refused at the append, and at open for a placement.
    let err = log
        .write(in_bucket("x-1", "nowhere", vec![ev("T", "{}")]))
        .unwrap_err();
    assert!(err.to_string().contains("nowhere"), "{err}");
    log.close().unwrap();
    drop(log);
    let store = store_with_vault(dir.path(), &key);
    let err = EventLog::open(
        store,
        Options {
            placements: vec![Placement {
                prefix: "p".into(),
                bucket: bucket("nowhere"),
            }],
            ..Options::default()
        },
    )
    .err()
    .unwrap();
    assert_eq!(err.to_string(), "bucket nowhere does not exist");
}

#[test]
fn an_encrypted_bucket_keeps_no_event_readable_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::from_bytes([2; 32]);
    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    let secret = |i: u64| {
        NewEvent::new(
            format!("TypeMarkerQ{i}"),
            format!(r#"{{"note":"DataMarkerQ{i}"}}"#).into_bytes(),
        )
        .with_metadata(format!(r#"{{"who":"MetaMarkerQ{i}"}}"#).into_bytes())
    };
    let plain = |i: u64| NewEvent::new("Plain", format!("PlainMarkerQ{i}").into_bytes());
    for i in 0..600 {
        log.write(in_bucket("patient-1", "vault", vec![secret(i)]))
            .unwrap();
    }
    log.append(&sid("public-1"), ExpectedVersion::Any, vec![plain(0)])
        .unwrap();
    let markers = ["TypeMarkerQ", "DataMarkerQ", "MetaMarkerQ"];
    let check = |when: &str| {
        for m in markers {
            assert!(
                !disk_contains(dir.path(), m.as_bytes()),
                "{m} on disk {when}"
            );
        }
        // The grep itself finds what a plain bucket stores.
        assert!(disk_contains(dir.path(), b"PlainMarkerQ0"), "{when}");
    };
    log.close().unwrap();
    drop(log);
    check("after appends");

    // Reads, proofs and $all work with the key.
    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    let events = read_all_of(&log, &sid("patient-1"));
    assert_eq!(events.len(), 600);
    assert_eq!(events[599].event_type, "TypeMarkerQ599");
    assert_eq!(events[5].metadata, br#"{"who":"MetaMarkerQ5"}"#);
    let (head, proof) = log.prove(&sid("patient-1"), 300).unwrap();
    hydra_eventlog::verify_event(&head, &log.identity().public_key(), &events[300], &proof)
        .unwrap();
    let all: Vec<RecordedEvent> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all.len(), 601);
    log.set_metadata(
        &sid("patient-1"),
        StreamMetadata {
            truncate_before: Some(100),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(log.scavenge().unwrap().events, 100);
    log.close().unwrap();
    drop(log);
    check("after scavenging");

    // Without the key: the vault's streams say which bucket needs one,
    // the others keep working, and a wrong key is refused up front.
    let log = open_with_vault(dir.path(), None, vec![]);
    let err = log
        .read(&sid("patient-1"), ReadFrom::Edge, 10, Direction::Forward)
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bucket vault is encrypted and this peer has no key: give it with --key-file FILE or HYDRA_KEY"
    );
    let err = log
        .append(&sid("patient-1"), ExpectedVersion::Any, vec![secret(9)])
        .unwrap_err();
    assert!(
        err.to_string().starts_with("bucket vault is encrypted"),
        "{err}"
    );
    assert_eq!(read_all_of(&log, &sid("public-1")).len(), 1);
    // Proofs over the edge need no key (each record's leaf is kept beside
    // it); inside a sealed bundle the leaves are hashed from its records.
    log.prove(&sid("patient-1"), 550).unwrap();
    assert!(
        log.prove(&sid("patient-1"), 500)
            .unwrap_err()
            .to_string()
            .starts_with("bucket vault is encrypted")
    );
    let err = log
        .unlock(&bucket("vault"), &Key::from_bytes([3; 32]))
        .unwrap_err();
    assert_eq!(err.to_string(), "wrong key for bucket vault");
    // A collection without the key keeps every bundle: it follows the
    // links of the stream's tile, which is stored plain.
    let vault = log.store().bucket(&bucket("vault"), None).unwrap();
    let gc = vault.gc().unwrap();
    assert_eq!((gc.kept, gc.freed), (2 + 1, 0), "{gc:?}");
    assert!(log.verify(|_| {}).unwrap().locked > 0);
}

/// Flips a bit (`mask`) of byte `offset` in every copy of `needle` in the
/// volume file of `dir`: a copy-on-write B-tree keeps stale pages too, so
/// the live copy is among them.
fn flip_every_copy(dir: &Path, needle: &[u8], offset: usize, mask: u8) {
    let file = dir.join("volume.redb");
    let mut bytes = std::fs::read(&file).unwrap();
    let copies: Vec<usize> = (0..bytes.len() - needle.len())
        .filter(|&i| &bytes[i..i + needle.len()] == needle)
        .collect();
    assert!(!copies.is_empty(), "the record is on disk");
    for at in copies {
        bytes[at + offset] ^= mask;
    }
    std::fs::write(&file, &bytes).unwrap();
}

#[test]
fn a_flipped_byte_in_a_stored_event_fails_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    let s = sid("order-1");
    for i in 0..20 {
        log.append(
            &s,
            ExpectedVersion::Any,
            vec![ev("Placed", &format!(r#"{{"sku":"FlipTarget{i:02}"}}"#))],
        )
        .unwrap();
    }
    log.close().unwrap();
    drop(log);
    flip_every_copy(dir.path(), b"FlipTarget07", 3, 0x20);

    let log = crate::open(dir.path());
    let err = log
        .read(&s, ReadFrom::Edge, 100, Direction::Forward)
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "event 7 of stream order-1 is corrupt: its bytes do not hash to its Merkle leaf (changed on disk)"
    );
    // The events around it still read.
    let e = log
        .read(&s, ReadFrom::Version(8), 1, Direction::Forward)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(e.version, 8);
    assert!(log.event_at(7).is_err());
    let report = log.verify(|_| {}).unwrap();
    assert_eq!(report.records, 20);
    assert_eq!(
        report.corrupt,
        [
            "event 7 of stream order-1 is corrupt: its bytes do not hash to its Merkle leaf (changed on disk)"
        ]
    );
}

/// A data directory written by the first layout (`log-0/` records),
/// made by the code of that layout, and what it answered then.
fn unpack_first_layout(dir: &Path) -> serde_json::Value {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let redb =
        zstd::decode_all(&std::fs::read(fixtures.join("v0-volume.redb.zst")).unwrap()[..]).unwrap();
    std::fs::write(dir.join("volume.redb"), redb).unwrap();
    std::fs::write(dir.join("VOLUME"), "hydra-volume 1\nbackend redb\n").unwrap();
    let answers =
        zstd::decode_all(&std::fs::read(fixtures.join("v0-answers.json.zst")).unwrap()[..])
            .unwrap();
    serde_json::from_slice(&answers).unwrap()
}

#[test]
fn a_store_of_the_first_layout_is_migrated_and_answers_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let then = unpack_first_layout(dir.path());
    let log = crate::open(dir.path());
    for prefix in [b"log-0/".as_slice(), b"st-0/"] {
        assert_eq!(
            log.volume()
                .scan(hydra_volume::KeyRange::prefix(prefix), Direction::Forward)
                .count(),
            0,
            "{} left",
            String::from_utf8_lossy(prefix)
        );
    }
    let all: Vec<RecordedEvent> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(serde_json::to_value(&all).unwrap(), then["all"]);
    let streams = then["streams"].as_object().unwrap();
    assert_eq!(log.list_streams("").count(), streams.len());
    for info in log.list_streams("") {
        let info = info.unwrap();
        let was = &streams[info.stream.as_str()];
        assert_eq!(info.bucket.as_ref().unwrap().as_str(), "default");
        assert_eq!(info.version, was["info"]["version"].as_u64());
        assert_eq!(info.deleted, was["info"]["deleted"].as_bool().unwrap());
        let events: Vec<RecordedEvent> = log
            .read(&info.stream, ReadFrom::Edge, u64::MAX, Direction::Forward)
            .map(|it| it.collect::<Result<_, _>>().unwrap())
            .unwrap_or_default();
        assert_eq!(serde_json::to_value(&events).unwrap(), was["events"]);
        if let Ok(h) = log.head(&info.stream) {
            assert_eq!(h.length, was["head"]["length"].as_u64().unwrap());
            assert_eq!(
                format!("{:?}", h.root),
                was["head"]["root"].as_str().unwrap()
            );
            if let Some(e) = events.last() {
                let (head, proof) = log.prove(&info.stream, e.version).unwrap();
                hydra_eventlog::verify_event(&head, &log.identity().public_key(), e, &proof)
                    .unwrap();
            }
        }
    }
    assert_eq!(
        serde_json::to_value(log.subscription("projection").unwrap()).unwrap(),
        then["subscription"]
    );
    // Full bundles were sealed: ledger-1's two (its 188 last events stay on
    // the edge); ledger-2 lost its first 300 to a scavenge, so none of its
    // bundles is whole.
    // Both hang from ledger-1's bundle tree: one root, one tile.
    let default = log.store().bucket(&bucket("default"), None).unwrap();
    assert_eq!(default.roots("ev/").count(), 1);
    drop(default);
    let report = log.verify(|_| {}).unwrap();
    assert_eq!((report.bundles, report.tiles), (2, 1));
    assert!(report.corrupt.is_empty(), "{report:?}");
    let snap = log.load_snapshot(&sid("account-1"), None).unwrap();
    assert_eq!(snap.version, then["snapshot"]["version"].as_u64().unwrap());
    // Ids the client chose still find their events; a retry is still a retry.
    let id = uuid::Uuid::from_u128((10u128 << 64) | 3);
    let e = log.get_event(id).unwrap();
    assert_eq!((e.stream.as_str(), e.version), ("account-10", 2));
    // The soft-deleted stream continues its versions; positions go on.
    let r = log
        .append(
            &sid("account-3"),
            ExpectedVersion::Any,
            vec![ev("Reopened", "{}")],
        )
        .unwrap();
    assert_eq!(r.first_version, 100);
    assert_eq!(r.first_position, all.last().unwrap().position + 1);
    log.close().unwrap();
    drop(log);
    // Opening again finds nothing to migrate and the same answers.
    let log = crate::open(dir.path());
    assert_eq!(
        log.read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
            .count(),
        all.len() + 1
    );
    // ledger-1's last 188 events are on the edge, indexed in `sv-0/` as
    // the layouts before open edges in stream states indexed them: an
    // append fills that bundle (sealing it from both) and opens the next.
    let ledger = sid("ledger-1");
    let before = crate::read_all_of(&log, &ledger);
    assert_eq!(before.len(), 700);
    crate::fill(&log, &ledger, 100);
    let after = crate::read_all_of(&log, &ledger);
    assert_eq!(after.len(), 800);
    assert_eq!(after[..700], before[..]);
    let key = log.identity().public_key();
    for e in [&after[600], &after[700], &after[799]] {
        let (head, proof) = log.prove(&ledger, e.version).unwrap();
        hydra_eventlog::verify_event(&head, &key, e, &proof).unwrap();
    }
    let report = log.verify(|_| {}).unwrap();
    assert_eq!(report.bundles, 3);
    assert!(report.corrupt.is_empty(), "{report:?}");
}

/// A bank-like event of about 230 bytes, as the bank example's ledger
/// would carry with a real core-banking payload.
fn bank_event(account: u64, i: u64) -> NewEvent {
    let kinds = ["Deposited", "Withdrawn", "TransferSent", "TransferReceived"];
    NewEvent::new(
        kinds[(i % 4) as usize],
        format!(
            r#"{{"account":"ACC-{account:08}","amount":{},"currency":"EUR","balance_after":{},"reference":"INV-2026-{:06}","channel":"{}","teller":"teller-{}","booked_at":"2026-11-{:02}T{:02}:{:02}:00Z"}}"#,
            (i * 7919 + account * 31) % 100_000,
            (i * 104_729 + account) % 10_000_000,
            i * 13 + account,
            ["web", "branch", "atm", "mobile"][((i / 3) % 4) as usize],
            (account + i) % 17,
            1 + i % 28,
            i % 24,
            i % 60
        )
        .into_bytes(),
    )
    .with_metadata(format!(r#"{{"correlation":"{:016x}"}}"#, account * 1_000_003 + i).into_bytes())
}

/// Bytes the volume stores for the streams of bucket `b`, whose ids start
/// with `prefix`: its blocks (the sealed bundles), their `$all` entries
/// (edge records and pointers into bundles), their version index and the
/// bundle entries.
fn stored_bytes(log: &EventLog, b: &str, prefix: &str) -> u64 {
    let bucket = log.store().bucket(&bucket(b), None).unwrap();
    let blocks = bucket.stats().unwrap().stored_bytes;
    let scan = |p: &[u8]| {
        log.volume()
            .scan(hydra_volume::KeyRange::prefix(p), Direction::Forward)
            .map(|e| e.unwrap())
            .collect::<Vec<_>>()
    };
    let num = |bytes: &[u8]| u64::from_be_bytes(bytes[..8].try_into().unwrap());
    let ours: std::collections::HashSet<u64> = scan(b"sn-0/")
        .into_iter()
        .filter(|(_, v)| v.starts_with(prefix.as_bytes()))
        .map(|(k, _)| num(&k[5..]))
        .collect();
    let mut rest = 0;
    for (k, v) in scan(b"ev-1/") {
        let n = if v[0] == 0 {
            num(&v[1..])
        } else {
            // A pointer: a varint stream number after the tag.
            postcard::from_bytes::<(u8, u64, u64)>(&v).unwrap().1
        };
        if ours.contains(&n) {
            rest += (k.len() + v.len()) as u64;
        }
    }
    for p in [b"sv-0/".as_slice(), b"bnd-0/"] {
        for (k, v) in scan(p) {
            if ours.contains(&num(&k[p.len()..])) {
                rest += (k.len() + v.len()) as u64;
            }
        }
    }
    blocks + rest
}

#[test]
fn a_compressed_bucket_stores_bank_events_in_a_third_of_the_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = crate::open(dir.path());
    log.store()
        .create_bucket(
            &bucket("zipped"),
            CreateOptions {
                zstd_level: Some(3),
                key: None,
            },
        )
        .unwrap();
    // 10 accounts appended interleaved in small batches, as a ledger would:
    // each account's events before its last 256 end up in sealed bundles,
    // the rest stays on its open edge. Measured at 1,000 events an account
    // (a quarter still on the edge), then at 2,500 (under a tenth), each
    // time at rest: closed (which finishes compaction) and reopened.
    let accounts = 10u64;
    let mut plain_payload = 0;
    let mut ratios = Vec::new();
    let mut done = 0;
    for per in [1000u64, 2500] {
        for round in done / 4..per / 4 {
            for a in 0..accounts {
                for (b, prefix) in [("default", "plain"), ("zipped", "zip")] {
                    let events: Vec<NewEvent> = (round * 4..round * 4 + 4)
                        .map(|i| bank_event(a, i))
                        .collect();
                    if b == "default" {
                        plain_payload += events
                            .iter()
                            .map(|e| (e.data.len() + e.metadata.len() + e.event_type.len()) as u64)
                            .sum::<u64>();
                    }
                    log.write(in_bucket(&format!("{prefix}-{a}"), b, events))
                        .unwrap();
                }
            }
        }
        done = per;
        log.close().unwrap();
        drop(log);
        log = crate::open(dir.path());
        let n = accounts * per;
        let (plain, zipped) = (
            stored_bytes(&log, "default", "plain-"),
            stored_bytes(&log, "zipped", "zip-"),
        );
        let ratio = plain as f64 / zipped as f64;
        println!(
            "{per} events an account: payload {:.0} B/event; stored: plain {:.0} B/event, zstd {:.0} B/event ({ratio:.2}x)",
            plain_payload as f64 / n as f64,
            plain as f64 / n as f64,
            zipped as f64 / n as f64
        );
        ratios.push(ratio);
    }
    assert!(ratios[0] >= 2.5, "{ratios:?}");
    assert!(
        ratios[1] >= 3.0,
        "zstd stores {:.2}x fewer bytes, expected 3x or more",
        ratios[1]
    );
    let per = 2500;
    // Every event still reads, in both.
    assert_eq!(read_all_of(&log, &sid("zip-7")).len() as u64, per);
    assert_eq!(
        read_all_of(&log, &sid("zip-7"))[2000].data,
        bank_event(7, 2000).data
    );
}

#[test]
fn gc_frees_the_bundles_of_scavenged_and_deleted_events_and_nothing_live() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    let many = |n: u64, s: &str| {
        for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
            log.append(
                &sid(s),
                ExpectedVersion::Any,
                chunk
                    .iter()
                    .map(|i| ev("E", &format!("{{\"i\":{i}}}")))
                    .collect(),
            )
            .unwrap();
        }
    };
    many(1000, "keep"); // 3 bundles
    many(1000, "trunc"); // 3 bundles, 2 of them truncated away below
    many(600, "gone"); // 2 bundles, hard-deleted
    let default = log.store().bucket(&bucket("default"), None).unwrap();
    let blocks = || default.stats().unwrap().blocks;
    // 8 bundles, and a tile linking each stream's.
    assert_eq!(blocks(), 8 + 3);
    log.set_metadata(
        &sid("trunc"),
        StreamMetadata {
            truncate_before: Some(600),
            ..Default::default()
        },
    )
    .unwrap();
    log.delete(&sid("gone"), ExpectedVersion::Any, true)
        .unwrap();
    // Nothing is freed while the events are still stored.
    assert_eq!(default.gc().unwrap().freed, 0);
    let r = log.scavenge().unwrap();
    assert_eq!(r.events, 600 + 600);
    // The scavenge rewrote trunc's tile and dropped gone's (a replaced
    // tile goes at once); the bundles they no longer link are garbage.
    assert_eq!(blocks(), 8 + 2);
    let gc = default.gc().unwrap();
    assert_eq!(gc.freed, 4, "{gc:?}");
    assert!(gc.freed_bytes > 0);
    assert_eq!(blocks(), 4 + 2);
    // What is left reads and proves, across the partly scavenged bundle.
    let kept = read_all_of(&log, &sid("keep"));
    assert_eq!(kept.len(), 1000);
    let trunc = read_all_of(&log, &sid("trunc"));
    assert_eq!((trunc[0].version, trunc.len()), (600, 400));
    for (s, e) in [("keep", &kept[300]), ("trunc", &trunc[50])] {
        let (head, proof) = log.prove(&sid(s), e.version).unwrap();
        hydra_eventlog::verify_event(&head, &log.identity().public_key(), e, &proof).unwrap();
    }
    let all = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .count();
    assert_eq!(all, 1000 + 400);
    let report = log.verify(|_| {}).unwrap();
    assert_eq!((report.bundles, report.corrupt.len()), (4, 0), "{report:?}");
    // Reindex rebuilds the same answers from the bundles and the edge.
    log.reindex().unwrap();
    assert_eq!(read_all_of(&log, &sid("trunc")), trunc);
    assert_eq!(read_all_of(&log, &sid("keep")), kept);
}

#[test]
fn a_flipped_byte_in_a_sealed_bundle_fails_the_read() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    let s = sid("order-1");
    log.append(
        &s,
        ExpectedVersion::Any,
        (0..300)
            .map(|i| ev("Placed", &format!(r#"{{"sku":"SealedFlip{i:03}"}}"#)))
            .collect(),
    )
    .unwrap();
    log.close().unwrap();
    drop(log);
    flip_every_copy(dir.path(), b"SealedFlip100", 4, 0x01);
    let log = crate::open(dir.path());
    let err = log
        .read(&s, ReadFrom::Version(100), 1, Direction::Forward)
        .unwrap()
        .next()
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("events 0 to 255 of stream order-1 are corrupt: block "),
        "{err}"
    );
    // The edge past the bundle still reads.
    assert_eq!(
        log.read(&s, ReadFrom::Version(256), 100, Direction::Forward)
            .unwrap()
            .count(),
        44
    );
    let report = log.verify(|_| {}).unwrap();
    assert_eq!(
        (report.records, report.corrupt.len()),
        (44, 1),
        "{report:?}"
    );
    assert!(report.corrupt[0].starts_with("events 0 to 255 of stream order-1 are corrupt"));
    // And the bucket's own verify names the block.
    assert_eq!(log.store().verify(|_| {}).unwrap().corrupt.len(), 1);
}

#[test]
fn bundles_span_a_bounded_range_of_all() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    // Streams written in turn, one event each per round: 256 events of one
    // stream span (streams - 1) * 255 + 1 positions.
    let round = |prefix: &str, streams: usize| {
        let writes = (0..streams)
            .map(|i| {
                StreamWrite::new(
                    sid(&format!("{prefix}-{i}")),
                    ExpectedVersion::Any,
                    vec![ev("E", "{}")],
                )
            })
            .collect();
        log.append_multi(writes).unwrap();
    };
    for _ in 0..256 {
        round("dense", 200); // 50,801 positions: sealed
    }
    for _ in 0..256 {
        round("sparse", 300); // 76,246 positions: stays on the edge
    }
    let default = log.store().bucket(&bucket("default"), None).unwrap();
    assert_eq!(default.roots("ev/").count(), 200);
    drop(default);
    let all: Vec<(String, u64)> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .map(|e| {
            let e = e.unwrap();
            (e.stream.to_string(), e.version)
        })
        .collect();
    assert_eq!(all.len(), 256 * 500);
    assert_eq!(all[200 * 256 + 301], ("sparse-1".into(), 1));
    assert_eq!(read_all_of(&log, &sid("sparse-7")).len(), 256);
}

#[test]
fn a_bucket_holding_events_is_not_removed() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::from_bytes([6; 32]);
    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    log.write(in_bucket("patient-1", "vault", vec![ev("T", "{}")]))
        .unwrap();
    let err = log.remove_bucket(&bucket("vault")).unwrap_err();
    assert!(
        matches!(err, Error::BucketHoldsStreams { count: 1, .. }),
        "{err}"
    );
    // Once the stream is gone and scavenged, the bucket goes.
    log.delete(&sid("patient-1"), ExpectedVersion::Any, true)
        .unwrap();
    log.scavenge().unwrap();
    log.remove_bucket(&bucket("vault")).unwrap();
    let info = log.list_streams("").next().unwrap().unwrap();
    assert!(info.tombstoned);
    assert_eq!(info.bucket, None);
    // A scavenge passes over the stream its bucket went with.
    assert_eq!(log.scavenge().unwrap().events, 0);
    // The default bucket, and any other, still take new streams.
    log.append(&sid("order-1"), ExpectedVersion::Any, vec![ev("T", "{}")])
        .unwrap();
}

#[test]
fn a_peer_without_the_key_checks_every_stored_byte_against_the_signed_storage() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::from_bytes([8; 32]);
    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    let s = sid("patient-1");
    for chunk in 0..6 {
        log.write(in_bucket(
            "patient-1",
            "vault",
            (0..100)
                .map(|i| ev("Noted", &format!(r#"{{"i":{}}}"#, chunk * 100 + i)))
                .collect(),
        ))
        .unwrap();
    }
    let stored = log.stored_head(&s).unwrap();
    // Two sealed bundles under the tree and 88 records on the edge.
    assert_eq!((stored.head.length, stored.edge_records), (600, 88));
    assert!(stored.tree.is_some());
    let signer = log.identity().public_key();
    log.close().unwrap();
    drop(log);

    // Without the key: everything checks, and the signed form travels.
    let log = open_with_vault(dir.path(), None, vec![]);
    log.check_stored(&stored, &signer).unwrap();
    let sent: hydra_eventlog::StoredHead =
        serde_json::from_str(&serde_json::to_string(&stored).unwrap()).unwrap();
    log.check_stored(&sent, &signer).unwrap();
    // A forged root, or another signer, is refused.
    let mut forged = stored.clone();
    forged.edge_root[0] ^= 1;
    assert!(matches!(
        log.check_stored(&forged, &signer),
        Err(Error::BadHeadSignature(_))
    ));
    assert!(log.check_stored(&stored, &[9; 32]).is_err());
    // A changed byte of an edge record's ciphertext is caught.
    let (k, v) = log
        .volume()
        .scan(
            hydra_volume::KeyRange::prefix(b"ev-1/"),
            Direction::Backward,
        )
        .next()
        .unwrap()
        .unwrap();
    let mut changed = v.clone();
    *changed.last_mut().unwrap() ^= 1;
    log.volume().put(&k, &changed).unwrap();
    let err = log.check_stored(&stored, &signer).unwrap_err();
    assert!(matches!(err, Error::StoredMismatch { .. }), "{err}");
    log.volume().put(&k, &v).unwrap();
    log.check_stored(&stored, &signer).unwrap();
    // So is a missing bundle block, reached through the tree's links
    // (the tile is plain, the bundle ciphertext).
    let vault = log.store().bucket(&bucket("vault"), None).unwrap();
    let (_, top) = vault.roots("ev/").next().unwrap().unwrap();
    let links = hydra_block::links(top.codec(), &vault.get_stored(&top).unwrap().unwrap()).unwrap();
    assert_eq!(links.len(), 2);
    vault.delete(&links[1]).unwrap();
    let err = log.check_stored(&stored, &signer).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("the block of events from 256 is missing"),
        "{err}"
    );
    // And a missing tile.
    vault.delete(&top).unwrap();
    let err = log.check_stored(&stored, &signer).unwrap_err();
    assert!(err.to_string().contains("is missing"), "{err}");
}

#[test]
fn scavenging_while_appends_seal_bundles_leaves_a_consistent_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    let s = sid("hot-1");
    let writer = {
        let log = log.clone();
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..1500 {
                log.append(&s, ExpectedVersion::Any, vec![ev("E", &format!("{i}"))])
                    .unwrap();
            }
        })
    };
    // Truncate and scavenge behind the writer, racing its sealing.
    while !writer.is_finished() {
        if let Some(v) = log.stream_version(&s).unwrap() {
            log.set_metadata(
                &s,
                StreamMetadata {
                    truncate_before: Some(v.saturating_sub(100)),
                    ..Default::default()
                },
            )
            .unwrap();
            log.scavenge().unwrap();
        }
    }
    writer.join().unwrap();
    log.scavenge().unwrap();
    let read = read_all_of(&log, &s);
    let all: Vec<RecordedEvent> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        all, read,
        "$all shows exactly what a read of the stream does"
    );
    assert_eq!(read.last().unwrap().version, 1499);
    let last = read.last().unwrap();
    let (head, proof) = log.prove(&s, last.version).unwrap();
    hydra_eventlog::verify_event(&head, &log.identity().public_key(), last, &proof).unwrap();
    assert_eq!(log.verify(|_| {}).unwrap().corrupt, Vec::<String>::new());
    log.reindex().unwrap();
    assert_eq!(read_all_of(&log, &s), read);
}

#[test]
fn bundles_filled_together_are_sealed_one_per_commit_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    let streams: Vec<_> = (0..20).map(|i| sid(&format!("acct-{i}"))).collect();
    for s in &streams {
        log.append(
            s,
            ExpectedVersion::Any,
            (0..200).map(|_| ev("E", "{}")).collect(),
        )
        .unwrap();
    }
    // One commit completes twenty bundles begun by earlier ones.
    log.append_multi(
        streams
            .iter()
            .map(|s| {
                StreamWrite::new(
                    s.clone(),
                    ExpectedVersion::Any,
                    (0..56).map(|_| ev("E", "{}")).collect(),
                )
            })
            .collect(),
    )
    .unwrap();
    let sealed = |log: &EventLog| {
        let b = log.store().bucket(&bucket("default"), None).unwrap();
        b.roots("ev/").count()
    };
    assert_eq!(sealed(&log), 1, "a commit seals one of them");
    for s in &streams {
        assert_eq!(read_all_of(&log, s).len(), 256);
    }
    log.close().unwrap();
    drop(log);
    // The rest wait in the queue, across a restart, and go with the next
    // commits, one each.
    let log = crate::open(dir.path());
    for i in 0..19 {
        log.append(&sid("other"), ExpectedVersion::Any, vec![ev("E", "{}")])
            .unwrap();
        assert_eq!(sealed(&log), 2 + i);
    }
    assert_eq!(
        log.volume()
            .scan(hydra_volume::KeyRange::prefix(b"sq-0/"), Direction::Forward)
            .count(),
        0
    );
    for s in &streams {
        let events = read_all_of(&log, s);
        assert_eq!(events.len(), 256);
        let (head, proof) = log.prove(s, 100).unwrap();
        hydra_eventlog::verify_event(&head, &log.identity().public_key(), &events[100], &proof)
            .unwrap();
    }
    assert_eq!(log.verify(|_| {}).unwrap().bundles, 20);
}

/// The links of the plain node at `r` in `bucket`.
fn links_of(bucket: &hydra_bucket::Bucket, r: &hydra_block::Ref) -> Vec<hydra_block::Ref> {
    hydra_block::links(r.codec(), &bucket.get_stored(r).unwrap().unwrap()).unwrap()
}

#[test]
fn a_store_whose_bundles_were_roots_of_their_own_gets_bundle_trees() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    crate::fill(&log, &sid("old-1"), 600);
    crate::fill(&log, &sid("old-2"), 300);
    // Bring back the shape before trees: a root per bundle, no tiles.
    let default = log.store().bucket(&bucket("default"), None).unwrap();
    let trees: Vec<_> = default.roots("ev/").map(Result::unwrap).collect();
    assert_eq!(trees.len(), 2);
    for (name, top) in &trees {
        for (index, bundle) in links_of(&default, top).into_iter().enumerate() {
            default
                .set_root(&format!("{name}/{index:016x}"), bundle)
                .unwrap();
        }
        default.remove_root(name).unwrap();
        default.delete(top).unwrap();
    }
    log.volume().delete(b"el-trees-0").unwrap();
    log.close().unwrap();
    drop((log, default));

    let log = crate::open(dir.path());
    let default = log.store().bucket(&bucket("default"), None).unwrap();
    let roots: Vec<_> = default.roots("ev/").map(Result::unwrap).collect();
    assert_eq!(roots, trees, "the same trees, and no bundle root left");
    let report = log.verify(|_| {}).unwrap();
    assert_eq!((report.bundles, report.tiles), (3, 2));
    assert!(report.corrupt.is_empty(), "{report:?}");
    let gc = default.gc().unwrap();
    assert_eq!((gc.kept, gc.freed), (3 + 2, 0), "{gc:?}");
    assert_eq!(read_all_of(&log, &sid("old-1")).len(), 600);
}

#[test]
fn volume_verify_reports_a_bundle_tree_that_is_missing_or_out_of_place() {
    let dir = tempfile::tempdir().unwrap();
    let log = crate::open(dir.path());
    crate::fill(&log, &sid("tree-1"), 300);
    crate::fill(&log, &sid("tree-2"), 600);
    let default = log.store().bucket(&bucket("default"), None).unwrap();
    let roots: Vec<_> = default.roots("ev/").map(Result::unwrap).collect();
    let clean = log.verify(|_| {}).unwrap();
    assert!(clean.corrupt.is_empty(), "{clean:?}");

    // tree-1's root names tree-2's tile.
    default.set_root(&roots[0].0, roots[1].1).unwrap();
    let report = log.verify(|_| {}).unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert!(
        report.corrupt[0].contains("bundle tree of stream tree-1")
            && report.corrupt[0].contains("of stream \"tree-2\""),
        "{report:?}"
    );
    // tree-1's tile is gone.
    default.set_root(&roots[0].0, roots[0].1).unwrap();
    default.delete(&roots[0].1).unwrap();
    let report = log.verify(|_| {}).unwrap();
    assert_eq!(report.corrupt.len(), 1, "{report:?}");
    assert!(report.corrupt[0].ends_with("is missing"), "{report:?}");
    // tree-1 has no tree at all.
    default.remove_root(&roots[0].0).unwrap();
    let report = log.verify(|_| {}).unwrap();
    assert_eq!(
        report.corrupt,
        vec!["stream tree-1 has 1 sealed bundles and no bundle tree links them".to_string()]
    );
}

/// A scavenge without an encrypted bucket's key passes over that
/// bucket's streams, names the bucket, and scavenges every other one;
/// given the key, it scavenges those too.
#[test]
fn a_scavenge_without_a_key_passes_over_its_bucket_and_does_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::from_bytes([3; 32]);
    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    let events = |n: u64| (0..n).map(|i| ev("Note", &format!("{i}"))).collect();
    log.write(in_bucket("patient-1", "vault", events(5)))
        .unwrap();
    log.append(&sid("public-1"), ExpectedVersion::Any, events(4))
        .unwrap();
    let truncate = StreamMetadata {
        truncate_before: Some(2),
        ..StreamMetadata::default()
    };
    for s in ["patient-1", "public-1"] {
        log.set_metadata(&sid(s), truncate.clone()).unwrap();
    }
    log.close().unwrap();
    drop(log);

    let blind = open_with_vault(dir.path(), None, vec![]);
    let r = blind.scavenge().unwrap();
    assert_eq!((r.streams, r.events), (1, 2), "{r:?}");
    assert_eq!(r.locked, ["vault"]);
    blind.close().unwrap();
    drop(blind);

    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    let r = log.scavenge().unwrap();
    assert_eq!((r.streams, r.events), (1, 2), "{r:?}");
    assert!(r.locked.is_empty());
    let read = read_all_of(&log, &sid("patient-1"));
    assert_eq!(
        read.iter().map(|e| e.version).collect::<Vec<_>>(),
        [2, 3, 4]
    );
    log.close().unwrap();
    drop(log);
    // Nothing left to remove: a scavenge without the key names no bucket.
    let blind = open_with_vault(dir.path(), None, vec![]);
    assert!(blind.scavenge().unwrap().locked.is_empty());
}

/// `$all` filtered to a prefix reads without the key of a bucket whose
/// streams the prefix leaves out (their events are passed over unread),
/// sealed bundles and the open edge alike, both ways; what takes them in
/// needs the key.
#[test]
fn all_filtered_to_other_streams_reads_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::from_bytes([4; 32]);
    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    for i in 0..300 {
        log.write(in_bucket("patient-1", "vault", vec![ev("Secret", "{}")]))
            .unwrap();
        let batch = (0..2)
            .map(|j| ev("Plain", &format!("{}", 2 * i + j)))
            .collect();
        log.append(&sid("public-1"), ExpectedVersion::Any, batch)
            .unwrap();
    }
    log.close().unwrap();
    drop(log);

    let blind = open_with_vault(dir.path(), None, vec![]);
    let filter = |prefix: &str| AllFilter {
        stream_prefix: Some(prefix.into()),
        event_types: vec![],
    };
    let read = |prefix: &str, direction| {
        blind
            .read_all(None, u64::MAX, direction, filter(prefix))
            .collect::<Result<Vec<_>, _>>()
    };
    let forward = read("public-", Direction::Forward).unwrap();
    let versions: Vec<u64> = forward.iter().map(|e| e.version).collect();
    assert_eq!(versions, (0..600).collect::<Vec<_>>());
    let backward = read("public-", Direction::Backward).unwrap();
    assert!(backward.iter().rev().map(|e| e.version).eq(0..600));
    for prefix in ["patient-", ""] {
        let err = read(prefix, Direction::Forward).unwrap_err();
        assert!(
            matches!(&err, Error::Bucket(e) if matches!(**e, hydra_bucket::BucketError::KeyRequired(_))),
            "{prefix:?}: {err}"
        );
    }
}
