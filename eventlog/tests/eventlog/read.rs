use hydra_eventlog::{AllFilter, Direction, Error, ExpectedVersion, ReadFrom};

use crate::{ev, fill, open, sid};

fn versions(it: impl Iterator<Item = Result<hydra_eventlog::RecordedEvent, Error>>) -> Vec<u64> {
    it.map(|e| e.unwrap().version).collect()
}

#[test]
fn stream_reads_both_ways_from_any_version() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("s");
    fill(&log, &s, 1200);
    fill(&log, &sid("noise"), 10);
    let read = |from, count, dir| versions(log.read(&s, from, count, dir).unwrap());
    assert_eq!(read(ReadFrom::Edge, 3, Direction::Forward), [0, 1, 2]);
    assert_eq!(
        read(ReadFrom::Edge, 3, Direction::Backward),
        [1199, 1198, 1197]
    );
    assert_eq!(
        read(ReadFrom::Version(600), 2, Direction::Forward),
        [600, 601]
    );
    assert_eq!(
        read(ReadFrom::Version(600), 2, Direction::Backward),
        [600, 599]
    );
    assert_eq!(
        read(ReadFrom::Version(1198), 10, Direction::Forward),
        [1198, 1199]
    );
    assert_eq!(read(ReadFrom::Version(1), 10, Direction::Backward), [1, 0]);
    assert!(read(ReadFrom::Version(5000), 10, Direction::Forward).is_empty());
    assert_eq!(
        read(ReadFrom::Version(5000), 1, Direction::Backward),
        [1199]
    );
    let all = read(ReadFrom::Edge, u64::MAX, Direction::Forward);
    assert_eq!(all, (0..1200).collect::<Vec<_>>());
    let back = read(ReadFrom::Edge, u64::MAX, Direction::Backward);
    assert_eq!(back, (0..1200).rev().collect::<Vec<_>>());
    assert!(matches!(
        log.read(&sid("missing"), ReadFrom::Edge, 1, Direction::Forward),
        Err(Error::StreamNotFound(_))
    ));
}

#[test]
fn all_reads_in_global_order_with_filters() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..30 {
        let s = sid(&format!(
            "{}-{}",
            if i % 3 == 0 { "user" } else { "order" },
            i % 5
        ));
        let t = if i % 2 == 0 { "Even" } else { "Odd" };
        log.append(&s, ExpectedVersion::Any, vec![ev(t, &i.to_string())])
            .unwrap();
    }
    let all: Vec<_> = log
        .read_all(None, u64::MAX, Direction::Forward, AllFilter::default())
        .map(|e| e.unwrap())
        .collect();
    assert_eq!(
        all.iter().map(|e| e.position).collect::<Vec<_>>(),
        (0..30).collect::<Vec<_>>()
    );
    let back: Vec<_> = log
        .read_all(Some(10), 3, Direction::Backward, AllFilter::default())
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(back, [10, 9, 8]);
    let from: Vec<_> = log
        .read_all(Some(28), 10, Direction::Forward, AllFilter::default())
        .map(|e| e.unwrap().position)
        .collect();
    assert_eq!(from, [28, 29]);
    let filter = AllFilter {
        stream_prefix: Some("user".into()),
        event_types: vec!["Even".into()],
    };
    let users: Vec<_> = log
        .read_all(None, u64::MAX, Direction::Forward, filter.clone())
        .map(|e| e.unwrap())
        .collect();
    assert!(!users.is_empty());
    assert!(
        users
            .iter()
            .all(|e| e.stream.as_str().starts_with("user") && e.event_type == "Even")
    );
    assert_eq!(
        users.len(),
        all.iter().filter(|e| filter.matches(e)).count()
    );
}

#[test]
fn listing_time_travel_and_versions() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for name in ["b/2", "a/1", "b/1"] {
        fill(&log, &sid(name), 3);
    }
    let listed: Vec<_> = log
        .list_streams("b/")
        .map(|s| s.unwrap().stream.to_string())
        .collect();
    assert_eq!(listed, ["b/1", "b/2"]);
    assert_eq!(log.list_streams("").count(), 3);
    let s = sid("a/1");
    assert_eq!(log.stream_version(&s).unwrap(), Some(2));
    assert_eq!(log.stream_version(&sid("none")).unwrap(), None);
    fill(&log, &s, 5);
    let old = versions(
        log.read_at(&s, 3, ReadFrom::Edge, 100, Direction::Forward)
            .unwrap(),
    );
    assert_eq!(old, [0, 1, 2]);
    let old_back = versions(
        log.read_at(&s, 3, ReadFrom::Edge, 100, Direction::Backward)
            .unwrap(),
    );
    assert_eq!(old_back, [2, 1, 0]);
    assert!(
        log.read_at(&s, 99, ReadFrom::Edge, 1, Direction::Forward)
            .is_err()
    );
}

/// Time travel by head: an old signed head reads the stream as it was; a
/// head of another history is refused.
#[test]
fn reading_at_an_old_head() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("history");
    fill(&log, &s, 300);
    let old = log.head(&s).unwrap();
    fill(&log, &s, 50);
    let then = versions(
        log.read_at_head(&old, ReadFrom::Edge, u64::MAX, Direction::Forward)
            .unwrap(),
    );
    assert_eq!(then, (0..300).collect::<Vec<_>>());
    let mut forged = old.clone();
    forged.root[3] ^= 1;
    assert!(matches!(
        log.read_at_head(&forged, ReadFrom::Edge, 1, Direction::Forward),
        Err(Error::HeadMismatch { length: 300, .. })
    ));
}
