//! The live feed behind every subscription of every API (SSE, gRPC,
//! RESP3, persistent subscriptions' long polls): the log is read once per
//! commit, whatever the number of subscribers.
//!
//! ```text
//!   writer commit --on_commit--> watch(next position)
//!                                   |
//!                        tail task: reads the new events once
//!                                   |
//!            Arc<Batch> to the channels of the streams in it, and of the
//!            `$all` filters that match one of its events (bounded rings)
//!                   /          |           \
//!           follower      follower      follower      async tasks, no threads
//!           offers each event to its Subscription: taken, passed, or a gap
//! ```
//!
//! Followers of one stream share a channel, and so do followers of `$all`
//! with the same filter: a commit wakes only those it concerns (waking
//! 2,000 followers on every commit to find the hundred it concerns cost
//! the appends more than anything else).
//!
//! A follower catches up from the log first (its start and its pages read
//! on the blocking pool, at most [`READERS`] at once, so that thousands of
//! subscribers arriving cannot take the threads appends run on), then
//! follows the feed. It is polled by the connection that sends its events
//! ([`stream`]): one that falls behind the ring (a client that stops
//! reading) or finds a gap goes back to reading the log from its cursor:
//! it never holds appends up, nor more memory than one page.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hydra_eventlog::{
    AllFilter, Direction, Error as LogError, EventLog, Offered, RecordedEvent, StreamId,
    Subscription, Target,
};
use tokio::sync::{Semaphore, broadcast, watch};

use super::app::Shared;
use super::auth::Caller;

/// Batches each channel keeps for followers that are behind.
const RING: usize = 1024;

/// Most events read from the log for one batch.
const BATCH: u64 = 1024;

/// Events a follower reads from the log at a time: all it holds while
/// its client is slow (with thousands of followers, the log's own page of
/// 512 was most of the daemon's memory).
const PAGE: u64 = 64;

/// Catch-up reads running at once.
const READERS: usize = 8;

/// Events of `$all` up to position `to` (exclusive) from where the
/// previous batch ended, read once for every follower; or the end of the
/// feed (the daemon stops).
#[derive(Debug)]
pub enum Batch {
    Events {
        to: u64,
        events: Vec<Arc<LiveEvent>>,
    },
    End,
}

/// An event as followers share it: read once, and its JSON (what SSE
/// sends) made once, by the first follower that needs it, not once per
/// subscriber.
#[derive(Debug)]
pub struct LiveEvent {
    pub event: RecordedEvent,
    json: std::sync::OnceLock<String>,
    /// Its sequence in its partition (RESP3 pushes carry it), looked up
    /// by the first follower that needs it: a read of the log, which the
    /// others are spared.
    pub partition_sequence: std::sync::OnceLock<u64>,
    /// The event as RESP3 pushes carry it, encoded once.
    pub resp: std::sync::OnceLock<Arc<super::resp::SharedReply>>,
}

impl LiveEvent {
    fn new(event: RecordedEvent) -> Arc<LiveEvent> {
        Arc::new(LiveEvent {
            event,
            json: std::sync::OnceLock::new(),
            partition_sequence: std::sync::OnceLock::new(),
            resp: std::sync::OnceLock::new(),
        })
    }

    /// The event as the HTTP API writes it.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| {
            serde_json::to_string(&crate::events::EventOut::new(&self.event, false))
                .expect("events serialise")
        })
    }
}

type Channel = broadcast::Sender<Arc<Batch>>;

/// The channels followers listen on, by what they follow.
#[derive(Default)]
struct Channels {
    streams: HashMap<StreamId, Channel>,
    filters: HashMap<AllFilter, Channel>,
}

impl Channels {
    fn is_empty(&self) -> bool {
        self.streams.values().all(|c| c.receiver_count() == 0)
            && self.filters.values().all(|c| c.receiver_count() == 0)
    }

