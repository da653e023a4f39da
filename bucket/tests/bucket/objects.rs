use std::io::Read;

use hydra_bucket::{BucketError, BucketName, CreateOptions};
use hydra_volume::Backend;
use proptest::prelude::*;

use crate::{noise, store};

fn round_trip(bucket: &hydra_bucket::Bucket, key: &str, data: &[u8]) {
    let info = bucket.put_object(key, data, |_| {}).unwrap();
    assert_eq!(info.size, data.len() as u64);
    let mut out = Vec::new();
    let got = bucket.get_object(key, &mut out, |_| {}).unwrap();
    assert_eq!(got, info);
    assert!(out == data, "object {key} differs after a round trip");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    #[test]
    fn any_object_round_trips(len in 0usize..1_500_000, seed in any::<u64>(), zstd in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let store = store(dir.path(), Backend::Mem);
        let name: BucketName = "o".parse().unwrap();
        store.create_bucket(&name, CreateOptions { zstd_level: zstd.then_some(1), key: None }).unwrap();
        round_trip(&store.bucket(&name, None).unwrap(), "k", &noise(seed, len));
    }
}

#[test]
fn empty_object_listing_and_removal() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Redb);
    let b = store.bucket(&BucketName::default_bucket(), None).unwrap();
    round_trip(&b, "empty", b"");
    round_trip(&b, "dir/a", b"aaa");
    round_trip(&b, "dir/b", &noise(2, 300_000));
    round_trip(&b, "dir/a", b"replaced");
    let keys: Vec<_> = b.objects("dir/").map(|o| o.unwrap()).collect();
    assert_eq!(
        keys.iter()
            .map(|o| (o.key.as_str(), o.size))
            .collect::<Vec<_>>(),
        [("dir/a", 8), ("dir/b", 300_000)]
    );
    assert_eq!(b.objects("").count(), 3);
    assert!(b.remove_object("dir/a").unwrap());
    assert!(!b.remove_object("dir/a").unwrap());
    let err = b.get_object("dir/a", std::io::sink(), |_| {}).unwrap_err();
    assert_eq!(
        err.to_string(),
        "object \"dir/a\" not found in bucket default"
    );
    assert!(matches!(
        b.put_object("", &b""[..], |_| {}),
        Err(BucketError::BadObjectKey { .. })
    ));
}

/// Editing the middle of a large file re-stores only nearby chunks and
/// the index nodes above them.
#[test]
fn an_edit_in_the_middle_restores_only_nearby_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Mem);
    let b = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let mut data = noise(11, 24 << 20);
    b.put_object("v1", &data[..], |_| {}).unwrap();
    let before = b.stats().unwrap().blocks;
    assert!(before > 300, "{before} blocks for 24 MiB");
    let mid = data.len() / 2;
    data.splice(
        mid..mid + 10,
        b"an edit of a different length".iter().copied(),
    );
    b.put_object("v2", &data[..], |_| {}).unwrap();
    let added = b.stats().unwrap().blocks - before;
    assert!(added <= 8, "an edit added {added} blocks");
    let mut out = Vec::new();
    b.get_object("v2", &mut out, |_| {}).unwrap();
    assert!(out == data);
}

/// A reader that makes `len` bytes on demand: a 1 MiB pattern repeated,
/// so the test needs neither the memory nor the disk of the whole stream.
struct Lazy {
    pattern: Vec<u8>,
    len: u64,
    pos: u64,
}

impl Read for Lazy {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.len - self.pos;
        let start = (self.pos % self.pattern.len() as u64) as usize;
        let n = buf.len().min(left as usize).min(self.pattern.len() - start);
        buf[..n].copy_from_slice(&self.pattern[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

/// A hasher that is also a writer, to check a streamed get.
struct HashWriter(blake3::Hasher, u64);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        self.1 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A multi-GiB stream, built lazily, round-trips through a put and a get
/// that never hold it in memory.
#[test]
fn a_multi_gib_stream_round_trips_lazily() {
    let len: u64 = std::env::var("HYDRA_BIG_OBJECT_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2 << 30)
        + 12345;
    let pattern = noise(99, 1 << 20);
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Redb);
    let b = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let info = b
        .put_object(
            "big",
            Lazy {
                pattern: pattern.clone(),
                len,
                pos: 0,
            },
            |_| {},
        )
        .unwrap();
    assert_eq!(info.size, len);
    let mut expected = blake3::Hasher::new();
    std::io::copy(
        &mut Lazy {
            pattern,
            len,
            pos: 0,
        },
        &mut HashWriterRef(&mut expected),
    )
    .unwrap();
    let mut got = HashWriter(blake3::Hasher::new(), 0);
    b.get_object("big", &mut got, |_| {}).unwrap();
    assert_eq!(got.1, len);
    assert_eq!(got.0.finalize(), expected.finalize());
}

struct HashWriterRef<'a>(&'a mut blake3::Hasher);

impl std::io::Write for HashWriterRef<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A DAG copies between buckets: unchanged refs when the transforms are
/// the same, a rebuilt DAG (new refs, same content) when they differ.
#[test]
fn objects_copy_between_buckets_and_check_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Mem);
    let src = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let data = noise(21, 2_000_000);
    let info = src.put_object("doc", &data[..], |_| {}).unwrap();
    let blocks = src.check_dag(info.root).unwrap();
    assert!(blocks > 10);

    let same: BucketName = "same".parse().unwrap();
    store
        .create_bucket(&same, CreateOptions::default())
        .unwrap();
    let same = store.bucket(&same, None).unwrap();
    let (root, report) = src.copy_dag(info.root, &same).unwrap();
    assert_eq!(root, info.root);
    assert_eq!((report.blocks, report.written), (blocks, blocks));
    assert_eq!(same.copy_dag(root, &same).unwrap().1.written, 0);

    let key = hydra_bucket::Key::generate().unwrap();
    let enc: BucketName = "enc".parse().unwrap();
    store
        .create_bucket(
            &enc,
            CreateOptions {
                zstd_level: Some(3),
                key: Some(&key),
            },
        )
        .unwrap();
    let enc = store.bucket(&enc, Some(&key)).unwrap();
    let (root, report) = src.copy_dag(info.root, &enc).unwrap();
    assert_ne!(root, info.root);
    assert_eq!(report.blocks, blocks);
    assert_eq!(enc.check_dag(root).unwrap(), blocks);
    enc.set_root("o/doc", root).unwrap();
    let mut out = Vec::new();
    enc.get_object("doc", &mut out, |_| {}).unwrap();
    assert!(out == data);

    src.delete(&src.objects("").next().unwrap().unwrap().root)
        .unwrap();
    assert!(matches!(
        src.check_dag(info.root),
        Err(BucketError::BlockNotFound { .. })
    ));
}
