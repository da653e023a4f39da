//! [`EventLog`]: opening, closing, and the write half of the API.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use hydra_bucket::{Bucket, BucketName, CreateOptions, Store};
use hydra_volume::{
    Direction, Durability, Identity, KeyRange, OpenOptions, PageLimit, Volume, WriteBatch, open_dir,
};

use crate::flusher::Flusher;
use crate::layout::{self, META, Meta};
use crate::records::{Buckets, SharedBuckets};
use crate::writer::{Msg, Reply, Request, StreamWrite, Writer};
use crate::{
    AppendResult, DurabilityMode, Error, ExpectedVersion, NewEvent, StreamId, StreamMetadata,
};

/// The bucket that held snapshots before they moved into their stream's
/// bucket (see the `snapshot` module), read for those still there.
pub const SNAPSHOT_BUCKET: &str = "eventlog";

/// How to open an event log.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub durability: DurabilityMode,
    /// Which bucket a new stream goes to when its append names none, by
    /// stream id prefix (the longest match wins; no match: `default`).
    pub placements: Vec<crate::Placement>,
}

/// The counters, from the last log record and the last stream name (two
/// seeks), raised to the stored floor that scavenge and reindex write
/// (scavenging the newest events must not let positions be reused).
pub(crate) fn load_meta(volume: &dyn Volume) -> Result<Meta, Error> {
    let stored: Meta = match volume.get(META)? {
        Some(b) => postcard::from_bytes(&b).map_err(|e| Error::Corrupt {
            what: "event log counters".into(),
            reason: e.to_string(),
        })?,
        None => Meta::default(),
    };
    let last = |prefix: &[u8]| -> Result<u64, Error> {
        Ok(
            match volume.first(&KeyRange::prefix(prefix), Direction::Backward)? {
                Some((k, v)) => {
                    let first = layout::u64_of(&k[prefix.len()..], "log key")?;
                    // A run entry (see `LogEntry::Run`) holds positions after
                    // its own.
                    let run = match prefix == layout::LOG {
                        true => layout::LogEntry::run_of(&v)?.map_or(1, |(_, _, count)| count),
                        false => 1,
                    };
                    first + run
                }
                None => 0,
            },
        )
    };
    Ok(Meta {
        next_position: stored.next_position.max(last(layout::LOG)?),
        next_num: stored.next_num.max(last(layout::STREAM_NAME)?),
        partitions: crate::partition::next_sequences(volume)?,
    })
}

