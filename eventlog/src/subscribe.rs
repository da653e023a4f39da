//! Subscriptions: catch up from the log, then follow it live.
//!
//! A subscription is a cursor, not a queue. It reads history from the log
//! a page at a time; once it has read everything committed it waits for
//! the writer's next commit, and reads again from its cursor. So the
//! switch from history to live can neither drop nor repeat an event, and a
//! slow subscriber never holds up appenders: it simply reads further
//! behind, from the log, and loses nothing.
//!
//! A server with thousands of subscribers should not have each of them
//! read every commit from the log: it can read each commit once, share
//! the events, and [`offer`](Subscription::offer) them to every
//! subscription, which takes those that are its next ones and says when
//! it missed some (then [`poll`](Subscription::poll) reads them from the
//! log, a page at a time, without waiting).
//!
//! Persistent subscriptions keep their cursor (the last acknowledged
//! position) in the volume: after a restart they resume after the last
//! ack and deliver again what was delivered but not acknowledged
//! (at-least-once).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::layout;
use crate::{AllFilter, Direction, Error, EventLog, ReadFrom, RecordedEvent, StreamId};

/// Events read per catch-up page, unless [`Subscription::page_size`]
/// says otherwise.
const PAGE: u64 = 512;

/// What a subscription follows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Target {
    /// One stream; the cursor is a version.
    Stream(StreamId),
    /// `$all`, filtered; the cursor is a global position.
    All {
        stream_prefix: Option<String>,
        event_types: Vec<String>,
    },
}

impl Target {
    fn filter(&self) -> AllFilter {
        match self {
            Target::Stream(_) => AllFilter::default(),
            Target::All {
                stream_prefix,
                event_types,
            } => AllFilter {
                stream_prefix: stream_prefix.clone(),
                event_types: event_types.clone(),
            },
        }
    }

    fn cursor_of(&self, e: &RecordedEvent) -> u64 {
        match self {
            Target::Stream(_) => e.version,
            Target::All { .. } => e.position,
        }
    }
}

/// A catch-up-then-live subscription; see [`EventLog::subscribe`].
pub struct Subscription {
    log: EventLog,
    target: Target,
    filter: AllFilter,
    /// Next version (stream) or position ($all) to deliver.
    next: u64,
    /// Events (stream) or positions (`$all`) read per catch-up page.
    page: u64,
    buf: VecDeque<RecordedEvent>,
}

/// What a subscription makes of an event offered to it from a live feed
/// (see [`Subscription::offer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Its next event: deliver it; the cursor has moved past it.
    Taken,
    /// Not for it: another stream's, filtered out, or already delivered.
    Passed,
    /// A later event of its stream than its next one: it missed some,
    /// which [`Subscription::poll`] reads from the log.
    Gap,
}

impl EventLog {
    /// Subscribes to a stream or `$all` from `from` (a version or a
    /// position, inclusive), or from now when `None`.
    pub fn subscribe(&self, target: Target, from: Option<u64>) -> Result<Subscription, Error> {
        let next = match (from, &target) {
            (Some(f), _) => f,
            (None, Target::Stream(s)) => self.state(s)?.map_or(0, |st| st.length),
            (None, Target::All { .. }) => self.next_position(),
        };
        Ok(Subscription {
            log: self.clone(),
            filter: target.filter(),
            target,
            next,
            page: PAGE,
            buf: VecDeque::new(),
        })
    }
}

impl Subscription {
    /// The next version or position this subscription will deliver.
    pub fn cursor(&self) -> u64 {
        self.next
    }

    /// Reads at most `events` per catch-up page (at least 1; 512 unless
    /// set): what a subscriber that falls behind holds while its client
    /// is slow is one page, so a server with thousands of them wants
    /// small ones.
    pub fn page_size(&mut self, events: u64) {
        self.page = events.max(1);
    }

