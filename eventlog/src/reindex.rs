//! Rebuilding the indexes from the event records.
//!
//! The records (edge records under `ev-1/`, sealed bundles) and the leaf
//! hashes kept for scavenged events are the source of truth. Everything
//! else the log reads — the streams' version index, the event-id index, the stored Merkle subtrees, each
//! stream's length, peaks and last position, the counters — can be
//! derived from them, and `reindex` does so. What is not derivable is
//! kept: stream names, buckets, deletions and metadata, persistent
//! subscriptions. Every record is opened and checked against its leaf (or
//! its bundle's block ref), so an encrypted bucket's key must have been
//! given; a first pass does only that, so that a corrupt record fails the
//! reindex before any index is drained.

use std::collections::HashMap;

use hydra_volume::{Direction, KeyRange, WriteBatch};
use serde::Serialize;

use crate::bundle::BUNDLE;
use crate::layout::{self, EventLocation, EventRecord, STORED_SUBTREE_LEVEL, StreamState};
use crate::merkle::{Hash, push_leaf};
use crate::writer::Writer;
use crate::{Error, StreamId};

/// What a reindex rebuilt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReindexReport {
    pub streams: u64,
    pub events: u64,
}

pub(crate) fn rebuild(w: &mut Writer) -> Result<ReindexReport, Error> {
    w.cache.clear();
    w.open_edges.clear();
    w.open_bytes = 0;
    // Every record is read and checked before anything changes: a corrupt
    // one fails the reindex and leaves the indexes as they were (drained
    // indexes would let an idempotent retry write its event twice).
    pass(w, false)?;
    for prefix in [layout::STREAM_VERSION, layout::EVENT_ID, layout::SUBTREE] {
        crate::log::drain(&*w.volume, prefix, |_, _, _| Ok(()))?;
    }
    let Rebuilt {
        mut states,
        mut batch,
        next_position,
        mut report,
        ..
    } = pass(w, true)?;
    let mut next_num = 0;
    for (stream, st) in states.values_mut() {
        // Every edge record was indexed in `sv-0/` above.
        st.open = layout::OpenEdge::at(st.length);
        batch.put(layout::state_key(stream), st.encode());
        batch.put(
            layout::name_key(st.num),
            stream.as_str().as_bytes().to_vec(),
        );
        next_num = next_num.max(st.num + 1);
        report.streams += 1;
    }
    let meta = layout::Meta {
        next_position: next_position.max(w.meta.next_position),
        next_num: next_num.max(w.meta.next_num),
        partitions: w.meta.partitions,
    };
    // Every sealed event's position now points at its bundle.
    batch.put(
        layout::COMPACTED.to_vec(),
        meta.next_position.to_be_bytes().to_vec(),
    );
    w.volume.commit(batch)?;
    crate::log::store_meta(&*w.volume, &meta)?;
    w.meta = meta;
    w.compaction.reset(meta.next_position);
    Ok(report)
}

/// One pass over every record: with `write`, what it derives is committed
/// as it goes (into drained indexes); without, it only reads and checks.
fn pass(w: &Writer, write: bool) -> Result<Rebuilt, Error> {
    // Keep what cannot be derived: deletion, metadata, scavenge marks.
    let mut states: HashMap<u64, (StreamId, StreamState)> = HashMap::new();
    for e in w
        .volume
        .scan(KeyRange::prefix(layout::STREAM_STATE), Direction::Forward)
    {
        let (k, v) = e?;
        let id =
            StreamId::new(String::from_utf8_lossy(&k[layout::STREAM_STATE.len()..]).into_owned())?;
        let mut st = StreamState::decode(&v)?;
        st.length = 0;
        st.peaks.clear();
        st.last_position = None;
        states.insert(st.num, (id, st));
    }
    let mut rebuilt = Rebuilt {
        states,
        batch: WriteBatch::new(),
        next_position: 0,
        report: ReindexReport::default(),
        write,
    };
    // A replica that began past version 0 starts from the peaks it kept.
    for e in w
        .volume
        .scan(KeyRange::prefix(layout::REPLICA_PREFIX), Direction::Forward)
    {
        let (k, v) = e?;
        let num = layout::u64_of(&k[layout::REPLICA_PREFIX.len()..], "replica prefix key")?;
        let (covered, peaks) = layout::decode_replica_prefix(num, &v)?;
        let Some((_, st)) = rebuilt.states.get_mut(&num) else {
            continue;
        };
        layout::stage_replica_prefix(&mut rebuilt.batch, num, (covered, &peaks), false);
        st.peaks = peaks;
        st.length = covered;
    }
    // One pass over `$all`, in position order: each stream's events come
    // in version order there, sealed (a pointer, or an edge copy that
    // compaction has not reached) or on the edge, whichever of its
    // bundles are sealed (a later one may be, while an earlier one waits
    // in the sealing queue). Versions with no entry were scavenged.
    let mut bundles = Bundles::default();
    let mut range = KeyRange::prefix(layout::LOG);
    loop {
        let page =
            crate::records::log_page(&*w.volume, &range, Direction::Forward, Default::default())?;
        let Some((last, _)) = page.last() else {
            break;
        };
        range.start = std::ops::Bound::Excluded(last.clone());
        for (k, v) in page {
            entry(w, &mut rebuilt, &mut bundles, k, v)?;
        }
    }
    for (stream, st) in rebuilt.states.values_mut() {
        // A stream whose tail was scavenged entirely.
        while st.length < st.scavenged_before {
            let leaf = scavenged_leaf(w, st.num, st.length, stream)?;
            push(&mut rebuilt.batch, st, leaf);
        }
    }
    Ok(rebuilt)
}

