//! The single writer: group commit.
//!
//! One writer at a time owns every change to the log. Appenders queue their
//! request, then take the writer's lock; whoever gets it first (the
//! leader) drains the whole queue, applies the requests in order to a
//! staged view (expected-version checks see the earlier requests of the
//! same group), commits the group in one volume transaction (one fsync in
//! `sync` mode), and answers everyone. The others, when they get the lock,
//! find their answer waiting. A lone appender never hands off to another
//! thread; concurrent ones share commits (group commit). A request that fails its checks leaves no
//! trace in the group; a commit that fails answers the whole group with
//! the error and changes nothing.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use std::time::{SystemTime, UNIX_EPOCH};

use hydra_bucket::BucketName;
use hydra_volume::{Volume, WriteBatch};
use uuid::Uuid;

use crate::bundle::{self, BUNDLE};
use crate::compact;
use crate::layout::{
    self, Deletion, EventLocation, EventRecordRef, Meta, STORED_SUBTREE_LEVEL, StreamState,
};
use crate::log::Notify;
use crate::merkle::{leaf_hash, push_leaf};
use crate::partition;
use crate::records::{self, SharedBuckets};
use crate::storage::Prepared;
use crate::tree;
use crate::{
    AppendResult, Error, ExpectedVersion, MAX_EVENT_TYPE, NewEvent, StreamId, StreamMetadata,
};

mod replicate;

/// Most requests, and bytes, in one group commit.
const GROUP_REQUESTS: usize = 4096;
const GROUP_BYTES: usize = 32 << 20;
/// Streams whose state the writer keeps in memory.
const CACHE_STREAMS: usize = 100_000;
/// Bytes of open bundles' records the writer keeps in memory.
const OPEN_EDGE_BYTES: usize = 64 << 20;
/// Bundles a group commit seals from records earlier commits left on the
/// edge; the others wait in the sealing queue for the next groups, so
/// that many streams filling a bundle at once do not make one commit
/// (and everyone waiting on it) carry all of their sealing. Measured with
/// 64 writers on 64 streams: p99 append latency 16-25 ms with one, 35-50
/// ms with four (each seal of an interleaved stream rewrites a page per
/// event it seals).
const SEALS_PER_COMMIT: usize = 1;

/// What a waiting appender receives: its answer, or the lead (the writer
/// is free and requests are waiting: take it and commit them).
pub(crate) enum Msg<T> {
    Done(Result<T, Error>),
    Lead,
}

pub(crate) type Reply<T> = Sender<Msg<T>>;

/// Appends to one stream.
#[derive(Debug, Clone)]
pub struct StreamWrite {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    /// The bucket a new stream goes to (else the log's placements, else
    /// the default bucket); for an existing stream, it must be its own.
    pub bucket: Option<BucketName>,
    /// The partition key of a new stream (else derived from its id: see
    /// `partition.rs`); for an existing stream, it must be its own.
    pub partition_key: Option<Uuid>,
}

impl StreamWrite {
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> StreamWrite {
        StreamWrite {
            stream,
            expected,
            events,
            bucket: None,
            partition_key: None,
        }
    }
}

pub(crate) enum Request {
    /// One or more streams, all or nothing.
    Append {
        writes: Vec<StreamWrite>,
        reply: Reply<Vec<AppendResult>>,
    },
    Delete {
        stream: StreamId,
        expected: ExpectedVersion,
        hard: bool,
        reply: Reply<()>,
    },
    SetMetadata {
        stream: StreamId,
        metadata: StreamMetadata,
        reply: Reply<()>,
    },
    /// Records that versions below `upto` of a stream were scavenged.
    Scavenged {
        stream: StreamId,
        upto: u64,
        reply: Reply<()>,
    },
    /// What a scavenge removes (records, index entries, bundles), written
    /// by the writer so that it cannot interleave with sealing a bundle.
    Remove {
        batch: WriteBatch,
        /// Bundles it removes whole: (stream number, bundle index).
        bundles: Vec<(u64, u64)>,
        reply: Reply<()>,
    },
    /// Rebuilds every index from the log, with appends held meanwhile.
    Reindex {
        reply: Reply<crate::reindex::ReindexReport>,
    },
    /// Other writers' streams as their stored blocks, already checked
    /// against this store (see `storage/apply.rs`), with the order their events
    /// take in `$all` here, if given (see [`Writer::replicate`]).
    Replicate {
        prepared: Vec<Prepared>,
        order: Option<Vec<(u32, u64)>>,
        reply: Reply<u64>,
    },
}

impl Request {
    /// Hands the lead to this request's owner.
    pub fn lead(&self) {
        // A send fails only when the owner is gone; nobody to lead then.
        let _ = match self {
            Request::Append { reply, .. } => reply.send(Msg::Lead).is_ok(),
            Request::Reindex { reply } => reply.send(Msg::Lead).is_ok(),
            Request::Replicate { reply, .. } => reply.send(Msg::Lead).is_ok(),
            Request::Delete { reply, .. }
            | Request::SetMetadata { reply, .. }
            | Request::Scavenged { reply, .. }
            | Request::Remove { reply, .. } => reply.send(Msg::Lead).is_ok(),
        };
    }

    fn bytes(&self) -> usize {
        match self {
            Request::Append { writes, .. } => writes
                .iter()
                .flat_map(|w| &w.events)
                .map(|e| e.data.len() + e.metadata.len() + 64)
                .sum(),
            Request::Remove { batch, .. } => batch.bytes(),
            Request::Replicate { prepared, .. } => prepared
                .iter()
                .flat_map(|p| &p.events)
                .map(|e| e.sealed.as_ref().map_or(64, |s| s.len() + 64))
                .sum(),
            _ => 64,
        }
    }
}

