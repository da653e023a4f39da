//! Where the event log keeps things in its volume, and how records are
//! encoded. Every keyspace carries a format version in its prefix.
//!
//! | key | value | written |
//! | --- | --- | --- |
//! | `ev-1/` pos(8) | [`LogEntry`]: an edge event (stream, version, bucket, leaf hash, the record sealed by the bucket) or, once its bundle is sealed and compaction has passed, a pointer (stream, version); on a replica, one pointer for a run of consecutive positions of a sealed bundle (stream, first version, count), the positions after its first without an entry | once per event, rewritten in `$all` order by compaction; once per run on a replica |
//! | `sv-0/` num(8) version(8) | pos(8), for events on the edge | once per event, deleted at sealing |
//! | `bnd-0/` num(8) index(8) | a sealed bundle: bucket, block ref, positions (see `bundle.rs`) | once per 256 events of a stream |
//! | `sq-0/` num(8) index(8) | (empty): a complete bundle waiting to be sealed | when a commit defers its sealing |
//! | `eid-0/` uuid(16) | num(8) version(8) pos(8), and on a replica count(8) for an [`IdRun`] | once per client-chosen id; on a replica, once per run of a writer's append |
//! | `st-1/` stream id | [`StreamState`] | once per stream per commit |
//! | `sn-0/` num(8) | stream id | once per stream |
//! | `smt-0/` num(8) level(1) index(8) | subtree hash | once per 128 events on average |
//! | `slh-0/` num(8) version(8) | leaf hash of a scavenged event | at scavenge |
//! | `psub-0/` name | persistent subscription | at create and ack |
//! | `rsh-0/` num(8) | a replica stream's writer [`StoredHead`](crate::StoredHead), which its storage matches (see `storage.rs`), then what the writer said beside it, signed, when it said anything (first version shown, stream metadata) | once per applied storage |
//! | `rpp-0/` num(8) | the Merkle peaks over the versions before the first a replica stream took in, when its storage began past version 0 (see `storage.rs`); with `slh-0/`, what its tree and proofs start from | once, when the replica begins |
//! | `el-meta-0` | next position, next stream number | once per commit |
//! | `el-compacted-0` | position(8) up to which compaction has passed | once per commit |
//! | `el-trees-0` | (empty): every stream's bundles hang from its tree (see `migrate.rs`) | once |
//! | `pq-0/`, `pqc-0/`, `pk-0/`, `el-pnext-0`, `el-partitions-0` | partitions (see `partition.rs`) | |
//!
//! In each stream's bucket, besides its bundle blocks: the tiles of its
//! bundle tree and its root `ev/<num>` (see `tree.rs`).
//!
//! Numbers are big-endian, so every per-event key is appended at the end
//! of its range: inserts stay sequential, which is what keeps appends fast
//! on a B-tree at millions of events, and many streams appended at once
//! add their records to one place (`ev-1/`, in `$all` order) and only a
//! small index entry each to their own range (`sv-0/`). Streams get a
//! dense number when created so that their keys are short and fixed-size.
//! `$all` is a scan of `ev-1/`; reading a stream's edge is a scan of its
//! `sv-0/` range and a lookup per event.
//!
//! The record itself (id, stream, type, timestamp, data, metadata) is
//! stored only as the stream's bucket seals it: compressed and encrypted
//! when the bucket is. What stays readable without the key is what the
//! keys and the fixed fields show: stream ids and numbers, versions,
//! positions, the bucket, each record's sealed size and its Merkle leaf
//! hash (a BLAKE3 hash of the record, which reveals nothing of it), and
//! the ids clients chose for their events (`eid-0/` keys).
//!
//! The first layout (`log-0/` plain records by position, `st-0/` states
//! without a bucket; `sv-0/` as now) is migrated when a log is opened
//! (see `migrate.rs`).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::merkle::Hash;
use crate::{Error, RecordedEvent, StreamId, StreamMetadata};