    fn of(&mut self, target: &Target) -> &Channel {
        let new = || broadcast::channel(RING).0;
        match target {
            Target::Stream(s) => self.streams.entry(s.clone()).or_insert_with(new),
            Target::All {
                stream_prefix,
                event_types,
            } => self
                .filters
                .entry(AllFilter {
                    stream_prefix: stream_prefix.clone(),
                    event_types: event_types.clone(),
                })
                .or_insert_with(new),
        }
    }

    /// Sends `batch` where it concerns a follower; drops channels nobody
    /// listens on any more.
    fn send(&mut self, batch: &Arc<Batch>) {
        self.streams.retain(|_, c| c.receiver_count() > 0);
        self.filters.retain(|_, c| c.receiver_count() > 0);
        let Batch::Events { events, .. } = &**batch else {
            for c in self.streams.values().chain(self.filters.values()) {
                let _ = c.send(batch.clone());
            }
            return;
        };
        let named: HashSet<&StreamId> = events.iter().map(|e| &e.event.stream).collect();
        for s in named {
            if let Some(c) = self.streams.get(s) {
                let _ = c.send(batch.clone());
            }
        }
        for (filter, c) in &self.filters {
            if events.iter().any(|e| filter.matches(&e.event)) {
                let _ = c.send(batch.clone());
            }
        }
    }
}

pub struct Live {
    channels: Mutex<Channels>,
    committed: watch::Receiver<u64>,
    readers: Arc<Semaphore>,
}

impl Live {
    /// The feed of `log`'s commits; [`tail`] fills it.
    pub fn new(log: &EventLog) -> Live {
        let (tx, committed) = watch::channel(log.next_position());
        log.on_commit(move |next| {
            tx.send_replace(next);
        });
        Live {
            channels: Mutex::default(),
            committed,
            readers: Arc::new(Semaphore::new(READERS)),
        }
    }

    fn channels(&self) -> std::sync::MutexGuard<'_, Channels> {
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Ends every follower (the daemon is stopping).
    pub fn close(&self) {
        self.channels().send(&Arc::new(Batch::End));
    }

    /// Follows `target` from `from` (a version or a position; `None`:
    /// from now): history from the log, then the feed.
    pub async fn follow(
        &self,
        app: &Shared,
        target: Target,
        from: Option<u64>,
    ) -> Result<Follower, LogError> {
        // Subscribed to the feed before reading the log: nothing committed
        // after the last read can be missed.
        let feed = self.channels().of(&target).subscribe();
        let log = app.log.clone();
        // Among the readers too: 10,000 clients subscribing at once could
        // otherwise start as many blocking threads as the pool allows.
        let permit = self
            .readers
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let (sub, seen) = tokio::task::spawn_blocking(move || {
            // From now, the follower has every event before the position
            // it starts at, read before the subscription so that an event
            // committed in between is offered (and passed), not missed:
            // it goes straight to the feed. 10,000 subscribers arriving
            // at once each read the log first, through the readers,
            // while appends went on; they fell behind the feed and read
            // the log for good.
            let seen = from.is_none().then(|| log.next_position());
            let sub = log.subscribe(target, from).map(|mut sub| {
                sub.page_size(PAGE);
                sub
            });
            drop(permit);
            sub.map(|sub| (sub, seen))
        })
        .await
        .map_err(|_| LogError::Closed)??;
        Ok(Follower {
            app: app.clone(),
            sub: Some(sub),
            feed,
            seen,
            buf: VecDeque::new(),
        })
    }
}