/// What one group has staged so far.
#[derive(Default)]
struct Staged {
    batch: WriteBatch,
    /// Edge records written by this group, plain, by (num, version).
    edge: HashMap<(u64, u64), (u64, Vec<u8>)>,
    /// Bundles this group sealed (with their block) or removed, for the
    /// streams' bundle trees: (stream number, bundle index, block).
    bundles: Vec<(u64, u64, Option<hydra_block::Ref>)>,
    /// And which: (stream number, bundle index).
    sealed: Vec<(u64, u64)>,
    /// Trees this group took whole from another writer: (bucket number,
    /// top), named as roots at commit.
    roots: Vec<(u32, hydra_block::Ref)>,
    /// Bundles completed by this group and queued for sealing.
    queued: Vec<(u64, u64)>,
    /// Queued bundles this group dropped (their records were scavenged).
    dropped: Vec<(u64, u64)>,
    /// Whether a scavenge removed records in this group.
    removed: bool,
    /// This group's compaction.
    compaction: compact::Step,
    /// Edge copies of events this group sealed, for compaction.
    copies: Vec<(u64, compact::EdgeCopy)>,
    states: HashMap<StreamId, StreamState>,
    eids: HashMap<Uuid, EventLocation>,
    names: HashMap<u64, StreamId>,
    partition_keys: HashMap<u64, Uuid>,
    /// Partition and sequence of the first event of each append of this
    /// group, by position (for a retry within the group).
    sequences: HashMap<u64, (u16, u64)>,
    meta: Meta,
}

pub(crate) struct Writer {
    pub volume: Arc<dyn Volume>,
    pub buckets: SharedBuckets,
    pub meta: Meta,
    pub cache: HashMap<StreamId, StreamState>,
    /// Partition keys of streams seen lately, by number.
    pub partition_keys: HashMap<u64, Uuid>,
    /// Committed edge records of bundles not sealed yet, plain, so that
    /// sealing one need not read its records back: (num, version) ->
    /// (position, record).
    pub open_edges: HashMap<(u64, u64), Positioned>,
    /// Bytes held in `open_edges`.
    pub open_bytes: usize,
    /// Complete bundles waiting to be sealed, oldest first (persisted
    /// under `sq-0/`, so a restart finds them).
    pub seal_queue: std::collections::VecDeque<(u64, u64)>,
    /// Sealed events' `$all` entries still to point at their bundles.
    pub compaction: compact::Compaction,
    pub notify: Arc<Notify>,
    /// Told the bytes of each commit, in `async` mode.
    pub flusher: Option<crate::flusher::Flusher>,
    /// Volume commits so far (each one fsync in `sync` mode).
    pub commits: Arc<std::sync::atomic::AtomicU64>,
}

enum Answer {
    Append(Reply<Vec<AppendResult>>, Result<Vec<AppendResult>, Error>),
    Unit(Reply<()>, Result<(), Error>),
    Count(Reply<u64>, Result<u64, Error>),
}

impl Answer {
    /// The answer to give when the group's commit failed.
    fn failed(self, e: &Error) -> Answer {
        match self {
            Answer::Append(reply, r) => Answer::Append(reply, r.and(Err(e.clone()))),
            Answer::Unit(reply, r) => Answer::Unit(reply, r.and(Err(e.clone()))),
            Answer::Count(reply, r) => Answer::Count(reply, r.and(Err(e.clone()))),
        }
    }
}

/// The answers of committed groups, to send once the writer is released:
/// waking dozens of threads costs a syscall each, which the next group's
/// leader should not wait for.
#[must_use]
pub(crate) struct Answers(Vec<Answer>);

impl Answers {
    pub fn send(self) {
        for a in self.0 {
            // A send fails only when the asker has gone.
            let _ = match a {
                Answer::Append(reply, r) => reply.send(Msg::Done(r)).is_ok(),
                Answer::Unit(reply, r) => reply.send(Msg::Done(r)).is_ok(),
                Answer::Count(reply, r) => reply.send(Msg::Done(r)).is_ok(),
            };
        }
    }
}

impl Writer {
    /// Applies a group of requests and commits them together. Groups
    /// larger than a commit should hold are split.
    pub fn commit(&mut self, mut requests: Vec<Request>) -> Answers {
        let mut answers = Vec::with_capacity(requests.len());
        while !requests.is_empty() {
            let mut bytes = 0;
            let mut n = 0;
            while n < requests.len() && n < GROUP_REQUESTS && bytes < GROUP_BYTES {
                bytes += requests[n].bytes();
                n += 1;
            }
            let rest = requests.split_off(n);
            answers.extend(self.commit_group(requests));
            requests = rest;
        }
        Answers(answers)
    }

    fn commit_group(&mut self, group: Vec<Request>) -> Vec<Answer> {
        let mut staged = self.staged();
        let mut answers = Vec::with_capacity(group.len());
        for req in group {
            match req {
                Request::Append { writes, reply } => {
                    let r = self.stage(&mut staged, |w, tx| w.append(tx, &writes));
                    answers.push(Answer::Append(reply, r));
                }
                Request::Delete {
                    stream,
                    expected,
                    hard,
                    reply,
                } => {
                    let r = self.stage(&mut staged, |w, tx| w.delete(tx, &stream, expected, hard));
                    answers.push(Answer::Unit(reply, r));
                }
                Request::SetMetadata {
                    stream,
                    metadata,
                    reply,
                } => {
                    let r = self.stage(&mut staged, |w, tx| w.set_metadata(tx, &stream, metadata));
                    answers.push(Answer::Unit(reply, r));
                }
                Request::Scavenged {
                    stream,
                    upto,
                    reply,
                } => {
                    let r = self.stage(&mut staged, |w, tx| w.scavenged(tx, &stream, upto));
                    answers.push(Answer::Unit(reply, r));
                }
                Request::Remove {
                    batch,
                    bundles,
                    reply,
                } => {
                    let r = self.stage(&mut staged, |_, tx| {
                        tx.ops.append(batch);
                        tx.bundles
                            .extend(bundles.into_iter().map(|(num, index)| (num, index, None)));
                        Ok(())
                    });
                    staged.removed |= r.is_ok();
                    answers.push(Answer::Unit(reply, r));
                }
                Request::Replicate {
                    prepared,
                    order,
                    reply,
                } => {
                    let r = self.stage(&mut staged, |w, tx| {
                        w.replicate(tx, &prepared, order.as_deref())
                    });
                    answers.push(Answer::Count(reply, r));
                }
                Request::Reindex { reply } => {
                    // Commit what came before, then rebuild on a quiet log.
                    let before = std::mem::take(&mut answers);
                    Answers(self.finish_group(std::mem::take(&mut staged), before)).send();
                    let r = crate::reindex::rebuild(self);
                    let _ = reply.send(Msg::Done(r));
                    staged = self.staged();
                }
            }
        }
        self.seal_queued(&mut staged);
        self.finish_group(staged, answers)
    }