pub const LOG: &[u8] = b"ev-1/";
pub const STREAM_VERSION: &[u8] = b"sv-0/";
pub const BUNDLES: &[u8] = b"bnd-0/";
pub const SEAL_QUEUE: &[u8] = b"sq-0/";
pub const EVENT_ID: &[u8] = b"eid-0/";
pub const STREAM_STATE: &[u8] = b"st-1/";
pub const STREAM_NAME: &[u8] = b"sn-0/";
pub const SUBTREE: &[u8] = b"smt-0/";
pub const SCAVENGED_LEAF: &[u8] = b"slh-0/";
pub const SUBSCRIPTION: &[u8] = b"psub-0/";
/// A replica stream's writer stored head, as its storage was applied.
pub const REPLICA_STORED: &[u8] = b"rsh-0/";
/// The Merkle peaks over the versions before a replica stream's first,
/// when it began from a storage past version 0 (see `storage.rs`).
pub const REPLICA_PREFIX: &[u8] = b"rpp-0/";
pub const META: &[u8] = b"el-meta-0";
/// Positions below this hold no edge copy of a sealed event (see
/// `compact.rs`).
pub const COMPACTED: &[u8] = b"el-compacted-0";

/// Subtrees of at least this many leaves are stored; smaller ones are
/// recomputed from the events when a proof needs them.
pub const STORED_SUBTREE_LEVEL: u32 = 8;

pub fn log_key(pos: u64) -> Vec<u8> {
    [LOG, &pos.to_be_bytes()].concat()
}

pub fn pos_of_log_key(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.strip_prefix(LOG)?.try_into().ok()?))
}

pub fn bundle_key(num: u64, index: u64) -> Vec<u8> {
    [BUNDLES, &num.to_be_bytes(), &index.to_be_bytes()].concat()
}

pub fn seal_queue_key(num: u64, index: u64) -> Vec<u8> {
    [SEAL_QUEUE, &num.to_be_bytes(), &index.to_be_bytes()].concat()
}

pub fn version_key(num: u64, version: u64) -> Vec<u8> {
    [STREAM_VERSION, &num.to_be_bytes(), &version.to_be_bytes()].concat()
}

/// Two big-endian numbers of 8 bytes each: a stream number and a version
/// (or bundle index), as in `sv-0/` and `bnd-0/` keys.
pub fn num_version(bytes: &[u8]) -> Option<(u64, u64)> {
    let n = |i: usize| Some(u64::from_be_bytes(bytes.get(i..i + 8)?.try_into().ok()?));
    (bytes.len() == 16).then_some(())?;
    Some((n(0)?, n(8)?))
}

pub fn version_of_key(key: &[u8]) -> Option<(u64, u64)> {
    num_version(key.strip_prefix(STREAM_VERSION)?)
}

pub fn event_id_key(id: &Uuid) -> Vec<u8> {
    [EVENT_ID, id.as_bytes()].concat()
}

pub fn state_key(stream: &StreamId) -> Vec<u8> {
    [STREAM_STATE, stream.as_str().as_bytes()].concat()
}

pub fn name_key(num: u64) -> Vec<u8> {
    [STREAM_NAME, &num.to_be_bytes()].concat()
}