/// Empties the keyspace under `prefix` a page per commit: `each` adds to
/// the page's batch whatever replaces an entry, and the entry is deleted
/// in the same commit. Stopped midway, it leaves the rest for the next
/// call.
pub(crate) fn drain(
    volume: &dyn Volume,
    prefix: &[u8],
    mut each: impl FnMut(&[u8], Vec<u8>, &mut WriteBatch) -> Result<(), Error>,
) -> Result<(), Error> {
    loop {
        let page = volume.scan_page(
            &KeyRange::prefix(prefix),
            Direction::Forward,
            PageLimit::default(),
        )?;
        if page.is_empty() {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        for (k, v) in page {
            each(&k, v, &mut batch)?;
            batch.delete(k);
        }
        volume.commit(batch)?;
    }
}

/// Stores the counters as a floor (see [`load_meta`]).
pub(crate) fn store_meta(volume: &dyn Volume, meta: &Meta) -> Result<(), Error> {
    volume.put(META, &postcard::to_allocvec(meta).expect("meta encodes"))?;
    Ok(())
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic inside a critical section leaves the log's own state
    // consistent (commits are atomic), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A function told the next position after each commit.
type Listener = Box<dyn Fn(u64) + Send + Sync>;

/// Wakes subscribers when a commit lands: threads waiting on the condition
/// variable, and listeners (an async runtime's wakers, say).
#[derive(Default)]
pub(crate) struct Notify {
    /// Next position after the last commit.
    next: Mutex<u64>,
    cond: Condvar,
    listeners: Mutex<Vec<Listener>>,
}

impl Notify {
    pub fn committed(&self, next_position: u64) {
        *self.next.lock().unwrap_or_else(|e| e.into_inner()) = next_position;
        self.cond.notify_all();
        for l in self
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            l(next_position);
        }
    }

    pub fn next_position(&self) -> u64 {
        *self.next.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the log holds a position at or past `position`, or the
    /// deadline passes; returns whether it does.
    pub fn wait_past(&self, position: u64, deadline: Instant) -> bool {
        let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
        while *next <= position {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            next = self
                .cond
                .wait_timeout(next, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

pub(crate) struct Inner {
    pub volume: Arc<dyn Volume>,
    pub store: Store,
    pub buckets: SharedBuckets,
    pub bundles: crate::bundle::Cache,
    pub snapshots: Bucket,
    pub identity: Identity,
    pub notify: Arc<Notify>,
    /// Requests waiting for the next leader.
    pub queue: Mutex<Vec<Request>>,
    /// The writer; `None` once closed.
    pub writer: Mutex<Option<Writer>>,
    pub closed: std::sync::atomic::AtomicBool,
    pub flusher: Mutex<Option<JoinHandle<()>>>,
    pub commits: Arc<std::sync::atomic::AtomicU64>,
    pub subscriptions: Mutex<std::collections::HashMap<String, crate::subscribe::Delivery>>,
    /// Keys given for buckets that do not exist yet: a replicated
    /// stream that makes one is read with its key from the start.
    pub pending_keys: Mutex<std::collections::HashMap<BucketName, hydra_bucket::Key>>,
    /// Keys offered for whichever buckets they open (see
    /// [`EventLog::offer_key`]).
    pub offered_keys: Mutex<Vec<hydra_bucket::Key>>,
}

/// An embedded event store: streams of events with optimistic
/// concurrency, a global order, reads both ways, subscriptions, snapshots
/// and Merkle proofs. Cheap to clone; all clones share one writer.
#[derive(Clone)]
pub struct EventLog {
    pub(crate) inner: Arc<Inner>,
}

impl EventLog {
    /// Opens (creating if needed) the event log in a data directory. The
    /// volume is opened with the durability the mode needs.
    pub fn open_dir(dir: &Path, options: Options) -> Result<EventLog, Error> {
        let durability = match options.durability {
            DurabilityMode::Sync => Durability::Immediate,
            _ => Durability::Eventual,
        };
        let volume = open_dir(
            dir,
            OpenOptions {
                backend: None,
                durability,
                cache_bytes: None,
            },
        )?;
        EventLog::open(Store::open(volume)?, options)
    }

    /// Opens the event log of a store. Opening reads a few keys whatever
    /// the log's size: the indexes live in the volume.
    pub fn open(store: Store, options: Options) -> Result<EventLog, Error> {
        let volume = store.volume().clone();
        let identity = Identity::load_or_create(&*volume)?;
        let name: BucketName = SNAPSHOT_BUCKET.parse().expect("a valid bucket name");
        if store.buckets()?.iter().all(|c| c.id != name) {
            store.create_bucket(&name, CreateOptions::default())?;
        }
        let snapshots = store.bucket(&name, None)?;
        for p in &options.placements {
            // A placement naming a missing bucket fails now, not at the
            // first append of a matching stream.
            store.bucket_config(&p.bucket)?;
        }
        let buckets = Arc::new(Buckets::new(store.clone(), options.placements));
        crate::migrate::run(&*volume, &store, &buckets)?;
        crate::migrate::trees(&*volume, &buckets)?;
        crate::partition::backfill(&*volume)?;
        let meta = load_meta(&*volume)?;
        let notify = Arc::new(Notify::default());
        notify.committed(meta.next_position);

        let (flush_tx, flusher) = match options.durability {
            DurabilityMode::Async { interval, bytes } => {
                let vol = volume.clone();
                let (tx, handle) = Flusher::start(interval, bytes, move || vol.flush());
                (Some(tx), Some(handle))
            }
            _ => (None, None),
        };
        let commits = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let writer = Writer {
            buckets: buckets.clone(),
            commits: commits.clone(),
            volume: volume.clone(),
            meta,
            cache: Default::default(),
            partition_keys: Default::default(),
            open_edges: Default::default(),
            open_bytes: 0,
            compaction: crate::compact::Compaction::open(&*volume, meta.next_position)?,
            seal_queue: volume
                .scan(KeyRange::prefix(layout::SEAL_QUEUE), Direction::Forward)
                .map(|e| {
                    let (k, _) = e?;
                    layout::num_version(&k[layout::SEAL_QUEUE.len()..]).ok_or_else(|| {
                        Error::Corrupt {
                            what: "sealing queue key".into(),
                            reason: format!("{} bytes", k.len()),
                        }
                    })
                })
                .collect::<Result<_, Error>>()?,
            notify: notify.clone(),
            flusher: flush_tx,
        };
        Ok(EventLog {
            inner: Arc::new(Inner {
                volume,
                store,
                buckets,
                bundles: Default::default(),
                snapshots,
                identity,
                notify,
                queue: Mutex::new(Vec::new()),
                writer: Mutex::new(Some(writer)),
                closed: Default::default(),
                flusher: Mutex::new(flusher),
                commits,
                subscriptions: Default::default(),
                pending_keys: Default::default(),
                offered_keys: Default::default(),
            }),
        })
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    pub fn volume(&self) -> &Arc<dyn Volume> {
        &self.inner.volume
    }

    /// Gives the key of an encrypted bucket, so that its streams can be
    /// written and read, those it held blind too (they are indexed now).
    /// A wrong key is refused, naming the bucket.
    pub fn unlock(&self, bucket: &BucketName, key: &hydra_bucket::Key) -> Result<(), Error> {
        self.inner.store.unlock(bucket, key)?;
        self.inner.buckets.reopen();
        // What it held blind (verified when it came) is readable now.
        self.index_blind(bucket)?;
        Ok(())
    }

    /// Gives the key of bucket `name`: [`EventLog::unlock`] when it
    /// exists and is encrypted (an unencrypted one needs none), else kept
    /// for when a replicated stream makes it (see `storage.rs`).
    pub fn give_key(&self, name: &BucketName, key: &hydra_bucket::Key) -> Result<(), Error> {
        match self.inner.store.bucket_config(name) {
            Ok(c) if c.transforms.encryption.is_some() => self.unlock(name, key),
            Ok(_) => Ok(()),
            Err(hydra_bucket::BucketError::NotFound(_)) => {
                lock(&self.inner.pending_keys).insert(name.clone(), key.clone());
                Ok(())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// [`EventLog::unlock_with`], and `key` kept for the buckets that
    /// streams imported or replicated later make or bring: they are read
    /// with it from the start (so an import indexes their events in the
    /// file's order, rather than holding them blind until a key comes).
    pub fn offer_key(&self, key: &hydra_bucket::Key) -> Result<Vec<BucketName>, Error> {
        let names = self.unlock_with(key)?;
        lock(&self.inner.offered_keys).push(key.clone());
        Ok(names)
    }

    /// [`EventLog::unlock`] for every encrypted bucket `key` is the key
    /// of; returns their names.
    pub fn unlock_with(&self, key: &hydra_bucket::Key) -> Result<Vec<BucketName>, Error> {
        let names = self.inner.store.unlock_with(key)?;
        self.inner.buckets.reopen();
        for name in &names {
            self.index_blind(name)?;
        }
        Ok(names)
    }

    /// Removes a bucket with all its blocks (see
    /// [`Store::remove_bucket`]), unless events of streams are stored in
    /// it: that is refused, naming the first of those streams, since their
    /// events would go with it (streams deleted and scavenged to the end
    /// hold none). Returns how many blocks were deleted.
    pub fn remove_bucket(&self, bucket: &BucketName) -> Result<u64, Error> {
        let num = self.inner.store.bucket_config(bucket)?.num();
        let mut holding = Vec::new();
        let mut count = 0u64;
        for e in self
            .inner
            .volume
            .scan(KeyRange::prefix(layout::STREAM_STATE), Direction::Forward)
        {
            let (k, v) = e?;
            let st = layout::StreamState::decode(&v)?;
            if st.bucket == num && st.scavenged_before < st.length {
                count += 1;
                if holding.len() < 3 {
                    holding.push(
                        String::from_utf8_lossy(&k[layout::STREAM_STATE.len()..]).into_owned(),
                    );
                }
            }
        }
        if count > 0 {
            return Err(Error::BucketHoldsStreams {
                bucket: bucket.to_string(),
                count,
                first: holding.join(", "),
            });
        }
        self.inner.buckets.reopen();
        Ok(self.inner.store.remove_bucket(bucket)?)
    }

    /// The key that signs this log's heads.
    pub fn identity(&self) -> &Identity {
        &self.inner.identity
    }

    /// Queues a request and waits for its answer, committing as the
    /// leader when the writer is free (see the `writer` module).
    pub(crate) fn request<T>(&self, make: impl FnOnce(Reply<T>) -> Request) -> Result<T, Error> {
        let (reply, answer) = mpsc::channel();
        lock(&self.inner.queue).push(make(reply));
        let mut may_lead = true;
        loop {
            if may_lead {
                self.lead()?;
            }
            match answer.recv() {
                Ok(Msg::Done(r)) => return r,
                Ok(Msg::Lead) => may_lead = true,
                Err(_) => return Err(Error::Closed),
            }
        }
    }

    /// Commits what is queued if no one else is, then hands the lead to
    /// the owner of the next queued request, if any.
    fn lead(&self) -> Result<(), Error> {
        let mut writer = match self.inner.writer.try_lock() {
            Ok(w) => w,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            // Someone is leading; they hand over when done.
            Err(std::sync::TryLockError::WouldBlock) => return Ok(()),
        };
        let Some(w) = writer.as_mut() else {
            lock(&self.inner.queue).clear();
            return Err(Error::Closed);
        };
        let group = std::mem::take(&mut *lock(&self.inner.queue));
        let answers = w.commit(group);
        drop(writer);
        // After releasing: whatever was queued meanwhile gets a leader
        // first, then the waiters of this group wake.
        if let Some(next) = lock(&self.inner.queue).first() {
            next.lead();
        }
        answers.send();
        Ok(())
    }

    /// Appends `events` to `stream` atomically, if the stream is at
    /// `expected`. Retrying an append whose events carry ids returns the
    /// first result and writes nothing.
    pub fn append(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, Error> {
        self.write(StreamWrite::new(stream.clone(), expected, events))
    }

    /// Appends one [`StreamWrite`]: [`EventLog::append`] with a bucket for
    /// a new stream (see [`StreamWrite::bucket`]).
    pub fn write(&self, write: StreamWrite) -> Result<AppendResult, Error> {
        let writes = vec![write];
        Ok(self
            .request(|reply| Request::Append { writes, reply })?
            .remove(0))
    }

    /// Runs several appends, each on its own (one may fail while the others
    /// succeed), in the order given, in as few commits as the group commit
    /// takes (one, unless they are many): what a connection's pipelined
    /// commands ask. Later ones see the earlier ones, as sequential appends
    /// would. Results come in the order given.
    pub fn write_each(&self, writes: Vec<StreamWrite>) -> Vec<Result<AppendResult, Error>> {
        let n = writes.len();
        let (reply, answers) = mpsc::channel();
        // Queued together, in order: a leader takes them all at once, and
        // answers them in that order.
        {
            let mut queue = lock(&self.inner.queue);
            for w in writes {
                queue.push(Request::Append {
                    writes: vec![w],
                    reply: reply.clone(),
                });
            }
        }
        drop(reply);
        let mut out = Vec::with_capacity(n);
        let mut may_lead = true;
        while out.len() < n {
            if may_lead && let Err(e) = self.lead() {
                out.resize_with(n, || Err(e.clone()));
                break;
            }
            may_lead = false;
            match answers.recv() {
                Ok(Msg::Done(r)) => out.push(r.map(|mut r| r.remove(0))),
                Ok(Msg::Lead) => may_lead = true,
                Err(_) => out.resize_with(n, || Err(Error::Closed)),
            }
        }
        out
    }

    /// Appends to several streams, each with its own expectation, all or
    /// nothing (SierraDB's EMAPPEND). Results come in the order given.
    pub fn append_multi(&self, writes: Vec<StreamWrite>) -> Result<Vec<AppendResult>, Error> {
        self.request(|reply| Request::Append { writes, reply })
    }

    /// Deletes a stream. Soft: hidden, and an append recreates it with the
    /// versions continuing. Hard: a tombstone, forever. Snapshots go too.
    pub fn delete(
        &self,
        stream: &StreamId,
        expected: ExpectedVersion,
        hard: bool,
    ) -> Result<(), Error> {
        self.request(|reply| Request::Delete {
            stream: stream.clone(),
            expected,
            hard,
            reply,
        })?;
        self.delete_snapshots(stream)?;
        Ok(())
    }

    /// Sets a stream's metadata (retention rules and application JSON).
    pub fn set_metadata(&self, stream: &StreamId, metadata: StreamMetadata) -> Result<(), Error> {
        self.request(|reply| Request::SetMetadata {
            stream: stream.clone(),
            metadata,
            reply,
        })
    }

    pub(crate) fn mark_scavenged(&self, stream: &StreamId, upto: u64) -> Result<(), Error> {
        self.request(|reply| Request::Scavenged {
            stream: stream.clone(),
            upto,
            reply,
        })
    }

    /// Rebuilds every index (stream versions, event ids, Merkle subtrees,
    /// stream lengths and peaks) from the event records, holding appends
    /// meanwhile. For recovery after an index was damaged or lost.
    pub fn reindex(&self) -> Result<crate::reindex::ReindexReport, Error> {
        self.request(|reply| Request::Reindex { reply })
    }

    /// Volume commits made by appends so far: one fsync each in `sync`
    /// mode, so appends / commits is the group-commit factor.
    pub fn commits(&self) -> u64 {
        self.inner
            .commits
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The position the next event will get: one past the last committed.
    pub fn next_position(&self) -> u64 {
        self.inner.notify.next_position()
    }

    /// Calls `listener` with the next position after every commit (and
    /// once more at close), on the committing thread: it must return at
    /// once. For waking tasks of an async runtime, which cannot block in
    /// [`EventLog::wait_past`]: a `tokio::sync::watch` sender's `send`,
    /// say.
    pub fn on_commit(&self, listener: impl Fn(u64) + Send + Sync + 'static) {
        self.inner
            .notify
            .listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Box::new(listener));
    }

    /// Blocks until the log holds `position` (an append or import
    /// committed it) or `deadline` passes; returns whether it does. For
    /// long polls: wait past the `next_position` seen last.
    pub fn wait_past(&self, position: u64, deadline: std::time::Instant) -> bool {
        self.inner.notify.wait_past(position, deadline)
    }

    /// Stops the writer after the appends already queued, flushes and
    /// releases the volume's writer. Later calls fail with `Closed`.
    pub fn close(&self) -> Result<(), Error> {
        self.inner
            .closed
            .store(true, std::sync::atomic::Ordering::SeqCst);
        // Taking the writer waits for a commit in progress; dropping it
        // drops the flusher's channel.
        let writer = lock(&self.inner.writer).take();
        if let Some(mut w) = writer {
            w.finish_compaction()?;
        }
        lock(&self.inner.queue).clear();
        if let Some(h) = self
            .inner
            .flusher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // The flusher ends when the writer (its sender) is gone.
            let _ = h.join();
        }
        self.inner.volume.flush()?;
        // Wake subscribers so that they notice.
        self.inner
            .notify
            .committed(self.inner.notify.next_position());
        Ok(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.writer.get_mut().map(Option::take));
        if let Ok(h) = self.flusher.get_mut()
            && let Some(h) = h.take()
        {
            let _ = h.join();
        }
        let _ = self.volume.flush();
    }
}
