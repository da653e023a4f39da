//! SierraDB's partitions: each stream's key picks one of 32 partitions,
//! and each partition numbers its events from 0 without gaps, in commit
//! order, across restarts, retries, scavenging and stores written before
//! partitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use hydra_eventlog::{
    Error, EventLog, ExpectedVersion, Options, StreamMetadata, StreamWrite, partition_of,
    stream_partition_key,
};
use hydra_volume::{Direction, KeyRange, WriteBatch};
use proptest::prelude::*;
use uuid::Uuid;

use crate::{ev, fill, open, sid};

/// Every partition's events as `read_partition` gives them: (sequence,
/// position) by partition.
fn partitions(log: &EventLog) -> BTreeMap<u16, Vec<(u64, u64)>> {
    (0..hydra_eventlog::PARTITIONS)
        .map(|p| {
            let events = log.read_partition(p, 0, usize::MAX).unwrap();
            (p, events.iter().map(|(s, e)| (*s, e.position)).collect())
        })
        .filter(|(_, v): &(u16, Vec<(u64, u64)>)| !v.is_empty())
        .collect()
}

fn keyed(stream: &str, key: Option<Uuid>, n: usize) -> StreamWrite {
    let mut w = StreamWrite::new(
        sid(stream),
        ExpectedVersion::Any,
        (0..n).map(|i| ev("E", &format!("{{\"i\":{i}}}"))).collect(),
    );
    w.partition_key = key;
    w
}

#[test]
fn each_partition_numbers_its_events_without_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let a = log.write(keyed("a-1", None, 3)).unwrap();
    let pa = partition_of(&stream_partition_key(&sid("a-1")));
    assert_eq!((a.partition, a.first_partition_sequence), (pa, 0));
    // A key given at creation: the stream's partition from then on.
    let key = loop {
        let k = Uuid::new_v4();
        if partition_of(&k) != pa {
            break k;
        }
    };
    let pk = partition_of(&key);
    let b = log.write(keyed("b-1", Some(key), 2)).unwrap();
    assert_eq!((b.partition, b.first_partition_sequence), (pk, 0));
    assert_eq!(log.partition_key(&sid("b-1")).unwrap(), Some(key));
    let later = log.write(keyed("b-1", None, 1)).unwrap();
    assert_eq!((later.partition, later.first_partition_sequence), (pk, 2));
    assert!(matches!(
        log.write(keyed("b-1", Some(stream_partition_key(&sid("b-1"))), 1)),
        Err(Error::OtherPartition { .. })
    ));
    // Several streams in one append share the key's partition, in order.
    let multi = log
        .append_multi(vec![keyed("c-1", Some(key), 2), keyed("c-2", Some(key), 1)])
        .unwrap();
    assert_eq!(
        multi
            .iter()
            .map(|r| (r.partition, r.first_partition_sequence))
            .collect::<Vec<_>>(),
        [(pk, 3), (pk, 5)]
    );
    // A retry of ids already stored answers with their sequences.
    let id = Uuid::new_v4();
    let mut once = keyed("a-1", None, 1);
    once.events[0].id = Some(id);
    let first = log.write(once.clone()).unwrap();
    assert_eq!(log.write(once).unwrap(), first);
    assert_eq!(first.first_partition_sequence, 3);

    let before = partitions(&log);
    assert_eq!(
        before[&pa].iter().map(|(s, _)| *s).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
    assert_eq!(before[&pk].len(), 6);
    let positions: Vec<u64> = before[&pk].iter().map(|(_, p)| *p).collect();
    assert_eq!(
        log.partition_sequences(pk, &positions).unwrap(),
        (0..6).map(Some).collect::<Vec<_>>()
    );
    assert_eq!(
        log.partition_sequences(pa, &positions[..1]).unwrap(),
        [None]
    );
    // A restart finds where each partition is.
    log.close().unwrap();
    drop(log);
    let log = open(dir.path());
    assert_eq!(log.partition_next(pk).unwrap(), 6);
    let next = log.write(keyed("c-2", None, 1)).unwrap();
    assert_eq!((next.partition, next.first_partition_sequence), (pk, 6));
}

#[test]
fn scavenging_leaves_every_sequence_where_it_was() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    fill(&log, &sid("t-1"), 300);
    let p = partition_of(&stream_partition_key(&sid("t-1")));
    log.set_metadata(
        &sid("t-1"),
        StreamMetadata {
            truncate_before: Some(100),
            ..Default::default()
        },
    )
    .unwrap();
    log.scavenge().unwrap();
    let left = log.read_partition(p, 0, usize::MAX).unwrap();
    assert_eq!(left.len(), 200);
    assert_eq!(
        left[0].0, 100,
        "the removed events' sequences are not reused"
    );
    assert_eq!(
        log.write(keyed("t-1", None, 1))
            .unwrap()
            .first_partition_sequence,
        300
    );
}