/// The id of stream number `num` for messages: its name record, or
/// `#num` when that cannot be read.
pub fn stream_name(volume: &dyn hydra_volume::Volume, num: u64) -> String {
    match volume.get(&name_key(num)) {
        Ok(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => format!("#{num}"),
    }
}

pub fn subtree_key(num: u64, level: u32, index: u64) -> Vec<u8> {
    [
        SUBTREE,
        &num.to_be_bytes(),
        &[level as u8],
        &index.to_be_bytes(),
    ]
    .concat()
}

pub fn scavenged_leaf_key(num: u64, version: u64) -> Vec<u8> {
    [SCAVENGED_LEAF, &num.to_be_bytes(), &version.to_be_bytes()].concat()
}

pub fn replica_stored_key(num: u64) -> Vec<u8> {
    [REPLICA_STORED, &num.to_be_bytes()].concat()
}

pub fn replica_prefix_key(num: u64) -> Vec<u8> {
    [REPLICA_PREFIX, &num.to_be_bytes()].concat()
}

/// The peaks over versions `[0, covered)` a replica stream began from:
/// its `rpp-0/` entry, and the stored subtrees (`smt-0/`) proofs read,
/// which a reindex derives again from the entry.
pub(crate) fn stage_replica_prefix(
    ops: &mut hydra_volume::WriteBatch,
    num: u64,
    (covered, peaks): (u64, &[Hash]),
    entry: bool,
) {
    for ((level, first), peak) in crate::merkle::peak_ranges(covered).zip(peaks) {
        ops.put(subtree_key(num, level, first >> level), peak.to_vec());
    }
    if entry {
        let bytes = postcard::to_allocvec(&(covered, peaks)).expect("peaks encode");
        ops.put(replica_prefix_key(num), bytes);
    }
}

/// A `rpp-0/` entry: the versions its peaks cover, and the peaks.
pub(crate) fn decode_replica_prefix(num: u64, bytes: &[u8]) -> Result<(u64, Vec<Hash>), Error> {
    let corrupt = |reason: String| Error::Corrupt {
        what: format!("the peaks stream #{num} began from"),
        reason,
    };
    let (covered, peaks): (u64, Vec<Hash>) =
        postcard::from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
    if peaks.len() as u32 != covered.count_ones() {
        return Err(corrupt(format!(
            "{} peaks for {covered} versions",
            peaks.len()
        )));
    }
    Ok((covered, peaks))
}

pub fn subscription_key(name: &str) -> Vec<u8> {
    [SUBSCRIPTION, name.as_bytes()].concat()
}

pub fn u64_of(bytes: &[u8], what: &str) -> Result<u64, Error> {
    Ok(u64::from_be_bytes(bytes.try_into().map_err(|_| {
        Error::Corrupt {
            what: what.into(),
            reason: format!("{} bytes, expected 8", bytes.len()),
        }
    })?))
}

/// What [`LogEntry::peek`] reads: stream number, version, and for an edge
/// event its bucket number and leaf hash.
pub type Peeked = (u64, u64, Option<(u32, Hash)>);

/// One `ev-1/` entry: the event at that position of `$all`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// On its stream's open edge: the record as the stream's bucket sealed
    /// it, with its Merkle leaf hash, which every read checks the unsealed
    /// record against (and which proofs use without the key).
    Edge {
        num: u64,
        version: u64,
        /// The internal number of the stream's bucket.
        bucket: u32,
        leaf: Hash,
        sealed: Vec<u8>,
    },
    /// In the stream's sealed bundle `version / 256`.
    Bundled { num: u64, version: u64 },
    /// `count` events of the stream's sealed bundle `version / 256` from
    /// `version` on, at this position and the `count - 1` after it, which
    /// have no entry of their own: what a replica writes for the events
    /// of the bundles it takes in, one entry a run instead of one an
    /// event (see `records::log_page`, which readers see them through).
    Run { num: u64, version: u64, count: u64 },
}

const EDGE: u8 = 0;
const BUNDLED: u8 = 1;
const RUN: u8 = 2;
const EDGE_HEAD: usize = 1 + 8 + 8 + 4 + 32;

impl LogEntry {
    pub fn edge(num: u64, version: u64, bucket: u32, leaf: &Hash, sealed: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(EDGE_HEAD + sealed.len());
        out.push(EDGE);
        out.extend_from_slice(&num.to_be_bytes());
        out.extend_from_slice(&version.to_be_bytes());
        out.extend_from_slice(&bucket.to_be_bytes());
        out.extend_from_slice(leaf);
        out.extend_from_slice(sealed);
        out
    }

    /// A pointer: the tag, then the stream number and version as varints
    /// (a few bytes: there is one per sealed event).
    pub fn bundled(num: u64, version: u64) -> Vec<u8> {
        postcard::to_allocvec(&(BUNDLED, num, version)).expect("pointers encode")
    }

    /// A run of `count` events from `version` (a pointer when `count` is
    /// 1): the tag, then stream number, version and count as varints.
    pub fn run(num: u64, version: u64, count: u64) -> Vec<u8> {
        match count {
            1 => LogEntry::bundled(num, version),
            _ => postcard::to_allocvec(&(RUN, num, version, count)).expect("runs encode"),
        }
    }

    /// The stream number, first version and count of a run entry; `None`
    /// for any other entry.
    pub fn run_of(bytes: &[u8]) -> Result<Option<(u64, u64, u64)>, Error> {
        if bytes.first() != Some(&RUN) {
            return Ok(None);
        }
        let ((_, num, version, count), rest): ((u8, u64, u64, u64), _) =
            postcard::take_from_bytes(bytes).map_err(|e| LogEntry::corrupt(format!("run: {e}")))?;
        let last = version.checked_add(count.saturating_sub(1));
        if !rest.is_empty()
            || count < 2
            || last.is_none_or(|l| l / crate::BUNDLE != version / crate::BUNDLE)
        {
            return Err(LogEntry::corrupt(format!(
                "a run of {count} from version {version} with {} bytes after it",
                rest.len()
            )));
        }
        Ok(Some((num, version, count)))
    }

