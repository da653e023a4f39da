//! One suite, every backend: each test body takes a fresh volume and the
//! `conformance!` macro instantiates it for mem, redb and LMDB.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hydra_volume::{
    Backend, Direction, KeyRange, MAX_KEY_LEN, OpenOptions, PageLimit, Volume, VolumeError,
    WriteBatch, open_dir,
};
use proptest::prelude::*;

use crate::open;

fn keys(vol: &dyn Volume, range: KeyRange, dir: Direction) -> Vec<Vec<u8>> {
    vol.scan(range, dir).map(|e| e.unwrap().0).collect()
}

fn round_trip_overwrite_delete(vol: &dyn Volume) {
    assert_eq!(vol.get(b"k").unwrap(), None);
    assert!(!vol.has(b"k").unwrap());
    vol.put(b"k", b"v1").unwrap();
    assert_eq!(vol.get(b"k").unwrap().as_deref(), Some(&b"v1"[..]));
    assert!(vol.has(b"k").unwrap());
    assert_eq!(
        vol.get_many(&[b"k", b"missing", b"k"]).unwrap(),
        [Some(b"v1".to_vec()), None, Some(b"v1".to_vec())]
    );
    assert!(matches!(
        vol.get_many(&[&[b'k'; MAX_KEY_LEN + 1]]),
        Err(VolumeError::KeyTooLong { .. })
    ));
    vol.put(b"k", b"v2").unwrap();
    assert_eq!(vol.get(b"k").unwrap().as_deref(), Some(&b"v2"[..]));
    vol.delete(b"k").unwrap();
    assert_eq!(vol.get(b"k").unwrap(), None);
    // Deleting a missing key is not an error.
    vol.delete(b"k").unwrap();
    vol.flush().unwrap();
}

fn empty_keys_and_values(vol: &dyn Volume) {
    vol.put(b"", b"empty key").unwrap();
    vol.put(b"e", b"").unwrap();
    assert_eq!(vol.get(b"").unwrap().as_deref(), Some(&b"empty key"[..]));
    assert_eq!(vol.get(b"e").unwrap().as_deref(), Some(&b""[..]));
    assert!(vol.has(b"e").unwrap());
    assert_eq!(
        keys(vol, KeyRange::all(), Direction::Forward),
        [b"".to_vec(), b"e".to_vec()]
    );
}

fn large_values(vol: &dyn Volume) {
    let big: Vec<u8> = (0..16 << 20).map(|i: u32| (i % 251) as u8).collect();
    vol.put(b"big", &big).unwrap();
    vol.put(b"big2", &big[1..]).unwrap();
    assert_eq!(vol.get(b"big").unwrap().unwrap(), big);
    let scanned: Vec<_> = vol
        .scan(KeyRange::prefix(b"big"), Direction::Forward)
        .map(|e| e.unwrap().1.len())
        .collect();
    assert_eq!(scanned, [16 << 20, (16 << 20) - 1]);
}

fn scans_in_order(vol: &dyn Volume) {
    let mut b = WriteBatch::new();
    for k in [
        &b"b"[..],
        b"a",
        b"ab",
        b"a\xff",
        b"c",
        b"\xff",
        b"\xff\xff",
        b"a\x00",
    ] {
        b.put(k, k);
    }
    vol.commit(b).unwrap();
    let fwd = keys(vol, KeyRange::all(), Direction::Forward);
    let mut expected: Vec<Vec<u8>> = fwd.clone();
    expected.sort();
    assert_eq!(fwd, expected);
    assert_eq!(fwd.len(), 8);
    let mut bwd = keys(vol, KeyRange::all(), Direction::Backward);
    bwd.reverse();
    assert_eq!(bwd, fwd);
    assert_eq!(
        keys(vol, KeyRange::prefix(b"a"), Direction::Forward),
        [
            b"a".to_vec(),
            b"a\x00".to_vec(),
            b"ab".to_vec(),
            b"a\xff".to_vec()
        ]
    );
    assert_eq!(
        keys(vol, KeyRange::prefix(b"\xff"), Direction::Backward),
        [b"\xff\xff".to_vec(), b"\xff".to_vec()]
    );
    assert_eq!(
        keys(vol, KeyRange::between(b"ab", b"c"), Direction::Forward),
        [b"ab".to_vec(), b"a\xff".to_vec(), b"b".to_vec()]
    );
    assert!(keys(vol, KeyRange::between(b"c", b"a"), Direction::Forward).is_empty());
    // Pages of one entry still cover the whole range, both ways.
    let tiny = PageLimit {
        entries: 1,
        bytes: 1,
    };
    let paged: Vec<_> = vol
        .scan(KeyRange::all(), Direction::Backward)
        .page_limit(tiny)
        .map(|e| e.unwrap().0)
        .collect();
    let mut rev = fwd.clone();
    rev.reverse();
    assert_eq!(paged, rev);
    // The first entry of a range, either way; none of an empty one.
    let first = |range: KeyRange, direction| vol.first(&range, direction).unwrap().map(|e| e.0);
    assert_eq!(
        first(KeyRange::prefix(b"a"), Direction::Forward),
        Some(b"a".to_vec())
    );
    assert_eq!(
        first(KeyRange::prefix(b"a"), Direction::Backward),
        Some(b"a\xff".to_vec())
    );
    assert_eq!(
        first(KeyRange::between(b"ab", b"c"), Direction::Backward),
        Some(b"b".to_vec())
    );
    assert_eq!(
        first(KeyRange::between(b"c", b"a"), Direction::Forward),
        None
    );
    assert_eq!(first(KeyRange::prefix(b"q"), Direction::Backward), None);
}

