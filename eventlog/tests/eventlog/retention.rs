use hydra_eventlog::{
    AllFilter, Direction, Error, ExpectedVersion, ReadFrom, StreamMetadata, verify_event,
};

use crate::{ev, fill, open, read_all_of, sid};

#[test]
fn soft_delete_hides_and_a_new_append_continues_the_versions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("cart");
    fill(&log, &s, 3);
    log.delete(&s, ExpectedVersion::Exact(2), false).unwrap();
    assert!(matches!(
        log.read(&s, ReadFrom::Edge, 10, Direction::Forward),
        Err(Error::StreamNotFound(_))
    ));
    assert!(!log.exists(&s).unwrap());
    assert_eq!(log.stream_version(&s).unwrap(), None);
    let r = log
        .append(&s, ExpectedVersion::NoStream, vec![ev("Again", "{}")])
        .unwrap();
    assert_eq!(r.version, 3, "versions continue after a soft delete");
    let seen = read_all_of(&log, &s);
    assert_eq!(seen.iter().map(|e| e.version).collect::<Vec<_>>(), [3]);
}

#[test]
fn hard_delete_is_forever() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("gone");
    fill(&log, &s, 3);
    log.delete(&s, ExpectedVersion::Any, true).unwrap();
    let err = log
        .read(&s, ReadFrom::Edge, 1, Direction::Forward)
        .err()
        .unwrap();
    assert_eq!(
        err.to_string(),
        "stream gone is deleted (tombstoned) and can never be written or read again"
    );
    assert!(matches!(
        log.append(&s, ExpectedVersion::Any, vec![ev("X", "1")]),
        Err(Error::StreamDeleted(_))
    ));
    assert!(matches!(
        log.delete(&s, ExpectedVersion::Any, false),
        Err(Error::StreamDeleted(_))
    ));
    drop(log);
    let log = open(dir.path());
    assert!(matches!(
        log.append(&s, ExpectedVersion::Any, vec![ev("X", "1")]),
        Err(Error::StreamDeleted(_))
    ));
}

