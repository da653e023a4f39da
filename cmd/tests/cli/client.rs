//! `hydra-client` against a real daemon, and the embedded event log, run
//! through the same code ([`EventStore`]): every call answers the same
//! way, errors of the same kinds, payloads byte for byte.

use futures_util::{StreamExt, TryStreamExt};
use hydra_client::Client;
use hydra_eventlog::{
    AllFilter, AllRead, Direction, ErrorKind, EventLog, EventStore, ExpectedVersion, NewEvent,
    Options, ReadFrom, RecordedEvent, StoreError, StreamId, StreamMetadata, StreamRead,
    StreamWrite, Target,
};
use uuid::Uuid;

use crate::daemon::Daemon;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn id(s: &str) -> StreamId {
    s.parse().unwrap()
}

fn kind<T: std::fmt::Debug, E: StoreError>(r: Result<T, E>) -> ErrorKind {
    r.expect_err("an error").kind()
}

/// What a store answers to one script of calls, with what differs between
/// two stores (ids the log chose, times, signatures by other keys) left
/// out.
async fn script<S: EventStore>(store: &S) -> Vec<String> {
    let mut seen = Vec::new();
    let mut note = |s: String| seen.push(s);
    let order = id("order-1");
    let exact = br#"{"b": 1,  "a":2}"#.to_vec();
    let events = vec![
        NewEvent::new("Placed", exact.clone()).with_metadata(vec![0, 255, 1]),
        NewEvent::new("Paid", b" 42 ".to_vec()),
        NewEvent::new("Shipped", Vec::new()),
    ];
    let r = store
        .write(StreamWrite::new(
            order.clone(),
            ExpectedVersion::NoStream,
            events,
        ))
        .await
        .unwrap();
    note(format!("append {} {}", r.first_version, r.version));
    // A retried append with the same id answers the first result.
    let again = NewEvent {
        id: Some(Uuid::from_u128(7)),
        ..NewEvent::new("Noted", b"{}".to_vec())
    };
    let first = store
        .write(StreamWrite::new(
            id("notes"),
            ExpectedVersion::Any,
            vec![again.clone()],
        ))
        .await
        .unwrap();
    let second = store
        .write(StreamWrite::new(
            id("notes"),
            ExpectedVersion::Any,
            vec![again],
        ))
        .await
        .unwrap();
    note(format!("idempotent {}", first == second));
    note(format!(
        "conflict {:?}",
        kind(
            store
                .write(StreamWrite::new(
                    order.clone(),
                    ExpectedVersion::Exact(0),
                    vec![NewEvent::new("Late", Vec::new())],
                ))
                .await
        )
    ));
    let read: Vec<RecordedEvent> = store
        .read(&order, StreamRead::forward())
        .try_collect()
        .await
        .unwrap();
    for e in &read {
        note(format!(
            "event {} {} {:?} {:?}",
            e.version, e.event_type, e.data, e.metadata
        ));
    }
    assert_eq!(read[0].data, exact, "payloads come back byte for byte");
    let back: Vec<u64> = store
        .read(
            &order,
            StreamRead {
                from: ReadFrom::Version(1),
                count: 2,
                direction: Direction::Backward,
                at_length: None,
            },
        )
        .map_ok(|e| e.version)
        .try_collect()
        .await
        .unwrap();
    note(format!("backwards {back:?}"));
    let then: Vec<u64> = store
        .read(
            &order,
            StreamRead {
                at_length: Some(2),
                ..StreamRead::forward()
            },
        )
        .map_ok(|e| e.version)
        .try_collect()
        .await
        .unwrap();
    note(format!("at length 2 {then:?}"));
    let all: Vec<String> = store
        .read_all(AllRead {
            from: None,
            count: u64::MAX,
            direction: Direction::Forward,
            filter: AllFilter {
                stream_prefix: Some("order-".into()),
                event_types: vec!["Paid".into(), "Shipped".into()],
            },
        })
        .map_ok(|e| format!("{}@{}", e.event_type, e.position))
        .try_collect()
        .await
        .unwrap();
    note(format!("all {all:?}"));
    let missing: Result<Vec<RecordedEvent>, _> = store
        .read(&id("nowhere"), StreamRead::forward())
        .try_collect()
        .await;
    note(format!("missing stream {:?}", kind(missing)));
    note(format!(
        "event by id {}",
        store.get_event(read[1].id).await.unwrap().event_type
    ));
    note(format!(
        "version {:?}",
        store.stream_version(&order).await.unwrap()
    ));
    note(format!(
        "no version {:?}",
        store.stream_version(&id("nowhere")).await.unwrap()
    ));
    let streams: Vec<String> = store
        .list_streams("")
        .await
        .unwrap()
        .into_iter()
        .map(|s| format!("{} {:?} {:?}", s.stream, s.version, s.bucket))
        .collect();
    note(format!("streams {streams:?}"));
    let metadata = StreamMetadata {
        max_count: Some(10),
        custom: Some(r#"{"owner":"x"}"#.into()),
        ..StreamMetadata::default()
    };
    store.set_metadata(&order, metadata.clone()).await.unwrap();
    assert_eq!(store.metadata(&order).await.unwrap(), metadata);
    // Snapshots, with metadata that is not JSON.
    // (Its block holds the time it was saved: refs differ between stores.)
    let r = store
        .save_snapshot(&order, 1, b"state".to_vec(), vec![9, 0, 9])
        .await
        .unwrap();
    let s = store.load_snapshot(&order, None).await.unwrap();
    note(format!(
        "snapshot {} {:?} {:?}",
        s.version, s.data, s.metadata
    ));
    let listed = store.list_snapshots(&order).await.unwrap();
    assert_eq!((listed[0].version, listed[0].reference), (1, r));
    note(format!(
        "no snapshot before {:?}",
        kind(store.load_snapshot(&order, Some(0)).await)
    ));
    note(format!(
        "delete snapshot {} {}",
        store.delete_snapshot(&order, 5).await.unwrap(),
        store.delete_snapshot(&order, 1).await.unwrap()
    ));
    note(format!(
        "delete snapshot of nothing {:?}",
        kind(store.delete_snapshot(&id("nowhere"), 1).await)
    ));
    note(format!(
        "delete snapshots {}",
        store.delete_snapshots(&order).await.unwrap()
    ));
    // Proofs verify against the head's signer, payloads exactly as stored.
    let head = store.head(&order, None).await.unwrap();
    let p = store.prove(&order, 0).await.unwrap();
    hydra_eventlog::verify_event(&p.head, &head.signer, &p.event, &p.proof).unwrap();
    assert_eq!(p.event.data, exact);
    let prefix = store.prove_prefix(&order, 1).await.unwrap();
    hydra_eventlog::verify_consistency(&prefix.old_head, &prefix.head, &head.signer, &prefix.proof)
        .unwrap();
    note(format!(
        "heads {} {} {}",
        head.length,
        store.head(&order, Some(2)).await.unwrap().length,
        prefix.old_head.length
    ));
    note(format!(
        "no such length {:?}",
        kind(store.head(&order, Some(9)).await)
    ));
    // A subscription catches up, then goes live.
    let mut live = Box::pin(store.subscribe(Target::Stream(order.clone()), Some(1)));
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push(live.next().await.unwrap().unwrap().version);
    }
    store
        .write(StreamWrite::new(
            order.clone(),
            ExpectedVersion::Exact(2),
            vec![NewEvent::new("Delivered", Vec::new())],
        ))
        .await
        .unwrap();
    got.push(live.next().await.unwrap().unwrap().version);
    drop(live);
    note(format!("subscribed {got:?}"));
    store
        .delete(&order, ExpectedVersion::Exact(3), true)
        .await
        .unwrap();
    let read_again: Result<Vec<RecordedEvent>, _> = store
        .read(&order, StreamRead::forward())
        .try_collect()
        .await;
    note(format!(
        "tombstoned: version {:?}, read {:?}, append {:?}",
        store.stream_version(&order).await.map_err(|e| e.kind()),
        kind(read_again),
        kind(
            store
                .write(StreamWrite::new(
                    order.clone(),
                    ExpectedVersion::Any,
                    vec![NewEvent::new("Zombie", Vec::new())],
                ))
                .await
        )
    ));
    let r = store.scavenge().await.unwrap();
    note(format!("scavenged {} {}", r.streams, r.events));
    let r = store.reindex().await.unwrap();
    note(format!("reindexed {} {}", r.streams, r.events));
    seen
}

