use hydra_block::Codec;
use hydra_bucket::{BucketError, BucketName, BucketUpdate, CreateOptions, Key, Policies};
use hydra_volume::Backend;

use crate::store;

fn name(s: &str) -> BucketName {
    s.parse().unwrap()
}

#[test]
fn create_list_show_update_remove() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Redb);
    let ids = |s: &hydra_bucket::Store| {
        s.buckets()
            .unwrap()
            .into_iter()
            .map(|c| c.id.to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&store), ["default"]);
    let c = store
        .create_bucket(
            &name("zz"),
            CreateOptions {
                zstd_level: Some(9),
                key: None,
            },
        )
        .unwrap();
    assert_eq!((c.version, c.transforms.zstd_level), (1, Some(9)));
    store
        .create_bucket(&name("aa"), CreateOptions::default())
        .unwrap();
    assert_eq!(ids(&store), ["aa", "default", "zz"]);
    assert!(matches!(
        store.create_bucket(&name("aa"), CreateOptions::default()),
        Err(BucketError::AlreadyExists(_))
    ));

    let err = store
        .update_bucket(
            &name("zz"),
            BucketUpdate {
                version: 1,
                zstd_level: Some(3),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bucket zz is at version 1; an update must give a higher version, not 1"
    );
    let c = store
        .update_bucket(
            &name("zz"),
            BucketUpdate {
                version: 5,
                zstd_level: Some(3),
                policies: Some(Policies::default()),
            },
        )
        .unwrap();
    assert_eq!((c.version, c.transforms.zstd_level), (5, Some(3)));
    assert_eq!(store.bucket_config(&name("zz")).unwrap(), c);
    let err = store
        .update_bucket(
            &name("aa"),
            BucketUpdate {
                version: 2,
                zstd_level: Some(3),
                ..Default::default()
            },
        )
        .unwrap_err();
    assert!(matches!(
        err,
        BucketError::TransformChange {
            what: "compression",
            ..
        }
    ));
    assert!(matches!(
        store.update_bucket(
            &name("zz"),
            BucketUpdate {
                version: 6,
                zstd_level: Some(99),
                ..Default::default()
            }
        ),
        Err(BucketError::BadLevel(99))
    ));

    let b = store.bucket(&name("aa"), None).unwrap();
    let r = b.put(Codec::Raw, b"in aa").unwrap();
    b.put_object("obj", &b"data"[..], |_| {}).unwrap();
    assert_eq!(store.remove_bucket(&name("aa")).unwrap(), 3);
    assert!(matches!(
        store.bucket(&name("aa"), None),
        Err(BucketError::NotFound(_))
    ));
    // A new bucket of the same name starts empty.
    store
        .create_bucket(&name("aa"), CreateOptions::default())
        .unwrap();
    let b = store.bucket(&name("aa"), None).unwrap();
    assert!(!b.has(&r).unwrap());
    assert!(b.object("obj").unwrap().is_none());
    assert!(store.remove_bucket(&BucketName::default_bucket()).is_err());
    assert!(matches!(
        store.remove_bucket(&name("nope")),
        Err(BucketError::NotFound(_))
    ));
}

#[test]
fn configs_persist_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let key = Key::generate().unwrap();
    {
        let store = store(dir.path(), Backend::Lmdb);
        store
            .create_bucket(
                &name("enc"),
                CreateOptions {
                    zstd_level: Some(1),
                    key: Some(&key),
                },
            )
            .unwrap();
    }
    let store = store(dir.path(), Backend::Lmdb);
    let c = store.bucket_config(&name("enc")).unwrap();
    assert_eq!(c.transforms.zstd_level, Some(1));
    let enc = c.transforms.encryption.unwrap();
    assert_eq!(enc.cipher, "chacha20-poly1305");
    assert!(
        !enc.key_check.contains(&key.to_hex()),
        "the key itself is never stored"
    );
    store.bucket(&name("enc"), Some(&key)).unwrap();
}
