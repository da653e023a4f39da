use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hydra_eventlog::{Error, ExpectedVersion, Target};

use crate::{ev, fill, open, sid};

/// History then live, while writers race the switch: every event exactly
/// once, in order.
#[test]
fn catch_up_then_live_neither_drops_nor_repeats_under_concurrent_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("hot");
    fill(&log, &s, 700);
    const WRITERS: u64 = 4;
    const PER_WRITER: u64 = 150;
    let all_sub = log
        .subscribe(
            Target::All {
                stream_prefix: None,
                event_types: vec![],
            },
            Some(0),
        )
        .unwrap();
    let stream_sub = log.subscribe(Target::Stream(s.clone()), Some(0)).unwrap();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let log = log.clone();
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..PER_WRITER {
                    let target = if i % 3 == 0 {
                        sid(&format!("side-{w}"))
                    } else {
                        s.clone()
                    };
                    log.append(
                        &target,
                        ExpectedVersion::Any,
                        vec![ev("Live", &i.to_string())],
                    )
                    .unwrap();
                }
            })
        })
        .collect();
    let total = 700 + WRITERS * PER_WRITER;
    let stream_total = 700 + WRITERS * (PER_WRITER - PER_WRITER.div_ceil(3));
    let mut all_sub = all_sub;
    let mut stream_sub = stream_sub;
    let got_all: Vec<u64> = (0..total)
        .map(|_| {
            all_sub
                .next_timeout(Duration::from_secs(20))
                .unwrap()
                .expect("an event")
                .position
        })
        .collect();
    let got_stream: Vec<u64> = (0..stream_total)
        .map(|_| {
            stream_sub
                .next_timeout(Duration::from_secs(20))
                .unwrap()
                .expect("an event")
                .version
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    assert_eq!(got_all, (0..total).collect::<Vec<_>>());
    assert_eq!(got_stream, (0..stream_total).collect::<Vec<_>>());
    assert_eq!(
        all_sub.next_timeout(Duration::from_millis(50)).unwrap(),
        None
    );
}

#[test]
fn from_now_filters_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    fill(&log, &sid("old"), 5);
    let mut sub = log
        .subscribe(
            Target::All {
                stream_prefix: Some("acct-".into()),
                event_types: vec!["Deposited".into()],
            },
            None,
        )
        .unwrap();
    let mut live = log.subscribe(Target::Stream(sid("acct-1")), None).unwrap();
    assert_eq!(sub.next_timeout(Duration::from_millis(20)).unwrap(), None);
    let l2 = log.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        l2.append(
            &sid("acct-1"),
            ExpectedVersion::Any,
            vec![ev("Opened", "{}"), ev("Deposited", "1")],
        )
        .unwrap();
        l2.append(
            &sid("other"),
            ExpectedVersion::Any,
            vec![ev("Deposited", "2")],
        )
        .unwrap();
        l2.append(
            &sid("acct-2"),
            ExpectedVersion::Any,
            vec![ev("Deposited", "3")],
        )
        .unwrap();
    });
    let a = sub.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
    let b = sub.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(
        (a.data.as_slice(), b.data.as_slice()),
        (&b"1"[..], &b"3"[..])
    );
    assert_eq!(
        live.next_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap()
            .event_type,
        "Opened"
    );
    t.join().unwrap();
    log.close().unwrap();
    assert!(matches!(
        sub.next_timeout(Duration::from_secs(1)),
        Err(Error::Closed)
    ));
}

/// A subscriber that never reads does not slow the writer down.
#[test]
fn a_stalled_subscriber_never_blocks_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let _stalled = log
        .subscribe(
            Target::All {
                stream_prefix: None,
                event_types: vec![],
            },
            Some(0),
        )
        .unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let l2 = log.clone();
    let t = std::thread::spawn(move || {
        fill(&l2, &sid("fast"), 5000);
        d2.store(true, Ordering::SeqCst);
    });
    t.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
}

