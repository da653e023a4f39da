//! SierraDB's own Rust client (`sierradb-client` 0.3, on the `redis`
//! crate) against the daemon's RESP3 port: every command it has, every
//! reply field it parses, and the error codes it sees. What SierraDB
//! users already run must work unchanged, with SierraDB's partitions:
//! 32, each numbering its events from 0 without gaps.

use std::time::{Duration, SystemTime};

use hydra_eventlog::partition_of;
use redis::Connection;
use sierradb_client::{
    Commands, EAppendOptions, EMAppendEvent, Event, EventSubscription, ExpectedVersion,
    SierraMessage, SubscriptionManager, stream_partition_key,
};
use uuid::Uuid;

use crate::daemon::Daemon;

fn start(dir: &std::path::Path) -> (Daemon, redis::Client) {
    let d = Daemon::start(dir, &["--resp", "127.0.0.1:0"]);
    let addr = d.resp.clone().expect("the daemon printed its RESP address");
    let client = redis::Client::open(format!("redis://{addr}/?protocol=resp3")).unwrap();
    (d, client)
}

/// The error code SierraDB's client sees for a failed command.
fn code(e: redis::RedisError) -> String {
    e.code().map(str::to_owned).unwrap_or_else(|| e.to_string())
}

fn near_now(t: SystemTime) -> bool {
    let now = SystemTime::now();
    now.duration_since(t)
        .or_else(|e| Ok::<_, ()>(e.duration()))
        .unwrap()
        < Duration::from_secs(60)
}

/// A key whose partition is none of `taken`.
fn key_outside(taken: &[u16]) -> Uuid {
    loop {
        let k = Uuid::new_v4();
        if !taken.contains(&partition_of(&k)) {
            return k;
        }
    }
}

