//! Streams: a replica bucket brings the writer's streams in it,
//! verified, and trusts no other signer.

use std::time::Duration;

use hydra_eventlog::{EventLog, ExpectedVersion, NewEvent, ReadFrom, StreamId, verify_event};
use hydra_net::{BucketFollow, Following, Node, RequestV1, ResponseV1};

use crate::open;

fn append(log: &EventLog, stream: &str, n: u64) {
    let s = StreamId::new(stream).unwrap();
    for i in 0..n {
        log.append(
            &s,
            ExpectedVersion::Any,
            vec![NewEvent::new("E", format!("{i}").into_bytes())],
        )
        .unwrap();
    }
}

/// Every event of `stream` `log` shows, in order.
fn events(log: &EventLog, stream: &StreamId) -> Vec<hydra_eventlog::RecordedEvent> {
    log.read(
        stream,
        ReadFrom::Edge,
        u64::MAX,
        hydra_eventlog::Direction::Forward,
    )
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

fn len(log: &EventLog, stream: &str) -> u64 {
    log.stream_version(&StreamId::new(stream).unwrap())
        .unwrap()
        .map_or(0, |v| v + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_replicates_and_verifies() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (writer, follower) = (open(da.path()), open(db.path()));
    append(&writer, "orders-1", 300);
    append(&writer, "orders-2", 5);
    // A stream of another bucket does not come with bucket default.
    let misc: hydra_bucket::BucketName = "misc".parse().unwrap();
    writer
        .store()
        .create_bucket(&misc, hydra_bucket::CreateOptions::default())
        .unwrap();
    writer
        .write(hydra_eventlog::StreamWrite {
            bucket: Some(misc),
            ..hydra_eventlog::StreamWrite::new(
                StreamId::new("other").unwrap(),
                ExpectedVersion::Any,
                vec![NewEvent::new("E", b"{}".to_vec())],
            )
        })
        .unwrap();
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let a = crate::serve_all(&writer, listen.clone()).await;
    let b = crate::serve_all(&follower, listen).await;
    assert_eq!(
        a.peer_id().to_string(),
        writer.identity().peer_id().to_string(),
        "the volume's identity"
    );

    let follow = follow(&a, writer.identity().public_key());
    assert_eq!(follow.streams_round(&b, &follower).await.unwrap(), 305);
    assert_eq!(
        (
            len(&follower, "orders-1"),
            len(&follower, "orders-2"),
            len(&follower, "other")
        ),
        (300, 5, 0)
    );
    let s = StreamId::new("orders-1").unwrap();
    let e = follower
        .read(
            &s,
            ReadFrom::Version(299),
            1,
            hydra_eventlog::Direction::Forward,
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let (head, proof) = follower.prove(&s, 299).unwrap();
    verify_event(&head, &writer.identity().public_key(), &e, &proof).unwrap();

    // New appends arrive on the next round; nothing twice. On the edge
    // (the tree held here unchanged), then sealing a bundle (a new tree).
    append(&writer, "orders-1", 7);
    assert_eq!(follow.streams_round(&b, &follower).await.unwrap(), 7);
    assert_eq!(follow.streams_round(&b, &follower).await.unwrap(), 0);
    let tree = follower.held_tree(&s).unwrap();
    assert!(tree.is_some());
    // The bundle sealed and the tiles above it come with the storage: no
    // want-list is answered.
    let sent = a.stats().snapshot().blocks_sent;
    append(&writer, "orders-1", 250);
    assert_eq!(follow.streams_round(&b, &follower).await.unwrap(), 250);
    assert_ne!(follower.held_tree(&s).unwrap(), tree);
    assert_eq!(a.stats().snapshot().blocks_sent, sent);
    let shown = |log: &EventLog| -> Vec<_> {
        let all = events(log, &s).into_iter();
        all.map(|e| (e.version, e.id, e.data)).collect()
    };
    assert_eq!(shown(&follower), shown(&writer));
    let (head, proof) = follower.prove(&s, 556).unwrap();
    let e = events(&follower, &s).pop().unwrap();
    verify_event(&head, &writer.identity().public_key(), &e, &proof).unwrap();

    // Live: the follow loop hears of new appends as they commit. With an
    // hour between retries, only the long poll can bring them in time.
    let live = BucketFollow {
        retry: Duration::from_secs(3600),
        ..follow.clone()
    };
    let status = live.streams_status();
    let task = tokio::spawn(live.run_streams(b.clone(), follower.clone(), status.clone()));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = writer.next_position();
    append(&writer, "orders-2", 3);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // The report follows the import: wait for both.
    while len(&follower, "orders-2") < 8 || status.lock().unwrap().events < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "not replicated in time"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let report = status.lock().unwrap().clone();
    assert_eq!(
        (report.events, report.rounds.last_error.as_deref()),
        (3, None)
    );
    // The heads answer may predate the last of the three appends.
    assert!(report.peer_next_position.unwrap() > before, "{report:?}");

    // A heads answer carries the storage of each followed stream that
    // grew past the length named, with the tree blocks of the bundles
    // holding later events (the tile above them and bundle 1), and of no
    // other stream.
    let heads = RequestV1::Heads {
        bucket: "default".into(),
        after: None,
        following: vec![
            Following {
                stream: "orders-1".into(),
                length: 300,
            },
            Following {
                stream: "orders-2".into(),
                length: 8,
            },
        ],
    };
    let Ok(ResponseV1::Heads { storages, .. }) = b.request(&a.listening()[0], heads).await else {
        panic!("no heads");
    };
    let carried: Vec<_> = storages
        .iter()
        .map(|s| {
            let (id, _) = hydra_eventlog::storage_bucket(&s.root).unwrap();
            (id.to_string(), s.tree.len())
        })
        .collect();
    assert_eq!(carried, [("orders-1".to_string(), 2)]);

    // A storage asked past bundle 1 carries no tree block (no bundle is
    // later: the tiles are the asker's), and the serving peer reads the
    // rest of the tree when a want-list names it: bundle 0 is served.
    let asked = RequestV1::Storage {
        stream: "orders-1".into(),
        after: Some(1),
    };
    let Ok(ResponseV1::Storage(storage)) = b.request(&a.listening()[0], asked).await else {
        panic!("no storage");
    };
    assert!(storage.tree.is_empty());
    let mut first_bundle = None;
    writer
        .each_storage_block(&writer.storage(&s).unwrap(), |r, _| {
            if r.codec() == hydra_block::Codec::Raw {
                first_bundle.get_or_insert(*r);
            }
            Ok(())
        })
        .unwrap();
    let bundle = first_bundle.unwrap();
    let want = hydra_net::wire::BlocksRequestV1::StreamBlocks {
        stream: "orders-1".into(),
        refs: vec![bundle],
    };
    let Ok(hydra_net::wire::BlocksResponseV1::Blocks(blocks)) =
        b.blocks(&a.listening()[0], want).await
    else {
        panic!("no blocks");
    };
    let [hydra_net::wire::Block::Have(bytes)] = &blocks[..] else {
        panic!("{blocks:?}");
    };
    assert!(bundle.matches(bytes));

    // A heads request whose cursor the log has passed already is answered
    // at once, not at the next commit (nor after a wait of 25 ms).
    let t = std::time::Instant::now();
    for _ in 0..10 {
        let heads = RequestV1::Heads {
            bucket: "default".into(),
            after: Some(1),
            following: Vec::new(),
        };
        b.request(&a.listening()[0], heads).await.unwrap();
    }
    assert!(
        t.elapsed() < Duration::from_millis(200),
        "{:?}",
        t.elapsed()
    );

    // A follower that trusts another key takes none of the writer's
    // streams (the heads name their writer: it does not even ask).
    let dc = tempfile::tempdir().unwrap();
    let stranger = open(dc.path());
    let c = crate::serve_all(&stranger, vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]).await;
    let wrong = BucketFollow {
        writers: vec![[7u8; 32]],
        ..follow
    };
    assert_eq!(wrong.streams_round(&c, &stranger).await.unwrap(), 0);
    assert_eq!(len(&stranger, "orders-1"), 0);
    assert_eq!(c.stats().snapshot().bytes_received, 0, "no storage asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refused_stream_does_not_hold_back_the_others() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (writer, follower) = (open(da.path()), open(db.path()));
    append(&writer, "orders-0", 3);
    append(&writer, "orders-1", 4);
    // The follower wrote its own orders-0: it is not a replica, so the
    // writer's orders-0 is refused there, and orders-1 still arrives.
    append(&follower, "orders-0", 1);
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let a = crate::serve_all(&writer, listen).await;
    let b = crate::serve_all(&follower, Vec::new()).await;
    assert!(
        b.listening().is_empty(),
        "a follower-only node listens on nothing"
    );
    let follow = follow(&a, writer.identity().public_key());
    let err = follow.streams_round(&b, &follower).await.unwrap_err();
    assert!(err.to_string().contains("orders-0"), "{err}");
    assert_eq!(
        (len(&follower, "orders-0"), len(&follower, "orders-1")),
        (1, 4)
    );
}

/// A writer with `n` events in `orders-1`, a relay and a third peer, on
/// loopback; the third listens on nothing.
async fn three(n: u64) -> (Vec<tempfile::TempDir>, [EventLog; 3], [Node; 3]) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let logs = [0, 1, 2].map(|i| open(dirs[i].path()));
    append(&logs[0], "orders-1", n);
    let mut nodes = Vec::new();
    for (i, log) in logs.iter().enumerate() {
        let listen = if i < 2 {
            vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]
        } else {
            Vec::new()
        };
        nodes.push(crate::serve_all(log, listen).await);
    }
    (dirs, logs, nodes.try_into().ok().unwrap())
}

/// Replicates bucket `default` of writer `key` from `peer`.
fn follow(peer: &Node, key: [u8; 32]) -> BucketFollow {
    BucketFollow {
        bucket: "default".parse().unwrap(),
        from: vec![peer.listening()[0].clone()],
        writers: vec![key],
        retry: Duration::from_millis(50),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_relays_the_writers_streams_to_a_third_peer() {
    let (_dirs, [writer, relay, third], [a, b, c]) = three(20).await;
    let key = writer.identity().public_key();
    let from_writer = follow(&a, key);
    let from_relay = BucketFollow {
        from: vec![b.listening()[0].clone()],
        ..from_writer.clone()
    };
    assert_eq!(from_writer.streams_round(&b, &relay).await.unwrap(), 20);
    // The writer is gone; the third peer trusts only the writer's key and
    // gets everything, verified, from the relay.
    drop(a);
    writer.close().unwrap();
    assert_eq!(from_relay.streams_round(&c, &third).await.unwrap(), 20);
    let s = StreamId::new("orders-1").unwrap();
    assert_eq!(third.head(&s).unwrap(), relay.head(&s).unwrap());
    assert_eq!(third.head(&s).unwrap().signer, key);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_moves_to_another_peer_when_one_dies() {
    let (_dirs, [writer, relay, third], [a, b, c]) = three(10).await;
    let key = writer.identity().public_key();
    let via_a = follow(&a, key);
    assert_eq!(via_a.streams_round(&b, &relay).await.unwrap(), 10);
    // C prefers B, and knows A.
    let via_b_then_a = BucketFollow {
        from: vec![b.listening()[0].clone(), a.listening()[0].clone()],
        ..via_a
    };
    assert_eq!(via_b_then_a.streams_round(&c, &third).await.unwrap(), 10);
    // B dies; the writer goes on; C finishes from A.
    drop(b);
    relay.close().unwrap();
    append(&writer, "orders-1", 5);
    let status = via_b_then_a.streams_status();
    let task = tokio::spawn(via_b_then_a.run_streams(c.clone(), third.clone(), status.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    // The events land before the round that brought them records its
    // peer: wait for both.
    let from_a = a.listening()[0].to_string();
    while len(&third, "orders-1") < 15 || status.lock().unwrap().peer != from_a {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            status.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    let s = StreamId::new("orders-1").unwrap();
    assert_eq!(third.head(&s).unwrap(), writer.head(&s).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_larger_than_one_message_catches_up_by_want_lists() {
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (writer, follower) = (open(da.path()), open(db.path()));
    // 80 MiB of events: more than one message may hold (64 MiB), and
    // too large for bundles (16 MiB each at most), so on the edge: edge
    // blocks of 4 MiB, several answers (16 MiB each), in one round.
    let s = StreamId::new("orders-big").unwrap();
    for _ in 0..8 {
        let events = (0..40)
            .map(|i| NewEvent::new("Blob", vec![i as u8; 256 << 10]))
            .collect();
        writer.append(&s, ExpectedVersion::Any, events).unwrap();
    }
    let a = crate::serve_all(&writer, vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]).await;
    let b = crate::serve_all(&follower, vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]).await;
    let key = writer.identity().public_key();
    // The live loop reports the stream behind until it is not.
    let live = follow(&a, key);
    let status = live.streams_status();
    let task = tokio::spawn(live.run_streams(b.clone(), follower.clone(), status.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while len(&follower, "orders-big") < 320 || !status.lock().unwrap().behind.is_empty() {
        if let Some(l) = status.lock().unwrap().behind.first() {
            seen.push((l.local, l.remote));
        }
        assert!(std::time::Instant::now() < deadline, "not caught up");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    task.abort();
    assert!(
        !seen.is_empty() && seen.iter().all(|(l, r)| l < r && *r == 320),
        "{seen:?}"
    );
    assert_eq!(follower.head(&s).unwrap(), writer.head(&s).unwrap());
    assert!(b.stats().snapshot().bytes_received > 80 << 20);
    // The follower relays it to a third peer: the writer's stored head
    // and the same blocks.
    drop(a);
    let dc = tempfile::tempdir().unwrap();
    let third = open(dc.path());
    let c = crate::serve_all(&third, Vec::new()).await;
    assert_eq!(
        follow(&b, key).streams_round(&c, &third).await.unwrap(),
        320
    );
    assert_eq!(third.head(&s).unwrap(), writer.head(&s).unwrap());
}

/// Copies a closed data directory (so that two logs share one writer key).
fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_dir(&e.path(), &target);
        } else if e.file_name() != "LOCK" {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_signing_two_histories_of_a_stream_is_caught() {
    // On the edge, and past a bundle both histories sealed differently.
    for more in [5, 300] {
        two_histories(more).await;
    }
}

async fn two_histories(more: u64) {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    {
        let a = open(dirs[0].path());
        append(&a, "orders-1", 10);
        a.close().unwrap();
    }
    copy_dir(dirs[0].path(), dirs[1].path());
    // One key, two histories after the tenth event.
    let (a, fork, follower) = (
        open(dirs[0].path()),
        open(dirs[1].path()),
        open(dirs[2].path()),
    );
    append(&a, "orders-1", more);
    let s = StreamId::new("orders-1").unwrap();
    fork.append(
        &s,
        ExpectedVersion::Any,
        vec![NewEvent::new("Forked", vec![1; 7])],
    )
    .unwrap();
    append(&fork, "orders-1", more);
    let listen = || vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let na = crate::serve_all(&a, listen()).await;
    let nf = crate::serve_all(&fork, listen()).await;
    let nb = crate::serve_all(&follower, Vec::new()).await;
    let key = a.identity().public_key();
    assert_eq!(
        follow(&na, key)
            .streams_round(&nb, &follower)
            .await
            .unwrap(),
        10 + more
    );

    // A and the fork share a peer id: a fresh node, so that the fork is
    // not reached over the connection to A.
    drop(nb);
    let nb = crate::serve_all(&follower, Vec::new()).await;
    let from_fork = follow(&nf, key);
    let status = from_fork.streams_status();
    let task = tokio::spawn(from_fork.run_streams(nb.clone(), follower.clone(), status.clone()));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while status.lock().unwrap().equivocations.is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            status.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    task.abort();
    let report = status.lock().unwrap().clone();
    assert_eq!(report.equivocations, vec!["orders-1".to_owned()]);
    let err = report.rounds.last_error.clone().unwrap_or_default();
    assert!(
        err.contains("signed two histories of stream orders-1"),
        "{report:?}"
    );
    assert_eq!(nb.stats().snapshot().equivocations, 1, "counted once");
    // Nothing of the fork applied; the evidence proves it to anyone.
    assert_eq!(follower.head(&s).unwrap(), a.head(&s).unwrap());
    let bucket = follower
        .store()
        .bucket(&"default".parse().unwrap(), None)
        .unwrap();
    let kept: Vec<_> = bucket
        .roots(hydra_bucket::EVIDENCE_PREFIX)
        .map(Result::unwrap)
        .collect();
    assert_eq!(kept.len(), 1);
    let v: serde_json::Value =
        serde_json::from_slice(&bucket.get_stored(&kept[0].1).unwrap().unwrap()).unwrap();
    let held: hydra_eventlog::Head = serde_json::from_value(v["held"].clone()).unwrap();
    let ext: hydra_eventlog::Extension = serde_json::from_value(v["extension"].clone()).unwrap();
    ext.verify(&key).unwrap();
    held.verify(&key).unwrap();
    assert!(ext.contradicts(&held));
}

/// Replicates bucket `vault` of writer `key` from `peer`.
fn patients(peer: &Node, key: [u8; 32]) -> BucketFollow {
    BucketFollow {
        bucket: "vault".parse().unwrap(),
        ..follow(peer, key)
    }
}

/// Whether any file under `dir` holds `needle`.
fn disk_contains(dir: &std::path::Path, needle: &[u8]) -> bool {
    std::fs::read_dir(dir).unwrap().any(|e| {
        let p = e.unwrap().path();
        if p.is_dir() {
            return disk_contains(&p, needle);
        }
        let bytes = std::fs::read(&p).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_replica_keeps_and_serves_an_encrypted_stream_a_keyed_peer_reads_through_it() {
    use hydra_bucket::{BucketName, CreateOptions, Key};
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b, c) = (
        open(dirs[0].path()),
        open(dirs[1].path()),
        open(dirs[2].path()),
    );
    let (vault, key): (BucketName, Key) = ("vault".parse().unwrap(), Key::from_bytes([4; 32]));
    let options = CreateOptions {
        zstd_level: Some(3),
        key: Some(&key),
    };
    for log in [&a, &c] {
        log.store().create_bucket(&vault, options.clone()).unwrap();
        log.unlock(&vault, &key).unwrap();
    }
    let s = StreamId::new("patient-1").unwrap();
    let write = |from: u64, n: u64| {
        for i in from..from + n {
            let event = NewEvent::new("Visit", format!("SecretMarkerB{i}").into_bytes());
            a.write(hydra_eventlog::StreamWrite {
                bucket: Some(vault.clone()),
                ..hydra_eventlog::StreamWrite::new(s.clone(), ExpectedVersion::Any, vec![event])
            })
            .unwrap();
        }
    };
    // Two bundles and 188 events on the edge.
    write(0, 700);
    let listen = || vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let na = crate::serve_all(&a, listen()).await;
    let nb = crate::serve_all(&b, listen()).await;
    let nc = crate::serve_all(&c, Vec::new()).await;
    let writer = a.identity().public_key();

    // B has no key (and no bucket vault: it is made as the writer's).
    assert_eq!(
        patients(&na, writer).streams_round(&nb, &b).await.unwrap(),
        700
    );
    let err = b
        .read(&s, ReadFrom::Edge, 1, hydra_eventlog::Direction::Forward)
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .starts_with("bucket vault is encrypted and this peer has no key"),
        "{err}"
    );
    assert_eq!(b.held_length(&s).unwrap(), 700);
    assert_eq!(b.storage(&s).unwrap().stored, a.stored_head(&s).unwrap());

    // C holds the key and follows B alone.
    assert_eq!(
        patients(&nb, writer).streams_round(&nc, &c).await.unwrap(),
        700
    );
    let strip = |log: &EventLog| {
        events(log, &s)
            .into_iter()
            .map(|e| (e.id, e.data))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&c), strip(&a));
    c.check_stored(&a.stored_head(&s).unwrap(), &writer)
        .unwrap();
    let e = c
        .read(
            &s,
            ReadFrom::Version(650),
            1,
            hydra_eventlog::Direction::Forward,
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let (head, proof) = c.prove(&s, 650).unwrap();
    verify_event(&head, &writer, &e, &proof).unwrap();

    // More: bundle 2 seals on the writer; both follow.
    write(700, 100);
    assert_eq!(
        patients(&na, writer).streams_round(&nb, &b).await.unwrap(),
        100
    );
    assert_eq!(
        patients(&nb, writer).streams_round(&nc, &c).await.unwrap(),
        100
    );
    assert_eq!(strip(&c), strip(&a));
    c.check_stored(&a.stored_head(&s).unwrap(), &writer)
        .unwrap();
    assert_eq!(b.storage(&s).unwrap().stored, a.stored_head(&s).unwrap());

    drop((nb, nc));
    b.close().unwrap();
    drop(b);
    assert!(
        !disk_contains(dirs[1].path(), b"SecretMarkerB"),
        "an event readable on the blind replica's disk"
    );
    // Given the key, it reads what it held blind, and follows keyed.
    let b = open(dirs[1].path());
    b.unlock(&vault, &key).unwrap();
    assert_eq!(strip(&b), strip(&a));
    assert!(b.blind_streams().unwrap().is_empty());
    b.check_stored(&a.stored_head(&s).unwrap(), &writer)
        .unwrap();
    write(800, 10);
    let nb = crate::serve_all(&b, Vec::new()).await;
    assert_eq!(
        patients(&na, writer).streams_round(&nb, &b).await.unwrap(),
        10
    );
    assert_eq!(strip(&b), strip(&a));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_follows_its_writers_scavenge_and_relays_it() {
    let (_dirs, [writer, relay, third], [a, b, c]) = three(0).await;
    let key = writer.identity().public_key();
    let s = StreamId::new("orders-1").unwrap();
    let batch = |n: u64| -> Vec<NewEvent> {
        (0..n)
            .map(|i| NewEvent::new("E", format!("{i}").into_bytes()))
            .collect()
    };
    writer.append(&s, ExpectedVersion::Any, batch(700)).unwrap();
    let from_writer = follow(&a, key);
    assert_eq!(from_writer.streams_round(&b, &relay).await.unwrap(), 700);
    // The writer's retention removes its bundles 0 and 1 and 512..599;
    // the replica does too in its next round.
    let tb = hydra_eventlog::StreamMetadata {
        truncate_before: Some(600),
        ..Default::default()
    };
    writer.set_metadata(&s, tb).unwrap();
    writer.scavenge().unwrap();
    writer.append(&s, ExpectedVersion::Any, batch(50)).unwrap();
    assert_eq!(from_writer.streams_round(&b, &relay).await.unwrap(), 50);
    let read = |log: &EventLog| -> Vec<String> {
        events(log, &s)
            .into_iter()
            .map(|e| format!("{} {}", e.version, e.id))
            .collect()
    };
    assert_eq!(read(&relay), read(&writer));
    assert!(read(&relay)[0].starts_with("600 "));
    // A third peer that holds nothing takes it from the relay, from 600.
    let from_relay = BucketFollow {
        from: vec![b.listening()[0].clone()],
        ..from_writer.clone()
    };
    assert_eq!(from_relay.streams_round(&c, &third).await.unwrap(), 150);
    assert_eq!(read(&third), read(&writer));
    let events = events(&third, &s);
    for e in [&events[0], &events[149]] {
        let (head, proof) = third.prove(&s, e.version).unwrap();
        verify_event(&head, &key, e, &proof).unwrap();
    }
    assert_eq!(third.head(&s).unwrap(), writer.head(&s).unwrap());
}