    fn corrupt(reason: String) -> Error {
        Error::Corrupt {
            what: "log entry".into(),
            reason,
        }
    }

    /// The stream number, version and, for an edge event, its bucket and
    /// leaf hash, without copying the record.
    pub fn peek(bytes: &[u8]) -> Result<Peeked, Error> {
        let n = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        match bytes.first() {
            Some(&EDGE) if bytes.len() >= EDGE_HEAD => Ok((
                n(1),
                n(9),
                Some((
                    u32::from_be_bytes(bytes[17..21].try_into().expect("4 bytes")),
                    bytes[21..53].try_into().expect("32 bytes"),
                )),
            )),
            Some(&BUNDLED) => {
                let ((_, num, version), rest): ((u8, u64, u64), _) =
                    postcard::take_from_bytes(bytes)
                        .map_err(|e| LogEntry::corrupt(format!("pointer: {e}")))?;
                if !rest.is_empty() {
                    return Err(LogEntry::corrupt(format!(
                        "{} bytes after a pointer",
                        rest.len()
                    )));
                }
                Ok((num, version, None))
            }
            // A run: its first event.
            Some(&RUN) => {
                let (num, version, _) = LogEntry::run_of(bytes)?.expect("tagged a run");
                Ok((num, version, None))
            }
            _ => Err(LogEntry::corrupt(format!(
                "{} bytes starting {:?}",
                bytes.len(),
                bytes.first()
            ))),
        }
    }

    pub fn decode(mut bytes: Vec<u8>) -> Result<LogEntry, Error> {
        Ok(match LogEntry::peek(&bytes)? {
            (num, version, Some((bucket, leaf))) => {
                bytes.drain(..EDGE_HEAD);
                LogEntry::Edge {
                    num,
                    version,
                    bucket,
                    leaf,
                    sealed: bytes,
                }
            }
            (num, version, None) => match LogEntry::run_of(&bytes)? {
                Some((num, version, count)) => LogEntry::Run {
                    num,
                    version,
                    count,
                },
                None => LogEntry::Bundled { num, version },
            },
        })
    }
}

/// Format of [`EventRecord`] encodings.
const RECORD_FORMAT: u8 = 1;

/// An event as stored: what its Merkle leaf commits to. The global
/// position is the record's key, not part of it, so a record's hash does
/// not depend on how streams interleave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: [u8; 16],
    pub stream: String,
    pub version: u64,
    pub event_type: String,
    pub timestamp: u64,
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
    #[serde(with = "serde_bytes")]
    pub metadata: Vec<u8>,
}

/// [`EventRecord`]'s encoding from borrowed parts, so that an append does
/// not copy the payload before encoding it. Same fields, same order.
#[derive(Serialize)]
pub struct EventRecordRef<'a> {
    pub id: [u8; 16],
    pub stream: &'a str,
    pub version: u64,
    pub event_type: &'a str,
    pub timestamp: u64,
    #[serde(with = "serde_bytes")]
    pub data: &'a [u8],
    #[serde(with = "serde_bytes")]
    pub metadata: &'a [u8],
}

impl EventRecordRef<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(self.data.len() + self.metadata.len() + self.stream.len() + 64);
        out.push(RECORD_FORMAT);
        postcard::to_extend(self, out).expect("records encode")
    }
}

/// An [`EventRecord`]'s id, stream and version, read in place (the
/// other fields are read only to check that the record is whole):
/// what indexing a replicated event needs, without copying its payload.
#[derive(Deserialize)]
pub struct EventRecordView<'a> {
    pub id: [u8; 16],
    #[serde(borrow)]
    pub stream: &'a str,
    pub version: u64,
    #[serde(borrow)]
    _event_type: &'a str,
    _timestamp: u64,
    #[serde(borrow)]
    _data: &'a serde_bytes::Bytes,
    #[serde(borrow)]
    _metadata: &'a serde_bytes::Bytes,
}

