//! Compaction: replacing the `$all` entries of sealed events, which still
//! hold their edge records, by pointers into their bundles, in `$all`
//! order, some way behind the head of the log.
//!
//! ```text
//!   $all:  ... | P P P P P P P P | E e E e e E E e | E E e E E E e E
//!              |   pointers      | e: edge copies of|  the last LAG
//!              |                 |  sealed events   |  positions
//!              ^                 ^ done_to          ^ next - LAG
//! ```
//!
//! Sealing a bundle writes its block and deletes its events' stream index
//! entries (`sv-0/`), which lie together in the stream's own range. Its
//! `$all` entries are another matter: a stream appended in turn with 63
//! others has its 256 events spread over 16,384 positions, a page of the
//! log each, and rewriting them at sealing cost a page write per event
//! (64 writers ran at half the rate they do without it). So sealing
//! leaves them as they are, edge records that still read correctly (each
//! is checked against its Merkle leaf), and compaction rewrites them later
//! in position order, together with those of every other bundle sealed
//! meanwhile: a page of pointers per page of the log.
//!
//! Compaction runs at the start of each group commit over the positions
//! between `done_to` and `LAG` positions behind the head (further when
//! the edge copies waiting exceed [`MAX_PENDING_BYTES`]), at most
//! [`PER_COMMIT`] of them. A bundle sealed after compaction has passed
//! some of its positions (sealed from the queue, or too wide) has those
//! rewritten at sealing. `done_to` is stored with each commit that moves
//! it; the edge copies waiting are kept in memory, found again after a
//! crash by scanning from `done_to`, and all compacted at [`close`].
//!
//! [`close`]: crate::EventLog::close

use std::collections::{BTreeMap, HashMap};

use hydra_volume::{Direction, KeyRange, Volume, WriteBatch};

use crate::layout::{self, LogEntry};
use crate::{BUNDLE, Error};

/// How far behind the head compaction stays: as wide as the bundles of 64
/// streams appended in turn spread, so that those are sealed before it
/// passes them. Wider ones have what it passed rewritten at sealing.
const LAG: u64 = 64 * BUNDLE;

/// The most edge copies compaction rewrites in one commit.
const PER_COMMIT: usize = 4096;

/// Edge copies of sealed records kept waiting, in bytes, past which
/// compaction does not wait for `LAG`.
const MAX_PENDING_BYTES: usize = 16 << 20;

/// An edge copy waiting: its stream number, version and record size.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EdgeCopy {
    pub num: u64,
    pub version: u64,
    pub bytes: usize,
}

/// The writer's view of compaction.
#[derive(Debug, Default)]
pub(crate) struct Compaction {
    /// Positions below this hold no edge copy of a sealed event.
    pub done_to: u64,
    /// Edge copies of sealed events at `done_to` or after, by position;
    /// `None` until found (after a restart).
    pending: Option<BTreeMap<u64, EdgeCopy>>,
    bytes: usize,
}

/// What one group's compaction did, applied when its commit succeeds.
#[derive(Debug, Default)]
pub(crate) struct Step {
    pub done_to: u64,
    /// Positions rewritten (or found gone), to forget.
    pub through: Option<u64>,
}

impl Compaction {
    /// Compaction as stored: `done_to`, or, for a log that never stored
    /// one (written before compaction was deferred), `next_position`.
    pub fn open(volume: &dyn Volume, next_position: u64) -> Result<Compaction, Error> {
        let done_to = match volume.get(layout::COMPACTED)? {
            Some(b) => layout::u64_of(&b, "compaction mark")?,
            None => next_position,
        };
        Ok(Compaction {
            done_to,
            pending: (done_to >= next_position).then(BTreeMap::new),
            bytes: 0,
        })
    }

    /// Records edge copies of newly sealed events (once committed).
    pub fn add(&mut self, copies: impl IntoIterator<Item = (u64, EdgeCopy)>) {
        let pending = self.pending.get_or_insert_with(BTreeMap::new);
        for (position, c) in copies {
            self.bytes += c.bytes;
            pending.insert(position, c);
        }
    }

    /// Finds the edge copies a crash left unrecorded: edge entries from
    /// `done_to` on whose bundle is sealed.
    fn load(&mut self, volume: &dyn Volume) -> Result<(), Error> {
        if self.pending.is_some() {
            return Ok(());
        }
        let mut sealed: HashMap<(u64, u64), bool> = HashMap::new();
        let mut found = BTreeMap::new();
        let range = KeyRange {
            start: std::ops::Bound::Included(layout::log_key(self.done_to)),
            end: KeyRange::prefix(layout::LOG).end,
        };
        for e in volume.scan(range, Direction::Forward) {
            let (k, v) = e?;
            let (Some(position), (num, version, Some(_))) =
                (layout::pos_of_log_key(&k), LogEntry::peek(&v)?)
            else {
                continue;
            };
            let at = (num, version / BUNDLE);
            let is_sealed = match sealed.get(&at) {
                Some(s) => *s,
                None => {
                    let s = volume.get(&layout::bundle_key(at.0, at.1))?.is_some();
                    sealed.insert(at, s);
                    s
                }
            };
            if is_sealed {
                self.bytes += v.len();
                found.insert(
                    position,
                    EdgeCopy {
                        num,
                        version,
                        bytes: v.len(),
                    },
                );
            }
        }
        self.pending = Some(found);
        Ok(())
    }

    /// Stages this group's compaction into `batch`, for a log whose next
    /// position is `next`; `all` compacts everything waiting (at close).
    pub fn stage(
        &mut self,
        volume: &dyn Volume,
        batch: &mut WriteBatch,
        next: u64,
        all: bool,
    ) -> Result<Step, Error> {
        self.load(volume)?;
        let pending = self.pending.as_ref().expect("loaded");
        let target = if all || self.bytes > MAX_PENDING_BYTES {
            next
        } else {
            next.saturating_sub(LAG)
        };
        let due: Vec<(u64, EdgeCopy)> = pending
            .range(..target)
            .take(PER_COMMIT)
            .map(|(p, c)| (*p, *c))
            .collect();
        let done_to = match due.get(PER_COMMIT - 1) {
            Some((last, _)) => last + 1,
            None => target,
        }
        .max(self.done_to);
        if !due.is_empty() {
            let keys: Vec<Vec<u8>> = due.iter().map(|(p, _)| layout::log_key(*p)).collect();
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            for ((key, (_, c)), value) in keys.iter().zip(&due).zip(volume.get_many(&refs)?) {
                // Scavenged meanwhile, or already a pointer: leave it.
                let Some(value) = value else { continue };
                if let (num, version, Some(_)) = LogEntry::peek(&value)?
                    && (num, version) == (c.num, c.version)
                {
                    batch.put(key.clone(), LogEntry::bundled(num, version));
                }
            }
        }
        if done_to != self.done_to {
            batch.put(layout::COMPACTED.to_vec(), done_to.to_be_bytes().to_vec());
        }
        Ok(Step {
            done_to,
            through: due.last().map(|(p, _)| *p),
        })
    }

    /// Applies a committed step.
    pub fn apply(&mut self, step: Step) {
        self.done_to = step.done_to;
        if let (Some(through), Some(pending)) = (step.through, self.pending.as_mut()) {
            let rest = pending.split_off(&(through + 1));
            self.bytes -= pending.values().map(|c| c.bytes).sum::<usize>();
            *pending = rest;
        }
    }

    /// After a rebuild that left no edge copies.
    pub fn reset(&mut self, next: u64) {
        self.done_to = next;
        self.pending = Some(BTreeMap::new());
        self.bytes = 0;
    }
}