#[test]
fn persistent_subscriptions_window_ack_and_resume_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let s = sid("jobs");
    {
        let log = open(dir.path());
        fill(&log, &s, 10);
        log.create_subscription("worker", Target::Stream(s.clone()), Some(0), 4)
            .unwrap();
        assert!(matches!(
            log.create_subscription("worker", Target::Stream(s.clone()), Some(0), 4),
            Err(Error::SubscriptionExists(_))
        ));
        let first = log
            .subscription_read("worker", 100, Duration::from_millis(100))
            .unwrap();
        assert_eq!(
            first.iter().map(|e| e.version).collect::<Vec<_>>(),
            [0, 1, 2, 3],
            "window of 4"
        );
        assert!(
            log.subscription_read("worker", 100, Duration::from_millis(10))
                .unwrap()
                .is_empty()
        );
        log.ack("worker", 1).unwrap();
        let next = log
            .subscription_read("worker", 100, Duration::from_millis(100))
            .unwrap();
        assert_eq!(next.iter().map(|e| e.version).collect::<Vec<_>>(), [4, 5]);
        assert!(matches!(
            log.ack("worker", 9),
            Err(Error::AckBeyondDelivered { .. })
        ));
        log.ack("worker", 3).unwrap();
        log.close().unwrap();
    }
    // After a restart: resume after the last ack (4 and 5 again: they were
    // delivered but not acknowledged).
    let log = open(dir.path());
    let again = log
        .subscription_read("worker", 2, Duration::from_millis(100))
        .unwrap();
    assert_eq!(again.iter().map(|e| e.version).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(log.subscriptions().unwrap().len(), 1);
    log.delete_subscription("worker").unwrap();
    assert!(matches!(
        log.subscription("worker"),
        Err(Error::SubscriptionNotFound(_))
    ));
}

/// A feed that reads each commit once and offers its events to many
/// subscriptions: each takes exactly its own, in order; one that misses
/// part of the feed says so and reads the rest from the log.
#[test]
fn subscriptions_take_their_events_from_a_shared_feed_and_read_what_they_missed() {
    use hydra_eventlog::{AllFilter, Direction, Offered, RecordedEvent, Subscription};
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    fill(&log, &sid("a"), 10);
    let (tx, rx) = std::sync::mpsc::channel();
    log.on_commit(move |next| {
        let _ = tx.send(next);
    });
    // From the start (catching up first), from now, and $all filtered.
    let mut subs: Vec<(Subscription, Vec<RecordedEvent>)> = vec![
        (
            log.subscribe(Target::Stream(sid("a")), Some(0)).unwrap(),
            vec![],
        ),
        (
            log.subscribe(Target::Stream(sid("b")), None).unwrap(),
            vec![],
        ),
        (
            log.subscribe(
                Target::All {
                    stream_prefix: Some("b".into()),
                    event_types: vec![],
                },
                None,
            )
            .unwrap(),
            vec![],
        ),
    ];
    // Catch up: what is already in the log.
    for (sub, got) in &mut subs {
        loop {
            let page = sub.poll().unwrap();
            if page.is_empty() {
                break;
            }
            got.extend(page);
        }
    }
    assert_eq!(subs[0].1.len(), 10);
    let mut fed = log.next_position();
    for round in 0..30u64 {
        for s in ["a", "b", "c"] {
            log.append(
                &sid(s),
                ExpectedVersion::Any,
                vec![ev("E", &format!("{round}"))],
            )
            .unwrap();
        }
        let next = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        while let Ok(n) = rx.try_recv() {
            assert!(n >= next);
        }
        let next = log.next_position().max(next);
        let events: Vec<RecordedEvent> = log
            .read_all(
                Some(fed),
                next - fed,
                Direction::Forward,
                AllFilter::default(),
            )
            .collect::<Result<_, _>>()
            .unwrap();
        let batch_from = fed;
        fed = next;
        for (i, (sub, got)) in subs.iter_mut().enumerate() {
            // Subscription 1 misses every fifth batch; subscription 2,
            // on $all, notices by the batch's first position.
            if round % 5 == 2 && i > 0 {
                continue;
            }
            let mut missed = i == 2 && sub.cursor() < batch_from;
            for e in &events {
                if missed {
                    break;
                }
                match sub.offer(e) {
                    Offered::Taken => got.push(e.clone()),
                    Offered::Passed => {}
                    Offered::Gap => missed = true,
                }
            }
            if missed {
                loop {
                    let page = sub.poll().unwrap();
                    if page.is_empty() {
                        break;
                    }
                    got.extend(page);
                }
            } else {
                sub.offered_through(next);
            }
        }
    }
    let versions = |got: &[RecordedEvent]| got.iter().map(|e| e.version).collect::<Vec<_>>();
    assert_eq!(versions(&subs[0].1), (0..40).collect::<Vec<_>>());
    assert_eq!(versions(&subs[1].1), (0..30).collect::<Vec<_>>());
    assert!(subs[2].1.iter().all(|e| e.stream.as_str() == "b"));
    assert_eq!(versions(&subs[2].1), (0..30).collect::<Vec<_>>());
}