impl<'a> EventRecordView<'a> {
    pub fn decode(bytes: &'a [u8]) -> Result<EventRecordView<'a>, Error> {
        decode_record(bytes)
    }
}

/// A record of [`RECORD_FORMAT`], owned or read in place: the whole of
/// `bytes`, nothing after it.
fn decode_record<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    let corrupt = |reason: String| Error::Corrupt {
        what: "event record".into(),
        reason,
    };
    let ((format, record), rest): ((u8, T), _) =
        postcard::take_from_bytes(bytes).map_err(|e| corrupt(e.to_string()))?;
    if format != RECORD_FORMAT {
        return Err(corrupt(format!("format {format}")));
    }
    if !rest.is_empty() {
        return Err(corrupt(format!("{} trailing bytes", rest.len())));
    }
    Ok(record)
}

impl EventRecord {
    pub fn of(e: &RecordedEvent) -> EventRecord {
        EventRecord {
            id: *e.id.as_bytes(),
            stream: e.stream.as_str().to_owned(),
            version: e.version,
            event_type: e.event_type.clone(),
            timestamp: e.timestamp,
            data: e.data.clone(),
            metadata: e.metadata.clone(),
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(&(RECORD_FORMAT, self)).expect("records encode")
    }

    pub fn decode(bytes: &[u8]) -> Result<EventRecord, Error> {
        decode_record(bytes)
    }

    pub fn into_event(self, position: u64) -> Result<RecordedEvent, Error> {
        Ok(RecordedEvent {
            id: Uuid::from_bytes(self.id),
            // Validated when it was appended.
            stream: StreamId::trusted(self.stream),
            version: self.version,
            position,
            event_type: self.event_type,
            data: self.data,
            metadata: self.metadata,
            timestamp: self.timestamp,
        })
    }
}

/// How a stream was deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Deletion {
    #[default]
    None,
    /// Hidden; an append recreates it, continuing the versions.
    Soft,
    /// A tombstone: never written or read again.
    Hard,
}

/// Everything the log knows about one stream, in one small record.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StreamState {
    pub num: u64,
    /// Number of events ever appended: the next version.
    pub length: u64,
    /// Merkle peaks of the tree over all `length` events.
    pub peaks: Vec<Hash>,
    /// Global position of the last event.
    pub last_position: Option<u64>,
    pub deletion: Deletion,
    /// Versions below this are hidden (set by a soft delete).
    pub deleted_before: u64,
    /// Versions below this have been physically removed.
    pub scavenged_before: u64,
    pub metadata: StreamMetadata,
    /// For a stream replicated from another writer: that writer's latest
    /// signed head, which this store serves and appends never change.
    pub replica: Option<crate::Head>,
    /// The internal number of the bucket that holds the stream's events,
    /// fixed when the stream is created.
    pub bucket: u32,
    /// Where the records of the open bundle sit in `$all` (stored after
    /// the fields above; see [`OpenEdge`]).
    #[serde(skip)]
    pub open: OpenEdge,
}

/// The positions of a stream's edge records at versions `[from, from +
/// len)`, kept in its state instead of one `sv-0/` entry each: an append
/// rewrites the state anyway, and an index entry per event put a page of
/// its own per stream into every commit. Here are the open bundle's
/// records and those of full bundles waiting to be sealed; when a bundle
/// is sealed its records leave, and the records of one that cannot be
/// are indexed in `sv-0/` instead, as is any edge record below `from`.
/// Held as each position's distance from the one before, a LEB128 varint
/// of a byte or two (a writer caches up to 100,000 states).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OpenEdge {
    pub from: u64,
    len: u64,
    last: u64,
    deltas: Vec<u8>,
}

impl OpenEdge {
    /// None yet, the next record at version `from`.
    pub fn at(from: u64) -> OpenEdge {
        OpenEdge {
            from,
            ..OpenEdge::default()
        }
    }

    /// One past the last version it holds.
    pub fn end(&self) -> u64 {
        self.from + self.len
    }

    /// Adds the next version's position. Positions only grow; the
    /// distances wrap, so that a corrupt state gives wrong positions,
    /// which reads catch, rather than a panic.
    pub fn push(&mut self, position: u64) {
        let mut d = position.wrapping_sub(self.last);
        loop {
            let byte = (d & 0x7f) as u8;
            d >>= 7;
            if d == 0 {
                self.deltas.push(byte);
                break;
            }
            self.deltas.push(byte | 0x80);
        }
        self.last = position;
        self.len += 1;
    }

