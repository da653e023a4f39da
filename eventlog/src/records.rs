//! Event records in their stream's bucket: which bucket a new stream
//! goes to, sealing a record for the volume, and opening it again with
//! every check a read owes its caller.
//!
//! A record is sealed by its bucket's transforms (zstd, then
//! ChaCha20-Poly1305) before it is stored, and kept with its Merkle leaf
//! hash. Opening it checks the unsealed bytes against that hash, so a
//! flipped byte anywhere in a stored event fails the read with the stream
//! and version named, never returns altered data.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hydra_bucket::{Bucket, BucketError, BucketName, Store};
use hydra_volume::{Direction, KeyRange, PageLimit, Volume};

use crate::layout::{EventRecord, LogEntry, OpenEdge};
use crate::merkle::leaf_hash;
use crate::{Error, RecordedEvent, StreamId};

/// Streams whose id starts with `prefix` go to `bucket` when created
/// (the longest matching prefix wins).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub prefix: String,
    pub bucket: BucketName,
}

/// The buckets streams live in, by internal number, opened once.
pub(crate) struct Buckets {
    store: Store,
    placements: Vec<Placement>,
    open: Mutex<HashMap<u32, Arc<Bucket>>>,
}

impl Buckets {
    pub fn new(store: Store, mut placements: Vec<Placement>) -> Buckets {
        placements.sort_by_key(|p| std::cmp::Reverse(p.prefix.len()));
        Buckets {
            store,
            placements,
            open: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Bucket>>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bucket with internal number `num`, shared (the hot path clones
    /// no config).
    pub fn get(&self, num: u32) -> Result<Arc<Bucket>, Error> {
        if let Some(b) = self.lock().get(&num) {
            return Ok(b.clone());
        }
        let b = Arc::new(
            self.store
                .bucket_by_num(num)?
                .ok_or_else(|| Error::Corrupt {
                    what: format!("bucket #{num}"),
                    reason: "it holds streams but no longer exists".into(),
                })?,
        );
        self.lock().insert(num, b.clone());
        Ok(b)
    }

    /// The bucket named `name`.
    pub fn named(&self, name: &BucketName) -> Result<Arc<Bucket>, Error> {
        let num = self.store.bucket_config(name)?.num();
        self.get(num)
    }

    /// Where a new stream goes: the bucket asked for, else the longest
    /// configured prefix that matches, else the default bucket.
    pub fn place(
        &self,
        stream: &StreamId,
        asked: Option<&BucketName>,
    ) -> Result<Arc<Bucket>, Error> {
        let default = BucketName::default_bucket();
        let name = asked.unwrap_or_else(|| {
            self.placements
                .iter()
                .find(|p| stream.as_str().starts_with(&p.prefix))
                .map_or(&default, |p| &p.bucket)
        });
        self.named(name)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Forgets open handles, so that keys given since are used.
    pub fn reopen(&self) {
        self.lock().clear();
    }
}

/// The `ev-1/` entry of an edge record, whose Merkle leaf is `leaf`,
/// sealed by its stream's bucket.
pub(crate) fn seal(
    bucket: &Bucket,
    (num, version): (u64, u64),
    leaf: &crate::Hash,
    record: &[u8],
) -> Result<Vec<u8>, Error> {
    let sealed = bucket.seal(record)?;
    Ok(LogEntry::edge(
        num,
        version,
        bucket.config().num(),
        leaf,
        &sealed,
    ))
}

/// An edge record opened: unsealed by its bucket and checked against its
/// leaf hash. `name` says which stream number `num` is, for errors (looked
/// up only when one happens).
pub(crate) fn open_edge(
    buckets: &Buckets,
    (num, version): (u64, u64),
    bucket: u32,
    leaf: &crate::Hash,
    sealed: Vec<u8>,
    name: impl Fn(u64) -> String,
) -> Result<Vec<u8>, Error> {
    let bucket = buckets.get(bucket)?;
    let corrupt = |reason: String| Error::CorruptEvent {
        stream: name(num),
        version,
        reason,
    };
    let plain = match bucket.unseal(sealed) {
        Ok(p) => p,
        Err(e @ BucketError::Unseal { .. }) => return Err(corrupt(e.to_string())),
        Err(e) => return Err(e.into()),
    };
    if leaf_hash(&plain) != *leaf {
        return Err(corrupt(
            "its bytes do not hash to its Merkle leaf (changed on disk)".into(),
        ));
    }
    Ok(plain)
}

/// Decodes a checked record into the event at `position`; its stream and
/// version must be the ones its entry says.
pub(crate) fn decode(
    (num, version): (u64, u64),
    record: &[u8],
    position: u64,
    name: impl Fn(u64) -> String,
) -> Result<RecordedEvent, Error> {
    let record = EventRecord::decode(record)?;
    if record.version != version {
        return Err(Error::CorruptEvent {
            stream: name(num),
            version,
            reason: format!("its record holds version {}", record.version),
        });
    }
    record.into_event(position)
}

pub(crate) type SharedBuckets = Arc<Buckets>;

/// A checked record, where it was found.
pub(crate) enum Found {
    /// Opened from the edge.
    Edge(Vec<u8>),
    /// Record `.1` of a sealed bundle.
    Bundled(Arc<crate::bundle::Sealed>, usize),
}

impl Found {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Found::Edge(r) => r,
            Found::Bundled(b, i) => b.record(*i),
        }
    }
}

/// A record with its stream number and version.
pub(crate) type Located = ((u64, u64), Found);

/// The record the `ev-1/` entry at `position` holds or points to: an edge
/// record opened and checked against its leaf, or its sealed bundle's
/// (`bundle` fetches bundle `.1` of stream `.0`), with its stream number
/// and version. `None` when the bundle has gone (scavenged meanwhile).
pub(crate) fn entry_record(
    buckets: &Buckets,
    position: u64,
    value: Vec<u8>,
    bundle: impl FnOnce(u64, u64) -> Result<Option<Arc<crate::bundle::Sealed>>, Error>,
    name: impl Fn(u64) -> String,
) -> Result<Option<Located>, Error> {
    match LogEntry::decode(value)? {
        LogEntry::Edge {
            num,
            version,
            bucket,
            leaf,
            sealed,
        } => {
            let plain = open_edge(buckets, (num, version), bucket, &leaf, sealed, name)?;
            Ok(Some(((num, version), Found::Edge(plain))))
        }
        LogEntry::Bundled { num, version } | LogEntry::Run { num, version, .. } => {
            let Some(b) = bundle(num, version / crate::BUNDLE)? else {
                return Ok(None);
            };
            let i = (version % crate::BUNDLE) as usize;
            if b.positions[i] != position {
                return Err(Error::CorruptEvent {
                    stream: name(num),
                    version,
                    reason: format!(
                        "position {position} points to it, its bundle says {}",
                        b.positions[i]
                    ),
                });
            }
            Ok(Some(((num, version), Found::Bundled(b, i))))
        }
    }
}

/// The edge records of stream `num` at versions `[from, to)` that are
/// stored, in version order: `(version, position, record)`, each checked.
/// Reads where they are (see [`edge_positions`]), then the entries named,
/// in two read transactions: an entry sealed into a bundle meanwhile is
/// left out.
pub(crate) fn edge_of(
    volume: &dyn hydra_volume::Volume,
    buckets: &Buckets,
    (num, open): (u64, &OpenEdge),
    (from, to): (u64, u64),
    name: impl Fn(u64) -> String,
) -> Result<Vec<(u64, u64, Vec<u8>)>, Error> {
    let at = edge_positions(volume, (num, open), (from, to))?;
    edge_entries(volume, buckets, num, at, name)
}

/// Where the edge records of stream `num` at versions `[from, to)` sit in
/// `$all`, in version order: `(version, position)`, from its state's open
/// edge and its `sv-0/` entries (see [`OpenEdge`]). A version named may
/// have been sealed or scavenged since; its entry says.
pub(crate) fn edge_positions(
    volume: &dyn hydra_volume::Volume,
    (num, open): (u64, &OpenEdge),
    (from, to): (u64, u64),
) -> Result<Vec<(u64, u64)>, Error> {
    let indexed = |(from, to): (u64, u64)| -> Result<Vec<(u64, u64)>, Error> {
        if from >= to {
            return Ok(Vec::new());
        }
        let page = volume.scan_page(
            &hydra_volume::KeyRange::between(
                &crate::layout::version_key(num, from),
                &crate::layout::version_key(num, to),
            ),
            hydra_volume::Direction::Forward,
            hydra_volume::PageLimit {
                entries: usize::try_from(to - from).unwrap_or(usize::MAX),
                bytes: usize::MAX,
            },
        )?;
        page.iter()
            .map(|(k, v)| {
                let (_, version) =
                    crate::layout::version_of_key(k).ok_or_else(|| Error::Corrupt {
                        what: "stream index key".into(),
                        reason: format!("{} bytes", k.len()),
                    })?;
                Ok((version, crate::layout::u64_of(v, "stream index entry")?))
            })
            .collect()
    };
    let mut at = indexed((from, to.min(open.from)))?;
    at.extend(open.entries().filter(|(v, _)| (from..to).contains(v)));
    at.extend(indexed((from.max(open.end()), to))?);
    Ok(at)
}

/// The edge records at `(version, position)`, in that order (see
/// [`edge_of`]).
pub(crate) fn edge_entries(
    volume: &dyn hydra_volume::Volume,
    buckets: &Buckets,
    num: u64,
    at: Vec<(u64, u64)>,
    name: impl Fn(u64) -> String,
) -> Result<Vec<(u64, u64, Vec<u8>)>, Error> {
    let keys: Vec<Vec<u8>> = at.iter().map(|(_, p)| crate::layout::log_key(*p)).collect();
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let mut out = Vec::with_capacity(at.len());
    for ((version, position), value) in at.into_iter().zip(volume.get_many(&refs)?) {
        let Some(value) = value else { continue };
        if let LogEntry::Edge {
            num: n,
            version: v,
            bucket,
            leaf,
            sealed,
        } = LogEntry::decode(value)?
        {
            if (n, v) != (num, version) {
                return Err(Error::CorruptEvent {
                    stream: name(num),
                    version,
                    reason: format!(
                        "its index names position {position}, which holds #{n} version {v}"
                    ),
                });
            }
            let plain = open_edge(buckets, (num, version), bucket, &leaf, sealed, &name)?;
            out.push((version, position, plain));
        }
    }
    Ok(out)
}

/// A key and its value.
type Entry = (Vec<u8>, Vec<u8>);

/// A run entry's run: stream number, first version, count.
type Run = (u64, u64, u64);

/// A page of `$all` entries in `range`, as readers see them: one per
/// position. A run entry ([`LogEntry::Run`]) stands for the pointers of
/// its positions, and is given as them; a page that begins (in its
/// direction) inside a run, whose entry lies before it, begins with the
/// rest of the run. Otherwise as [`Volume::scan_page`].
pub(crate) fn log_page(
    volume: &dyn Volume,
    range: &KeyRange,
    direction: Direction,
    limit: PageLimit,
) -> Result<Vec<Entry>, Error> {
    use std::ops::Bound;
    let forward = direction == Direction::Forward;
    let position = |b: &Bound<Vec<u8>>, step: fn(u64) -> Option<u64>| match b {
        Bound::Included(k) => crate::layout::pos_of_log_key(k),
        Bound::Excluded(k) => crate::layout::pos_of_log_key(k).and_then(step),
        Bound::Unbounded => None,
    };
    let within = |p: u64| range.contains(&crate::layout::log_key(p));
    let mut out = Vec::new();
    let expand = |out: &mut Vec<_>, (num, version, count): Run, at: u64, from: u64| {
        let positions: Box<dyn Iterator<Item = u64>> = match forward {
            true => Box::new(from..at + count),
            false => Box::new((at..=from).rev()),
        };
        for p in positions.filter(|p| within(*p)) {
            out.push((
                crate::layout::log_key(p),
                LogEntry::bundled(num, version + (p - at)),
            ));
        }
    };
    let mut rest = range.clone();
    let first = match forward {
        true => position(&range.start, |p| p.checked_add(1)),
        false => position(&range.end, |p| p.checked_sub(1)),
    };
    if let Some(p) = first
        && let Some((at, run)) = covering(volume, p)?
    {
        expand(&mut out, run, at, p);
        let past = match forward {
            true => at + run.2 - 1,
            false => at,
        };
        match forward {
            true => rest.start = Bound::Excluded(crate::layout::log_key(past)),
            false => rest.end = Bound::Excluded(crate::layout::log_key(past)),
        }
    }
    for (k, v) in volume.scan_page(&rest, direction, limit)? {
        match (LogEntry::run_of(&v)?, crate::layout::pos_of_log_key(&k)) {
            (Some(run), Some(at)) => {
                let from = match forward {
                    true => at,
                    false => at + run.2 - 1,
                };
                expand(&mut out, run, at, from);
            }
            _ => out.push((k, v)),
        }
    }
    Ok(out)
}

/// The `$all` entry at `position` as readers see it (see [`log_page`]):
/// its own, or a pointer of the run it lies in.
pub(crate) fn log_entry(volume: &dyn Volume, position: u64) -> Result<Option<Vec<u8>>, Error> {
    if let Some(v) = volume.get(&crate::layout::log_key(position))? {
        return Ok(Some(match LogEntry::run_of(&v)? {
            Some((num, version, _)) => LogEntry::bundled(num, version),
            None => v,
        }));
    }
    Ok(covering(volume, position)?
        .map(|(at, (num, version, _))| LogEntry::bundled(num, version + (position - at))))
}

/// The run entry before `position` whose run holds it: its position and
/// run.
fn covering(volume: &dyn Volume, position: u64) -> Result<Option<(u64, Run)>, Error> {
    let Some(before) = position.checked_sub(1) else {
        return Ok(None);
    };
    let range = KeyRange {
        start: std::ops::Bound::Included(crate::layout::LOG.to_vec()),
        end: std::ops::Bound::Included(crate::layout::log_key(before)),
    };
    let Some((k, v)) = volume.first(&range, Direction::Backward)? else {
        return Ok(None);
    };
    let (Some(at), Some(run)) = (crate::layout::pos_of_log_key(&k), LogEntry::run_of(&v)?) else {
        return Ok(None);
    };
    Ok((at + run.2 > position).then_some((at, run)))
}
