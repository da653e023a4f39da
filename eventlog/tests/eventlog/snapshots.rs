use hydra_eventlog::{Error, ExpectedVersion};

use crate::{fill, open, sid};

#[test]
fn save_load_list_delete_and_gone_with_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let s = sid("acct");
    fill(&log, &s, 30);
    assert!(matches!(
        log.load_snapshot(&s, None),
        Err(Error::SnapshotNotFound { .. })
    ));
    log.save_snapshot(&s, 9, b"balance=10".to_vec(), vec![])
        .unwrap();
    log.save_snapshot(&s, 19, b"balance=20".to_vec(), b"m".to_vec())
        .unwrap();
    assert!(matches!(
        log.save_snapshot(&s, 30, vec![], vec![]),
        Err(Error::NoSuchVersion { .. })
    ));
    let latest = log.load_snapshot(&s, None).unwrap();
    assert_eq!(
        (latest.version, latest.data.as_slice()),
        (19, &b"balance=20"[..])
    );
    assert_eq!(log.load_snapshot(&s, Some(15)).unwrap().version, 9);
    let err = log.load_snapshot(&s, Some(5)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no snapshot of stream acct at or before version 5"
    );
    assert_eq!(
        log.list_snapshots(&s)
            .unwrap()
            .iter()
            .map(|i| i.version)
            .collect::<Vec<_>>(),
        [9, 19]
    );
    assert!(log.delete_snapshot(&s, 9).unwrap());
    assert!(!log.delete_snapshot(&s, 9).unwrap());
    assert_eq!(log.list_snapshots(&s).unwrap().len(), 1);

    // Deleting the stream takes its snapshots, and gc frees their blocks.
    log.delete(&s, ExpectedVersion::Any, false).unwrap();
    let bucket = log
        .store()
        .bucket(&hydra_eventlog::SNAPSHOT_BUCKET.parse().unwrap(), None)
        .unwrap();
    assert_eq!(bucket.roots("snap/").count(), 0);
    assert_eq!(bucket.gc().unwrap().freed, 2);
}
