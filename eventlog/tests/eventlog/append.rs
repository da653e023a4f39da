use hydra_eventlog::{Error, ExpectedVersion, NewEvent, StreamWrite};
use uuid::Uuid;

use crate::{ev, open, read_all_of, sid};

#[test]
fn expected_versions_follow_kurrentdb() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("order-1");
    let err = log
        .append(&s, ExpectedVersion::StreamExists, vec![ev("A", "1")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stream order-1 is at version none (no stream), expected stream_exists"
    );
    let err = log
        .append(&s, ExpectedVersion::Exact(0), vec![ev("A", "1")])
        .unwrap_err();
    assert!(matches!(
        err,
        Error::WrongExpectedVersion { actual: None, .. }
    ));
    let r = log
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![ev("A", "1"), ev("B", "2")],
        )
        .unwrap();
    assert_eq!(
        (r.first_version, r.version, r.first_position, r.position),
        (0, 1, 0, 1)
    );
    let err = log
        .append(&s, ExpectedVersion::NoStream, vec![ev("A", "1")])
        .unwrap_err();
    assert!(matches!(
        err,
        Error::WrongExpectedVersion {
            actual: Some(1),
            ..
        }
    ));
    let err = log
        .append(&s, ExpectedVersion::Exact(0), vec![ev("A", "1")])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stream order-1 is at version 1, expected 0"
    );
    let r = log
        .append(&s, ExpectedVersion::Exact(1), vec![ev("C", "3")])
        .unwrap();
    assert_eq!(r.version, 2);
    let r = log
        .append(&s, ExpectedVersion::StreamExists, vec![ev("D", "4")])
        .unwrap();
    assert_eq!(r.version, 3);
    let r = log
        .append(&s, ExpectedVersion::Any, vec![ev("E", "5")])
        .unwrap();
    assert_eq!((r.version, r.position), (4, 4));
    assert_eq!(log.stream_version(&s).unwrap(), Some(4));
    // A failed append wrote nothing.
    assert_eq!(read_all_of(&log, &s).len(), 5);
    assert_eq!(log.next_position(), 5);
}

#[test]
fn retries_with_the_same_ids_return_the_first_result_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("payments");
    let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
    let batch = || vec![ev("Paid", "1").with_id(a), ev("Paid", "2").with_id(b)];
    let first = log.append(&s, ExpectedVersion::NoStream, batch()).unwrap();
    // Same ids, even with a now-stale expectation: the same answer.
    let again = log.append(&s, ExpectedVersion::NoStream, batch()).unwrap();
    assert_eq!(first, again);
    assert_eq!(read_all_of(&log, &s).len(), 2);
    assert_eq!(log.next_position(), 2);
    // An id reused at another place is an error naming where it is.
    let err = log
        .append(
            &s,
            ExpectedVersion::Any,
            vec![ev("Paid", "3"), ev("Paid", "x").with_id(b)],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("event id {b} was already appended to stream payments at version 1")
    );
    let err = log
        .append(
            &sid("other"),
            ExpectedVersion::Any,
            vec![ev("Paid", "x").with_id(a)],
        )
        .unwrap_err();
    assert!(
        matches!(err, Error::DuplicateEventId { version: 0, .. }),
        "{err}"
    );
    let err = log
        .append(
            &s,
            ExpectedVersion::Any,
            vec![ev("P", "1").with_id(a), ev("P", "2").with_id(a)],
        )
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateInAppend { .. }));
    // Survives a restart.
    drop(log);
    let log = open(dir.path());
    assert_eq!(
        log.append(&s, ExpectedVersion::Any, batch()).unwrap(),
        first
    );
    assert_eq!(log.get_event(b).unwrap().version, 1);
}