/// Takes one `$all` entry (as readers see it) into what `pass` rebuilds.
fn entry(
    w: &Writer,
    rebuilt: &mut Rebuilt,
    bundles: &mut Bundles,
    k: Vec<u8>,
    v: Vec<u8>,
) -> Result<(), Error> {
    let pos = layout::pos_of_log_key(&k).ok_or_else(|| Error::Corrupt {
        what: "log key".into(),
        reason: format!("{} bytes", k.len()),
    })?;
    let (num, version, edge) = layout::LogEntry::peek(&v)?;
    let (index, i) = (version / BUNDLE, (version % BUNDLE) as usize);
    if let Some((b, bucket)) = bundles.get(w, num, index)? {
        if b.positions[i] != pos {
            return Err(Error::Corrupt {
                what: format!("stream #{num} version {version}"),
                reason: format!(
                    "position {pos} holds it, its bundle says {}",
                    b.positions[i]
                ),
            });
        }
        return rebuilt.add(w, (num, version), bucket, pos, b.record(i), false);
    }
    let Some((bucket, _)) = edge else {
        return Err(Error::Corrupt {
            what: format!("stream #{num} version {version}"),
            reason: format!("position {pos} points into bundle {index}, which is not stored"),
        });
    };
    let layout::LogEntry::Edge { leaf, sealed, .. } = layout::LogEntry::decode(v)? else {
        unreachable!("peeked as an edge record");
    };
    let plain =
        crate::records::open_edge(&w.buckets, (num, version), bucket, &leaf, sealed, |n| {
            layout::stream_name(&*w.volume, n)
        })?;
    rebuilt.add(w, (num, version), bucket, pos, &plain, true)
}

/// Bundles a rebuild has looked up (`None`: not sealed), dropped past
/// 256 MiB: a bundle spans at most 65,536 positions, so the pass needs
/// few of them at once.
#[derive(Default)]
struct Bundles {
    seen: HashMap<(u64, u64), Option<Loaded>>,
    bytes: usize,
}

/// A sealed bundle and its bucket's number.
type Loaded = (std::sync::Arc<crate::bundle::Sealed>, u32);

impl Bundles {
    fn get(&mut self, w: &Writer, num: u64, index: u64) -> Result<Option<Loaded>, Error> {
        if let Some(b) = self.seen.get(&(num, index)) {
            return Ok(b.clone());
        }
        if self.bytes > 256 << 20 {
            self.seen.clear();
            self.bytes = 0;
        }
        let b = crate::bundle::load(&*w.volume, &w.buckets, (num, index), |n| {
            layout::stream_name(&*w.volume, n)
        })?
        .map(|(b, bucket)| (std::sync::Arc::new(b), bucket));
        self.bytes += b.as_ref().map_or(16, |(b, _)| b.bytes());
        self.seen.insert((num, index), b.clone());
        Ok(b)
    }
}

/// What a rebuild has gathered so far.
struct Rebuilt {
    states: HashMap<u64, (StreamId, StreamState)>,
    batch: WriteBatch,
    next_position: u64,
    report: ReindexReport,
    /// Whether to commit what it derives (else only check).
    write: bool,
}

impl Rebuilt {
    /// Adds the record of stream `num` at `version`: its leaf, and its
    /// `$all` and id entries unless it was scavenged (a bundle keeps the
    /// scavenged events it shares with live ones).
    fn add(
        &mut self,
        w: &Writer,
        (num, version): (u64, u64),
        bucket: u32,
        pos: u64,
        record: &[u8],
        edge: bool,
    ) -> Result<(), Error> {
        let decoded = EventRecord::decode(record)?;
        let (stream, st) = match self.states.entry(num) {
            std::collections::hash_map::Entry::Occupied(o) => o.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot) => slot.insert((
                StreamId::new(decoded.stream.clone())?,
                StreamState {
                    num,
                    bucket,
                    ..StreamState::default()
                },
            )),
        };
        // Versions missing before this one were scavenged: their leaf
        // hashes were kept.
        while st.length < version {
            let leaf = scavenged_leaf(w, num, st.length, stream)?;
            push(&mut self.batch, st, leaf);
        }
        push(&mut self.batch, st, crate::merkle::leaf_hash(record));
        st.last_position = Some(pos);
        self.next_position = self.next_position.max(pos + 1);
        if version >= st.scavenged_before {
            if edge {
                self.batch.put(
                    layout::version_key(num, version),
                    pos.to_be_bytes().to_vec(),
                );
            } else {
                self.batch.put(
                    layout::log_key(pos),
                    layout::LogEntry::bundled(num, version),
                );
            }
            let id = uuid::Uuid::from_bytes(decoded.id);
            if crate::event_id::position_of(&id) != Some(pos) {
                let loc = EventLocation {
                    num,
                    version,
                    position: pos,
                };
                self.batch.put(layout::event_id_key(&id), loc.encode());
            }
            self.report.events += 1;
        }
        if self.batch.bytes() > 8 << 20 {
            let batch = std::mem::take(&mut self.batch);
            if self.write {
                w.volume.commit(batch)?;
            }
        }
        Ok(())
    }
}

fn push(batch: &mut WriteBatch, st: &mut StreamState, leaf: Hash) {
    let num = st.num;
    push_leaf(&mut st.peaks, st.length, leaf, |level, index, h| {
        if level >= STORED_SUBTREE_LEVEL {
            batch.put(layout::subtree_key(num, level, index), h.to_vec());
        }
    });
    st.length += 1;
}

fn scavenged_leaf(w: &Writer, num: u64, version: u64, stream: &StreamId) -> Result<Hash, Error> {
    w.volume
        .get(&layout::scavenged_leaf_key(num, version))?
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| Error::Corrupt {
            what: format!("stream {stream} version {version}"),
            reason: "neither its record nor its scavenged leaf hash is stored".into(),
        })
}
