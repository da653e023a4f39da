//! Two nodes on loopback: a follower replicates a writer's streams,
//! verifying them, and trusts no other signer.

use std::time::Duration;

use hydra_eventlog::{
    EventLog, ExpectedVersion, NewEvent, Options, ReadFrom, StreamId, verify_event,
};
use hydra_net::{Follow, Node};

fn open(dir: &std::path::Path) -> EventLog {
    EventLog::open_dir(dir, Options::default()).unwrap()
}

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
    append(&writer, "other", 5);
    let listen = vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let a = Node::start(writer.clone(), listen.clone()).await.unwrap();
    let b = Node::start(follower.clone(), listen).await.unwrap();
    assert_eq!(
        a.peer_id().to_string(),
        writer.identity().peer_id().to_string(),
        "the volume's identity"
    );

    let follow = Follow {
        from: a.listening()[0].clone(),
        writer: writer.identity().public_key(),
        prefix: "orders".into(),
        retry: Duration::from_millis(50),
    };
    assert_eq!(follow.round(&b, &follower).await.unwrap(), 305);
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

    // New appends arrive on the next round; nothing twice.
    append(&writer, "orders-1", 7);
    assert_eq!(follow.round(&b, &follower).await.unwrap(), 7);
    assert_eq!(follow.round(&b, &follower).await.unwrap(), 0);

    // Live: the follow loop hears of new appends as they commit. With an
    // hour between retries, only the long poll can bring them in time.
    let live = Follow {
        retry: Duration::from_secs(3600),
        ..follow.clone()
    };
    let status = live.status();
    let task = tokio::spawn(live.run(b.clone(), follower.clone(), status.clone()));
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
    assert_eq!((report.events, report.last_error.as_deref()), (3, None));
    // The heads answer may predate the last of the three appends.
    assert!(report.peer_next_position.unwrap() > before, "{report:?}");

    // A follower that trusts another key refuses the writer's heads.
    let dc = tempfile::tempdir().unwrap();
    let stranger = open(dc.path());
    let c = Node::start(
        stranger.clone(),
        vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
    )
    .await
    .unwrap();
    let wrong = Follow {
        writer: [7u8; 32],
        ..follow
    };
    let err = wrong.round(&c, &stranger).await.unwrap_err();
    assert!(err.to_string().contains("not the trusted signer"), "{err}");
    assert_eq!(len(&stranger, "orders-1"), 0);
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
    let a = Node::start(writer.clone(), listen).await.unwrap();
    let b = Node::start(follower.clone(), Vec::new()).await.unwrap();
    assert!(
        b.listening().is_empty(),
        "a follower-only node listens on nothing"
    );
    let follow = Follow {
        from: a.listening()[0].clone(),
        writer: writer.identity().public_key(),
        prefix: "orders-".into(),
        retry: Duration::from_millis(50),
    };
    let err = follow.round(&b, &follower).await.unwrap_err();
    assert!(err.to_string().contains("orders-0"), "{err}");
    assert_eq!(
        (len(&follower, "orders-0"), len(&follower, "orders-1")),
        (1, 4)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_relays_the_writers_streams_to_a_third_peer() {
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (writer, relay, third) = (
        open(dirs[0].path()),
        open(dirs[1].path()),
        open(dirs[2].path()),
    );
    append(&writer, "orders-1", 20);
    let listen = || vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()];
    let a = Node::start(writer.clone(), listen()).await.unwrap();
    let b = Node::start(relay.clone(), listen()).await.unwrap();
    let c = Node::start(third.clone(), Vec::new()).await.unwrap();
    let key = writer.identity().public_key();
    let from_writer = Follow {
        from: a.listening()[0].clone(),
        writer: key,
        prefix: "orders".into(),
        retry: Duration::from_millis(50),
    };
    let from_relay = Follow {
        from: b.listening()[0].clone(),
        ..from_writer.clone()
    };
    assert_eq!(from_writer.round(&b, &relay).await.unwrap(), 20);
    // The writer is gone; the third peer trusts only the writer's key and
    // gets everything, verified, from the relay.
    drop(a);
    writer.close().unwrap();
    assert_eq!(from_relay.round(&c, &third).await.unwrap(), 20);
    let s = StreamId::new("orders-1").unwrap();
    assert_eq!(third.head(&s).unwrap(), relay.head(&s).unwrap());
    assert_eq!(third.head(&s).unwrap().signer, key);
}