fn failed_batches_leave_nothing(vol: &dyn Volume) {
    vol.put(b"keep", b"old").unwrap();
    let mut b = WriteBatch::new();
    b.put(b"new", b"x")
        .put(b"keep", b"overwritten")
        .delete(b"keep");
    b.put(vec![b'k'; MAX_KEY_LEN + 1], b"too long");
    let err = vol.commit(b).unwrap_err();
    assert!(matches!(err, VolumeError::KeyTooLong { len } if len == MAX_KEY_LEN + 1));
    assert_eq!(vol.get(b"keep").unwrap().as_deref(), Some(&b"old"[..]));
    assert_eq!(vol.get(b"new").unwrap(), None);

    let mut b = WriteBatch::new();
    b.put(b"new", b"x").put(b"\x00volume/identity-0", b"forged");
    assert!(matches!(
        vol.commit(b),
        Err(VolumeError::ReservedKey { .. })
    ));
    assert_eq!(vol.get(b"new").unwrap(), None);
    // The longest allowed key works.
    vol.put(&vec![b'k'; MAX_KEY_LEN], b"ok").unwrap();
}

fn later_ops_in_a_batch_win(vol: &dyn Volume) {
    let mut b = WriteBatch::new();
    b.put(b"x", b"1")
        .put(b"x", b"2")
        .put(b"y", b"1")
        .delete(b"y");
    vol.commit(b).unwrap();
    assert_eq!(vol.get(b"x").unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(vol.get(b"y").unwrap(), None);
}

/// Readers running beside a writer see each batch whole or not at all.
fn concurrent_readers_during_writes(vol: Arc<dyn Volume>) {
    const KEYS: usize = 50;
    const ROUNDS: u32 = 60;
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (vol, done) = (vol.clone(), done.clone());
            std::thread::spawn(move || {
                let mut checks = 0;
                while !done.load(Ordering::Relaxed) || checks == 0 {
                    let page = vol
                        .scan_page(
                            &KeyRange::prefix(b"r/"),
                            Direction::Forward,
                            PageLimit {
                                entries: 10_000,
                                bytes: usize::MAX,
                            },
                        )
                        .unwrap();
                    if let Some((_, first)) = page.first() {
                        assert_eq!(page.len(), KEYS, "a reader saw part of a batch");
                        assert!(page.iter().all(|(_, v)| v == first), "mixed batches");
                    }
                    checks += 1;
                }
                checks
            })
        })
        .collect();
    for round in 0..ROUNDS {
        let mut b = WriteBatch::new();
        for k in 0..KEYS {
            b.put(
                format!("r/{k:03}").into_bytes(),
                round.to_be_bytes().to_vec(),
            );
        }
        vol.commit(b).unwrap();
    }
    done.store(true, Ordering::Relaxed);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
}

#[derive(Debug, Clone)]
enum ModelOp {
    Put(Vec<u8>, Vec<u8>),
    Delete(Vec<u8>),
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    // A small alphabet so that ops collide on the same keys.
    prop::collection::vec(prop::sample::select(vec![1u8, 2, 3, 0x7f, 0xff]), 0..4)
}

fn op_strategy() -> impl Strategy<Value = ModelOp> {
    prop_oneof![
        (key_strategy(), prop::collection::vec(any::<u8>(), 0..20))
            .prop_map(|(k, v)| ModelOp::Put(k, v)),
        key_strategy().prop_map(ModelOp::Delete),
    ]
}

/// Batches large enough to hold runs of new keys that fill half a page
/// or more (which a redb volume writes through a cursor), among
/// overwrites, deletes, repeated keys and values of a page or more.
fn run_op_strategy() -> impl Strategy<Value = ModelOp> {
    let key = (prop::sample::select(vec![1u8, 2]), 0u16..400)
        .prop_map(|(p, n)| [&[p][..], &n.to_be_bytes()].concat());
    let value = prop_oneof![
        8 => prop::collection::vec(any::<u8>(), 0..400),
        1 => prop::collection::vec(any::<u8>(), 2000..6000),
    ];
    prop_oneof![
        6 => (key.clone(), value).prop_map(|(k, v)| ModelOp::Put(k, v)),
        1 => key.prop_map(ModelOp::Delete),
    ]
}

