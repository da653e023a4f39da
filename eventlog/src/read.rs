//! Reads: a stream both ways, `$all` with filters, one event by id, and
//! what the log knows of its streams. Reads are iterators that fetch a
//! page at a time, never whole streams.

use std::collections::VecDeque;
use std::ops::Bound;

use hydra_bucket::BucketError;
use hydra_volume::{Direction, KeyRange, PageLimit};
use uuid::Uuid;

use std::sync::Arc;

use crate::bundle::{BUNDLE, Sealed};
use crate::layout::{self, Deletion, OpenEdge, StreamState};
use crate::records::{self, Found};
use crate::writer::now_ms;
use crate::{AllFilter, Error, EventLog, ReadFrom, RecordedEvent, StreamId};

/// Events fetched per page.
const PAGE: usize = 512;

/// What a listing says of a stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamInfo {
    pub stream: StreamId,
    /// Version of the last event; `None` for a stream without events.
    pub version: Option<u64>,
    pub deleted: bool,
    pub tombstoned: bool,
    /// The bucket that holds the stream's events; `None` once it was
    /// removed (possible only for a stream deleted and scavenged to its end).
    pub bucket: Option<hydra_bucket::BucketName>,
    /// Held blind: its bucket is encrypted and this store has no key, so
    /// it keeps, verifies and serves the stream but cannot read it (its
    /// version is the writer's signed one).
    #[serde(default)]
    pub blind: bool,
}

impl EventLog {
    pub(crate) fn state(&self, stream: &StreamId) -> Result<Option<StreamState>, Error> {
        match self.inner.volume.get(&layout::state_key(stream))? {
            Some(b) => StreamState::decode(&b).map(Some),
            None => Ok(None),
        }
    }

    /// The state of a stream that readers may see.
    pub(crate) fn readable(&self, stream: &StreamId) -> Result<StreamState, Error> {
        match self.state(stream)? {
            Some(s) if s.deletion == Deletion::Hard => Err(Error::StreamDeleted(stream.clone())),
            Some(s) if s.exists() => Ok(s),
            Some(_) => Err(Error::StreamNotFound(stream.clone())),
            // Held blind: say whose key it needs.
            None => match self.blind_held(stream)? {
                Some(held) => Err(BucketError::KeyRequired(held.bucket.name().clone()).into()),
                None => Err(Error::StreamNotFound(stream.clone())),
            },
        }
    }

    /// Reads up to `count` events of `stream` from `from`, either way.
    pub fn read(
        &self,
        stream: &StreamId,
        from: ReadFrom,
        count: u64,
        direction: Direction,
    ) -> Result<StreamEvents, Error> {
        let st = self.readable(stream)?;
        self.read_state(stream, &st, st.length, from, count, direction)
    }

    /// Reads the stream as it was when it had `length` events: time travel.
    /// Versions at or past `length` are never returned.
    pub fn read_at(
        &self,
        stream: &StreamId,
        length: u64,
        from: ReadFrom,
        count: u64,
        direction: Direction,
    ) -> Result<StreamEvents, Error> {
        let st = self.readable(stream)?;
        if length > st.length {
            return Err(Error::NoSuchVersion {
                stream: stream.clone(),
                version: length,
                length: st.length,
            });
        }
        self.read_state(stream, &st, length, from, count, direction)
    }

    /// Reads the stream as an earlier signed head describes it: checks
    /// that the head's root is the root of the stream's first
    /// `head.length` events (so the head really is a past state of this
    /// stream), then reads as [`EventLog::read_at`].
    pub fn read_at_head(
        &self,
        head: &crate::Head,
        from: ReadFrom,
        count: u64,
        direction: Direction,
    ) -> Result<StreamEvents, Error> {
        let ours = self.head_at(&head.stream, head.length)?;
        if ours.root != head.root {
            return Err(Error::HeadMismatch {
                stream: head.stream.clone(),
                length: head.length,
            });
        }
        self.read_at(&head.stream, head.length, from, count, direction)
    }

    fn read_state(
        &self,
        stream: &StreamId,
        st: &StreamState,
        end: u64,
        from: ReadFrom,
        count: u64,
        direction: Direction,
    ) -> Result<StreamEvents, Error> {
        let lo = st.first_visible().max(st.scavenged_before);
        let cursor = match (from, direction) {
            (ReadFrom::Edge, Direction::Forward) => Some(lo),
            (ReadFrom::Version(v), Direction::Forward) => Some(v.max(lo)),
            (ReadFrom::Edge, Direction::Backward) => end.checked_sub(1),
            (ReadFrom::Version(v), Direction::Backward) => Some(v.min(end.saturating_sub(1))),
        };
        let cursor = cursor.filter(|c| match direction {
            Direction::Forward => *c < end,
            Direction::Backward => end > 0 && *c >= lo,
        });
        Ok(StreamEvents {
            log: self.clone(),
            stream: stream.clone(),
            num: st.num,
            open: st.open.clone(),
            lo,
            end,
            cursor,
            remaining: count,
            direction,
            min_timestamp: st
                .metadata
                .max_age
                .map(|s| now_ms().saturating_sub(s.saturating_mul(1000))),
            buf: VecDeque::new(),
        })
    }