    /// `(version, position)` of each.
    pub fn entries(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let mut bytes = self.deltas.iter();
        let mut last = 0u64;
        (self.from..self.end()).map_while(move |v| {
            let (mut d, mut shift) = (0u64, 0);
            for &b in bytes.by_ref() {
                d |= u64::from(b & 0x7f) << shift;
                shift += 7;
                if b & 0x80 == 0 {
                    break;
                }
            }
            last = last.wrapping_add(d);
            Some((v, last))
        })
    }

    /// Postcard: `from`, the count, then the distances' bytes.
    fn encode_into(&self, out: &mut Vec<u8>) {
        *out = postcard::to_extend(&(self.from, self.len, &self.deltas), std::mem::take(out))
            .expect("open edges encode");
    }

    fn decode(bytes: &[u8]) -> Result<OpenEdge, String> {
        let (from, len, deltas): (u64, u64, Vec<u8>) =
            postcard::from_bytes(bytes).map_err(|e| e.to_string())?;
        // Each distance a whole varint of at most 10 bytes, `len` of them.
        let (mut count, mut run, mut last) = (0u64, 0, 0u64);
        let mut d = 0u64;
        for &b in &deltas {
            if run == 9 && b > 1 {
                return Err("a distance past 2^64".into());
            }
            d |= u64::from(b & 0x7f) << (7 * run);
            run += 1;
            if b & 0x80 == 0 {
                last = last.wrapping_add(d);
                (count, run, d) = (count + 1, 0, 0);
            }
        }
        if run != 0 || count != len {
            return Err(format!("{count} whole positions of {len}"));
        }
        Ok(OpenEdge {
            from,
            len,
            last,
            deltas,
        })
    }
}

impl StreamState {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = postcard::to_allocvec(self).expect("states encode");
        self.open.encode_into(&mut out);
        out
    }

    /// A state written before [`OpenEdge`] has nothing after its fields:
    /// all its edge records are in `sv-0/`.
    pub fn decode(bytes: &[u8]) -> Result<StreamState, Error> {
        let corrupt = |e: postcard::Error| Error::Corrupt {
            what: "stream state".into(),
            reason: e.to_string(),
        };
        let (mut st, rest): (StreamState, _) = postcard::take_from_bytes(bytes).map_err(corrupt)?;
        st.open = if rest.is_empty() {
            OpenEdge::at(st.length)
        } else {
            OpenEdge::decode(rest).map_err(|reason| Error::Corrupt {
                what: "stream state's open edge".into(),
                reason,
            })?
        };
        if st.open.end() > st.length {
            return Err(Error::Corrupt {
                what: "stream state".into(),
                reason: format!(
                    "its open edge ends at version {}, past its length {}",
                    st.open.end(),
                    st.length
                ),
            });
        }
        Ok(st)
    }

    /// Does the stream exist for readers and expected-version checks?
    pub fn exists(&self) -> bool {
        self.deletion == Deletion::None && self.length > 0
    }

    /// The first version readers may see, before `max_age`.
    pub fn first_visible(&self) -> u64 {
        let mut first = self
            .deleted_before
            .max(self.metadata.truncate_before.unwrap_or(0));
        if let Some(max) = self.metadata.max_count {
            first = first.max(self.length.saturating_sub(max));
        }
        first.min(self.length)
    }
}

/// Where an event id points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLocation {
    pub num: u64,
    pub version: u64,
    pub position: u64,
}

/// An `eid-0/` entry of a replica for the ids its writer generated in one
/// append: `count` events of one stream at consecutive versions and
/// positions here, whose ids the writer generated at consecutive
/// positions there in the same millisecond, so that they are consecutive
/// in id order too (see `event_id.rs`). It is kept under the *last* id of
/// the run, with that event's location: a retention removes a stream's
/// first versions, so the entry goes with the run's last event, when the
/// whole run goes. A run only names where an id would be: a reader checks
/// that the event there carries it (see `event_id::locate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRun {
    pub last: EventLocation,
    pub count: u64,
}

impl IdRun {
    pub fn encode(&self) -> Vec<u8> {
        if self.count == 1 {
            return self.last.encode();
        }
        [self.last.encode(), self.count.to_be_bytes().to_vec()].concat()
    }