#[test]
fn the_client_and_the_embedded_log_answer_the_same() {
    let runtime = runtime();
    let here = tempfile::tempdir().unwrap();
    let log = EventLog::open_dir(here.path(), Options::default()).unwrap();
    let embedded = runtime.block_on(script(&log));
    log.close().unwrap();

    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let client = Client::new(&d.url).unwrap();
    let remote = runtime.block_on(script(&client));
    assert_eq!(embedded, remote);
    assert!(embedded.len() > 20, "{embedded:#?}");
}

/// An append without event ids gets ids from the client before its first
/// attempt (so a retry cannot write twice); the log would otherwise choose.
#[test]
fn the_client_names_its_events_so_retries_are_idempotent() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let client = Client::new(&d.url).unwrap();
    runtime.block_on(async {
        let s = id("s");
        client
            .write(StreamWrite::new(
                s.clone(),
                ExpectedVersion::Any,
                vec![NewEvent::new("A", Vec::new())],
            ))
            .await
            .unwrap();
        let e: Vec<RecordedEvent> = client
            .read(&s, StreamRead::forward())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(e[0].id.get_version_num(), 4, "chosen by the client");
        // Unreachable: one line naming the daemon, a kind to act on.
        let gone = Client::builder("http://127.0.0.1:9")
            .retries(1)
            .build()
            .unwrap();
        let err = gone.stream_version(&s).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(
            err.to_string()
                .starts_with("cannot reach the daemon at http://127.0.0.1:9"),
            "{err}"
        );
    });
}