#[test]
fn every_command_of_sierradbs_client_parses_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, client) = start(dir.path());
    let mut c: Connection = client.get_connection().unwrap();

    let hello = c.hello(3).unwrap();
    assert_eq!((hello.server.as_str(), hello.num_partitions), ("hydra", 32));
    assert!(!hello.version.is_empty() && hello.peer_id.starts_with("12D3KooW"));
    assert_eq!(c.ping().unwrap(), "PONG");

    // EAPPEND: every field; the partition of SierraDB's key for the
    // stream, numbered from 0 without gaps.
    let p1 = partition_of(&stream_partition_key("order-1"));
    let placed = c
        .eappend(
            "order-1",
            "Placed",
            EAppendOptions::new()
                .payload(&br#"{"total":42}"#[..])
                .metadata(&b"m1"[..])
                .expected_version(ExpectedVersion::Empty),
        )
        .unwrap();
    assert_eq!(placed.partition_key, stream_partition_key("order-1"));
    assert_eq!(
        (
            placed.partition_id,
            placed.partition_sequence,
            placed.stream_version
        ),
        (p1, 0, 0)
    );
    assert!(near_now(placed.timestamp));
    let id = Uuid::now_v7();
    let paid = c
        .eappend(
            "order-1",
            "Paid",
            EAppendOptions::new()
                .event_id(id)
                .expected_version(ExpectedVersion::Exact(0)),
        )
        .unwrap();
    assert_eq!(paid.event_id, id);
    assert_eq!((paid.partition_id, paid.partition_sequence), (p1, 1));
    // A retry with the same id is the first append's answer.
    let again = c
        .eappend("order-1", "Paid", EAppendOptions::new().event_id(id))
        .unwrap();
    assert_eq!((again.stream_version, again.partition_sequence), (1, 1));
    // A given key places a new stream in its partition, numbered there.
    let key = key_outside(&[p1]);
    let p2 = partition_of(&key);
    let keyed = c
        .eappend(
            "order-2",
            "Placed",
            EAppendOptions::new().partition_key(key),
        )
        .unwrap();
    assert_eq!(
        (
            keyed.partition_key,
            keyed.partition_id,
            keyed.partition_sequence
        ),
        (key, p2, 0)
    );
    // Later appends without a key keep the stream's; another key is refused.
    let later = c.eappend("order-2", "Paid", EAppendOptions::new()).unwrap();
    assert_eq!((later.partition_key, later.partition_sequence), (key, 1));
    let moved = c.eappend(
        "order-2",
        "Paid",
        EAppendOptions::new().partition_key(stream_partition_key("order-2")),
    );
    assert_eq!(code(moved.unwrap_err()), "INVALIDARG");

    // EMAPPEND: all or nothing in the key's partition, every event with
    // its own fields and consecutive sequences.
    let events = [
        EMAppendEvent::new("acct-1", "Debited").payload(&b"{}"[..]),
        EMAppendEvent::new("acct-2", "Credited").payload(&b"{}"[..]),
    ];
    let multi = c.emappend(key, &events).unwrap();
    assert_eq!((multi.partition_key, multi.partition_id), (key, p2));
    assert_eq!(
        (
            multi.first_partition_sequence,
            multi.last_partition_sequence
        ),
        (2, 3)
    );
    for (i, (e, stream)) in multi.events.iter().zip(["acct-1", "acct-2"]).enumerate() {
        assert_eq!((e.stream_id.as_str(), e.stream_version), (stream, 0));
        assert_eq!((e.partition_id, e.partition_sequence), (p2, 2 + i as u64));
        assert!(near_now(e.timestamp));
    }
    let conflict = [
        EMAppendEvent::new("acct-1", "Debited").expected_version(ExpectedVersion::Empty),
        EMAppendEvent::new("acct-3", "Credited"),
    ];
    assert_eq!(code(c.emappend(key, &conflict).unwrap_err()), "WRONGVER");
    assert_eq!(c.esver("acct-3").unwrap(), None, "nothing of it was stored");
    let elsewhere = [EMAppendEvent::new("order-1", "Noted")];
    assert_eq!(
        code(c.emappend(key, &elsewhere).unwrap_err()),
        "INVALIDARG",
        "order-1 is in another partition"
    );
    assert_eq!(c.epseq_by_id(p2).unwrap(), Some(3), "no sequence was used");

    // EGET: the whole event; an unknown id is None.
    let got = c.eget(placed.event_id).unwrap().unwrap();
    assert_eq!(
        (got.stream_id.as_str(), got.event_name.as_str()),
        ("order-1", "Placed")
    );
    assert_eq!(got.payload, br#"{"total":42}"#);
    assert_eq!(got.metadata, b"m1");
    assert_eq!(got.partition_key, stream_partition_key("order-1"));
    assert_eq!((got.partition_id, got.partition_sequence), (p1, 0));
    assert_eq!(c.eget(Uuid::new_v4()).unwrap(), None);

    // ESCAN: pages with SierraDB's has_more, under the stream's own key.
    let all = c.escan("order-1", 0, None, Some(10)).unwrap();
    assert_eq!(all.events.len(), 2);
    assert!(!all.has_more);
    assert_eq!(
        all.events
            .iter()
            .map(|e| e.partition_sequence)
            .collect::<Vec<_>>(),
        [0, 1]
    );
    let first = c.escan("order-1", 0, None, Some(1)).unwrap();
    assert_eq!((first.events.len(), first.has_more), (1, true));
    let bounded = c.escan("order-1", 0, Some(0), None).unwrap();
    assert_eq!((bounded.events.len(), bounded.has_more), (1, true));
    let keyed_scan = c
        .escan_with_partition_key("order-2", key, 1, None, None)
        .unwrap();
    assert_eq!(keyed_scan.events[0].event_name, "Paid");
    let wrong_key = c
        .escan_with_partition_key("order-2", stream_partition_key("order-2"), 0, None, None)
        .unwrap();
    assert!(wrong_key.events.is_empty(), "not under that key");
    assert!(c.escan("nobody", 0, None, None).unwrap().events.is_empty());

    // ESVER.
    assert_eq!(c.esver("order-1").unwrap(), Some(1));
    assert_eq!(c.esver_with_partition_key("order-2", key).unwrap(), Some(1));
    assert_eq!(
        c.esver_with_partition_key("order-2", stream_partition_key("order-2"))
            .unwrap(),
        None
    );
    assert_eq!(c.esver("nobody").unwrap(), None);

    // EPSCAN and EPSEQ: one partition, by number or key, by sequence.
    let scan = c.epscan_by_id(p2, 0, None, Some(100)).unwrap();
    assert_eq!(
        scan.events
            .iter()
            .map(|e| (e.stream_id.as_str(), e.partition_sequence))
            .collect::<Vec<_>>(),
        [("order-2", 0), ("order-2", 1), ("acct-1", 2), ("acct-2", 3)]
    );
    assert!(!scan.has_more);
    let page = c.epscan_by_key(key, 1, Some(2), None).unwrap();
    assert_eq!(page.events.len(), 2);
    assert!(page.has_more, "an event lies past the end bound");
    assert_eq!(c.epscan_by_id(p1, 0, None, None).unwrap().events.len(), 2);
    assert_eq!(c.epseq_by_id(p1).unwrap(), Some(1));
    assert_eq!(c.epseq_by_key(key).unwrap(), Some(3));
    let empty = key_outside(&[p1, p2]);
    assert_eq!(c.epseq_by_key(empty).unwrap(), None);
    assert!(
        c.epscan_by_key(empty, 0, None, None)
            .unwrap()
            .events
            .is_empty()
    );
    assert_eq!(
        code(c.epscan_by_id(32, 0, None, None).unwrap_err()),
        "INVALIDARG"
    );

    // Errors: SierraDB's codes.
    let wrong = c.eappend(
        "order-1",
        "Late",
        EAppendOptions::new().expected_version(ExpectedVersion::Exact(7)),
    );
    assert_eq!(code(wrong.unwrap_err()), "WRONGVER");
    let bad_stream = c.eappend("$all", "X", EAppendOptions::new());
    assert_eq!(code(bad_stream.unwrap_err()), "INVALIDARG");
}

/// The next event `sub` delivers and its cursor (confirmations skipped),
/// waiting at most `wait` for each message; `None` if none comes.
async fn next_event(sub: &mut EventSubscription, wait: Duration) -> Option<(Event, u64)> {
    loop {
        match tokio::time::timeout(wait, sub.next_message()).await {
            Ok(Some(SierraMessage::Event { event, cursor })) => return Some((event, cursor)),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return None,
        }
    }
}

#[test]
fn sierradbs_subscription_manager_catches_up_then_follows() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, client) = start(dir.path());
    let mut c = client.get_connection().unwrap();
    for i in 0..3 {
        c.eappend(
            "cart-1",
            "Added",
            EAppendOptions::new().payload(format!("{{\"i\":{i}}}").into_bytes()),
        )
        .unwrap();
    }
    // A stream in another partition.
    let cart_partition = partition_of(&stream_partition_key("cart-1"));
    let other = key_outside(&[cart_partition]);
    c.eappend(
        "other-1",
        "Noted",
        EAppendOptions::new().partition_key(other),
    )
    .unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        // A manager per subscription: on one connection, redis-rs may take
        // the first subscription's `subscribe` push for the second's reply
        // (SierraDB's server sends the same frames in the same order).
        let mut by_stream = SubscriptionManager::new(&client).await.unwrap();
        let mut stream = by_stream
            .subscribe_to_stream_from_version("cart-1", 0)
            .await
            .unwrap();
        let mut by_partition = SubscriptionManager::new(&client).await.unwrap();
        let mut all = by_partition
            .subscribe_to_all_partitions(0, None)
            .await
            .unwrap();
        let ten = Duration::from_secs(10);
        let mut versions = Vec::new();
        for i in 0..4 {
            if i == 3 {
                c.eappend("cart-1", "Added", EAppendOptions::new()).unwrap();
            }
            let (event, cursor) = next_event(&mut stream, ten)
                .await
                .expect("an event within 10 s");
            assert_eq!(cursor, event.stream_version);
            versions.push(event.stream_version);
        }
        assert_eq!(versions, [0, 1, 2, 3]);
        // Every partition: the other stream's event too, each numbered in
        // its own partition; the cursor is the partition sequence.
        let mut seen = Vec::new();
        for _ in 0..5 {
            let (event, cursor) = next_event(&mut all, ten)
                .await
                .expect("an event within 10 s");
            assert_eq!(cursor, event.partition_sequence);
            seen.push((event.stream_id, cursor));
        }
        seen.sort();
        let cart = |i: u64| ("cart-1".to_string(), i);
        assert_eq!(
            seen,
            [cart(0), cart(1), cart(2), cart(3), ("other-1".into(), 0)]
        );
        // One partition, from a sequence: only its events, from there.
        let mut by_id = SubscriptionManager::new(&client).await.unwrap();
        let mut one = by_id
            .subscribe_to_partition_from_sequence(cart_partition, 2)
            .await
            .unwrap();
        let mut cursors = Vec::new();
        for _ in 0..2 {
            let (event, cursor) = next_event(&mut one, ten)
                .await
                .expect("an event within 10 s");
            assert_eq!(event.stream_id, "cart-1");
            cursors.push(cursor);
        }
        assert_eq!(cursors, [2, 3]);

        // A window of 2: the third event waits for EACK.
        let mut windowed = SubscriptionManager::new(&client).await.unwrap();
        let mut sub = windowed
            .subscribe_to_stream_from_version_with_window("cart-1", 0, 2)
            .await
            .unwrap();
        let half = Duration::from_millis(500);
        let mut cursor = async || next_event(&mut sub, half).await.map(|(_, c)| c);
        assert_eq!((cursor().await, cursor().await), (Some(0), Some(1)));
        assert_eq!(cursor().await, None, "the window is full");
        sub.acknowledge_up_to_cursor(1).await.unwrap();
        let mut rest = Vec::new();
        for _ in 0..2 {
            if let Some((_, c)) = next_event(&mut sub, Duration::from_secs(5)).await {
                rest.push(c);
            }
        }
        assert_eq!(rest, [2, 3]);
    });
}