/// Reads every commit once and sends it to the followers, until the daemon
/// stops.
pub async fn tail(app: Shared) {
    let mut committed = app.live.committed.clone();
    let mut fed = *committed.borrow_and_update();
    loop {
        let next = *committed.borrow_and_update();
        if app.live.channels().is_empty() {
            // Nobody follows: nothing to read. A follower that comes later
            // reads these from the log when it catches up.
            fed = next;
        }
        while fed < next && !app.shutting_down() {
            let log = app.log.clone();
            let read = tokio::task::spawn_blocking(move || {
                log.read_all(Some(fed), BATCH, Direction::Forward, AllFilter::default())
                    .collect::<Result<Vec<_>, _>>()
            })
            .await;
            let events = match read {
                Ok(Ok(events)) => events,
                Ok(Err(e)) => {
                    tracing::warn!("live feed: reading from position {fed}: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Err(e) => {
                    tracing::error!("live feed: {e}");
                    return;
                }
            };
            let to = match events.last() {
                Some(last) if events.len() as u64 == BATCH => last.position + 1,
                Some(last) => (last.position + 1).max(next),
                None => next,
            };
            let events = events.into_iter().map(LiveEvent::new).collect();
            app.live
                .channels()
                .send(&Arc::new(Batch::Events { to, events }));
            fed = to;
        }
        if app.shutting_down() {
            return;
        }
        // A commit, or a look at `shutting_down` every second.
        let _ = tokio::time::timeout(Duration::from_secs(1), committed.changed()).await;
    }
}

/// One subscriber's view of the feed; see the module docs.
pub struct Follower {
    app: Shared,
    /// `None` only while a catch-up read has it.
    sub: Option<Subscription>,
    feed: broadcast::Receiver<Arc<Batch>>,
    /// The feed's position up to which this follower has every event;
    /// `None` while it reads the log instead.
    seen: Option<u64>,
    buf: VecDeque<Arc<LiveEvent>>,
}

impl Follower {
    /// The next event; `None` when the daemon stops.
    pub async fn next(&mut self) -> Option<Result<Arc<LiveEvent>, LogError>> {
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Some(Ok(e));
            }
            if self.app.shutting_down() {
                return None;
            }
            let Some(seen) = self.seen else {
                if let Err(e) = self.catch_up().await {
                    return Some(Err(e));
                }
                continue;
            };
            match self.feed.recv().await {
                Ok(batch) => match &*batch {
                    Batch::End => return None,
                    // A channel gets only the batches that concern its
                    // followers, all of them unless it says it lagged: one
                    // that skips positions skips nothing of theirs.
                    Batch::Events { to, events } => {
                        if *to <= seen {
                            continue;
                        }
                        let sub = self.sub.as_mut().expect("not reading");
                        for e in events.iter().filter(|e| e.event.position >= seen) {
                            match sub.offer(&e.event) {
                                Offered::Taken => self.buf.push_back(e.clone()),
                                Offered::Passed => {}
                                Offered::Gap => {
                                    self.seen = None;
                                    break;
                                }
                            }
                        }
                        if self.seen.is_some() {
                            sub.offered_through(*to);
                            self.seen = Some(*to);
                        }
                    }
                },
                // Fell behind the ring: read the log from the cursor.
                Err(broadcast::error::RecvError::Lagged(_)) => self.seen = None,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }

    /// The events already read and waiting (the rest of a catch-up page,
    /// of a batch), without waiting for more.
    pub fn ready(&mut self) -> impl Iterator<Item = Arc<LiveEvent>> + '_ {
        self.buf.drain(..)
    }

    /// Reads a page after the cursor from the log; an empty page means
    /// caught up with every commit up to the position seen before it.
    async fn catch_up(&mut self) -> Result<(), LogError> {
        let permit = self
            .app
            .live
            .readers
            .clone()
            .acquire_owned()
            .await
            .expect("never closed");
        let mut sub = self.sub.take().expect("one read at a time");
        let log = self.app.log.clone();
        let (sub, seen, page) = tokio::task::spawn_blocking(move || {
            let seen = log.next_position();
            let page = sub.poll();
            drop(permit);
            (sub, seen, page)
        })
        .await
        // The runtime is stopping (or the read panicked): the follower ends.
        .map_err(|_| LogError::Closed)?;
        self.sub = Some(sub);
        let page = page?;
        if page.is_empty() {
            self.seen = Some(seen);
        }
        self.buf.extend(page.into_iter().map(LiveEvent::new));
        Ok(())
    }
}