/// A proxy to `upstream` that forwards the first request whole, waits for
/// the daemon to answer it, and then drops the connection without passing
/// the answer on (an answer lost on the way back); later connections it
/// passes through both ways.
fn losing_first_answer(upstream: String) -> String {
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().enumerate() {
            let Ok(mut client) = client else { return };
            let mut daemon = TcpStream::connect(&upstream).unwrap();
            if n == 0 {
                // The request: headers, then Content-Length bytes of body.
                let mut req = Vec::new();
                let mut byte = [0u8; 1];
                while !req.ends_with(b"\r\n\r\n") {
                    client.read_exact(&mut byte).unwrap();
                    req.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&req).to_lowercase();
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                let mut body = vec![0u8; len];
                client.read_exact(&mut body).unwrap();
                daemon.write_all(&req).unwrap();
                daemon.write_all(&body).unwrap();
                // Wait for the answer (the append committed), then lose it.
                let mut answer = [0u8; 12];
                daemon.read_exact(&mut answer).unwrap();
                assert!(answer.starts_with(b"HTTP/1.1 201"));
                drop(client);
                continue;
            }
            let (mut c2, mut d2) = (client.try_clone().unwrap(), daemon.try_clone().unwrap());
            std::thread::spawn(move || std::io::copy(&mut c2, &mut d2));
            std::thread::spawn(move || std::io::copy(&mut daemon, &mut client));
        }
    });
    format!("http://{addr}")
}