    /// A new group, which begins with its share of compaction (see the
    /// `compact` module): staged before the group's requests, so that
    /// their deletes (a scavenge's) win over its rewrites.
    fn staged(&mut self) -> Staged {
        let mut staged = Staged {
            meta: self.meta,
            ..Staged::default()
        };
        let next = staged.meta.next_position;
        staged.compaction =
            match self
                .compaction
                .stage(&*self.volume, &mut staged.batch, next, false)
            {
                Ok(step) => step,
                // Compaction only saves space; a volume failing to read
                // fails the commit that follows anyway.
                Err(_) => {
                    staged.batch = WriteBatch::new();
                    compact::Step {
                        done_to: self.compaction.done_to,
                        through: None,
                    }
                }
            };
        staged
    }

    /// Compacts everything waiting (at close), a commit at a time.
    pub fn finish_compaction(&mut self) -> Result<(), Error> {
        loop {
            let mut batch = WriteBatch::new();
            let step =
                self.compaction
                    .stage(&*self.volume, &mut batch, self.meta.next_position, true)?;
            if batch.is_empty() {
                self.compaction.apply(step);
                return Ok(());
            }
            self.volume.commit(batch)?;
            self.compaction.apply(step);
        }
    }

    /// Seals queued bundles with what this group's budget leaves (each in
    /// its own staged step: one that fails leaves the others).
    fn seal_queued(&self, staged: &mut Staged) {
        let budget = SEALS_PER_COMMIT.saturating_sub(staged.sealed.len());
        let due: Vec<(u64, u64)> = self
            .seal_queue
            .iter()
            .chain(&staged.queued)
            .filter(|at| !staged.sealed.contains(at))
            .take(budget)
            .copied()
            .collect();
        for (num, index) in due {
            // A failure leaves the bundle queued, on the edge, readable.
            let _ = self.stage(staged, |w, tx| w.seal_from_edge(tx, num, index));
        }
    }

    /// Seals queued bundle `index` of stream `num` from its edge records,
    /// or drops it from the queue if some were scavenged meanwhile (it
    /// stays on the edge, indexed in `sv-0/`).
    fn seal_from_edge(&self, tx: &mut Tx<'_>, num: u64, index: u64) -> Result<(), Error> {
        tx.ops.delete(layout::seal_queue_key(num, index));
        let first = index * BUNDLE;
        let (stream, bucket) = self.stream_and_bucket(tx, num)?;
        let mut st = self.state(tx, &stream)?.ok_or_else(|| Error::Corrupt {
            what: format!("state of stream {stream}"),
            reason: "missing".into(),
        })?;
        let sealed = match self.edge_records(tx, (num, &st.open), first, first + BUNDLE)? {
            Some(records) => {
                let bundle = records.into_iter().map(|(p, r)| (p, r, true)).collect();
                let indexed_below = st.open.from;
                let filled =
                    self.seal_bundle(tx, num, index, &bucket, bundle, (false, indexed_below))?;
                matches!(filled, Filled::Sealed)
            }
            None => false,
        };
        if !sealed {
            tx.dropped.push((num, index));
        }
        if st.open.from < first + BUNDLE {
            // It waited on the open edge: it leaves it.
            self.cut_open(tx, &mut st, first + BUNDLE, Vec::new())?;
            tx.ops.put(layout::state_key(&stream), st.encode());
            tx.states.insert(stream, st);
        }
        Ok(())
    }

    /// Commits a group; returns its answers.
    fn finish_group(&mut self, mut staged: Staged, answers: Vec<Answer>) -> Vec<Answer> {
        // The trees must link what the group sealed, or nothing commits:
        // a bundle no root reaches would be collected.
        let changes = std::mem::take(&mut staged.bundles);
        let roots = self
            .stage(&mut staged, |w, tx| w.update_trees(tx, changes))
            .map(|mut roots| {
                roots.append(&mut staged.roots);
                roots
            });
        if staged.meta.partitions != self.meta.partitions {
            partition::stage_next(&mut staged.batch, &staged.meta.partitions);
        }
        let outcome = if let Err(e) = roots {
            Err(e)
        } else if staged.batch.is_empty() {
            Ok(())
        } else {
            let bytes = staged.batch.bytes() as u64;
            let r = self.buckets.store().commit(
                std::mem::take(&mut staged.batch),
                roots.as_deref().unwrap_or_default(),
            );
            self.commits
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            if r.is_ok()
                && let Some(f) = &self.flusher
            {
                f.committed(bytes);
            }
            r.map_err(Error::from)
        };
        match outcome {
            Ok(()) => {
                let committed_to = staged.meta.next_position;
                if self.cache.len() + staged.states.len() > CACHE_STREAMS {
                    self.cache.clear();
                }
                self.cache.extend(staged.states);
                if self.partition_keys.len() + staged.partition_keys.len() > CACHE_STREAMS {
                    self.partition_keys.clear();
                }
                self.partition_keys.extend(staged.partition_keys);
                self.seal_queue.extend(staged.queued);
                self.seal_queue
                    .retain(|at| !staged.sealed.contains(at) && !staged.dropped.contains(at));
                for at in staged.sealed {
                    let first = at.1 * BUNDLE;
                    for v in first..first + BUNDLE {
                        if let Some((_, r)) = self.open_edges.remove(&(at.0, v)) {
                            self.open_bytes -= r.len();
                        }
                    }
                }
                self.open_bytes += staged.edge.values().map(|(_, r)| r.len()).sum::<usize>();
                self.open_edges.extend(staged.edge);
                if self.open_bytes > OPEN_EDGE_BYTES || staged.removed {
                    // Read back from the volume instead, from now on.
                    self.open_edges.clear();
                    self.open_bytes = 0;
                }
                self.meta = staged.meta;
                self.compaction.apply(staged.compaction);
                self.compaction.add(staged.copies);
                self.notify.committed(committed_to);
                answers
            }
            // Nothing of the group is stored; the cache never saw it.
            Err(e) => answers.into_iter().map(|a| a.failed(&e)).collect(),
        }
    }

