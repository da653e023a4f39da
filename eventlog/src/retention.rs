//! Scavenging: physically removing the events no reader can see any more
//! (deleted streams, events before `truncate_before`, beyond `max_count`,
//! older than `max_age`).
//!
//! A scavenged event's record and index entries go; its Merkle leaf hash
//! stays (32 bytes), so the stream's head, and the proofs of every event
//! still stored, keep verifying. Proving a scavenged event fails with
//! [`Error::Scavenged`](crate::Error::Scavenged): the head still commits to
//! it, but nobody can show its contents any more. `$all` skips the
//! positions it leaves empty; positions are never reused. What a scavenge
//! removes is written by the log's writer, so it never interleaves with
//! the sealing of a bundle.

use hydra_volume::{Direction, KeyRange, WriteBatch};
use serde::Serialize;

use crate::bundle::BUNDLE;
use crate::layout::{self, Deletion, EventRecord, StreamState};
use crate::writer::Request;
use crate::writer::now_ms;
use crate::{Error, EventLog, StreamId};

/// What a scavenge removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScavengeReport {
    pub streams: u64,
    pub events: u64,
    pub bytes: u64,
    /// Encrypted buckets whose streams it passed over, having no key for
    /// them (it reads what it removes: ids to unindex, timestamps for
    /// `max_age`); the streams of every other bucket are scavenged.
    #[serde(default)]
    pub locked: Vec<String>,
}

impl EventLog {
    /// Removes every event that no read can return any more.
    pub fn scavenge(&self) -> Result<ScavengeReport, Error> {
        let mut report = ScavengeReport::default();
        // Removing the newest records must not let their positions be
        // handed out again after a restart.
        let mut meta = crate::log::load_meta(&*self.inner.volume)?;
        meta.next_position = meta.next_position.max(self.next_position());
        crate::log::store_meta(&*self.inner.volume, &meta)?;
        let states: Vec<(StreamId, StreamState)> = self
            .inner
            .volume
            .scan(KeyRange::prefix(layout::STREAM_STATE), Direction::Forward)
            .map(|e| {
                let (k, v) = e?;
                let id = String::from_utf8_lossy(&k[layout::STREAM_STATE.len()..]).into_owned();
                Ok((StreamId::new(id)?, StreamState::decode(&v)?))
            })
            .collect::<Result<_, Error>>()?;
        for (stream, st) in states {
            // Its bucket may be gone (a stream scavenged to its end).
            if !self.may_remove(&st) {
                continue;
            }
            let bucket = self.inner.buckets.get(st.bucket)?;
            if !bucket.readable() {
                let name = bucket.config().id.to_string();
                if !report.locked.contains(&name) {
                    report.locked.push(name);
                }
                continue;
            }
            let upto = self.removable(&st)?;
            if upto <= st.scavenged_before {
                continue;
            }
            let (events, bytes) = self.scavenge_to(&stream, &st, upto)?;
            report.streams += 1;
            report.events += events;
            report.bytes += bytes;
        }
        Ok(report)
    }

    /// Removes the stream's versions below `upto` (a replica following
    /// its writer's scavenge); returns the events and bytes removed.
    pub(crate) fn scavenge_stream(
        &self,
        stream: &StreamId,
        upto: u64,
    ) -> Result<(u64, u64), Error> {
        let st = self.readable_or_deleted(stream)?;
        if upto.min(st.length) <= st.scavenged_before {
            return Ok((0, 0));
        }
        self.scavenge_to(stream, &st, upto.min(st.length))
    }

    fn scavenge_to(
        &self,
        stream: &StreamId,
        st: &StreamState,
        upto: u64,
    ) -> Result<(u64, u64), Error> {
        let removed = self.remove_versions(st, st.scavenged_before, upto)?;
        self.mark_scavenged(stream, upto)?;
        Ok(removed)
    }

    /// Whether the stream may have events to remove, as far as its state
    /// tells without reading them.
    fn may_remove(&self, st: &StreamState) -> bool {
        st.replica.is_none()
            && st.scavenged_before < st.length
            && (st.deletion == Deletion::Hard
                || st.first_visible() > st.scavenged_before
                || st.metadata.max_age.is_some())
    }

