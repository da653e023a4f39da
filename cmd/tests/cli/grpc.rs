//! The gRPC API on a real daemon: a Rust (tonic) client, and Python
//! grpcio through server reflection as a client nobody here wrote.

use std::process::Command;

use crate::daemon::Daemon;

pub use hydra::proto as pb;

use pb::event_store_client::EventStoreClient;

fn start(dir: &std::path::Path) -> (Daemon, String) {
    let d = Daemon::start(dir, &["--grpc", "127.0.0.1:0"]);
    let addr = d.grpc.clone().expect("the daemon printed its gRPC address");
    (d, addr)
}

fn expected_exact(v: u64) -> Option<pb::ExpectedVersion> {
    Some(pb::ExpectedVersion {
        kind: Some(pb::expected_version::Kind::Exact(v)),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rust_client_drives_every_kind_of_call() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path());
    let mut c = EventStoreClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let ev = |t: &str, data: &[u8]| pb::NewEvent {
        r#type: t.into(),
        data: data.to_vec(),
        ..Default::default()
    };
    let r = c
        .append(pb::AppendRequest {
            stream: "order-1".into(),
            expected: Some(pb::ExpectedVersion {
                kind: Some(pb::expected_version::Kind::NoStream(pb::Empty {})),
            }),
            events: vec![ev("Placed", b"{}"), ev("Paid", b"{}")],
            bucket: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((r.first_version, r.version, r.position), (0, 1, 1));

    let err = c
        .append(pb::AppendRequest {
            stream: "order-1".into(),
            expected: expected_exact(0),
            events: vec![ev("Late", b"")],
            bucket: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(err.message(), "stream order-1 is at version 1, expected 0");
    assert_eq!(err.metadata().get("actual-version").unwrap(), "1");
    let err = c
        .append(pb::AppendRequest {
            stream: "$all".into(),
            expected: None,
            events: vec![ev("X", b"")],
            bucket: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    let multi = c
        .append_multi(pb::AppendMultiRequest {
            streams: vec![
                pb::AppendRequest {
                    stream: "a".into(),
                    expected: None,
                    events: vec![ev("A", b"")],
                    bucket: None,
                },
                pb::AppendRequest {
                    stream: "b".into(),
                    expected: expected_exact(7),
                    events: vec![ev("B", b"")],
                    bucket: None,
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(multi.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        c.stream_version(pb::StreamVersionRequest { stream: "a".into() })
            .await
            .unwrap()
            .into_inner()
            .version,
        None
    );

    let mut read = c
        .read_stream(pb::ReadStreamRequest {
            stream: "order-1".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut types = Vec::new();
    while let Some(e) = read.message().await.unwrap() {
        types.push(e.r#type);
    }
    assert_eq!(types, ["Placed", "Paid"]);
    let err = c
        .read_stream(pb::ReadStreamRequest {
            stream: "missing".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound);

    // Subscribe: history, then a live append.
    let mut sub = c
        .subscribe_to_all(pb::SubscribeToAllRequest {
            from: Some(0),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sub.message().await.unwrap().unwrap().position, 0);
    assert_eq!(sub.message().await.unwrap().unwrap().position, 1);
    let mut c2 = c.clone();
    c2.append(pb::AppendRequest {
        stream: "order-1".into(),
        expected: expected_exact(1),
        events: vec![ev("Shipped", b"")],
        bucket: None,
    })
    .await
    .unwrap();
    let live = sub.message().await.unwrap().unwrap();
    assert_eq!((live.r#type.as_str(), live.version), ("Shipped", 2));

    // Persistent subscription, snapshots, proofs, deletes, health.
    c.create_subscription(pb::CreateSubscriptionRequest {
        name: "w".into(),
        stream: "order-1".into(),
        from: Some(0),
        window: 2,
        ..Default::default()
    })
    .await
    .unwrap();
    let got = c
        .read_subscription(pb::ReadSubscriptionRequest {
            name: "w".into(),
            max: 10,
            timeout_ms: 100,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.events.len(), 2);
    c.ack(pb::AckRequest {
        name: "w".into(),
        position: 1,
    })
    .await
    .unwrap();
    c.delete_subscription(pb::DeleteSubscriptionRequest { name: "w".into() })
        .await
        .unwrap();
    c.save_snapshot(pb::SaveSnapshotRequest {
        stream: "order-1".into(),
        version: 1,
        data: b"s".to_vec(),
        metadata: vec![],
    })
    .await
    .unwrap();
    assert_eq!(
        c.load_snapshot(pb::LoadSnapshotRequest {
            stream: "order-1".into(),
            at: None
        })
        .await
        .unwrap()
        .into_inner()
        .version,
        1
    );
    assert_eq!(
        c.list_snapshots(pb::ListSnapshotsRequest {
            stream: "order-1".into()
        })
        .await
        .unwrap()
        .into_inner()
        .versions,
        [1]
    );
    let p = c
        .prove(pb::ProveRequest {
            stream: "order-1".into(),
            version: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(p.head.unwrap().length, 3);
    let cons = c
        .prove_consistency(pb::ProveConsistencyRequest {
            stream: "order-1".into(),
            old_length: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cons.old_head.unwrap().length, 1);
    c.delete_stream(pb::DeleteStreamRequest {
        stream: "order-1".into(),
        expected: None,
        hard: true,
    })
    .await
    .unwrap();
    let err = c
        .get_head(pb::GetHeadRequest {
            stream: "order-1".into(),
            length: None,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        c.health(pb::HealthRequest {})
            .await
            .unwrap()
            .into_inner()
            .status,
        "ok"
    );
    // A new stream's bucket, and a stream's bucket fixed thereafter.
    c.append(pb::AppendRequest {
        stream: "audit-1".into(),
        expected: None,
        events: vec![ev("Noted", b"{}")],
        bucket: Some("default".into()),
    })
    .await
    .unwrap();
    let err = c
        .append(pb::AppendRequest {
            stream: "audit-2".into(),
            expected: None,
            events: vec![ev("Noted", b"{}")],
            bucket: Some("nowhere".into()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::NotFound, "{err:?}");
    assert_eq!(err.message(), "bucket nowhere does not exist");
}

#[test]
fn python_grpcio_through_reflection() {
    let dir = tempfile::tempdir().unwrap();
    let (_d, addr) = start(dir.path());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/grpc_blackbox.py");
    let out = Command::new("python3")
        .args([script, &addr])
        .output()
        .expect("python3 runs (.ci/run installs grpcio)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "grpcio suite failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.trim_end().ends_with("5 passed, 0 failed"),
        "{stdout}"
    );
}