    /// Runs one request against a scratch copy of the group, keeping its
    /// changes only if it succeeds.
    fn stage<T>(
        &self,
        staged: &mut Staged,
        f: impl FnOnce(&Self, &mut Tx<'_>) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut tx = Tx {
            staged,
            ops: WriteBatch::new(),
            edge: HashMap::new(),
            bundles: Vec::new(),
            sealed: Vec::new(),
            roots: Vec::new(),
            queued: Vec::new(),
            dropped: Vec::new(),
            copies: Vec::new(),
            states: HashMap::new(),
            eids: HashMap::new(),
            names: HashMap::new(),
            partition_keys: HashMap::new(),
            sequences: HashMap::new(),
            meta: staged.meta,
        };
        let r = f(self, &mut tx)?;
        let Tx {
            ops,
            edge,
            bundles,
            sealed,
            roots,
            queued,
            dropped,
            copies,
            states,
            eids,
            names,
            partition_keys,
            sequences,
            meta,
            ..
        } = tx;
        staged.batch.append(ops);
        staged.edge.extend(edge);
        staged.bundles.extend(bundles);
        staged.sealed.extend(sealed);
        staged.roots.extend(roots);
        staged.queued.extend(queued);
        staged.dropped.extend(dropped);
        staged.copies.extend(copies);
        staged.states.extend(states);
        staged.eids.extend(eids);
        staged.names.extend(names);
        staged.partition_keys.extend(partition_keys);
        staged.sequences.extend(sequences);
        staged.meta = meta;
        Ok(r)
    }

    fn state(&self, tx: &Tx<'_>, stream: &StreamId) -> Result<Option<StreamState>, Error> {
        if let Some(s) = tx
            .states
            .get(stream)
            .or_else(|| tx.staged.states.get(stream))
        {
            return Ok(Some(s.clone()));
        }
        if let Some(s) = self.cache.get(stream) {
            return Ok(Some(s.clone()));
        }
        match self.volume.get(&layout::state_key(stream))? {
            Some(b) => StreamState::decode(&b).map(Some),
            None => Ok(None),
        }
    }

    fn locate(&self, tx: &Tx<'_>, id: &Uuid) -> Result<Option<EventLocation>, Error> {
        if let Some(l) = tx.eids.get(id).or_else(|| tx.staged.eids.get(id)) {
            return Ok(Some(*l));
        }
        if let Some(position) = crate::event_id::position_of(id)
            && let Some((num, version)) = self.carrier(position, id)?
        {
            return Ok(Some(EventLocation {
                num,
                version,
                position,
            }));
        }
        crate::event_id::locate(&*self.volume, id, |at| {
            Ok(self.carrier(at.position, id)? == Some((at.num, at.version)))
        })
    }

    /// The stream number and version of the event at `position`, if it
    /// carries `id`.
    fn carrier(&self, position: u64, id: &Uuid) -> Result<Option<(u64, u64)>, Error> {
        let Some(value) = records::log_entry(&*self.volume, position)? else {
            return Ok(None);
        };
        let found = records::entry_record(
            &self.buckets,
            position,
            value,
            |num, index| {
                let b = bundle::load(&*self.volume, &self.buckets, (num, index), |n| {
                    layout::stream_name(&*self.volume, n)
                })?;
                Ok(b.map(|(b, _)| std::sync::Arc::new(b)))
            },
            |n| layout::stream_name(&*self.volume, n),
        )?;
        Ok(match found {
            Some((at, record))
                if layout::EventRecord::decode(record.bytes())?.id == *id.as_bytes() =>
            {
                Some(at)
            }
            _ => None,
        })
    }

    /// The partition key of stream number `num`, named `stream`.
    fn partition_key(&self, tx: &Tx<'_>, num: u64, stream: &StreamId) -> Result<Uuid, Error> {
        match tx
            .partition_keys
            .get(&num)
            .or_else(|| tx.staged.partition_keys.get(&num))
            .or_else(|| self.partition_keys.get(&num))
        {
            Some(k) => Ok(*k),
            None => partition::key_of(&*self.volume, num, stream),
        }
    }

    /// Numbers `count` events of stream `num`, at positions from `first`,
    /// in its partition; returns the partition and the first sequence.
    fn sequence(
        &self,
        tx: &mut Tx<'_>,
        num: u64,
        stream: &StreamId,
        first: u64,
        count: u64,
    ) -> Result<(u16, u64), Error> {
        let key = self.partition_key(tx, num, stream)?;
        tx.partition_keys.insert(num, key);
        let p = partition::partition_of(&key);
        let start = partition::stage_run(&mut tx.ops, &mut tx.meta.partitions, p, first, count);
        tx.sequences.insert(first, (p, start));
        Ok((p, start))
    }

    /// The partition and sequence of stream `num`'s event at `position`.
    fn sequence_of(
        &self,
        tx: &Tx<'_>,
        num: u64,
        stream: &StreamId,
        position: u64,
    ) -> Result<(u16, u64), Error> {
        if let Some(s) = tx
            .sequences
            .get(&position)
            .or_else(|| tx.staged.sequences.get(&position))
        {
            return Ok(*s);
        }
        let p = partition::partition_of(&self.partition_key(tx, num, stream)?);
        let seq = partition::sequences_at(&*self.volume, p, &[position])?[0].ok_or_else(|| {
            Error::Corrupt {
                what: format!("partition {p} of stream {stream}"),
                reason: format!("no sequence names position {position}"),
            }
        })?;
        Ok((p, seq))
    }