    /// Reads up to `count` events of all streams in global order, from
    /// `from` (a position, inclusive; `None`: the start forwards, the end
    /// backwards). Events of deleted or truncated streams appear until a
    /// scavenge removes them.
    pub fn read_all(
        &self,
        from: Option<u64>,
        count: u64,
        direction: Direction,
        filter: AllFilter,
    ) -> AllEvents {
        let range = match (from, direction) {
            (None, _) => KeyRange::prefix(layout::LOG),
            (Some(p), Direction::Forward) => KeyRange {
                start: Bound::Included(layout::log_key(p)),
                end: KeyRange::prefix(layout::LOG).end,
            },
            (Some(p), Direction::Backward) => KeyRange {
                start: Bound::Included(layout::LOG.to_vec()),
                end: Bound::Included(layout::log_key(p)),
            },
        };
        AllEvents {
            log: self.clone(),
            range,
            direction,
            filter,
            remaining: count,
            buf: VecDeque::new(),
            done: false,
            page: PAGE,
        }
    }

    /// One event by id.
    pub fn get_event(&self, id: Uuid) -> Result<RecordedEvent, Error> {
        if let Some(position) = crate::event_id::position_of(&id)
            && let Ok(e) = self.event_at(position)
            && e.id == id
        {
            return Ok(e);
        }
        // Checked while found through a replica's id run (see `IdRun`).
        let mut checked = None;
        let loc = crate::event_id::locate(&*self.inner.volume, &id, |at| {
            match self.event_at(at.position) {
                Ok(e) if e.id == id => {
                    checked = Some(e);
                    Ok(true)
                }
                Ok(_) | Err(Error::NoSuchPosition(_)) => Ok(false),
                Err(e) => Err(e),
            }
        })?
        .ok_or(Error::EventNotFound(id))?;
        if let Some(e) = checked {
            return Ok(e);
        }
        match self.event_at(loc.position) {
            Err(Error::NoSuchPosition(_)) => Err(Error::EventNotFound(id)),
            r => r,
        }
    }

    /// The event at a global position.
    pub fn event_at(&self, position: u64) -> Result<RecordedEvent, Error> {
        let value = records::log_entry(&*self.inner.volume, position)?
            .ok_or(Error::NoSuchPosition(position))?;
        let mut open = None;
        self.entry_event(position, value, &mut open)?
            .ok_or(Error::NoSuchPosition(position))
    }

    /// The event an `ev-1/` entry at `position` holds or points to: an
    /// edge record, checked, or its sealed bundle's record (`open` keeps
    /// the last bundle looked up, which consecutive events mostly share).
    /// `None` for a pointer whose bundle has gone (scavenged meanwhile).
    pub(crate) fn entry_event(
        &self,
        position: u64,
        value: Vec<u8>,
        open: &mut Option<OpenBundle>,
    ) -> Result<Option<RecordedEvent>, Error> {
        let name = |n| self.stream_name(n);
        let found = records::entry_record(
            &self.inner.buckets,
            position,
            value,
            |num, index| {
                if open.as_ref().is_none_or(|(at, _)| *at != (num, index)) {
                    *open = Some(((num, index), self.bundle(num, index)?));
                }
                Ok(open.as_ref().and_then(|(_, b)| b.clone()))
            },
            name,
        )?;
        found
            .map(|(at, record)| records::decode(at, record.bytes(), position, name))
            .transpose()
    }

    /// The id of stream number `num`, for messages.
    pub(crate) fn stream_name(&self, num: u64) -> String {
        layout::stream_name(&*self.inner.volume, num)
    }

    /// The version of the stream's last event; `None` when the stream does
    /// not exist (or is soft-deleted).
    pub fn stream_version(&self, stream: &StreamId) -> Result<Option<u64>, Error> {
        match self.state(stream)? {
            Some(s) if s.deletion == Deletion::Hard => Err(Error::StreamDeleted(stream.clone())),
            Some(s) if s.exists() => Ok(Some(s.length - 1)),
            _ => Ok(None),
        }
    }