    /// Reads what is committed after the cursor into the buffer.
    fn catch_up(&mut self) -> Result<(), Error> {
        let events: Vec<RecordedEvent> = match &self.target {
            Target::Stream(s) => {
                match self.log.read(
                    s,
                    ReadFrom::Version(self.next),
                    self.page,
                    Direction::Forward,
                ) {
                    Ok(it) => it.collect::<Result<_, _>>()?,
                    // Not there yet: a live subscription waits for it.
                    Err(Error::StreamNotFound(_)) => Vec::new(),
                    Err(e) => return Err(e),
                }
            }
            Target::All { .. } => {
                // Read a page of positions, filter, and advance past the
                // whole page even when the filter keeps nothing.
                let until = self.log.next_position();
                let page: Vec<RecordedEvent> = self
                    .log
                    .read_all(
                        Some(self.next),
                        self.page,
                        Direction::Forward,
                        AllFilter::default(),
                    )
                    .collect::<Result<_, _>>()?;
                let last = page.last().map(|e| e.position);
                let kept: Vec<_> = page
                    .into_iter()
                    .filter(|e| self.filter.matches(e))
                    .collect();
                if kept.is_empty() {
                    if let Some(l) = last {
                        self.next = l + 1;
                    } else {
                        // Positions up to `until` may have been scavenged.
                        self.next = self.next.max(until);
                    }
                }
                kept
            }
        };
        if let Some(last) = events.last() {
            self.next = self.target.cursor_of(last) + 1;
        }
        self.buf.extend(events);
        Ok(())
    }

    /// What is committed after the cursor, a page at most, without
    /// waiting: empty once the subscription has caught up with the log.
    pub fn poll(&mut self) -> Result<Vec<RecordedEvent>, Error> {
        if self.buf.is_empty() {
            self.catch_up()?;
        }
        Ok(self.buf.drain(..).collect())
    }

    /// Offers an event committed after everything this subscription has
    /// read (from a feed of the log's commits, in `$all` order); see
    /// [`Offered`]. An `$all` subscription's cursor moves past every event
    /// offered, taken or not.
    pub fn offer(&mut self, e: &RecordedEvent) -> Offered {
        match &self.target {
            Target::Stream(s) => {
                if e.stream != *s || e.version < self.next {
                    Offered::Passed
                } else if e.version == self.next {
                    self.next += 1;
                    Offered::Taken
                } else {
                    Offered::Gap
                }
            }
            Target::All { .. } => {
                if e.position < self.next {
                    return Offered::Passed;
                }
                self.next = e.position + 1;
                if self.filter.matches(e) {
                    Offered::Taken
                } else {
                    Offered::Passed
                }
            }
        }
    }

    /// Tells an `$all` subscription that every event below position `to`
    /// has been offered, so that it does not read them again.
    pub fn offered_through(&mut self, to: u64) {
        if let Target::All { .. } = self.target {
            self.next = self.next.max(to);
        }
    }

    /// The next event, waiting at most `timeout` for one to be appended.
    /// `Ok(None)` on timeout; `Err(Closed)` once the log is closed.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<RecordedEvent>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = self.buf.pop_front() {
                return Ok(Some(e));
            }
            let seen = self.log.next_position();
            self.catch_up()?;
            if !self.buf.is_empty() {
                continue;
            }
            if self
                .log
                .inner
                .closed
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                return Err(Error::Closed);
            }
            // Nothing after the cursor: wait for a commit past what was
            // committed when we looked.
            if !self.log.inner.notify.wait_past(seen, deadline) {
                return Ok(None);
            }
        }
    }
}

impl Iterator for Subscription {
    type Item = Result<RecordedEvent, Error>;

    /// Blocks until the next event (or the log closes).
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_timeout(Duration::from_secs(3600)) {
                Ok(Some(e)) => return Some(Ok(e)),
                Ok(None) => continue,
                Err(Error::Closed) => return None,
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// A persistent subscription's stored state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PersistentSubscription {
    pub name: String,
    pub target: Target,
    /// Cursor (version or position) of the last acknowledged event.
    pub acked: Option<u64>,
    /// Where delivery starts when nothing is acknowledged yet.
    pub start: u64,
    /// Most events delivered and not yet acknowledged.
    pub window: u32,
}

/// What a persistent subscription has delivered in this process.
#[derive(Debug, Clone, Default)]
pub(crate) struct Delivery {
    /// Next cursor to deliver.
    pub next: u64,
    /// Cursors delivered and not acknowledged.
    pub in_flight: VecDeque<u64>,
}

impl PersistentSubscription {
    fn first_unacked(&self) -> u64 {
        self.acked.map_or(self.start, |a| a + 1)
    }
}

impl EventLog {
    /// Creates a named subscription starting at `from` (a version or
    /// position; `None`: from now) with at most `window` unacknowledged
    /// events in flight.
    pub fn create_subscription(
        &self,
        name: &str,
        target: Target,
        from: Option<u64>,
        window: u32,
    ) -> Result<PersistentSubscription, Error> {
        let key = layout::subscription_key(name);
        if self.inner.volume.get(&key)?.is_some() {
            return Err(Error::SubscriptionExists(name.to_owned()));
        }
        let start = self.subscribe(target.clone(), from)?.cursor();
        let sub = PersistentSubscription {
            name: name.to_owned(),
            target,
            acked: None,
            start,
            window: window.max(1),
        };
        self.put_subscription(&sub)?;
        Ok(sub)
    }

