//! Partitions, as SierraDB has them, so that its clients work unchanged:
//! every stream has a *partition key* (a UUID), fixed when the stream is
//! created (given by its first append, else derived from the stream id
//! exactly as SierraDB derives it), and the key picks one of
//! [`PARTITIONS`] partitions. Each partition numbers its events 0, 1, 2,
//! ... without gaps, in commit order; `$all` stays the global order.
//!
//! The events one append adds to one stream have consecutive positions
//! and, in its partition, consecutive sequences: one *run*. Runs are kept
//! by position, so that an append adds one small entry at the end of one
//! range, whatever the partitions of a commit's streams (one range per
//! partition would dirty a page per partition in every commit):
//!
//! | key | value | written |
//! | --- | --- | --- |
//! | `pq-0/` first position(8) | partition, first sequence, count | once per append per stream |
//! | `pqc-0/` partition(2) sequence(8) | position, for every 1,024th sequence | once per 1,024 events of a partition |
//! | `el-pnext-0` | each partition's next sequence | once per commit that appends |
//! | `pk-0/` num(8) | a stream's partition key, when its first append gave another than the derived one | once per such stream |
//! | `el-partitions-0` | (empty): every event has its sequence | once |
//!
//! An event's sequence is its run's (one backward seek from its
//! position); a sequence's position is found from the checkpoint below
//! it, walking at most 1,024 of the partition's events forward.
//! Scavenging leaves runs as they are (readers skip the removed events):
//! sequences never change. Reindex leaves them too: they are the numbering
//! clients have seen, not something to recompute.

use hydra_volume::{Direction, KeyRange, PageLimit, Volume, WriteBatch};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::layout;
use crate::{Error, StreamId};

/// How many partitions: SierraDB's default (`partition.count`).
pub const PARTITIONS: u16 = 32;

/// SierraDB's namespace for partition keys derived from stream ids:
/// `Uuid::new_v5(&Uuid::NAMESPACE_DNS, b"sierradb.tqwewe.com")`.
pub const NAMESPACE: Uuid = Uuid::from_u128(0x219b_d637_e279_53e9_9e2b_eabe_5d91_20cc);

const RUN: &[u8] = b"pq-0/";
const CHECKPOINT: &[u8] = b"pqc-0/";
const NEXT: &[u8] = b"el-pnext-0";
const KEY: &[u8] = b"pk-0/";
/// Set once every stored event has its sequence (see [`backfill`]).
const DONE: &[u8] = b"el-partitions-0";
/// Sequences between checkpoints.
const EVERY: u64 = 1024;

/// Each partition's next sequence.
pub(crate) type Next = [u64; PARTITIONS as usize];

/// The partition key of a stream created without one (SierraDB's
/// `stream_partition_key`).
pub fn stream_partition_key(stream: &StreamId) -> Uuid {
    Uuid::new_v5(&NAMESPACE, stream.as_str().as_bytes())
}

/// The partition a key picks: 16 bits of the key, as SierraDB takes them,
/// modulo [`PARTITIONS`].
pub fn partition_of(key: &Uuid) -> u16 {
    let bits = ((u128::from_be_bytes(*key.as_bytes()) >> 46) & 0xFFFF) as u16;
    bits % PARTITIONS
}

/// Events of one partition at consecutive positions and sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
struct Run {
    partition: u16,
    first_sequence: u64,
    count: u64,
}

fn run_key(first_position: u64) -> Vec<u8> {
    [RUN, &first_position.to_be_bytes()].concat()
}

fn checkpoint_key(partition: u16, sequence: u64) -> Vec<u8> {
    [
        CHECKPOINT,
        &partition.to_be_bytes(),
        &sequence.to_be_bytes(),
    ]
    .concat()
}

pub(crate) fn key_key(num: u64) -> Vec<u8> {
    [KEY, &num.to_be_bytes()].concat()
}

fn corrupt(what: &str, reason: impl std::fmt::Display) -> Error {
    Error::Corrupt {
        what: what.into(),
        reason: reason.to_string(),
    }
}

fn decode_run(k: &[u8], v: &[u8]) -> Result<(u64, Run), Error> {
    let first = layout::u64_of(&k[RUN.len()..], "partition run key")?;
    let run = postcard::from_bytes(v).map_err(|e| corrupt("partition run", e))?;
    Ok((first, run))
}