    /// An `eid-0/` value: a location of its own is a run of one.
    pub fn decode(bytes: &[u8]) -> Result<IdRun, Error> {
        let (location, count) = match bytes.len() {
            24 => (bytes, 1),
            32 => (
                &bytes[..24],
                u64::from_be_bytes(bytes[24..].try_into().expect("8 bytes")),
            ),
            n => {
                return Err(Error::Corrupt {
                    what: "event id entry".into(),
                    reason: format!("{n} bytes, expected 24 or 32"),
                });
            }
        };
        let last = EventLocation::decode(location)?;
        if count == 0 || count > last.version + 1 || count > last.position + 1 {
            return Err(Error::Corrupt {
                what: "event id entry".into(),
                reason: format!("a run of {count} ending at version {}", last.version),
            });
        }
        Ok(IdRun { last, count })
    }

    /// Where the event `back` places before the run's last is.
    pub fn before_last(&self, back: u64) -> Option<EventLocation> {
        (back < self.count).then(|| EventLocation {
            num: self.last.num,
            version: self.last.version - back,
            position: self.last.position - back,
        })
    }
}

impl EventLocation {
    pub fn encode(&self) -> Vec<u8> {
        [
            self.num.to_be_bytes(),
            self.version.to_be_bytes(),
            self.position.to_be_bytes(),
        ]
        .concat()
    }

    pub fn decode(bytes: &[u8]) -> Result<EventLocation, Error> {
        if bytes.len() != 24 {
            return Err(Error::Corrupt {
                what: "event id entry".into(),
                reason: format!("{} bytes, expected 24", bytes.len()),
            });
        }
        let n = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        Ok(EventLocation {
            num: n(0),
            version: n(8),
            position: n(16),
        })
    }
}

/// Counters that survive restarts, rewritten with every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Meta {
    pub next_position: u64,
    pub next_num: u64,
    /// The next sequence of each partition (see `partition.rs`), found
    /// from their entries when the log opens.
    #[serde(skip)]
    pub partitions: crate::partition::Next,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(length: u64, open: OpenEdge) -> StreamState {
        StreamState {
            num: 7,
            length,
            last_position: Some(1 << 40),
            open,
            ..StreamState::default()
        }
    }

    #[test]
    fn a_state_keeps_its_open_edge() {
        let positions = [1 << 40, (1 << 40) + 1, (1 << 40) + 300, u64::MAX - 1];
        let mut open = OpenEdge::at(512);
        for p in positions {
            open.push(p);
        }
        let st = state(516, open);
        let back = StreamState::decode(&st.encode()).unwrap();
        assert_eq!(back, st);
        let entries: Vec<(u64, u64)> = back.open.entries().collect();
        assert_eq!(entries, (512..).zip(positions).collect::<Vec<_>>());
        let empty = state(516, OpenEdge::at(516));
        assert_eq!(StreamState::decode(&empty.encode()).unwrap(), empty);
    }

    /// States written before open edges end after their fields: every
    /// edge record of theirs is in `sv-0/`.
    #[test]
    fn a_state_without_an_open_edge_has_it_start_at_its_length() {
        let st = state(300, OpenEdge::default());
        let before = postcard::to_allocvec(&st).unwrap();
        assert_eq!(
            StreamState::decode(&before).unwrap().open,
            OpenEdge::at(300)
        );
    }

    #[test]
    fn an_open_edge_past_the_length_is_corrupt() {
        let mut open = OpenEdge::at(2);
        open.push(5);
        open.push(6);
        let st = state(3, open);
        let err = StreamState::decode(&st.encode()).unwrap_err();
        assert!(err.to_string().contains("past its length 3"), "{err}");
        // Cut inside a varint, or naming more positions than it holds.
        let mut bytes = state(9, OpenEdge::at(2)).encode();
        let at = bytes.len() - 3;
        bytes.truncate(at);
        bytes.extend([2, 2, 2, 0x05, 0x01]);
        let entries: Vec<_> = StreamState::decode(&bytes)
            .unwrap()
            .open
            .entries()
            .collect();
        assert_eq!(entries, [(2, 5), (3, 6)]);
        bytes.truncate(at);
        bytes.extend([2, 3, 2, 0x05, 0x01]);
        let err = StreamState::decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("2 whole positions of 3"), "{err}");
        bytes.truncate(at);
        bytes.extend([2, 1, 1, 0x85]);
        let err = StreamState::decode(&bytes).unwrap_err();
        assert!(err.to_string().contains("0 whole positions of 1"), "{err}");
    }
}