    /// A stream's metadata (defaults for a stream that has none).
    pub fn metadata(&self, stream: &StreamId) -> Result<crate::StreamMetadata, Error> {
        match self.state(stream)? {
            Some(s) if s.deletion == Deletion::Hard => Err(Error::StreamDeleted(stream.clone())),
            Some(s) => Ok(s.metadata),
            None => Err(Error::StreamNotFound(stream.clone())),
        }
    }

    pub fn exists(&self, stream: &StreamId) -> Result<bool, Error> {
        Ok(self.state(stream)?.is_some_and(|s| s.exists()))
    }

    /// Streams whose id starts with `prefix`, ordered by id, deleted ones
    /// and those held blind included (and marked).
    pub fn list_streams(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<StreamInfo, Error>> + use<> {
        let log = self.clone();
        let mut indexed = self
            .stream_states(prefix)
            .map(move |state| {
                let (stream, st) = state?;
                Ok(StreamInfo {
                    stream,
                    version: st.exists().then(|| st.length - 1),
                    deleted: st.deletion != Deletion::None,
                    tombstoned: st.deletion == Deletion::Hard,
                    bucket: log
                        .inner
                        .buckets
                        .get(st.bucket)
                        .ok()
                        .map(|b| b.name().clone()),
                    blind: false,
                })
            })
            .peekable();
        let (blind, failed) = match self.blind_listing(prefix) {
            Ok(held) => (held, None),
            Err(e) => (Vec::new(), Some(Err(e))),
        };
        let mut blind = blind.into_iter().peekable();
        // The two lists, each by id, merged.
        let merged = std::iter::from_fn(move || {
            let blind_first = match (indexed.peek(), blind.peek()) {
                (Some(Ok(i)), Some((_, b))) => b.stream < i.stream,
                (None, Some(_)) => true,
                _ => false,
            };
            if !blind_first {
                return indexed.next();
            }
            blind.next().map(|(bucket, held)| {
                Ok(StreamInfo {
                    stream: held.stream,
                    version: held.length.checked_sub(1),
                    deleted: false,
                    tombstoned: false,
                    bucket: Some(bucket),
                    blind: true,
                })
            })
        });
        failed.into_iter().chain(merged)
    }

    /// The states of the streams whose id starts with `prefix`, ordered
    /// by id, read a page at a time.
    pub(crate) fn stream_states(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(StreamId, StreamState), Error>> + use<> {
        let log = self.clone();
        let range = KeyRange::prefix(&[layout::STREAM_STATE, prefix.as_bytes()].concat());
        let mut page: VecDeque<_> = VecDeque::new();
        let mut range = Some(range);
        std::iter::from_fn(move || {
            if page.is_empty() {
                let r = range.as_mut()?;
                match log
                    .inner
                    .volume
                    .scan_page(r, Direction::Forward, PageLimit::default())
                {
                    Ok(p) if p.is_empty() => {
                        range = None;
                        return None;
                    }
                    Ok(p) => {
                        r.start = Bound::Excluded(p.last().expect("non-empty").0.clone());
                        page.extend(p);
                    }
                    Err(e) => {
                        range = None;
                        return Some(Err(e.into()));
                    }
                }
            }
            let (k, v) = page.pop_front()?;
            Some((|| {
                let id = String::from_utf8_lossy(&k[layout::STREAM_STATE.len()..]).into_owned();
                Ok((StreamId::new(id)?, StreamState::decode(&v)?))
            })())
        })
    }

    /// The records of stream `num` from version `c` on, in `direction`,
    /// within `[lo, end)` and within `c`'s bundle span (256 versions): from
    /// the sealed bundle if there is one, else from the edge. Returns
    /// `(version, position, record)`; an empty answer means none of the
    /// span's versions from `c` on is stored.
    pub(crate) fn span_records(
        &self,
        (num, open): (u64, &OpenEdge),
        c: u64,
        (lo, end): (u64, u64),
        max: usize,
        direction: Direction,
    ) -> Result<Vec<(u64, u64, Found)>, Error> {
        let index = c / BUNDLE;
        let span_lo = (index * BUNDLE).max(lo);
        let span_end = ((index + 1) * BUNDLE).min(end);
        let versions: Vec<u64> = match direction {
            Direction::Forward => (c..span_end).take(max).collect(),
            Direction::Backward => (span_lo..=c).rev().take(max).collect(),
        };
        // Twice at most: a bundle sealed between the two lookups holds
        // what the edge no longer does.
        for _ in 0..2 {
            if let Some(b) = self.bundle(num, index)? {
                return Ok(versions
                    .iter()
                    .map(|v| {
                        let i = (v % BUNDLE) as usize;
                        (*v, b.positions[i], Found::Bundled(b.clone(), i))
                    })
                    .collect());
            }
            let Some((&first, &last)) = versions.first().zip(versions.last()) else {
                return Ok(Vec::new());
            };
            let mut at = records::edge_positions(
                &*self.inner.volume,
                (num, open),
                (first.min(last), first.max(last) + 1),
            )?;
            if direction == Direction::Backward {
                at.reverse();
            }
            at.truncate(max);
            let page =
                records::edge_entries(&*self.inner.volume, &self.inner.buckets, num, at, |n| {
                    self.stream_name(n)
                })?;
            if !page.is_empty() {
                return Ok(page
                    .into_iter()
                    .map(|(v, p, r)| (v, p, Found::Edge(r)))
                    .collect());
            }
        }
        Ok(Vec::new())
    }
}

/// A bundle looked up last, by (stream number, index): consecutive events
/// of `$all` mostly share one.
pub(crate) type OpenBundle = ((u64, u64), Option<Arc<Sealed>>);

/// An iterator over a stream's events; see [`EventLog::read`].
pub struct StreamEvents {
    log: EventLog,
    stream: StreamId,
    num: u64,
    /// Where its open bundle's records were when the read began.
    open: OpenEdge,
    /// First visible version, and one past the last readable.
    lo: u64,
    end: u64,
    /// Next version to fetch; `None` when the range is exhausted.
    cursor: Option<u64>,
    remaining: u64,
    direction: Direction,
    min_timestamp: Option<u64>,
    buf: VecDeque<RecordedEvent>,
}

impl StreamEvents {
    pub fn stream(&self) -> &StreamId {
        &self.stream
    }

    fn fill(&mut self) -> Result<(), Error> {
        let Some(c) = self.cursor else {
            return Ok(());
        };
        let page = self.log.span_records(
            (self.num, &self.open),
            c,
            (self.lo, self.end),
            self.remaining.min(PAGE as u64) as usize,
            self.direction,
        )?;
        let last = page.last().map(|(v, _, _)| *v);
        let index = c / BUNDLE;
        self.cursor = match (self.direction, last) {
            (Direction::Forward, Some(v)) => Some(v + 1),
            (Direction::Forward, None) => Some((index + 1) * BUNDLE),
            (Direction::Backward, Some(v)) => v.checked_sub(1),
            (Direction::Backward, None) => (index * BUNDLE).checked_sub(1),
        }
        .filter(|n| match self.direction {
            Direction::Forward => *n < self.end,
            Direction::Backward => *n >= self.lo,
        });
        for (version, position, record) in page {
            let e = records::decode((self.num, version), record.bytes(), position, |n| {
                self.log.stream_name(n)
            })?;
            if self.min_timestamp.is_none_or(|t| e.timestamp >= t) {
                self.buf.push_back(e);
            }
        }
        Ok(())
    }
}

impl Iterator for StreamEvents {
    type Item = Result<RecordedEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.remaining == 0 {
                return None;
            }
            if let Some(e) = self.buf.pop_front() {
                self.remaining -= 1;
                return Some(Ok(e));
            }
            self.cursor?;
            if let Err(e) = self.fill() {
                self.cursor = None;
                return Some(Err(e));
            }
        }
    }
}