#[test]
fn multi_stream_appends_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let (a, b) = (sid("a"), sid("b"));
    log.append(&b, ExpectedVersion::Any, vec![ev("X", "0")])
        .unwrap();
    let writes = |eb| {
        vec![
            StreamWrite {
                stream: a.clone(),
                expected: ExpectedVersion::NoStream,
                events: vec![ev("T", "1"), ev("T", "2")],
                bucket: None,
                partition_key: None,
            },
            StreamWrite {
                stream: b.clone(),
                expected: eb,
                events: vec![ev("T", "3")],
                bucket: None,
                partition_key: None,
            },
        ]
    };
    let err = log
        .append_multi(writes(ExpectedVersion::Exact(5)))
        .unwrap_err();
    assert!(matches!(err, Error::WrongExpectedVersion { .. }));
    assert!(
        !log.exists(&a).unwrap(),
        "nothing of a failed multi-append is visible"
    );
    assert_eq!(log.next_position(), 1);
    let rs = log.append_multi(writes(ExpectedVersion::Exact(0))).unwrap();
    assert_eq!(
        (rs[0].first_version, rs[0].version, rs[1].version),
        (0, 1, 1)
    );
    assert_eq!((rs[0].first_position, rs[1].position), (1, 3));
    let err = log
        .append_multi(vec![
            StreamWrite {
                stream: a.clone(),
                expected: ExpectedVersion::Any,
                events: vec![ev("T", "1")],
                bucket: None,
                partition_key: None,
            },
            StreamWrite {
                stream: a.clone(),
                expected: ExpectedVersion::Any,
                events: vec![ev("T", "1")],
                bucket: None,
                partition_key: None,
            },
        ])
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stream a appears twice in one multi-stream append"
    );
}

#[test]
fn bad_input_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("s");
    assert!(matches!(
        log.append(&s, ExpectedVersion::Any, vec![]),
        Err(Error::EmptyAppend)
    ));
    let err = log
        .append(
            &s,
            ExpectedVersion::Any,
            vec![NewEvent::new("", b"x".to_vec())],
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "event type \"\" is invalid: it must be 1 to 256 bytes"
    );
    assert!(hydra_eventlog::StreamId::new("$all").is_err());
    assert!(!log.exists(&s).unwrap());
}

#[test]
fn events_keep_every_field_and_get_v7_ids() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("full");
    let mut e = NewEvent::new("Typed", vec![0u8, 255, 7]).with_metadata(b"{\"m\":1}".to_vec());
    e.timestamp = Some(1_700_000_000_000);
    log.append(&s, ExpectedVersion::Any, vec![e, ev("Later", "{}")])
        .unwrap();
    let got = read_all_of(&log, &s);
    assert_eq!(got[0].data, vec![0, 255, 7]);
    assert_eq!(got[0].metadata, b"{\"m\":1}");
    assert_eq!(got[0].timestamp, 1_700_000_000_000);
    assert_eq!(got[0].id.get_version_num(), 8);
    assert!(got[1].timestamp > 1_700_000_000_000);
    assert_eq!(log.get_event(got[1].id).unwrap(), got[1]);
    assert!(matches!(
        log.get_event(Uuid::new_v4()),
        Err(Error::EventNotFound(_))
    ));
}

/// Ids the log assigns need no index, yet work like any other: found by
/// `get_event`, and a retry that sends one back is idempotent. A client id
/// that merely looks like one of ours is indexed as usual.
#[test]
fn assigned_ids_work_without_an_index() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("assigned");
    log.append(&s, ExpectedVersion::Any, vec![ev("A", "1"), ev("B", "2")])
        .unwrap();
    let events = read_all_of(&log, &s);
    assert_eq!(log.get_event(events[1].id).unwrap(), events[1]);
    let retry = log
        .append(
            &s,
            ExpectedVersion::NoStream,
            vec![
                ev("A", "1").with_id(events[0].id),
                ev("B", "2").with_id(events[1].id),
            ],
        )
        .unwrap();
    assert_eq!((retry.first_version, retry.version), (0, 1));
    assert_eq!(read_all_of(&log, &s).len(), 2, "the retry wrote nothing");
    // A look-alike id: our layout, but naming position 1 whose record has
    // another id. It is a client id like any other.
    let mut fake = *events[1].id.as_bytes();
    fake[0] ^= 0xff;
    let fake = Uuid::from_bytes(fake);
    log.append(&s, ExpectedVersion::Any, vec![ev("C", "3").with_id(fake)])
        .unwrap();
    assert_eq!(log.get_event(fake).unwrap().event_type, "C");
    assert!(matches!(
        log.get_event(Uuid::from_bytes([0x11; 16])),
        Err(Error::EventNotFound(_))
    ));
}
