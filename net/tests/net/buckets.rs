//! Buckets: a blind replica stores, verifies and re-serves an encrypted
//! bucket it cannot read; a third peer with the key reads everything
//! through it; new and removed objects reach a live replica.

use std::time::{Duration, Instant};

use hydra_bucket::{BucketName, CreateOptions, Key, Store};
use hydra_net::{BucketFollow, Node, PeerId, Serving};

use crate::open;

/// Serves bucket `name` of `store` (with `key`, if given; public when
/// `public`), its objects and streams, and no other, to `allow` (or every
/// peer).
pub fn serve_to(
    allow: Vec<PeerId>,
    store: Store,
    name: &'static str,
    key: Option<Key>,
    public: bool,
) -> Serving {
    Serving {
        allow,
        buckets: Box::new(move |n| {
            if n != name {
                return None;
            }
            let b = store.bucket(&n.parse().ok()?, key.as_ref()).ok()?;
            Some((b, public))
        }),
    }
}

/// Serves bucket `name` to every peer.
pub fn serve(store: Store, name: &'static str, key: Option<Key>) -> Serving {
    serve_to(Vec::new(), store, name, key, false)
}

pub fn listen() -> Vec<hydra_net::Multiaddr> {
    vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()]
}

/// `len` pseudo-random bytes (BLAKE3's extendable output of the seed).
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blind_replica_serves_what_it_cannot_read() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b, c) = (
        open(dirs[0].path()),
        open(dirs[1].path()),
        open(dirs[2].path()),
    );
    let key = Key::generate().unwrap();
    let name: BucketName = "vault".parse().unwrap();
    a.store()
        .create_bucket(
            &name,
            CreateOptions {
                zstd_level: Some(3),
                key: Some(&key),
            },
        )
        .unwrap();
    let marker = b"NET-BLIND-PLAINTEXT-MARKER";
    let mut data = noise(3, 3_000_000);
    for i in 0..1000 {
        data[i * 3000..i * 3000 + marker.len()].copy_from_slice(marker);
    }
    let wa = a.store().bucket(&name, Some(&key)).unwrap();
    wa.put_object("big", &data[..], |_| {}).unwrap();
    wa.put_object("notes.txt", &b"hello"[..], |_| {}).unwrap();

    let na = Node::start(
        a.clone(),
        serve(a.store().clone(), "vault", Some(key.clone())),
        listen(),
    )
    .await
    .unwrap();
    let nb = Node::start(b.clone(), serve(b.store().clone(), "vault", None), listen())
        .await
        .unwrap();
    let nc = crate::serve_all(&c, Vec::new()).await;
    let writers = vec![a.identity().public_key()];

    // B holds no key.
    let to_b = BucketFollow {
        bucket: name.clone(),
        from: vec![na.listening()[0].clone()],
        writers: writers.clone(),
        retry: Duration::from_millis(50),
    };
    let status = to_b.status();
    to_b.round(&nb, b.store(), None, &status).await.unwrap();
    let report = status.lock().unwrap().clone();
    assert!(report.blocks_received > 40, "{report:?}");
    assert_eq!((report.objects, report.bad_blocks), (2, 0), "{report:?}");
    let wb = b.store().bucket(&name, None).unwrap();
    let err = wb.get_object("big", std::io::sink(), |_| {}).unwrap_err();
    assert!(err.to_string().contains("this peer has no key"), "{err}");
    assert!(b.store().verify(|_| {}).unwrap().corrupt.is_empty());

    // C trusts only A's key and fetches everything from B.
    let to_c = BucketFollow {
        from: vec![nb.listening()[0].clone()],
        ..to_b.clone()
    };
    let status = to_c.status();
    to_c.round(&nc, c.store(), Some(&key), &status)
        .await
        .unwrap();
    let wc = c.store().bucket(&name, Some(&key)).unwrap();
    let mut out = Vec::new();
    wc.get_object("big", &mut out, |_| {}).unwrap();
    assert!(out == data, "the object differs");
    let received = status.lock().unwrap().blocks_received;
    // Nothing is fetched twice.
    to_c.round(&nc, c.store(), Some(&key), &status)
        .await
        .unwrap();
    assert_eq!(status.lock().unwrap().blocks_received, received);
    assert!(nb.stats().snapshot().blocks_sent >= received);

    // Nothing B stored holds the plaintext.
    drop((nb, wb));
    b.close().unwrap();
    drop(b);
    let mut files = 0;
    for entry in walk(dirs[1].path()) {
        let bytes = std::fs::read(&entry).unwrap();
        files += 1;
        assert!(
            !bytes.windows(marker.len()).any(|w| w == marker),
            "plaintext in {}",
            entry.display()
        );
    }
    assert!(files > 0);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_and_removed_objects_reach_a_live_replica() {
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, b) = (open(dirs[0].path()), open(dirs[1].path()));
    let name: BucketName = "docs".parse().unwrap();
    a.store()
        .create_bucket(&name, CreateOptions::default())
        .unwrap();
    let wa = a.store().bucket(&name, None).unwrap();
    wa.put_object("one", &b"1"[..], |_| {}).unwrap();
    let na = Node::start(a.clone(), serve(a.store().clone(), "docs", None), listen())
        .await
        .unwrap();
    let nb = crate::serve_all(&b, Vec::new()).await;
    // With an hour between retries only the long poll can deliver.
    let follow = BucketFollow {
        bucket: name.clone(),
        from: vec![na.listening()[0].clone()],
        writers: vec![a.identity().public_key()],
        retry: Duration::from_secs(3600),
    };
    let status = follow.status();
    let task = tokio::spawn(follow.run(nb.clone(), b.store().clone(), None, status.clone()));
    let has = |key: &str| {
        b.store()
            .bucket(&name, None)
            .ok()
            .and_then(|wb| wb.object(key).ok().flatten())
            .is_some()
    };
    let wait = |what: &str, done: &dyn Fn() -> bool| {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done() {
            assert!(
                Instant::now() < deadline,
                "{what}: {:?}",
                status.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    wait("the first object", &|| has("one"));
    let put = Instant::now();
    wa.put_object("two", &noise(9, 200_000)[..], |_| {})
        .unwrap();
    wait("a new object", &|| has("two"));
    assert!(
        put.elapsed() < Duration::from_secs(5),
        "{:?}",
        put.elapsed()
    );
    wa.remove_object("one").unwrap();
    wait("a removal", &|| !has("one"));
    // The report follows the round that applied it.
    wait("the report", &|| status.lock().unwrap().rounds.caught_up);
    task.abort();
    let report = status.lock().unwrap().clone();
    assert!(
        report.rounds.caught_up && report.rounds.last_error.is_none(),
        "{report:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_peers_read_streams_and_private_buckets() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (a, friend, stranger) = (
        open(dirs[0].path()),
        open(dirs[1].path()),
        open(dirs[2].path()),
    );
    for name in ["private", "public"] {
        a.store()
            .create_bucket(&name.parse().unwrap(), CreateOptions::default())
            .unwrap();
        a.store()
            .bucket(&name.parse().unwrap(), None)
            .unwrap()
            .put_object("k", &b"v"[..], |_| {})
            .unwrap();
    }
    let s = hydra_eventlog::StreamId::new("orders").unwrap();
    a.append(
        &s,
        hydra_eventlog::ExpectedVersion::Any,
        vec![hydra_eventlog::NewEvent::new("E", b"{}".to_vec())],
    )
    .unwrap();
    let friend_id = friend.identity().peer_id().to_string().parse().unwrap();
    let store = a.store().clone();
    let serving = Serving {
        allow: vec![friend_id],
        buckets: Box::new(move |n| {
            let b = store.bucket(&n.parse().ok()?, None).ok()?;
            Some((b, n == "public"))
        }),
    };
    let na = Node::start(a.clone(), serving, listen()).await.unwrap();
    let writers = vec![a.identity().public_key()];
    let bucket = |name: &str, from: &Node| BucketFollow {
        bucket: name.parse().unwrap(),
        from: vec![from.listening()[0].clone()],
        writers: writers.clone(),
        retry: Duration::from_millis(50),
    };
    // Streams go as their bucket does: `default` is served to allowed
    // peers only.
    let streams = bucket("default", &na);
    for (log, allowed) in [(&friend, true), (&stranger, false)] {
        let node = crate::serve_all(log, Vec::new()).await;
        let status = bucket("public", &na).status();
        bucket("public", &na)
            .round(&node, log.store(), None, &status)
            .await
            .unwrap();
        let private = bucket("private", &na)
            .round(&node, log.store(), None, &status)
            .await;
        let read = streams.streams_round(&node, log).await;
        if allowed {
            private.unwrap();
            assert_eq!(read.unwrap(), 1);
        } else {
            let e = private.unwrap_err().to_string();
            assert!(e.contains("bucket private is not served to peer"), "{e}");
            let e = read.unwrap_err().to_string();
            assert!(e.contains("bucket default is not served to peer"), "{e}");
            assert!(log.stream_version(&s).unwrap().is_none());
        }
    }
}