/// `follower` as a stream of messages made by `message`, polled by the
/// connection that sends them: no task or queue between the feed and the
/// socket, so a delivery wakes one task, and a client that stops reading
/// stops its follower, which then falls behind the feed's ring and reads
/// the log when the client resumes. It ends when the daemon stops, when
/// the caller's token is revoked, when `message` makes nothing of an
/// event, or after the message made of an error.
pub fn stream<T, M>(
    app: &Shared,
    follower: Follower,
    caller: &Caller,
    message: M,
) -> impl futures_util::Stream<Item = T> + Send + use<T, M>
where
    T: Send + 'static,
    M: FnMut(Result<Arc<LiveEvent>, LogError>) -> Option<T> + Send + 'static,
{
    use futures_util::StreamExt;
    let caller = caller.clone();
    let revoked = async move { caller.revoked().await };
    let open = Open::new(app);
    futures_util::stream::unfold(Some((follower, message, open)), |state| async move {
        let (mut follower, mut message, open) = state?;
        let item = follower.next().await?;
        let failed = item.is_err();
        let m = message(item)?;
        open.0.metrics.events_read.inc();
        Some((m, (!failed).then_some((follower, message, open))))
    })
    .take_until(revoked)
}

/// One open subscription, counted in the metrics while it lives.
struct Open(Shared);

impl Open {
    fn new(app: &Shared) -> Open {
        app.metrics.subscriptions.inc();
        Open(app.clone())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.0.metrics.subscriptions.dec();
    }
}

/// Up to `max` events of persistent subscription `name` within its
/// window, waiting up to `wait` for the first: on the commit feed, not on
/// a thread.
pub async fn read_subscription(
    app: &Shared,
    name: &str,
    max: usize,
    wait: Duration,
) -> Result<Vec<RecordedEvent>, LogError> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut commits = app.live.committed.clone();
    loop {
        commits.borrow_and_update();
        let (log, n) = (app.log.clone(), name.to_owned());
        let events =
            tokio::task::spawn_blocking(move || log.subscription_read(&n, max, Duration::ZERO))
                .await
                .map_err(|_| LogError::Closed)??;
        if !events.is_empty() || app.shutting_down() {
            return Ok(events);
        }
        // Nothing yet: the next commit, or the deadline.
        match tokio::time::timeout_at(deadline, commits.changed()).await {
            Ok(Ok(())) => {}
            _ => return Ok(events),
        }
    }
}

#[cfg(test)]
mod tests {
    use hydra_eventlog::{ExpectedVersion, NewEvent};

    use super::*;
    use crate::daemon::config::Config;

    /// A subscription from now goes straight to the feed: with every
    /// catch-up reader taken, it still gets the next event, so thousands
    /// of subscribers arriving while appends go on do not queue to read
    /// the log.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscription_from_now_reads_nothing_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let app: Shared =
            Arc::new(super::super::open(&Config::embedded(dir.path().into())).unwrap());
        let tail = tokio::spawn(super::tail(app.clone()));
        let stream: StreamId = "orders".parse().unwrap();
        let first = vec![NewEvent::new("Placed", b"1".to_vec())];
        app.log
            .append(&stream, ExpectedVersion::Any, first)
            .unwrap();
        let target = Target::Stream(stream.clone());
        let mut follower = app.live.follow(&app, target, None).await.unwrap();
        let readers = app.live.readers.clone();
        let _all = readers.acquire_many(READERS as u32).await.unwrap();
        let next = vec![NewEvent::new("Paid", b"2".to_vec())];
        app.log.append(&stream, ExpectedVersion::Any, next).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), follower.next())
            .await
            .expect("delivered from the feed, not waiting for a reader")
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.event.event_type.as_str(), got.event.version),
            ("Paid", 1)
        );
        app.live.close();
        app.log.close().unwrap();
        tail.abort();
    }
}
