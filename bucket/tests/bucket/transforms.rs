use hydra_block::Codec;
use hydra_bucket::{BucketError, BucketName, CreateOptions, Key};
use proptest::prelude::*;

use crate::{BACKENDS, noise, store};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]
    /// Any bytes round-trip through every transform combination on every
    /// backend, and the ref is the hash of what the volume holds.
    #[test]
    fn any_bytes_round_trip_on_every_backend_and_transform(
        blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..3000), 1..6),
    ) {
        let key = Key::from_bytes([7; 32]);
        for backend in BACKENDS {
            let dir = tempfile::tempdir().unwrap();
            let store = store(dir.path(), backend);
            for (i, (zstd, encrypt)) in [(false, false), (true, false), (false, true), (true, true)]
                .into_iter()
                .enumerate()
            {
                let name: BucketName = format!("b{i}").parse().unwrap();
                let k = encrypt.then_some(&key);
                store
                    .create_bucket(&name, CreateOptions { zstd_level: zstd.then_some(5), key: k })
                    .unwrap();
                let bucket = store.bucket(&name, k).unwrap();
                for plain in &blocks {
                    let r = bucket.put(Codec::Raw, plain).unwrap();
                    prop_assert_eq!(&bucket.get(&r).unwrap(), plain);
                    let stored = bucket.get_stored(&r).unwrap().unwrap();
                    prop_assert!(r.matches(&stored));
                    prop_assert_eq!(!zstd && !encrypt, stored == *plain);
                }
            }
        }
    }
}

#[test]
fn put_is_idempotent_and_untransformed_refs_are_plain_blake3() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), hydra_volume::Backend::Redb);
    let bucket = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let data = noise(1, 5000);
    let mut w = bucket.writer();
    let r1 = w.put(Codec::Raw, &data).unwrap();
    let r2 = w.put(Codec::Raw, &data).unwrap();
    let stats = w.flush().unwrap();
    drop(w);
    assert_eq!(r1, r2);
    assert_eq!((stats.written, stats.existing), (1, 1));
    let mut w = bucket.writer();
    w.put(Codec::Raw, &data).unwrap();
    assert_eq!(w.flush().unwrap().written, 0, "second put is a no-op");
    drop(w);
    assert_eq!(r1.hash(), blake3::hash(&data).as_bytes());
    assert_eq!(bucket.stats().unwrap().blocks, 1);
    assert!(bucket.has(&r1).unwrap());
    assert!(bucket.delete(&r1).unwrap());
    assert!(!bucket.has(&r1).unwrap());
    assert!(!bucket.delete(&r1).unwrap());
    let err = bucket.get(&r1).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("block {r1} not found in bucket default")
    );
}

#[test]
fn oversized_blocks_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), hydra_volume::Backend::Mem);
    let bucket = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let big = vec![0u8; hydra_bucket::MAX_BLOCK_SIZE + 1];
    let err = bucket.put(Codec::Raw, &big).unwrap_err();
    assert!(matches!(err, BucketError::BlockTooLarge { .. }), "{err}");
}

#[test]
fn stored_bytes_from_a_peer_are_checked_against_their_ref() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), hydra_volume::Backend::Mem);
    let bucket = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let r = hydra_block::Ref::raw(b"genuine");
    assert!(matches!(
        bucket.put_stored(&r, b"forged").unwrap_err(),
        BucketError::Corrupt { .. }
    ));
    assert!(!bucket.has(&r).unwrap());
    bucket.put_stored(&r, b"genuine").unwrap();
    assert_eq!(bucket.get(&r).unwrap(), b"genuine");
}

/// Flip one byte of a stored value in the LMDB file: the read fails with
/// an error naming the ref, and verify lists it.
#[test]
fn a_flipped_byte_on_disk_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    let marker = b"HYDRA-CORRUPTION-MARKER-0123456789";
    let mut data = marker.to_vec();
    data.extend(noise(3, 400));
    let r = {
        let store = store(dir.path(), hydra_volume::Backend::Lmdb);
        let bucket = store.bucket(&BucketName::default_bucket(), None).unwrap();
        bucket.put(Codec::Raw, &data).unwrap()
    };
    let file = hydra_volume::data_files(dir.path(), hydra_volume::Backend::Lmdb).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes
        .windows(marker.len())
        .position(|w| w == marker)
        .expect("the value is in the file");
    bytes[at + 3] ^= 0x20;
    std::fs::write(&file, bytes).unwrap();

    let store = store(dir.path(), hydra_volume::Backend::Lmdb);
    let bucket = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let err = bucket.get(&r).unwrap_err();
    assert!(matches!(err, BucketError::Corrupt { .. }));
    assert!(
        err.to_string().starts_with(&format!(
            "block {r} in bucket default on the lmdb volume is corrupt"
        )),
        "{err}"
    );
    let report = store.verify(|_| {}).unwrap();
    assert_eq!(report.corrupt.len(), 1);
    assert_eq!(report.corrupt[0].reference, r);
}