/// An iterator over `$all`; see [`EventLog::read_all`].
///
/// Where a sealed bundle holds a run of consecutive positions (a stream
/// appended many events at a time), the run is read from the bundle
/// without visiting its `$all` entries, and the scan resumes after it
/// with a small page; pages grow again where there are no runs.
pub struct AllEvents {
    log: EventLog,
    range: KeyRange,
    direction: Direction,
    filter: AllFilter,
    remaining: u64,
    buf: VecDeque<RecordedEvent>,
    done: bool,
    /// Entries to scan next.
    page: usize,
}

impl AllEvents {
    fn fill(&mut self) -> Result<(), Error> {
        let page = records::log_page(
            &*self.log.inner.volume,
            &self.range,
            self.direction,
            PageLimit {
                entries: self.page,
                bytes: 8 << 20,
            },
        )?;
        let Some(last) = page.last().map(|(k, _)| k.clone()) else {
            self.done = true;
            return Ok(());
        };
        let forward = self.direction == Direction::Forward;
        let mut resume = layout::pos_of_log_key(&last);
        // The last position a run read from a bundle covered.
        let mut covered: Option<u64> = None;
        let mut open = None;
        let mut scavenged = std::collections::HashMap::new();
        // Whether each stream met on this page is one the filter's prefix
        // takes, by number.
        let mut taken = std::collections::HashMap::new();
        for (k, v) in page {
            let position = layout::pos_of_log_key(&k).ok_or_else(|| Error::Corrupt {
                what: "log key".into(),
                reason: format!("{} bytes", k.len()),
            })?;
            // Another stream's event is passed over before it is read: it
            // may be in a bucket this store has no key for.
            if let Some(prefix) = &self.filter.stream_prefix {
                let (num, _, _) = layout::LogEntry::peek(&v)?;
                let take = match taken.get(&num) {
                    Some(take) => *take,
                    None => {
                        let name = self.log.inner.volume.get(&layout::name_key(num))?;
                        // A stream without a name is read, to say what is wrong.
                        let take = name.is_none_or(|n| n.starts_with(prefix.as_bytes()));
                        taken.insert(num, take);
                        take
                    }
                };
                if !take {
                    continue;
                }
            }
            if covered.is_some_and(|c| {
                if forward {
                    position <= c
                } else {
                    position >= c
                }
            }) {
                continue;
            }
            if let Some(run) = self.run(position, &v, &mut open, &mut scavenged)? {
                covered = Some(run);
                continue;
            }
            if let Some(e) = self.log.entry_event(position, v, &mut open)?
                && self.filter.matches(&e)
            {
                self.buf.push_back(e);
            }
        }
        let past_page =
            covered.filter(|c| resume.is_none_or(|r| if forward { *c > r } else { *c < r }));
        if past_page.is_some() {
            resume = past_page;
            self.page = (self.page / 8).max(1);
        } else {
            self.page = (self.page * 2).min(PAGE);
        }
        let resume = resume.map_or(last, layout::log_key);
        match self.direction {
            Direction::Forward => self.range.start = Bound::Excluded(resume),
            Direction::Backward => self.range.end = Bound::Excluded(resume),
        }
        Ok(())
    }