    /// The id and bucket of stream number `num`.
    fn stream_and_bucket(
        &self,
        tx: &Tx<'_>,
        num: u64,
    ) -> Result<(StreamId, Arc<hydra_bucket::Bucket>), Error> {
        let stream = self.stream_name(tx, num)?;
        let st = self.state(tx, &stream)?.ok_or_else(|| Error::Corrupt {
            what: format!("state of stream {stream}"),
            reason: "missing".into(),
        })?;
        Ok((stream, self.buckets.get(st.bucket)?))
    }

    fn stream_name(&self, tx: &Tx<'_>, num: u64) -> Result<StreamId, Error> {
        if let Some(s) = tx.names.get(&num).or_else(|| tx.staged.names.get(&num)) {
            return Ok(s.clone());
        }
        let bytes = self
            .volume
            .get(&layout::name_key(num))?
            .ok_or_else(|| Error::Corrupt {
                what: format!("name of stream #{num}"),
                reason: "missing".into(),
            })?;
        Ok(StreamId::new(String::from_utf8_lossy(&bytes).into_owned())?)
    }

    /// A new stream, in the bucket asked for or the one its id places it.
    fn new_state(
        &self,
        tx: &mut Tx<'_>,
        stream: &StreamId,
        bucket: Option<&BucketName>,
        partition_key: Option<Uuid>,
    ) -> Result<StreamState, Error> {
        let bucket = self.buckets.place(stream, bucket)?.config().num();
        Ok(self.new_state_in(tx, stream, bucket, partition_key))
    }

    /// A new stream's state, in bucket number `bucket`.
    fn new_state_in(
        &self,
        tx: &mut Tx<'_>,
        stream: &StreamId,
        bucket: u32,
        partition_key: Option<Uuid>,
    ) -> StreamState {
        let num = tx.meta.next_num;
        tx.meta.next_num += 1;
        tx.ops
            .put(layout::name_key(num), stream.as_str().as_bytes().to_vec());
        tx.names.insert(num, stream.clone());
        let key = partition_key.unwrap_or_else(|| partition::stream_partition_key(stream));
        if key != partition::stream_partition_key(stream) {
            tx.ops.put(partition::key_key(num), key.as_bytes().to_vec());
        }
        tx.partition_keys.insert(num, key);
        StreamState {
            num,
            bucket,
            ..StreamState::default()
        }
    }

    fn append(&self, tx: &mut Tx<'_>, writes: &[StreamWrite]) -> Result<Vec<AppendResult>, Error> {
        if writes.is_empty() {
            return Err(Error::EmptyAppend);
        }
        let mut seen_ids = std::collections::HashSet::new();
        let mut seen_streams = std::collections::HashSet::new();
        for w in writes {
            if !seen_streams.insert(&w.stream) {
                return Err(Error::DuplicateStreamInAppend {
                    stream: w.stream.clone(),
                });
            }
            if w.events.is_empty() {
                return Err(Error::EmptyAppend);
            }
            for e in &w.events {
                if e.event_type.is_empty() || e.event_type.len() > MAX_EVENT_TYPE {
                    return Err(Error::BadEventType(e.event_type.clone()));
                }
                if let Some(id) = e.id
                    && !seen_ids.insert(id)
                {
                    return Err(Error::DuplicateInAppend { id });
                }
            }
        }
        writes.iter().map(|w| self.append_one(tx, w)).collect()
    }

