use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hydra_block::{Codec, Kind, Node};
use hydra_bucket::BucketName;
use hydra_volume::Backend;

use crate::{noise, store};

#[test]
fn gc_frees_exactly_the_unreachable_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Redb);
    let b = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let shared = noise(1, 600_000);
    let mut other = shared.clone();
    other.extend(noise(2, 600_000));
    b.put_object("a", &shared[..], |_| {}).unwrap();
    b.put_object("b", &other[..], |_| {}).unwrap();
    let loose = b.put(Codec::Raw, b"no root names me").unwrap();
    let total = b.stats().unwrap().blocks;

    let report = b.gc().unwrap();
    assert_eq!(report.roots, 2);
    assert_eq!(report.freed, 1, "only the loose block goes");
    assert!(!b.has(&loose).unwrap());
    assert_eq!(report.kept, total - 1);

    b.remove_object("b").unwrap();
    let report = b.gc().unwrap();
    assert!(report.freed > 0);
    // What "a" shares with "b" survives, and "a" still reads back.
    let mut out = Vec::new();
    b.get_object("a", &mut out, |_| {}).unwrap();
    assert!(out == shared);
    b.remove_object("a").unwrap();
    b.gc().unwrap();
    assert_eq!(b.stats().unwrap().blocks, 0);
}

#[test]
fn gc_reports_roots_that_reach_missing_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Mem);
    let b = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let gone = hydra_block::Ref::raw(b"never stored");
    let gone_node = hydra_block::Ref::of(Codec::Node, b"never stored either");
    let root = b
        .put_node(&Node {
            kind: Kind(9),
            links: vec![gone, gone_node],
            body: (),
        })
        .unwrap();
    b.set_root("custom/root", root).unwrap();
    let report = b.gc().unwrap();
    assert_eq!(report.missing, vec![gone_node]);
    assert_eq!(report.kept, 1);
}

/// Writers keep putting objects while collections run: every object that
/// was written must read back whole afterwards.
#[test]
fn gc_is_safe_against_concurrent_puts() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Backend::Mem);
    let b = store.bucket(&BucketName::default_bucket(), None).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2u64)
        .map(|t| {
            let (b, stop) = (b.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) || n < 5 {
                    // Half of each object repeats an earlier one, so
                    // writers also find (deduplicate) blocks the collector
                    // is deciding about.
                    let mut data = noise(t * 1000 + n % 3, 200_000);
                    data.extend(noise(t * 1000 + n + 7, 100_000));
                    b.put_object(&format!("w{t}/{n}"), &data[..], |_| {})
                        .unwrap();
                    if n % 2 == 1 {
                        b.remove_object(&format!("w{t}/{}", n - 1)).unwrap();
                    }
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut collections = 0;
    while collections < 20 {
        b.gc().unwrap();
        collections += 1;
    }
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    b.gc().unwrap();
    for o in b.objects("") {
        let o = o.unwrap();
        let mut out = Vec::new();
        b.get_object(&o.key, &mut out, |_| {})
            .unwrap_or_else(|e| panic!("object {} damaged by gc: {e}", o.key));
        assert_eq!(out.len() as u64, o.size);
    }
}