#[test]
fn a_store_from_before_partitions_gets_its_sequences_in_all_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    for i in 0..40 {
        fill(&log, &sid(&format!("s-{}", i % 7)), 5);
    }
    let before = partitions(&log);
    let vol = log.volume().clone();
    let mut b = WriteBatch::new();
    for prefix in [&b"pq-0/"[..], b"pqc-0/"] {
        for e in vol.scan(KeyRange::prefix(prefix), Direction::Forward) {
            b.delete(e.unwrap().0);
        }
    }
    b.delete(b"el-partitions-0".to_vec());
    b.delete(b"el-pnext-0".to_vec());
    vol.commit(b).unwrap();
    log.close().unwrap();
    drop((log, vol));
    let log = open(dir.path());
    assert_eq!(partitions(&log), before);
}

#[derive(Debug, Clone)]
enum Op {
    /// Events to streams (index, count, with the shared key?), all at once.
    Append(Vec<(u8, u8, bool)>),
    Reopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => prop::collection::vec((0u8..6, 1u8..4, any::<bool>()), 1..4).prop_map(Op::Append),
        1 => Just(Op::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn sequences_match_a_model_of_partitions(ops in prop::collection::vec(op(), 1..30)) {
        let store = hydra_bucket::Store::open(Arc::new(hydra_volume::MemVolume::new())).unwrap();
        let mut log = EventLog::open(store.clone(), Options::default()).unwrap();
        let shared = Uuid::from_u128(0x1234_5678_9abc_4def_8123_4567_89ab_cdef);
        // The model: each stream's key once created, each partition's
        // positions in order.
        let mut keys: BTreeMap<u8, Uuid> = BTreeMap::new();
        let mut model: BTreeMap<u16, Vec<u64>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Append(writes) => {
                    let mut seen = std::collections::HashSet::new();
                    let writes: Vec<_> = writes.into_iter().filter(|(s, _, _)| seen.insert(*s)).collect();
                    let batch: Vec<StreamWrite> = writes
                        .iter()
                        .map(|(s, n, with_key)| {
                            let name = format!("m-{s}");
                            let asked = with_key.then_some(shared);
                            keyed(&name, asked, *n as usize)
                        })
                        .collect();
                    let refused = writes.iter().any(|(s, _, with_key)| {
                        keys.get(s).is_some_and(|k| *with_key && *k != shared)
                    });
                    match log.append_multi(batch) {
                        Ok(results) => {
                            prop_assert!(!refused);
                            for ((s, n, with_key), r) in writes.iter().zip(results) {
                                let key = *keys.entry(*s).or_insert_with(|| {
                                    if *with_key { shared } else { stream_partition_key(&sid(&format!("m-{s}"))) }
                                });
                                let p = partition_of(&key);
                                let list = model.entry(p).or_default();
                                prop_assert_eq!((r.partition, r.first_partition_sequence), (p, list.len() as u64));
                                list.extend(r.first_position..r.first_position + *n as u64);
                            }
                        }
                        Err(Error::OtherPartition { .. }) => prop_assert!(refused),
                        Err(e) => panic!("{e}"),
                    }
                }
                Op::Reopen => {
                    log.close().unwrap();
                    log = EventLog::open(store.clone(), Options::default()).unwrap();
                }
            }
        }
        let got: BTreeMap<u16, Vec<u64>> = partitions(&log)
            .into_iter()
            .map(|(p, v)| {
                let seqs: Vec<u64> = v.iter().map(|(s, _)| *s).collect();
                assert_eq!(seqs, (0..v.len() as u64).collect::<Vec<_>>(), "gapless");
                (p, v.into_iter().map(|(_, pos)| pos).collect())
            })
            .collect();
        prop_assert_eq!(got, model);
    }
}

/// Sequences past several checkpoints (one per 1,024), in runs of every
/// size interleaved with another partition's, are found from anywhere.
#[test]
fn any_sequence_is_found_from_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path());
    let p = partition_of(&stream_partition_key(&sid("long-1")));
    let other = (0..)
        .map(|i| format!("other-{i}"))
        .find(|s| partition_of(&stream_partition_key(&sid(s))) != p)
        .unwrap();
    let mut positions = Vec::new();
    let mut n = 1;
    while positions.len() < 3000 {
        let r = log.write(keyed("long-1", None, n)).unwrap();
        positions.extend(r.first_position..=r.position);
        log.write(keyed(&other, None, 1)).unwrap();
        n = n % 700 + 37;
    }
    let total = positions.len() as u64;
    for from in [0, 1, 1023, 1024, 1025, 2047, 2048, total - 1, total] {
        let got = log.read_partition(p, from, 5).unwrap();
        let want: Vec<(u64, u64)> = (from..total.min(from + 5))
            .map(|s| (s, positions[s as usize]))
            .collect();
        assert_eq!(
            got.iter()
                .map(|(s, e)| (*s, e.position))
                .collect::<Vec<_>>(),
            want,
            "from {from}"
        );
        assert_eq!(
            log.partition_position(p, from).unwrap(),
            positions.get(from as usize).copied()
        );
    }
    assert_eq!(
        log.partition_sequences(p, &positions).unwrap(),
        (0..total).map(Some).collect::<Vec<_>>()
    );
}