/// An append whose answer is lost after it committed is retried, with the
/// same event ids, and the daemon answers the first result: one event.
#[test]
fn an_append_retried_after_a_lost_answer_is_written_once() {
    let runtime = runtime();
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let upstream = d.url.trim_start_matches("http://").to_owned();
    let client = Client::new(&losing_first_answer(upstream)).unwrap();
    runtime.block_on(async {
        let s = id("payments");
        let r = client
            .write(StreamWrite::new(
                s.clone(),
                ExpectedVersion::NoStream,
                vec![NewEvent::new("Paid", br#"{"amount": 5}"#.to_vec())],
            ))
            .await
            .unwrap();
        assert_eq!((r.first_version, r.version), (0, 0));
        let events: Vec<RecordedEvent> = client
            .read(&s, StreamRead::forward())
            .try_collect()
            .await
            .unwrap();
        assert_eq!(events.len(), 1, "written once");
    });
}

/// What a blob store answers to one script of calls on blocks and objects.
async fn blob_script<B: hydra_bucket::BlobStore>(store: &B) -> Vec<String> {
    let mut seen = Vec::new();
    let b: hydra_bucket::BucketName = "default".parse().unwrap();
    let nowhere: hydra_bucket::BucketName = "nowhere".parse().unwrap();
    let r = store.put_block(&b, b"hello".to_vec(), true).await.unwrap();
    seen.push(format!("put {r}"));
    seen.push(format!("has {}", store.has_block(&b, &r).await.unwrap()));
    seen.push(format!("get {:?}", store.get_block(&b, &r).await.unwrap()));
    seen.push(format!("ls {:?}", store.list_blocks(&b).await.unwrap()));
    seen.push(format!(
        "rm {} {}",
        store.delete_block(&b, &r).await.unwrap(),
        store.delete_block(&b, &r).await.unwrap()
    ));
    seen.push(format!("has {}", store.has_block(&b, &r).await.unwrap()));
    seen.push(format!(
        "absent {:?} {:?} {:?}",
        kind(store.get_block(&b, &r).await),
        kind(store.has_block(&nowhere, &r).await),
        kind(store.list_objects(&nowhere, "").await)
    ));
    // An object of several chunks, a key with a slash and a space.
    let data = crate::noise(9, 3_000_000);
    let info = store
        .put_object(&b, "docs/a b.bin", std::io::Cursor::new(data.clone()))
        .await
        .unwrap();
    seen.push(format!("object {} {} {}", info.key, info.size, info.root));
    assert_eq!(
        store.object(&b, "docs/a b.bin").await.unwrap(),
        Some(info.clone())
    );
    let mut back = Vec::new();
    assert_eq!(
        store
            .get_object(&b, "docs/a b.bin", &mut back)
            .await
            .unwrap(),
        info
    );
    assert!(back == data, "the object comes back byte for byte");
    seen.push(format!(
        "objects {:?}",
        store.list_objects(&b, "docs/").await.unwrap()
    ));
    seen.push(format!(
        "rm object {} {} {:?}",
        store.delete_object(&b, "docs/a b.bin").await.unwrap(),
        store.delete_object(&b, "docs/a b.bin").await.unwrap(),
        store.object(&b, "docs/a b.bin").await.unwrap()
    ));
    seen.push(format!(
        "get gone {:?}",
        kind(store.get_object(&b, "docs/a b.bin", Vec::new()).await)
    ));
    seen
}

#[test]
fn the_client_and_the_embedded_store_keep_the_same_blocks_and_objects() {
    let runtime = runtime();
    let here = tempfile::tempdir().unwrap();
    let volume = hydra_volume::open_dir(here.path(), hydra_volume::OpenOptions::default()).unwrap();
    let store = hydra_bucket::Store::open(volume).unwrap();
    let embedded = runtime.block_on(blob_script(&store));

    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let remote = runtime.block_on(blob_script(&Client::new(&d.url).unwrap()));
    assert_eq!(embedded, remote);
}

/// What a store answers to one script of operator calls (buckets, gc,
/// export, import into `fresh`, verify), with its streams and objects
/// written through the other traits; what differs between two stores
/// (peer ids, sizes that hold times and signatures) left out.
async fn admin_script<A, B>(admin: &A, blobs: &B, fresh: &A) -> Vec<String>
where
    A: hydra_eventlog::Admin + EventStore,
    B: hydra_bucket::BlobStore,
{
    use hydra_bucket::CreateOptions;
    use hydra_eventlog::Export;
    let mut seen = Vec::new();
    let logs: hydra_bucket::BucketName = "logs".parse().unwrap();
    let default = hydra_bucket::BucketName::default_bucket();
    let nowhere: hydra_bucket::BucketName = "nowhere".parse().unwrap();
    let zstd = CreateOptions {
        zstd_level: Some(5),
        key: None,
    };
    let c = admin.create_bucket(&logs, zstd.clone()).await.unwrap();
    seen.push(format!(
        "created {} v{} {:?}",
        c.id, c.version, c.transforms
    ));
    seen.push(format!(
        "refused {:?} {:?} {:?}",
        kind(admin.create_bucket(&logs, zstd).await),
        kind(admin.bucket(&nowhere).await),
        kind(admin.remove_bucket(&default).await)
    ));
    let c = admin.update_bucket(&logs, None, Some(5)).await.unwrap();
    seen.push(format!("updated {} v{}", c.id, c.version));
    let names: Vec<String> = admin
        .buckets()
        .await
        .unwrap()
        .iter()
        .map(|c| format!("{} v{}", c.id, c.version))
        .collect();
    seen.push(format!("buckets {names:?}"));

    // Streams in two buckets, an object, a block no root keeps.
    for (stream, n) in [("orders-1", 300), ("orders-2", 5)] {
        let events = (0..n)
            .map(|i| NewEvent::new("Placed", format!(r#"{{"n": {i}}}"#).into_bytes()))
            .collect();
        let mut write = StreamWrite::new(id(stream), ExpectedVersion::NoStream, events);
        if stream == "orders-2" {
            write.bucket = Some(logs.clone());
        }
        admin.write(write).await.unwrap();
    }
    let data = crate::noise(3, 700_000);
    blobs
        .put_object(&default, "docs/a", std::io::Cursor::new(data))
        .await
        .unwrap();
    blobs
        .put_block(&default, b"loose".to_vec(), false)
        .await
        .unwrap();
    let shown = admin.bucket(&default).await.unwrap();
    seen.push(format!(
        "shown {} {} {:?}",
        shown.config.id, shown.blocks, shown.writes_refused
    ));
    for bucket in [Some(&logs), None] {
        for c in admin.gc(bucket).await.unwrap() {
            let r = c.report;
            seen.push(format!(
                "gc {} freed {} kept {} roots {} missing {:?}",
                c.bucket, r.freed, r.kept, r.roots, r.missing
            ));
        }
    }

    // Exports: the client counts what the daemon streamed as the log
    // counts what it writes.
    let files = tempfile::tempdir().unwrap();
    for (name, what) in [
        (
            "streams",
            Export::Streams(vec![id("orders-1"), id("orders-2")]),
        ),
        ("bucket", Export::Bucket(default.clone())),
        ("all", Export::All),
    ] {
        let mut car = Vec::new();
        let r = admin.export(&what, &mut car).await.unwrap();
        assert_eq!(
            hydra_eventlog::ExportReport::scan(&car[..]).unwrap(),
            r,
            "{name}"
        );
        seen.push(format!("export {name} {r:?}"));
        std::fs::write(files.path().join(name), car).unwrap();
    }
    seen.push(format!(
        "export refused {:?}",
        kind(
            admin
                .export(&Export::Streams(vec![id("nothing-here")]), Vec::new())
                .await
        )
    ));
    // A writer takes nothing back; another store takes the streams,
    // then again only what is new, and the bucket.
    seen.push(format!(
        "import refused {:?} {:?}",
        kind(admin.import(&files.path().join("streams"), &[]).await),
        kind(fresh.import(&files.path().join("nothing"), &[]).await)
    ));
    std::fs::write(files.path().join("garbage"), b"not a CAR file").unwrap();
    for name in ["streams", "streams", "bucket", "garbage"] {
        let r = fresh.import(&files.path().join(name), &[]).await;
        seen.push(format!("import {name} {:?}", r.map_err(|e| e.kind())));
    }

    for v in admin.verify().await.unwrap() {
        let e = v.events.unwrap();
        seen.push(format!(
            "verify {} blocks, corrupt {:?}; {} records {} bundles {} tiles, corrupt {:?}",
            v.report.blocks, v.report.corrupt, e.records, e.bundles, e.tiles, e.corrupt
        ));
    }
    let info = admin.volume().await.unwrap();
    seen.push(format!(
        "volume {} buckets {} blocks {}",
        info.backend, info.buckets, info.blocks
    ));
    // A bucket that holds streams stays; one that holds blocks goes.
    let spare: hydra_bucket::BucketName = "spare".parse().unwrap();
    admin
        .create_bucket(&spare, CreateOptions::default())
        .await
        .unwrap();
    blobs.put_block(&spare, b"x".to_vec(), true).await.unwrap();
    seen.push(format!(
        "removed {:?} {}",
        kind(admin.remove_bucket(&logs).await),
        admin.remove_bucket(&spare).await.unwrap()
    ));
    seen
}

#[test]
fn the_client_and_the_embedded_log_administer_the_same() {
    let runtime = runtime();
    let here = tempfile::tempdir().unwrap();
    let log = EventLog::open_dir(here.path(), Options::default()).unwrap();
    let there = tempfile::tempdir().unwrap();
    let fresh = EventLog::open_dir(there.path(), Options::default()).unwrap();
    let embedded = runtime.block_on(admin_script(&log, log.store(), &fresh));
    log.close().unwrap();
    fresh.close().unwrap();

    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let d = dirs.each_ref().map(|dir| Daemon::start(dir.path(), &[]));
    let client = d.each_ref().map(|d| Client::new(&d.url).unwrap());
    let remote = runtime.block_on(admin_script(&client[0], &client[0], &client[1]));
    assert_eq!(embedded, remote);
    assert!(embedded.len() > 15, "{embedded:#?}");
}