#[test]
fn metadata_rules_limit_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("sensor");
    fill(&log, &s, 10);
    let versions = |log: &hydra_eventlog::EventLog| {
        read_all_of(log, &s)
            .iter()
            .map(|e| e.version)
            .collect::<Vec<_>>()
    };
    log.set_metadata(
        &s,
        StreamMetadata {
            max_count: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(versions(&log), [7, 8, 9]);
    log.set_metadata(
        &s,
        StreamMetadata {
            truncate_before: Some(5),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(versions(&log), [5, 6, 7, 8, 9]);
    let backward: Vec<_> = log
        .read(&s, ReadFrom::Edge, 100, Direction::Backward)
        .unwrap()
        .map(|e| e.unwrap().version)
        .collect();
    assert_eq!(backward, [9, 8, 7, 6, 5]);
    let mut old = ev("Old", "{}");
    old.timestamp = Some(1000);
    let aged = sid("aged");
    log.append(&aged, ExpectedVersion::Any, vec![old.clone(), old])
        .unwrap();
    fill(&log, &aged, 2);
    log.set_metadata(
        &aged,
        StreamMetadata {
            max_age: Some(3600),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        read_all_of(&log, &aged)
            .iter()
            .map(|e| e.version)
            .collect::<Vec<_>>(),
        [2, 3]
    );
}

#[test]
fn scavenge_reclaims_hidden_events_and_survivors_still_prove() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let key = log.identity().public_key();
    let (keep, drop_s, hard) = (sid("keep"), sid("drop"), sid("hard"));
    fill(&log, &keep, 600);
    fill(&log, &drop_s, 50);
    fill(&log, &hard, 20);
    log.set_metadata(
        &keep,
        StreamMetadata {
            truncate_before: Some(300),
            ..Default::default()
        },
    )
    .unwrap();
    log.delete(&drop_s, ExpectedVersion::Any, false).unwrap();
    log.delete(&hard, ExpectedVersion::Any, true).unwrap();
    let head_before = log.head(&keep).unwrap();

    let report = log.scavenge().unwrap();
    assert_eq!(report.events, 300 + 50 + 20);
    assert_eq!(log.scavenge().unwrap().events, 0, "nothing left to do");
    let all: Vec<_> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(all.len(), 300);
    assert!(all.iter().all(|e| e.stream == keep && e.version >= 300));

    // The head is unchanged and survivors still prove, at every offset.
    let head = log.head(&keep).unwrap();
    assert_eq!(head.root, head_before.root);
    let events = read_all_of(&log, &keep);
    for e in [&events[0], &events[1], &events[150], &events[299]] {
        let (h, p) = log.prove(&keep, e.version).unwrap();
        verify_event(&h, &key, e, &p).unwrap();
    }
    assert!(matches!(
        log.prove(&keep, 10),
        Err(Error::Scavenged { version: 10, .. })
    ));
    // Versions go on after a scavenge, and new events prove too.
    log.append(&keep, ExpectedVersion::Exact(599), vec![ev("After", "{}")])
        .unwrap();
    let last = read_all_of(&log, &keep).pop().unwrap();
    let (h, p) = log.prove(&keep, 600).unwrap();
    verify_event(&h, &key, &last, &p).unwrap();
    // A soft-deleted stream can come back after a scavenge.
    let r = log
        .append(&drop_s, ExpectedVersion::NoStream, vec![ev("Back", "{}")])
        .unwrap();
    assert_eq!(r.version, 50);
    let (h, p) = log.prove(&drop_s, 50).unwrap();
    verify_event(&h, &key, &read_all_of(&log, &drop_s)[0], &p).unwrap();
}

/// Scavenging the newest events must not let their positions be handed out
/// again after a restart.
#[test]
fn positions_are_never_reused_after_scavenging_the_tail() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    fill(&log, &sid("early"), 5);
    fill(&log, &sid("late"), 5);
    log.delete(&sid("late"), ExpectedVersion::Any, true)
        .unwrap();
    assert_eq!(log.scavenge().unwrap().events, 5);
    log.close().unwrap();
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.next_position(), 10);
    let r = log
        .append(&sid("new"), ExpectedVersion::Any, vec![ev("N", "{}")])
        .unwrap();
    assert_eq!(r.position, 10);
}

/// Scavenging, retention and reindexing race appenders that retry every
/// append with the same event ids until it succeeds: every acknowledged
/// event is there exactly once, with its data, and proves; what the
/// scavenges removed is only what retention allowed.
#[test]
fn scavenge_retention_and_reindex_race_appends_with_idempotent_retries() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    // Appenders: 4 streams, batches of 1-300 events with ids, each retried
    // (with the same ids) on any error, then once more as a client whose
    // answer was lost would.
    let appenders: Vec<_> = (0..4u64)
        .map(|w| {
            let log = log.clone();
            std::thread::spawn(move || {
                let s = sid(&format!("kept-{w}"));
                let mut acked = Vec::new();
                for b in 0..40u64 {
                    let n = 1 + (b * 37 + w * 11) % 300;
                    let events: Vec<_> = (0..n)
                        .map(|i| ev("E", &format!("{w}:{b}:{i}")).with_id(uuid::Uuid::new_v4()))
                        .collect();
                    let r = loop {
                        match log.append(&s, ExpectedVersion::Any, events.clone()) {
                            Ok(r) => break r,
                            Err(_) => continue,
                        }
                    };
                    let again = log
                        .append(&s, ExpectedVersion::Any, events.clone())
                        .unwrap();
                    assert_eq!(again, r, "a retry returns the first result");
                    acked.extend(events.into_iter().map(|e| (e.id.unwrap(), e.data)));
                }
                acked
            })
        })
        .collect();
    // Meanwhile: a stream with retention that keeps growing, scavenged,
    // and the whole log reindexed, over and over.
    let churn = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let s = sid("churn");
            log.set_metadata(
                &s,
                StreamMetadata {
                    max_count: Some(100),
                    ..Default::default()
                },
            )
            .unwrap();
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) || rounds < 3 {
                log.append(
                    &s,
                    ExpectedVersion::Any,
                    (0..300).map(|_| ev("C", "x")).collect(),
                )
                .unwrap();
                log.scavenge().unwrap();
                if rounds % 3 == 0 {
                    log.reindex().unwrap();
                }
                rounds += 1;
            }
            rounds
        })
    };
    let acked: Vec<Vec<(uuid::Uuid, Vec<u8>)>> =
        appenders.into_iter().map(|a| a.join().unwrap()).collect();
    stop.store(true, Ordering::SeqCst);
    let rounds = churn.join().unwrap();
    assert!(rounds >= 3);
    log.scavenge().unwrap();
    let key = log.identity().public_key();
    for (w, acked) in acked.iter().enumerate() {
        let read = read_all_of(&log, &sid(&format!("kept-{w}")));
        let got: Vec<(uuid::Uuid, Vec<u8>)> = read.iter().map(|e| (e.id, e.data.clone())).collect();
        assert_eq!(&got, acked, "every acknowledged event once, in order");
        for e in read.iter().step_by(97).chain(read.last()) {
            let (head, proof) = log.prove(&e.stream, e.version).unwrap();
            hydra_eventlog::verify_event(&head, &key, e, &proof).unwrap();
            assert_eq!(log.get_event(e.id).unwrap(), *e);
        }
    }
    let churn = read_all_of(&log, &sid("churn"));
    assert_eq!(churn.len(), 100, "retention keeps the last 100");
    assert_eq!(churn.last().unwrap().version, rounds * 300 - 1);
    assert!(log.verify(|_| {}).unwrap().corrupt.is_empty());
}