    fn put_subscription(&self, sub: &PersistentSubscription) -> Result<(), Error> {
        let bytes = serde_json::to_vec(sub).expect("subscriptions encode");
        self.inner
            .volume
            .put(&layout::subscription_key(&sub.name), &bytes)?;
        Ok(())
    }

    pub fn subscription(&self, name: &str) -> Result<PersistentSubscription, Error> {
        let bytes = self
            .inner
            .volume
            .get(&layout::subscription_key(name))?
            .ok_or_else(|| Error::SubscriptionNotFound(name.to_owned()))?;
        serde_json::from_slice(&bytes).map_err(|e| Error::Corrupt {
            what: format!("subscription {name:?}"),
            reason: e.to_string(),
        })
    }

    /// Every persistent subscription, by name.
    pub fn subscriptions(&self) -> Result<Vec<PersistentSubscription>, Error> {
        self.inner
            .volume
            .scan(
                hydra_volume::KeyRange::prefix(layout::SUBSCRIPTION),
                Direction::Forward,
            )
            .map(|e| {
                let (_, v) = e?;
                serde_json::from_slice(&v).map_err(|e| Error::Corrupt {
                    what: "subscription".into(),
                    reason: e.to_string(),
                })
            })
            .collect()
    }

    /// Delivers up to `max` events after those already in flight, keeping
    /// at most `window` delivered and unacknowledged; waits up to `timeout`
    /// for the first.
    pub fn subscription_read(
        &self,
        name: &str,
        max: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedEvent>, Error> {
        let sub = self.subscription(name)?;
        let first = sub.first_unacked();
        let mut delivery = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
            .filter(|d| d.next >= first)
            .unwrap_or(Delivery {
                next: first,
                in_flight: VecDeque::new(),
            });
        delivery.in_flight.retain(|c| *c >= first);
        let room = (sub.window as usize).saturating_sub(delivery.in_flight.len());
        let mut out = Vec::new();
        if room > 0 && max > 0 {
            let mut live = self.subscribe(sub.target.clone(), Some(delivery.next))?;
            let deadline = Instant::now() + timeout;
            while out.len() < max.min(room) {
                let wait = if out.is_empty() {
                    deadline.saturating_duration_since(Instant::now())
                } else {
                    Duration::ZERO
                };
                let Some(e) = live.next_timeout(wait)? else {
                    break;
                };
                let c = sub.target.cursor_of(&e);
                delivery.in_flight.push_back(c);
                delivery.next = c + 1;
                out.push(e);
            }
        }
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name.to_owned(), delivery);
        Ok(out)
    }

    /// Acknowledges everything up to and including `cursor` (a version or
    /// position); the acknowledgement is stored.
    pub fn ack(&self, name: &str, cursor: u64) -> Result<(), Error> {
        let mut sub = self.subscription(name)?;
        let mut map = self
            .inner
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let delivered = map.get(name).map(|d| d.next);
        if delivered.is_none_or(|d| cursor >= d) {
            return Err(Error::AckBeyondDelivered {
                name: name.to_owned(),
                ack: cursor,
                delivered: delivered.and_then(|d| d.checked_sub(1)),
            });
        }
        if let Some(d) = map.get_mut(name) {
            d.in_flight.retain(|c| *c > cursor);
        }
        if sub.acked.is_none_or(|a| cursor > a) {
            sub.acked = Some(cursor);
            self.put_subscription(&sub)?;
        }
        Ok(())
    }

    pub fn delete_subscription(&self, name: &str) -> Result<(), Error> {
        self.subscription(name)?;
        self.inner.volume.delete(&layout::subscription_key(name))?;
        self.inner
            .subscriptions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name);
        Ok(())
    }
}
