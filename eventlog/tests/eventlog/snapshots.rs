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

    // Deleting the stream takes its snapshots, and gc frees their blocks
    // (in the stream's bucket).
    log.delete(&s, ExpectedVersion::Any, false).unwrap();
    let bucket = log
        .store()
        .bucket(&hydra_bucket::BucketName::default_bucket(), None)
        .unwrap();
    assert_eq!(bucket.roots("snap/").count(), 0);
    assert_eq!(bucket.gc().unwrap().freed, 2);
}

/// A snapshot of a stream in an encrypted bucket is stored in that bucket,
/// under its transforms: never on disk in the clear, and loaded only with
/// the key.
#[test]
fn a_snapshot_is_as_secret_as_its_stream() {
    use crate::buckets::{disk_contains, in_bucket, open_with_vault};
    let dir = tempfile::tempdir().unwrap();
    let key = hydra_bucket::Key::from_bytes([5; 32]);
    let s = sid("patient-1");
    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    log.write(in_bucket(
        "patient-1",
        "vault",
        vec![crate::ev("Admitted", "{}")],
    ))
    .unwrap();
    let state = b"{\"diagnosis\":\"SnapMarkerQ\"}".to_vec();
    log.save_snapshot(&s, 0, state.clone(), b"SnapMetaQ".to_vec())
        .unwrap();
    log.close().unwrap();
    drop(log);
    for marker in ["SnapMarkerQ", "SnapMetaQ"] {
        assert!(!disk_contains(dir.path(), marker.as_bytes()), "{marker}");
    }

    let blind = open_with_vault(dir.path(), None, vec![]);
    let err = blind.load_snapshot(&s, None).unwrap_err();
    assert!(
        err.to_string().contains("bucket vault is encrypted"),
        "{err}"
    );
    // A collection without the key keeps it.
    let collected = blind
        .store()
        .bucket(&crate::buckets::bucket("vault"), None)
        .unwrap()
        .gc()
        .unwrap();
    assert_eq!((collected.freed, collected.kept), (0, 1));
    blind.close().unwrap();
    drop(blind);

    let log = open_with_vault(dir.path(), Some(&key), vec![]);
    let loaded = log.load_snapshot(&s, None).unwrap();
    assert_eq!((loaded.version, loaded.data), (0, state));
    assert_eq!(log.list_snapshots(&s).unwrap().len(), 1);
    assert!(log.delete_snapshot(&s, 0).unwrap());
    assert!(log.list_snapshots(&s).unwrap().is_empty());
}