    /// When the entry at `position` points into a sealed bundle that
    /// holds the next positions too (in the scan's direction), reads that
    /// run from the bundle (leaving out versions scavenged since) and
    /// returns its last position.
    fn run(
        &mut self,
        position: u64,
        value: &[u8],
        open: &mut Option<OpenBundle>,
        scavenged: &mut std::collections::HashMap<u64, u64>,
    ) -> Result<Option<u64>, Error> {
        let (num, version, None) = layout::LogEntry::peek(value)? else {
            return Ok(None);
        };
        let (index, i) = (version / BUNDLE, (version % BUNDLE) as usize);
        if open.as_ref().is_none_or(|(at, _)| *at != (num, index)) {
            *open = Some(((num, index), self.log.bundle(num, index)?));
        }
        let Some(b) = open.as_ref().and_then(|(_, b)| b.clone()) else {
            return Ok(None);
        };
        let wanted = (self.remaining as usize).saturating_sub(self.buf.len());
        let forward = self.direction == Direction::Forward;
        // The run: positions one apart in the scan's direction.
        let (mut end, mut len) = (i, 1);
        while len < wanted {
            let next = if forward {
                (end + 1 < BUNDLE as usize).then_some(end + 1)
            } else {
                end.checked_sub(1)
            };
            let step = |p: u64| {
                if forward {
                    p.checked_add(1)
                } else {
                    p.checked_sub(1)
                }
            };
            match next {
                Some(n) if Some(b.positions[n]) == step(b.positions[end]) => {
                    end = n;
                    len += 1;
                }
                _ => break,
            }
        }
        if end == i || b.positions[i] != position {
            return Ok(None);
        }
        let first_kept = match scavenged.get(&num) {
            Some(s) => *s,
            None => {
                let name = self.log.stream_name(num);
                let s = StreamId::new(name)
                    .ok()
                    .and_then(|id| self.log.state(&id).transpose())
                    .transpose()?
                    .map_or(0, |st| st.scavenged_before);
                scavenged.insert(num, s);
                s
            }
        };
        let first = index * BUNDLE;
        let versions: Vec<usize> = if forward {
            (i..=end).collect()
        } else {
            (end..=i).rev().collect()
        };
        for j in versions {
            if first + (j as u64) < first_kept {
                continue;
            }
            let e = records::decode((num, first + j as u64), b.record(j), b.positions[j], |n| {
                self.log.stream_name(n)
            })?;
            if self.filter.matches(&e) {
                self.buf.push_back(e);
            }
        }
        Ok(Some(b.positions[end]))
    }
}

impl Iterator for AllEvents {
    type Item = Result<RecordedEvent, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        while self.buf.is_empty() {
            if self.done {
                return None;
            }
            if let Err(e) = self.fill() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.remaining -= 1;
        self.buf.pop_front().map(Ok)
    }
}