/// Stages the run of `count` events of `partition` at positions from
/// `first_position`, numbered from `next[partition]`, and its
/// checkpoints; advances `next`. Returns the first sequence.
pub(crate) fn stage_run(
    ops: &mut WriteBatch,
    next: &mut Next,
    partition: u16,
    first_position: u64,
    count: u64,
) -> u64 {
    let first = next[partition as usize];
    let run = Run {
        partition,
        first_sequence: first,
        count,
    };
    ops.put(
        run_key(first_position),
        postcard::to_allocvec(&run).expect("runs encode"),
    );
    let mut checkpoint = first.div_ceil(EVERY) * EVERY;
    while checkpoint < first + count {
        ops.put(
            checkpoint_key(partition, checkpoint),
            (first_position + checkpoint - first).to_be_bytes().to_vec(),
        );
        checkpoint += EVERY;
    }
    next[partition as usize] = first + count;
    first
}

/// Stages the partitions' next sequences (with a commit that appended).
pub(crate) fn stage_next(ops: &mut WriteBatch, next: &Next) {
    ops.put(
        NEXT.to_vec(),
        postcard::to_allocvec(&next[..]).expect("counters encode"),
    );
}

/// Each partition's next sequence, as last committed.
pub(crate) fn next_sequences(volume: &dyn Volume) -> Result<Next, Error> {
    let Some(b) = volume.get(NEXT)? else {
        return Ok([0; PARTITIONS as usize]);
    };
    let v: Vec<u64> = postcard::from_bytes(&b).map_err(|e| corrupt("partition counters", e))?;
    v.try_into()
        .map_err(|v: Vec<u64>| corrupt("partition counters", format!("{} of them", v.len())))
}

/// The partition key of stream number `num`, named `stream`.
pub(crate) fn key_of(volume: &dyn Volume, num: u64, stream: &StreamId) -> Result<Uuid, Error> {
    Ok(match volume.get(&key_key(num))? {
        Some(b) => Uuid::from_slice(&b).map_err(|_| {
            corrupt(
                &format!("partition key of stream {stream}"),
                format!("{} bytes", b.len()),
            )
        })?,
        None => stream_partition_key(stream),
    })
}

/// Gives every stored event a sequence, if the store has events from
/// before partitions: `$all` in order, a page per commit, each stream's
/// consecutive events one run. Returns how many events it numbered.
pub(crate) fn backfill(volume: &dyn Volume) -> Result<u64, Error> {
    if volume.has(DONE)? {
        return Ok(0);
    }
    let mut next: Next = [0; PARTITIONS as usize];
    let mut partitions: std::collections::HashMap<u64, u16> = Default::default();
    let mut range = KeyRange::prefix(layout::LOG);
    let mut done = 0;
    // The run being gathered: stream number, first position, count.
    let mut open: Option<(u64, u64, u64)> = None;
    loop {
        let page =
            crate::records::log_page(volume, &range, Direction::Forward, PageLimit::default())?;
        let Some((last, _)) = page.last() else {
            break;
        };
        range.start = std::ops::Bound::Excluded(last.clone());
        let mut batch = WriteBatch::new();
        for (k, v) in &page {
            let pos = layout::pos_of_log_key(k).ok_or_else(|| corrupt("log key", k.len()))?;
            let (num, _, _) = layout::LogEntry::peek(v)?;
            if let std::collections::hash_map::Entry::Vacant(slot) = partitions.entry(num) {
                let stream = StreamId::new(layout::stream_name(volume, num))?;
                slot.insert(partition_of(&key_of(volume, num, &stream)?));
            }
            open = match open {
                Some((n, first, count)) if n == num && first + count == pos => {
                    Some((n, first, count + 1))
                }
                Some((n, first, count)) => {
                    stage_run(&mut batch, &mut next, partitions[&n], first, count);
                    Some((num, pos, 1))
                }
                None => Some((num, pos, 1)),
            };
            done += 1;
        }
        volume.commit(batch)?;
    }
    let mut batch = WriteBatch::new();
    if let Some((n, first, count)) = open {
        stage_run(&mut batch, &mut next, partitions[&n], first, count);
    }
    stage_next(&mut batch, &next);
    batch.put(DONE.to_vec(), Vec::new());
    volume.commit(batch)?;
    Ok(done)
}