    /// One past the last version of the stream that may be removed.
    fn removable(&self, st: &StreamState) -> Result<u64, Error> {
        if st.deletion == Deletion::Hard {
            return Ok(st.length);
        }
        // A replica's retention is its writer's: it follows the writer's
        // scavenge (see `storage.rs`), never runs ahead of it.
        if st.replica.is_some() {
            return Ok(st.scavenged_before);
        }
        let mut upto = st.first_visible();
        if let Some(max_age) = st.metadata.max_age {
            let cutoff = now_ms().saturating_sub(max_age.saturating_mul(1000));
            let from = upto.max(st.scavenged_before);
            let mut next = from;
            'scan: while next < st.length {
                let span = self.span_records(
                    (st.num, &st.open),
                    next,
                    (from, st.length),
                    256,
                    Direction::Forward,
                )?;
                next = span
                    .last()
                    .map_or((next / BUNDLE + 1) * BUNDLE, |(v, _, _)| v + 1);
                for (version, _, record) in span {
                    if EventRecord::decode(record.bytes())?.timestamp >= cutoff {
                        break 'scan;
                    }
                    upto = version + 1;
                }
            }
        }
        Ok(upto)
    }

    /// Where versions `[from, upto)` of a bundle whose later versions
    /// stay are removed (their entries deleted in `batch`), and a run
    /// entry among them holds kept versions too, puts the run's kept part
    /// at the first kept version's position (see `LogEntry::Run`).
    fn rehead_run(
        &self,
        batch: &mut WriteBatch,
        positions: &[u64],
        (from, upto): (u64, u64),
    ) -> Result<(), Error> {
        let at = |version: u64| positions[(version % BUNDLE) as usize];
        let keys: Vec<Vec<u8>> = (from..upto).map(|v| layout::log_key(at(v))).collect();
        let keys: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        for value in self.inner.volume.get_many(&keys)?.into_iter().flatten() {
            if let Some((num, version, count)) = layout::LogEntry::run_of(&value)?
                && version + count > upto
            {
                let kept = layout::LogEntry::run(num, upto, version + count - upto);
                batch.put(layout::log_key(at(upto)), kept);
            }
        }
        Ok(())
    }

    /// Removes versions `[from, upto)`, keeping their leaf hashes.
    fn remove_versions(&self, st: &StreamState, from: u64, upto: u64) -> Result<(u64, u64), Error> {
        let volume = &self.inner.volume;
        let (mut events, mut bytes) = (0, 0);
        // The edge, a page of its index at a time.
        let mut next = from;
        while next < upto {
            let edge = crate::records::edge_of(
                &**volume,
                &self.inner.buckets,
                (st.num, &st.open),
                (next, upto.min(next.saturating_add(1024))),
                |n| self.stream_name(n),
            )?;
            next = next.saturating_add(1024);
            let mut batch = WriteBatch::new();
            for (version, position, record) in edge {
                let decoded = EventRecord::decode(&record)?;
                batch.put(
                    layout::scavenged_leaf_key(st.num, version),
                    crate::merkle::leaf_hash(&record).to_vec(),
                );
                batch.delete(layout::event_id_key(&uuid::Uuid::from_bytes(decoded.id)));
                batch.delete(layout::log_key(position));
                batch.delete(layout::version_key(st.num, version));
                bytes += record.len() as u64;
                events += 1;
            }
            self.request(|reply| Request::Remove {
                batch,
                bundles: Vec::new(),
                reply,
            })?;
        }
        // Sealed bundles: their removed events' index entries go, and a
        // bundle whose every event is removed goes too (unlinked from the
        // stream's tree; gc frees it).
        for index in from / BUNDLE..upto.div_ceil(BUNDLE) {
            let Some(b) = self.bundle(st.num, index)? else {
                continue;
            };
            let mut batch = WriteBatch::new();
            let first = index * BUNDLE;
            for version in from.max(first)..upto.min(first + BUNDLE) {
                let i = (version - first) as usize;
                let record = EventRecord::decode(b.record(i))?;
                batch.put(
                    layout::scavenged_leaf_key(st.num, version),
                    crate::merkle::leaf_hash(b.record(i)).to_vec(),
                );
                batch.delete(layout::event_id_key(&uuid::Uuid::from_bytes(record.id)));
                batch.delete(layout::log_key(b.positions[i]));
                bytes += b.record(i).len() as u64;
                events += 1;
            }
            if upto < first + BUNDLE {
                self.rehead_run(&mut batch, &b.positions, (from.max(first), upto))?;
            }
            let mut bundles = Vec::new();
            if first + BUNDLE <= upto && crate::bundle::remove(self, &mut batch, st.num, index)? {
                bundles.push((st.num, index));
            }
            self.request(|reply| Request::Remove {
                batch,
                bundles,
                reply,
            })?;
        }
        Ok((events, bytes))
    }
}