/// Random batches against a `BTreeMap` model, compared after each batch.
fn matches_a_btreemap_model(
    vol: &dyn Volume,
    batches: Vec<Vec<ModelOp>>,
    page: usize,
) -> Result<(), TestCaseError> {
    let mut model = BTreeMap::new();
    for ops in batches {
        let mut b = WriteBatch::new();
        for op in ops {
            match op {
                ModelOp::Put(k, v) => {
                    model.insert(k.clone(), v.clone());
                    b.put(k, v);
                }
                ModelOp::Delete(k) => {
                    model.remove(&k);
                    b.delete(k);
                }
            }
        }
        vol.commit(b).unwrap();
        let limit = PageLimit {
            entries: page,
            bytes: usize::MAX,
        };
        let got: Vec<_> = vol
            .scan(KeyRange::all(), Direction::Forward)
            .page_limit(limit)
            .map(Result::unwrap)
            .collect();
        let want: Vec<_> = model.clone().into_iter().collect();
        prop_assert_eq!(&got, &want);
        let mut back: Vec<_> = vol
            .scan(KeyRange::all(), Direction::Backward)
            .page_limit(limit)
            .map(Result::unwrap)
            .collect();
        back.reverse();
        prop_assert_eq!(&back, &want);
        for (k, v) in &model {
            prop_assert_eq!(vol.get(k).unwrap(), Some(v.clone()));
        }
    }
    Ok(())
}

macro_rules! conformance {
    ($name:ident, $backend:expr) => {
        mod $name {
            use super::*;

            fn fresh() -> (tempfile::TempDir, Arc<dyn Volume>) {
                let dir = tempfile::tempdir().unwrap();
                let vol = open(dir.path(), $backend);
                (dir, vol)
            }

            #[test]
            fn round_trip_overwrite_delete() {
                super::round_trip_overwrite_delete(&*fresh().1);
            }

            #[test]
            fn empty_keys_and_values() {
                super::empty_keys_and_values(&*fresh().1);
            }

            #[test]
            fn large_values() {
                super::large_values(&*fresh().1);
            }

            #[test]
            fn scans_in_order() {
                super::scans_in_order(&*fresh().1);
            }

            #[test]
            fn failed_batches_leave_nothing() {
                super::failed_batches_leave_nothing(&*fresh().1);
            }

            #[test]
            fn later_ops_in_a_batch_win() {
                super::later_ops_in_a_batch_win(&*fresh().1);
            }

            #[test]
            fn concurrent_readers_during_writes() {
                super::concurrent_readers_during_writes(fresh().1);
            }

            #[test]
            fn reopen_keeps_data_and_identity() {
                let dir = tempfile::tempdir().unwrap();
                let vol = open(dir.path(), $backend);
                let id = hydra_volume::Identity::load_or_create(&*vol).unwrap();
                vol.put(b"persist", b"me").unwrap();
                drop(vol);
                let vol = open_dir(dir.path(), OpenOptions::default()).unwrap();
                assert_eq!(vol.backend(), $backend, "backend detected on reopen");
                let again = hydra_volume::Identity::load_or_create(&*vol).unwrap();
                if $backend == Backend::Mem {
                    assert_eq!(vol.get(b"persist").unwrap(), None);
                } else {
                    assert_eq!(vol.get(b"persist").unwrap().as_deref(), Some(&b"me"[..]));
                    assert_eq!(again.peer_id(), id.peer_id());
                }
                // Whom the directory signs as, read while another holds it.
                assert_eq!(hydra_volume::public_key_of_dir(dir.path()).unwrap(), None);
                hydra_volume::publish_public_key(dir.path(), &*vol).unwrap();
                let published = hydra_volume::public_key_of_dir(dir.path()).unwrap();
                if $backend == Backend::Mem {
                    assert_eq!(published, None);
                } else {
                    assert_eq!(published, Some(id.public_key()));
                }
            }

            #[test]
            fn a_second_open_of_the_directory_is_refused() {
                let dir = tempfile::tempdir().unwrap();
                let _vol = open(dir.path(), $backend);
                let err = open_dir(dir.path(), OpenOptions::default()).err().unwrap();
                assert!(matches!(err, VolumeError::Locked { .. }), "{err}");
            }

            proptest! {
                #![proptest_config(ProptestConfig::with_cases(24))]
                #[test]
                fn matches_a_btreemap_model(
                    batches in prop::collection::vec(prop::collection::vec(op_strategy(), 0..8), 1..6),
                    page in 1usize..5,
                ) {
                    super::matches_a_btreemap_model(&*fresh().1, batches, page)?;
                }

                #[test]
                fn matches_a_btreemap_model_with_runs(
                    batches in prop::collection::vec(prop::collection::vec(run_op_strategy(), 0..60), 1..8),
                ) {
                    super::matches_a_btreemap_model(&*fresh().1, batches, 64)?;
                }
            }
        }
    };
}

conformance!(mem, Backend::Mem);
conformance!(redb, Backend::Redb);
conformance!(lmdb, Backend::Lmdb);

#[test]
fn a_backend_given_at_reopen_must_match() {
    let dir = tempfile::tempdir().unwrap();
    drop(open(dir.path(), Backend::Lmdb));
    let err = open_dir(
        dir.path(),
        OpenOptions {
            backend: Some(Backend::Redb),
            ..Default::default()
        },
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .ends_with("holds a lmdb volume; --backend redb applies only when a volume is created"),
        "{err}"
    );
}