/// The run holding `position`, if any: (first position, run).
fn run_at(volume: &dyn Volume, position: u64) -> Result<Option<(u64, Run)>, Error> {
    let range = KeyRange {
        start: std::ops::Bound::Included(RUN.to_vec()),
        end: std::ops::Bound::Included(run_key(position)),
    };
    let Some((k, v)) = volume.first(&range, Direction::Backward)? else {
        return Ok(None);
    };
    let (first, run) = decode_run(&k, &v)?;
    Ok((position < first + run.count).then_some((first, run)))
}

/// The sequences of the events at `positions` in `partition`: `None` for
/// one that holds no event of it.
pub(crate) fn sequences_at(
    volume: &dyn Volume,
    partition: u16,
    positions: &[u64],
) -> Result<Vec<Option<u64>>, Error> {
    let mut last: Option<(u64, Run)> = None;
    positions
        .iter()
        .map(|p| {
            let hit = last.filter(|(first, run)| *first <= *p && *p < first + run.count);
            let found = match hit {
                Some(r) => Some(r),
                None => run_at(volume, *p)?,
            };
            last = found;
            Ok(found
                .filter(|(_, run)| run.partition == partition)
                .map(|(first, run)| run.first_sequence + (p - first)))
        })
        .collect()
}

/// The events of `partition` from sequence `from` on, as (sequence,
/// position), in order, until `each` says stop.
pub(crate) fn walk(
    volume: &dyn Volume,
    partition: u16,
    from: u64,
    mut each: impl FnMut(u64, u64) -> Result<bool, Error>,
) -> Result<(), Error> {
    // Start at the checkpoint at or below `from`.
    let below = (from / EVERY) * EVERY;
    let start = match volume.get(&checkpoint_key(partition, below))? {
        Some(v) => layout::u64_of(&v, "partition checkpoint")?,
        None => return Ok(()),
    };
    let first = run_at(volume, start)?.map_or(start, |(first, _)| first);
    let mut runs = KeyRange::prefix(RUN);
    runs.start = std::ops::Bound::Included(run_key(first));
    for e in volume.scan(runs, Direction::Forward) {
        let (k, v) = e?;
        let (at, run) = decode_run(&k, &v)?;
        if run.partition != partition || run.first_sequence + run.count <= from {
            continue;
        }
        for i in from.saturating_sub(run.first_sequence)..run.count {
            if !each(run.first_sequence + i, at + i)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

impl crate::EventLog {
    /// The partition key of `stream` (see the module docs), if it exists.
    pub fn partition_key(&self, stream: &StreamId) -> Result<Option<Uuid>, Error> {
        match self.state(stream)? {
            Some(st) => key_of(&*self.inner.volume, st.num, stream).map(Some),
            None => Ok(None),
        }
    }

    /// The sequence the next event of `partition` will get: how many it
    /// has had.
    pub fn partition_next(&self, partition: u16) -> Result<u64, Error> {
        Ok(next_sequences(&*self.inner.volume)?
            .get(partition as usize)
            .copied()
            .unwrap_or(0))
    }

    /// The sequences of the events at `positions` in `partition`; `None`
    /// for a position that holds none of its events.
    pub fn partition_sequences(
        &self,
        partition: u16,
        positions: &[u64],
    ) -> Result<Vec<Option<u64>>, Error> {
        sequences_at(&*self.inner.volume, partition, positions)
    }

    /// The position of `partition`'s event `sequence`, if it had one.
    pub fn partition_position(&self, partition: u16, sequence: u64) -> Result<Option<u64>, Error> {
        let mut found = None;
        walk(&*self.inner.volume, partition, sequence, |s, p| {
            found = (s == sequence).then_some(p);
            Ok(false)
        })?;
        Ok(found)
    }

    /// Up to `count` events of `partition` from sequence `from`, with
    /// their sequences, in order; events scavenged since are skipped.
    pub fn read_partition(
        &self,
        partition: u16,
        from: u64,
        count: usize,
    ) -> Result<Vec<(u64, crate::RecordedEvent)>, Error> {
        let mut out = Vec::new();
        if count == 0 {
            return Ok(out);
        }
        walk(&*self.inner.volume, partition, from, |seq, position| {
            match self.event_at(position) {
                Ok(e) => out.push((seq, e)),
                Err(Error::NoSuchPosition(_)) => {}
                Err(e) => return Err(e),
            }
            Ok(out.len() < count)
        })?;
        Ok(out)
    }
}
