use hydra_block::Codec;
use hydra_bucket::{BucketError, BucketName, CreateOptions, Key};
use hydra_volume::{Backend, data_files};

use crate::{noise, store};

/// No plaintext reaches the volume's files: blocks, object chunks and
/// index nodes are all sealed.
#[test]
fn plaintext_never_reaches_the_volume_files() {
    for backend in [Backend::Redb, Backend::Lmdb] {
        let dir = tempfile::tempdir().unwrap();
        let key = Key::generate().unwrap();
        let name: BucketName = "secret".parse().unwrap();
        let marker = b"TOP-SECRET-PLAINTEXT-MARKER";
        let mut object = Vec::new();
        for i in 0..2000 {
            object.extend_from_slice(format!("{i:05} ").as_bytes());
            object.extend_from_slice(marker);
        }
        {
            let store = store(dir.path(), backend);
            store
                .create_bucket(
                    &name,
                    CreateOptions {
                        zstd_level: None,
                        key: Some(&key),
                    },
                )
                .unwrap();
            let b = store.bucket(&name, Some(&key)).unwrap();
            b.put(Codec::Raw, marker).unwrap();
            b.put_object("secret-object", &object[..], |_| {}).unwrap();
            store.volume().flush().unwrap();
        }
        for file in data_files(dir.path(), backend) {
            let bytes = std::fs::read(&file).unwrap();
            assert!(
                bytes.len() > object.len() / 2,
                "the data is in {}",
                file.display()
            );
            assert!(
                !bytes.windows(marker.len()).any(|w| w == marker),
                "plaintext found in {}",
                file.display()
            );
        }
        // And the data reads back with the key.
        let store = store(dir.path(), backend);
        let b = store.bucket(&name, Some(&key)).unwrap();
        let mut out = Vec::new();
        b.get_object("secret-object", &mut out, |_| {}).unwrap();
        assert_eq!(out, object);
    }
}

#[test]
fn wrong_or_missing_keys_are_clear_errors_and_blind_handles_still_serve() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Mem);
    let key = Key::generate().unwrap();
    let name: BucketName = "vault".parse().unwrap();
    store
        .create_bucket(
            &name,
            CreateOptions {
                zstd_level: Some(3),
                key: Some(&key),
            },
        )
        .unwrap();
    let r = store
        .bucket(&name, Some(&key))
        .unwrap()
        .put(Codec::Raw, &noise(5, 1000))
        .unwrap();

    let wrong = Key::generate().unwrap();
    let err = store.bucket(&name, Some(&wrong)).err().unwrap();
    assert_eq!(err.to_string(), "wrong key for bucket vault");

    let blind = store.bucket(&name, None).unwrap();
    let err = blind.get(&r).unwrap_err();
    assert!(matches!(err, BucketError::KeyRequired(_)));
    assert_eq!(
        err.to_string(),
        "bucket vault is encrypted and this peer has no key: give it with --key-file FILE or HYDRA_KEY"
    );
    assert!(blind.put(Codec::Raw, b"x").is_err());
    // Without the key a peer still verifies, serves and stores.
    assert!(blind.has(&r).unwrap());
    let stored = blind.get_stored(&r).unwrap().unwrap();
    assert!(r.matches(&stored));
    let other_dir = tempfile::tempdir().unwrap();
    let other = crate::store(other_dir.path(), Backend::Mem);
    other
        .create_bucket(
            &name,
            CreateOptions {
                zstd_level: Some(3),
                key: Some(&key),
            },
        )
        .unwrap();
    other
        .bucket(&name, None)
        .unwrap()
        .put_stored(&r, &stored)
        .unwrap();
    assert_eq!(
        other.bucket(&name, Some(&key)).unwrap().get(&r).unwrap(),
        noise(5, 1000)
    );
}
