//! SierraDB's own Rust client (`sierradb-client` 0.3, on the `redis`
//! crate) against the daemon's RESP3 port: every command it has, every
//! reply field it parses, and the error codes it sees. What SierraDB
//! users already run must work unchanged, with Hydra's one partition
//! (`0`, whose sequence is `$all`; see README "Redis protocol").

use std::time::{Duration, SystemTime};

use redis::Connection;
use sierradb_client::{
    Commands, EAppendOptions, EMAppendEvent, ExpectedVersion, SierraMessage, SubscriptionManager,
    stream_partition_key,
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

#[test]
fn every_command_of_sierradbs_client_parses_and_answers() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, client) = start(dir.path());
    let mut c: Connection = client.get_connection().unwrap();

    let hello = c.hello(3).unwrap();
    assert_eq!((hello.server.as_str(), hello.num_partitions), ("hydra", 1));
    assert!(!hello.version.is_empty() && hello.peer_id.starts_with("12D3KooW"));
    assert_eq!(c.ping().unwrap(), "PONG");

    // EAPPEND: every field, the partition key SierraDB derives.
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
    assert_eq!((placed.partition_id, placed.stream_version), (0, 0));
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
    assert_eq!(paid.partition_sequence, placed.partition_sequence + 1);
    // A retry with the same id is the first append's answer.
    let again = c
        .eappend("order-1", "Paid", EAppendOptions::new().event_id(id))
        .unwrap();
    assert_eq!(again.stream_version, 1);
    // A given partition key comes back as given.
    let key = Uuid::new_v4();
    let keyed = c
        .eappend(
            "order-2",
            "Placed",
            EAppendOptions::new().partition_key(key),
        )
        .unwrap();
    assert_eq!(keyed.partition_key, key);

    // EMAPPEND: all or nothing, every event with its own fields.
    let events = [
        EMAppendEvent::new("acct-1", "Debited").payload(&b"{}"[..]),
        EMAppendEvent::new("acct-2", "Credited").payload(&b"{}"[..]),
    ];
    let multi = c.emappend(key, &events).unwrap();
    assert_eq!((multi.partition_key, multi.partition_id), (key, 0));
    assert_eq!(multi.events.len(), 2);
    assert_eq!(
        multi.last_partition_sequence,
        multi.first_partition_sequence + 1
    );
    for (e, stream) in multi.events.iter().zip(["acct-1", "acct-2"]) {
        assert_eq!((e.stream_id.as_str(), e.stream_version), (stream, 0));
        assert!(near_now(e.timestamp));
    }
    let conflict = [
        EMAppendEvent::new("acct-1", "Debited").expected_version(ExpectedVersion::Empty),
        EMAppendEvent::new("acct-3", "Credited"),
    ];
    assert_eq!(code(c.emappend(key, &conflict).unwrap_err()), "WRONGVER");
    assert_eq!(c.esver("acct-3").unwrap(), None, "nothing of it was stored");

    // EGET: the whole event; an unknown id is None.
    let got = c.eget(placed.event_id).unwrap().unwrap();
    assert_eq!(
        (got.stream_id.as_str(), got.event_name.as_str()),
        ("order-1", "Placed")
    );
    assert_eq!(got.payload, br#"{"total":42}"#);
    assert_eq!(got.metadata, b"m1");
    assert_eq!(got.partition_key, stream_partition_key("order-1"));
    assert_eq!(got.partition_sequence, placed.partition_sequence);
    assert_eq!(c.eget(Uuid::new_v4()).unwrap(), None);

    // ESCAN: pages with SierraDB's has_more.
    let all = c.escan("order-1", 0, None, Some(10)).unwrap();
    assert_eq!(all.events.len(), 2);
    assert!(!all.has_more);
    let first = c.escan("order-1", 0, None, Some(1)).unwrap();
    assert_eq!((first.events.len(), first.has_more), (1, true));
    let bounded = c.escan("order-1", 0, Some(0), None).unwrap();
    assert_eq!((bounded.events.len(), bounded.has_more), (1, true));
    let keyed_scan = c
        .escan_with_partition_key("order-1", stream_partition_key("order-1"), 1, None, None)
        .unwrap();
    assert_eq!(keyed_scan.events[0].event_name, "Paid");
    assert!(c.escan("nobody", 0, None, None).unwrap().events.is_empty());

    // ESVER.
    assert_eq!(c.esver("order-1").unwrap(), Some(1));
    assert_eq!(
        c.esver_with_partition_key("order-1", stream_partition_key("order-1"))
            .unwrap(),
        Some(1)
    );
    assert_eq!(c.esver("nobody").unwrap(), None);

    // EPSCAN and EPSEQ: partition 0 (or any key) is `$all`.
    let scan = c.epscan_by_id(0, 0, None, Some(100)).unwrap();
    assert_eq!(scan.events.len(), 5);
    assert!(!scan.has_more);
    assert_eq!(
        c.epscan_by_key(key, 2, Some(2), None).unwrap().events[0].stream_id,
        "order-2"
    );
    assert_eq!(c.epseq_by_id(0).unwrap(), Some(4));
    assert_eq!(c.epseq_by_key(key).unwrap(), Some(4));
    assert_eq!(
        code(c.epscan_by_id(5, 0, None, None).unwrap_err()),
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
        let mut versions = Vec::new();
        while versions.len() < 4 {
            if versions.len() == 3 {
                c.eappend("cart-1", "Added", EAppendOptions::new()).unwrap();
            }
            match tokio::time::timeout(Duration::from_secs(10), stream.next_message())
                .await
                .expect("an event within 10 s")
            {
                Some(SierraMessage::Event { event, cursor }) => {
                    assert_eq!(cursor, event.stream_version);
                    versions.push(event.stream_version);
                }
                Some(SierraMessage::SubscriptionConfirmed { .. }) => {}
                None => panic!("the subscription ended"),
            }
        }
        assert_eq!(versions, [0, 1, 2, 3]);
        let mut positions = Vec::new();
        while positions.len() < 4 {
            if let Some(SierraMessage::Event { event, .. }) =
                tokio::time::timeout(Duration::from_secs(10), all.next_message())
                    .await
                    .expect("an event within 10 s")
            {
                positions.push(event.partition_sequence);
            }
        }
        assert_eq!(positions, [0, 1, 2, 3]);

        // A window of 2: the third event waits for EACK.
        let mut windowed = SubscriptionManager::new(&client).await.unwrap();
        let mut sub = windowed
            .subscribe_to_stream_from_version_with_window("cart-1", 0, 2)
            .await
            .unwrap();
        let mut event = async || loop {
            match tokio::time::timeout(Duration::from_millis(500), sub.next_message()).await {
                Ok(Some(SierraMessage::Event { cursor, .. })) => return Some(cursor),
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return None,
            }
        };
        assert_eq!((event().await, event().await), (Some(0), Some(1)));
        assert_eq!(event().await, None, "the window is full");
        sub.acknowledge_up_to_cursor(1).await.unwrap();
        let mut rest = Vec::new();
        while let Ok(Some(m)) =
            tokio::time::timeout(Duration::from_secs(5), sub.next_message()).await
        {
            if let SierraMessage::Event { cursor, .. } = m {
                rest.push(cursor);
                if rest.len() == 2 {
                    break;
                }
            }
        }
        assert_eq!(rest, [2, 3]);
    });
}