    fn append_one(&self, tx: &mut Tx<'_>, w: &StreamWrite) -> Result<AppendResult, Error> {
        let current = self.state(tx, &w.stream)?;
        if current
            .as_ref()
            .is_some_and(|s| s.deletion == Deletion::Hard)
        {
            return Err(Error::StreamDeleted(w.stream.clone()));
        }
        if let Some(head) = current.as_ref().and_then(|s| s.replica.as_ref()) {
            return Err(Error::Replicated {
                stream: w.stream.clone(),
                writer: head.signer_peer_id(),
            });
        }
        if let (Some(asked), Some(st)) = (&w.bucket, &current) {
            let bucket = self.buckets.get(st.bucket)?;
            if bucket.name() != asked {
                return Err(Error::OtherBucket {
                    stream: w.stream.clone(),
                    bucket: bucket.name().to_string(),
                    asked: asked.to_string(),
                });
            }
        }
        if let (Some(asked), Some(st)) = (&w.partition_key, &current) {
            let key = self.partition_key(tx, st.num, &w.stream)?;
            if key != *asked {
                return Err(Error::OtherPartition {
                    stream: w.stream.clone(),
                    key,
                    asked: *asked,
                });
            }
        }
        if let Some(done) = self.already_appended(tx, w, current.as_ref())? {
            return Ok(done);
        }
        let exists = current.as_ref().is_some_and(StreamState::exists);
        let last = current
            .as_ref()
            .filter(|s| s.exists())
            .map(|s| s.length - 1);
        let ok = match w.expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => !exists,
            ExpectedVersion::StreamExists => exists,
            ExpectedVersion::Exact(v) => last == Some(v),
        };
        if !ok {
            return Err(Error::WrongExpectedVersion {
                stream: w.stream.clone(),
                expected: w.expected,
                actual: last,
            });
        }
        let mut st = match current {
            Some(s) => s,
            None => self.new_state(tx, &w.stream, w.bucket.as_ref(), w.partition_key)?,
        };
        let bucket = self.buckets.get(st.bucket)?;
        st.deletion = Deletion::None;
        let now = now_ms();
        let first_version = st.length;
        let first_position = tx.meta.next_position;
        let mut records = Vec::with_capacity(w.events.len());
        for (i, e) in w.events.iter().enumerate() {
            let (version, position) = (st.length + i as u64, tx.meta.next_position + i as u64);
            // Ids the log assigns carry their position: no index insert.
            let (id, indexed) = match e.id {
                Some(id) => (id, true),
                None => (crate::event_id::generated(position, now), false),
            };
            let bytes = EventRecordRef {
                id: *id.as_bytes(),
                stream: w.stream.as_str(),
                version,
                event_type: &e.event_type,
                timestamp: e.timestamp.unwrap_or(now),
                data: &e.data,
                metadata: &e.metadata,
            }
            .encode();
            records.push((position, bytes));
            let loc = EventLocation {
                num: st.num,
                version,
                position,
            };
            if indexed {
                tx.ops.put(layout::event_id_key(&id), loc.encode());
                tx.eids.insert(id, loc);
            }
        }
        tx.meta.next_position += records.len() as u64;
        let (partition, first_partition_sequence) =
            self.sequence(tx, st.num, &w.stream, first_position, records.len() as u64)?;
        self.put_records(tx, &mut st, &bucket, records)?;
        tx.ops.put(layout::state_key(&w.stream), st.encode());
        tx.states.insert(w.stream.clone(), st.clone());
        Ok(AppendResult {
            first_version,
            version: st.length - 1,
            first_position,
            position: tx.meta.next_position - 1,
            partition,
            first_partition_sequence,
        })
    }

    /// Writes records at the end of a stream, each with its position:
    /// its Merkle leaf and either its edge entry (`ev-1/` sealed by the
    /// stream's bucket, its position in the state's open edge) or, for
    /// the records of a bundle these complete, the bundle (see the
    /// `bundle` module) with a pointer at each position, in place of the
    /// bundle's edge records. Advances the stream's length.
    fn put_records(
        &self,
        tx: &mut Tx<'_>,
        st: &mut StreamState,
        bucket: &hydra_bucket::Bucket,
        records: Vec<(u64, Vec<u8>)>,
    ) -> Result<(), Error> {
        let num = st.num;
        if st.open.end() != st.length {
            // Its open edge must end where the new records begin.
            self.cut_open(tx, st, st.length, Vec::new())?;
        }
        // Edge records below this are indexed in `sv-0/`.
        let indexed_below = st.open.from;
        let end = st.length + records.len() as u64;
        // Versions below this are in bundles these records complete.
        let sealing_below = end - end % BUNDLE;
        // The records these leave on the open edge, `(version, position)`:
        // the open bundle's and a full one's that waits to be sealed.
        let mut listed = Vec::new();
        // The open edge starts at or after this: past every bundle these
        // seal, and every one that cannot be sealed.
        let mut cut = st.open.from;
        // The bundle being completed: (position, record, already on the edge).
        let mut bundle: Vec<(u64, Vec<u8>, bool)> = Vec::new();
        // A bundle that lost edge records to a scavenge stays on the edge.
        let mut unsealable = None;
        for (position, record) in records {
            let version = st.length;
            let leaf = leaf_hash(&record);
            push_leaf(&mut st.peaks, version, leaf, |level, index, h| {
                if level >= STORED_SUBTREE_LEVEL {
                    tx.ops
                        .put(layout::subtree_key(num, level, index), h.to_vec());
                }
            });
            st.length += 1;
            st.last_position = Some(position);
            if version < sealing_below
                && bundle.is_empty()
                && !version.is_multiple_of(BUNDLE)
                && unsealable != Some(version / BUNDLE)
            {
                // The bundle began in earlier requests: its first records
                // are on the edge, unless some were scavenged.
                let first = version - version % BUNDLE;
                match self.edge_records(tx, (num, &st.open), first, version)? {
                    Some(earlier) => {
                        bundle = earlier.into_iter().map(|(p, r)| (p, r, true)).collect();
                    }
                    None => unsealable = Some(version / BUNDLE),
                }
            }
            let bundled = version < sealing_below && bundle.len() as u64 == version % BUNDLE;
            if !bundled {
                // Of the open bundle, or of one a scavenge left unsealable.
                let open = version >= sealing_below;
                self.put_edge(tx, bucket, (num, version), position, &leaf, record, !open)?;
                if open {
                    listed.push((version, position));
                } else {
                    cut = cut.max(version - version % BUNDLE + BUNDLE);
                }
                continue;
            }
            bundle.push((position, record, false));
            if bundle.len() as u64 == BUNDLE {
                // Sealing records that earlier requests left on the edge
                // waits for a later commit once this one has sealed its
                // share; a bundle written whole by this request seals now.
                let defer = bundle.iter().any(|(_, _, on_edge)| *on_edge)
                    && tx.staged.sealed.len() + tx.sealed.len() >= SEALS_PER_COMMIT;
                let index = version / BUNDLE;
                let first = index * BUNDLE;
                let bundle = std::mem::take(&mut bundle);
                let (left, waits) = match self.seal_bundle(
                    tx,
                    num,
                    index,
                    bucket,
                    bundle,
                    (defer, indexed_below),
                )? {
                    Filled::Sealed => (Vec::new(), false),
                    Filled::Waiting(left) => (left, true),
                    Filled::Unsealable(left) => (left, false),
                };
                if !waits {
                    cut = cut.max(first + BUNDLE);
                }
                for (v, (position, record, on_edge)) in (first..).zip(left) {
                    if !on_edge {
                        let leaf = leaf_hash(&record);
                        self.put_edge(tx, bucket, (num, v), position, &leaf, record, !waits)?;
                        if waits {
                            listed.push((v, position));
                        }
                    }
                }
            }
        }
        self.cut_open(tx, st, cut, listed)
    }

    /// Makes the state's open edge start at version `cut` (if it starts
    /// before) and go on with `listed`: the records it held below `cut`
    /// are indexed in `sv-0/` instead, but for those sealed in this
    /// request, scavenged, or gone.
    fn cut_open(
        &self,
        tx: &mut Tx<'_>,
        st: &mut StreamState,
        cut: u64,
        listed: Vec<(u64, u64)>,
    ) -> Result<(), Error> {
        let num = st.num;
        let from = cut.max(st.open.from);
        let moving: Vec<(u64, u64)> = st
            .open
            .entries()
            .filter(|&(v, _)| {
                v < from && v >= st.scavenged_before && !tx.sealed.contains(&(num, v / BUNDLE))
            })
            .collect();
        // Written in this group or held in the cache (neither after a
        // scavenge), or else still stored: a scavenge may have removed
        // some before its mark reached the state.
        let unsure: Vec<Vec<u8>> = moving
            .iter()
            .filter(|(v, _)| {
                !tx.edge.contains_key(&(num, *v))
                    && !tx.staged.edge.contains_key(&(num, *v))
                    && (tx.staged.removed || !self.open_edges.contains_key(&(num, *v)))
            })
            .map(|(_, p)| layout::log_key(*p))
            .collect();
        let keys: Vec<&[u8]> = unsure.iter().map(Vec::as_slice).collect();
        let gone: std::collections::HashSet<&[u8]> = keys
            .iter()
            .zip(self.volume.get_many(&keys)?)
            .filter(|(_, v)| v.is_none())
            .map(|(k, _)| *k)
            .collect();
        let below = listed.iter().filter(|(v, _)| *v < from).copied();
        for (v, p) in moving.into_iter().chain(below) {
            if !gone.contains(layout::log_key(p).as_slice()) {
                tx.ops
                    .put(layout::version_key(num, v), p.to_be_bytes().to_vec());
            }
        }
        let mut open = layout::OpenEdge::at(from);
        for (_, p) in st.open.entries().chain(listed).filter(|&(v, _)| v >= from) {
            open.push(p);
        }
        st.open = open;
        Ok(())
    }

    /// Writes one record to its stream's edge: its `ev-1/` entry (sealed
    /// by the bucket) and, if `indexed`, its `sv-0/` index entry (else
    /// the caller puts its position in the state's open edge).
    #[allow(clippy::too_many_arguments)]
    fn put_edge(
        &self,
        tx: &mut Tx<'_>,
        bucket: &hydra_bucket::Bucket,
        (num, version): (u64, u64),
        position: u64,
        leaf: &crate::Hash,
        record: Vec<u8>,
        indexed: bool,
    ) -> Result<(), Error> {
        let value = records::seal(bucket, (num, version), leaf, &record)?;
        tx.ops.put(layout::log_key(position), value);
        if indexed {
            tx.ops.put(
                layout::version_key(num, version),
                position.to_be_bytes().to_vec(),
            );
        }
        tx.edge.insert((num, version), (position, record));
        Ok(())
    }

    /// Seals a complete bundle, or, when it may not be (too large, or
    /// spread too wide in `$all`; see [`bundle::sealable`]), leaves its
    /// records for the edge; with `defer`, leaves them there and queues
    /// the bundle for a later commit. Its records on the edge below
    /// `indexed_below` have `sv-0/` entries (the others are the state's
    /// open edge). The caller puts on the edge what it leaves there.
    fn seal_bundle(
        &self,
        tx: &mut Tx<'_>,
        num: u64,
        index: u64,
        bucket: &hydra_bucket::Bucket,
        bundle: Vec<(u64, Vec<u8>, bool)>,
        (defer, indexed_below): (bool, u64),
    ) -> Result<Filled, Error> {
        let first = index * BUNDLE;
        let sealable = bundle::sealable(bundle.iter().map(|(p, r, _)| (*p, r.as_slice())));
        if !sealable {
            return Ok(Filled::Unsealable(bundle));
        }
        if defer {
            tx.ops.put(layout::seal_queue_key(num, index), Vec::new());
            tx.queued.push((num, index));
            return Ok(Filled::Waiting(bundle));
        }
        for (i, (position, record, on_edge)) in bundle.iter().enumerate() {
            let version = first + i as u64;
            if !on_edge || *position < tx.staged.compaction.done_to {
                // The position points into the bundle from now on.
                tx.ops.put(
                    layout::log_key(*position),
                    layout::LogEntry::bundled(num, version),
                );
            } else {
                // Its edge record stays there until compaction passes.
                tx.copies.push((
                    *position,
                    compact::EdgeCopy {
                        num,
                        version,
                        bytes: record.len(),
                    },
                ));
            }
            if *on_edge && version < indexed_below {
                tx.ops.delete(layout::version_key(num, version));
            }
        }
        let parts: Vec<(u64, &[u8])> = bundle.iter().map(|(p, r, _)| (*p, r.as_slice())).collect();
        let block = bundle::seal(bucket, &mut tx.ops, num, index, &parts)?;
        tx.bundles.push((num, index, Some(block)));
        tx.sealed.push((num, index));
        Ok(Filled::Sealed)
    }

    /// Rewrites the bundle trees of the streams whose bundles `changes`
    /// seal or remove; returns their new tops, to name as roots.
    fn update_trees(
        &self,
        tx: &mut Tx<'_>,
        changes: Vec<(u64, u64, Option<hydra_block::Ref>)>,
    ) -> Result<Vec<(u32, hydra_block::Ref)>, Error> {
        let mut by_stream: std::collections::BTreeMap<u64, tree::Changes> = Default::default();
        for (num, index, block) in changes {
            by_stream.entry(num).or_default().insert(index, block);
        }
        let mut roots = Vec::new();
        for (num, changes) in by_stream {
            let (stream, bucket) = self.stream_and_bucket(tx, num)?;
            if let Some(top) = tree::update(&bucket, &mut tx.ops, stream.as_str(), num, &changes)? {
                roots.push((bucket.config().num(), top));
            }
        }
        Ok(roots)
    }

    /// The edge records of stream `num` at versions `[from, to)`, from
    /// this group or the volume; `None` when one is missing (scavenged).
    fn edge_records(
        &self,
        tx: &Tx<'_>,
        (num, open): (u64, &layout::OpenEdge),
        from: u64,
        to: u64,
    ) -> Result<Option<Vec<Positioned>>, Error> {
        let mut out = Vec::with_capacity(BUNDLE as usize);
        let mut wanted = Vec::new();
        for v in from..to {
            match tx
                .edge
                .get(&(num, v))
                .or_else(|| tx.staged.edge.get(&(num, v)))
                // Not after a scavenge in this group: it may have removed
                // some of them.
                .or_else(|| {
                    (!tx.staged.removed)
                        .then(|| self.open_edges.get(&(num, v)))
                        .flatten()
                }) {
                Some(r) => out.push(Some(r.clone())),
                None => {
                    out.push(None);
                    wanted.push(v);
                }
            }
        }
        if !wanted.is_empty() {
            let stored = records::edge_of(
                &*self.volume,
                &self.buckets,
                (num, open),
                (wanted[0], wanted[wanted.len() - 1] + 1),
                |n| layout::stream_name(&*self.volume, n),
            )?;
            let mut stored = stored.into_iter().peekable();
            for (v, slot) in (from..to).zip(out.iter_mut()) {
                if slot.is_none()
                    && let Some((_, p, r)) = stored.next_if(|(sv, _, _)| *sv == v)
                {
                    *slot = Some((p, r));
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Idempotency: when every event carries an id and they are already the
    /// stream's events at consecutive versions, the append already
    /// happened: return its result and write nothing. An id found
    /// anywhere else is an error.
    fn already_appended(
        &self,
        tx: &Tx<'_>,
        w: &StreamWrite,
        current: Option<&StreamState>,
    ) -> Result<Option<AppendResult>, Error> {
        let mut found = Vec::new();
        for e in &w.events {
            let Some(id) = e.id else {
                found.push(None);
                continue;
            };
            found.push(self.locate(tx, &id)?.map(|l| (id, l)));
        }
        if found.iter().all(Option::is_none) {
            return Ok(None);
        }
        let num = current.map(|s| s.num);
        let first = found[0].map(|(_, l)| l);
        let retry = first.is_some_and(|f| {
            Some(f.num) == num
                && found.iter().enumerate().all(|(i, l)| {
                    l.is_some_and(|(_, l)| l.num == f.num && l.version == f.version + i as u64)
                })
        });
        if retry {
            let (f, l) = (
                found[0].expect("checked").1,
                found[found.len() - 1].expect("checked").1,
            );
            let stream = self.stream_name(tx, f.num)?;
            let (partition, first_partition_sequence) =
                self.sequence_of(tx, f.num, &stream, f.position)?;
            return Ok(Some(AppendResult {
                first_version: f.version,
                version: l.version,
                first_position: f.position,
                position: l.position,
                partition,
                first_partition_sequence,
            }));
        }
        let (id, l) = found.into_iter().flatten().next().expect("one was found");
        Err(Error::DuplicateEventId {
            id,
            stream: self.stream_name(tx, l.num)?,
            version: l.version,
        })
    }

    fn delete(
        &self,
        tx: &mut Tx<'_>,
        stream: &StreamId,
        expected: ExpectedVersion,
        hard: bool,
    ) -> Result<(), Error> {
        let Some(mut st) = self.state(tx, stream)? else {
            return Err(Error::StreamNotFound(stream.clone()));
        };
        if st.deletion == Deletion::Hard {
            return Err(Error::StreamDeleted(stream.clone()));
        }
        let last = st.exists().then(|| st.length - 1);
        let ok = match expected {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => last.is_none(),
            ExpectedVersion::StreamExists => last.is_some(),
            ExpectedVersion::Exact(v) => last == Some(v),
        };
        if !ok {
            return Err(Error::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: last,
            });
        }
        if !hard && st.deletion == Deletion::Soft {
            return Err(Error::StreamNotFound(stream.clone()));
        }
        st.deletion = if hard { Deletion::Hard } else { Deletion::Soft };
        st.deleted_before = st.length;
        tx.ops.put(layout::state_key(stream), st.encode());
        tx.states.insert(stream.clone(), st);
        Ok(())
    }

    fn scavenged(&self, tx: &mut Tx<'_>, stream: &StreamId, upto: u64) -> Result<(), Error> {
        let Some(mut st) = self.state(tx, stream)? else {
            return Err(Error::StreamNotFound(stream.clone()));
        };
        st.scavenged_before = st.scavenged_before.max(upto.min(st.length));
        tx.ops.put(layout::state_key(stream), st.encode());
        tx.states.insert(stream.clone(), st);
        Ok(())
    }

    fn set_metadata(
        &self,
        tx: &mut Tx<'_>,
        stream: &StreamId,
        metadata: StreamMetadata,
    ) -> Result<(), Error> {
        let mut st = match self.state(tx, stream)? {
            Some(s) if s.deletion == Deletion::Hard => {
                return Err(Error::StreamDeleted(stream.clone()));
            }
            Some(s) => s,
            None => self.new_state(tx, stream, None, None)?,
        };
        st.metadata = metadata;
        tx.ops.put(layout::state_key(stream), st.encode());
        tx.states.insert(stream.clone(), st);
        Ok(())
    }
}

/// A record with its position in `$all`.
type Positioned = (u64, Vec<u8>);

/// One request's changes, on top of its group's.
struct Tx<'a> {
    staged: &'a Staged,
    ops: WriteBatch,
    edge: HashMap<(u64, u64), (u64, Vec<u8>)>,
    bundles: Vec<(u64, u64, Option<hydra_block::Ref>)>,
    sealed: Vec<(u64, u64)>,
    roots: Vec<(u32, hydra_block::Ref)>,
    queued: Vec<(u64, u64)>,
    dropped: Vec<(u64, u64)>,
    copies: Vec<(u64, compact::EdgeCopy)>,
    states: HashMap<StreamId, StreamState>,
    eids: HashMap<Uuid, EventLocation>,
    names: HashMap<u64, StreamId>,
    partition_keys: HashMap<u64, Uuid>,
    /// Partition and sequence of the first event of each append of this
    /// group, by position (for a retry within the group).
    sequences: HashMap<u64, (u16, u64)>,
    meta: Meta,
}

/// What became of a full bundle (see [`Writer::seal_bundle`]): the
/// records left for the edge, (position, record, already on the edge).
enum Filled {
    Sealed,
    /// Queued to be sealed by a later commit.
    Waiting(Vec<(u64, Vec<u8>, bool)>),
    /// Too large or too spread: it stays on the edge.
    Unsealable(Vec<(u64, Vec<u8>, bool)>),
}

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
