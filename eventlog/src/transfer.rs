//! Export and import: a verifiable backup, and replication between stores
//! with no network between them.
//!
//! An export is a CARv1 file of streams as their stored blocks (see
//! `storage.rs`): its roots are one storage block per stream, each
//! followed by the blocks it links, exactly as the stream's bucket stores
//! them (compressed and encrypted when it is). Nothing is decoded or
//! encoded again on the way out.
//!
//! A whole store's export ([`EventLog::export_all`], a backup) has a
//! part per bucket with objects before them: the bucket's signed
//! manifest as a root, then each object's closure and blocks, as a
//! bucket's own export lays them out; and after them its `$all` order: a
//! plain node of kind [`ALL_ORDER`] linking raw blocks of runs (the index
//! of a stream among the file's streams, and how many of its events come
//! next, or how many positions no exported event holds), so that a
//! restore into an empty store gives the events the same order and the
//! same positions.
//!
//! Import reads the file part by part, storing every block of a stream
//! in its bucket as it comes, each checked against its CID and taken only
//! if a block before it links it; then checks every stream whole
//! (signature, trusted writer, tree, edge root, every new event against
//! the signed Merkle root from the peaks held here) before it applies
//! any, and then applies them, a commit each, or, for a file with an
//! `$all` order whose streams it all kept checked (up to 4M new events),
//! all in one commit, in that order. A file with buckets is read
//! twice: the first reading checks their parts and stores nothing of
//! them, the second imports them. A stream imported this way is a
//! replica: it serves its writer's head and storage, and local appends to
//! it are refused (one whose bucket this store cannot read is held blind:
//! see `storage.rs`). Importing again applies only what is new. Blocks of
//! a file that fails a check stay unreferenced until `hydra gc` frees
//! them.

use std::collections::HashSet;
use std::io::{Seek, Write};
use std::path::Path;

use hydra_block::{CarReader, CarWriter, Codec, Kind, Node, Ref, links};
use hydra_bucket::BucketImport;
use serde::{Deserialize, Serialize};

use crate::storage::{Checked, Prepared};
use crate::writer::Request;
use hydra_volume::{Direction as VolumeDirection, KeyRange};

use crate::bundle::{self, BUNDLE};
use crate::layout::{self, Deletion, StreamState};
use crate::{Error, EventLog, Received, StreamId};

/// The node kind of a whole store's `$all` order in an export.
pub const ALL_ORDER: Kind = Kind(0x0406);
/// Runs an order's raw block holds at most (some 0.5 MiB).
const ORDER_RUNS: usize = 1 << 16;

/// Runs of `$all`: (index of a stream among an export's streams, how many
/// of its events come next), or ([`GAP`], how many positions are empty).
type Runs = Vec<(u32, u64)>;

/// The stream index of a run of positions that no exported event holds
/// (of events deleted or scavenged, or of streams the export leaves
/// out): a restore into an empty store leaves them empty too, so that
/// every event keeps its position, and an `$all` checkpoint taken
/// before the backup holds after the restore.
pub(crate) const GAP: u32 = u32::MAX;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExportReport {
    /// Buckets whose objects it holds (a whole store's export), and those.
    pub buckets: u64,
    pub objects: u64,
    pub streams: u64,
    pub events: u64,
    pub blocks: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    /// Buckets whose objects it imported, and those.
    pub buckets: u64,
    pub objects: u64,
    pub streams: u64,
    /// Events new here.
    pub events: u64,
    /// Events the store already had.
    pub skipped: u64,
    /// Whether the new events took the file's `$all` order (a whole
    /// store's backup, restored whole); else each stream's events came
    /// together, a stream after another.
    pub all_order: bool,
}

/// New events whose checked form an import keeps between checking a file
/// and applying it (about 100 bytes each).
const KEEP_CHECKED: u64 = 4 << 20;

/// An export file that could not be written.
fn export_io(e: std::io::Error) -> Error {
    Error::Corrupt {
        what: "export file".into(),
        reason: e.to_string(),
    }
}

fn car_error(e: hydra_block::CarError) -> Error {
    Error::BadImport(e.to_string())
}

impl EventLog {
    /// Writes `streams`, each as its stored blocks under its storage
    /// block, as a CARv1 file.
    pub fn export(&self, streams: &[StreamId], out: impl Write) -> Result<ExportReport, Error> {
        let storages = streams
            .iter()
            .map(|s| self.storage(s))
            .collect::<Result<Vec<_>, Error>>()?;
        let roots: Vec<Ref> = storages.iter().map(|s| s.root).collect();
        let mut car = CarWriter::new(out, &roots).map_err(export_io)?;
        let mut report = ExportReport::default();
        for storage in &storages {
            self.each_storage_block(storage, |r, bytes| car.write(r, bytes).map_err(export_io))?;
            report.streams += 1;
            report.events += storage.stored.head.length;
            report.blocks += storage.blocks();
        }
        car.finish().map_err(export_io)?;
        Ok(report)
    }

    /// Writes everything this store holds as one CARv1 file: every
    /// bucket with objects, as its signed manifest and their blocks, then
    /// every stream's storage (those held blind too), block for block as
    /// stored. A CAR names its roots before its blocks, so the blocks go to
    /// a spool file first: memory holds one stream's storage at a time.
    pub fn export_all(&self, out: impl Write) -> Result<ExportReport, Error> {
        let spool = tempfile::tempfile().map_err(export_io)?;
        let mut w = CarWriter::headless(std::io::BufWriter::new(spool));
        let mut roots = Vec::new();
        let mut report = ExportReport::default();
        for config in self.store().buckets()? {
            let bucket = self.inner.buckets.get(config.num())?;
            if bucket.objects("").next().is_none() && bucket.replica_manifest()?.is_none() {
                continue;
            }
            let signed = bucket.signed_manifest(self.identity(), crate::writer::now_ms())?;
            let written = bucket.write_objects(&signed, &mut w)?;
            roots.push(Ref::of(Codec::Raw, &signed));
            report.buckets += 1;
            report.objects += written.objects;
            report.blocks += written.blocks;
        }
        // The streams with events and not deleted, with their numbers.
        let mut indexed = Vec::new();
        for state in self.stream_states("") {
            let (stream, st) = state?;
            if st.exists() && st.deletion == Deletion::None {
                indexed.push((stream, st));
            }
        }
        let runs = self.all_order(&indexed)?;
        let mut streams: Vec<StreamId> = indexed.into_iter().map(|(s, _)| s).collect();
        streams.extend(self.blind_streams()?.into_iter().map(|h| h.stream));
        for stream in &streams {
            let storage = self.storage(stream)?;
            self.each_storage_block(&storage, |r, bytes| w.write(r, bytes).map_err(export_io))?;
            roots.push(storage.root);
            report.streams += 1;
            report.events += storage.stored.head.length;
            report.blocks += storage.blocks();
        }
        if let Some(runs) = runs {
            roots.push(self.write_order(&runs, &mut w)?);
            report.blocks += 1 + runs.len().div_ceil(ORDER_RUNS) as u64;
        }
        let mut spool = w
            .finish()
            .map_err(export_io)?
            .into_inner()
            .map_err(|e| export_io(e.into_error()))?;
        spool.seek(std::io::SeekFrom::Start(0)).map_err(export_io)?;
        let mut out = CarWriter::new(out, &roots)
            .map_err(export_io)?
            .finish()
            .map_err(export_io)?;
        std::io::copy(&mut spool, &mut out).map_err(export_io)?;
        out.flush().map_err(export_io)?;
        Ok(report)
    }

    /// Imports the export at `path`: streams, a bucket's objects, or a
    /// whole store's backup (see the module docs). Every part is checked
    /// before any is applied: a file with buckets is read twice, first
    /// checking them, storing nothing of theirs. With `trusted`
    /// non-empty, only heads and manifests signed by one of those keys are
    /// accepted.
    pub fn import(&self, path: &Path, trusted: &[[u8; 32]]) -> Result<ImportReport, Error> {
        let open = || {
            std::fs::File::open(path)
                .map(std::io::BufReader::new)
                .map_err(|e| Error::BadImport(format!("{}: {e}", path.display())))
        };
        let roots = CarReader::new(open()?).map_err(car_error)?.roots().to_vec();
        if roots.iter().any(|r| r.codec() == Codec::Raw) {
            self.read_export(open()?, trusted, Part::Check)?;
        }
        let ExportRead {
            storages,
            buckets,
            order,
        } = self.read_export(open()?, trusted, Part::Apply)?;
        // Every stream checked before any is applied: a file that fails
        // changes nothing. What was checked is kept for applying while it
        // fits in memory; the rest is checked again then.
        let mut checked = Vec::with_capacity(storages.len());
        let mut kept = 0;
        for root_block in &storages {
            let c = self.check(Received::root(root_block), trusted)?;
            kept += c.events();
            checked.push((kept <= KEEP_CHECKED).then_some(c));
        }
        let mut report = ImportReport::default();
        for b in buckets {
            report.buckets += 1;
            report.objects += b.objects;
        }
        // In the file's `$all` order, all in one commit, when it has one
        // and every stream was kept checked.
        let checked = match order {
            Some(runs) if checked.iter().all(Option::is_some) => {
                let checked: Vec<Checked> = checked.into_iter().flatten().collect();
                // Positions as the writer's when this store has none yet.
                let gaps = self.next_position() == 0;
                match in_order(checked, &runs, gaps) {
                    Ok(Ordered {
                        prepared,
                        runs,
                        others,
                    }) => {
                        for c in others {
                            let applied = self.apply_checked(c)?;
                            report.streams += 1;
                            report.events += applied.events;
                            report.skipped += applied.held;
                        }
                        report.streams += prepared.len() as u64;
                        for p in &prepared {
                            self.follow_scavenge(p)?;
                        }
                        if !prepared.is_empty() {
                            report.events += self.request(|reply| Request::Replicate {
                                prepared,
                                order: Some(runs),
                                reply,
                            })?;
                        }
                        report.all_order = true;
                        return Ok(report);
                    }
                    Err(checked) => checked.into_iter().map(Some).collect(),
                }
            }
            _ => checked,
        };
        for (root_block, checked) in storages.iter().zip(checked) {
            let applied = match checked {
                Some(c) => self.apply_checked(c)?,
                None => self.apply_storage(Received::root(root_block), trusted)?,
            };
            report.streams += 1;
            report.events += applied.events;
            report.skipped += applied.held;
        }
        Ok(report)
    }

    /// `$all` as runs of `streams`' events (each by id and number; see
    /// [`Runs`]), for a restore to give them the same order: each
    /// stream's positions, from its bundles' entries and its edge records,
    /// merged. None for a store of more events than an import keeps
    /// checked (which it needs to apply them in one commit).
    fn all_order(&self, streams: &[(StreamId, StreamState)]) -> Result<Option<Runs>, Error> {
        if self.next_position() > KEEP_CHECKED {
            return Ok(None);
        }
        let volume = &self.inner.volume;
        let mut at: Vec<(u64, u32)> = Vec::new();
        for (i, (_, st)) in streams.iter().enumerate() {
            let num = st.num.to_be_bytes();
            let bundles = KeyRange::prefix(&[layout::BUNDLES, &num].concat());
            for entry in volume.scan(bundles, VolumeDirection::Forward) {
                let (k, v) = entry?;
                let first = layout::u64_of(&k[k.len() - 8..], "bundle key")? * BUNDLE;
                // Not what a scavenge left in a bundle it did not remove.
                let shown = bundle::positions(&v)?
                    .into_iter()
                    .zip(first..)
                    .filter(|(_, version)| *version >= st.scavenged_before);
                at.extend(shown.map(|(p, _)| (p, i as u32)));
            }
            // What is on the edge as the export takes it: not what a
            // scavenge removed.
            let edge = self.edge_held((st.num, &st.open), st.length)?;
            at.extend(edge.into_iter().map(|e| (e.position, i as u32)));
        }
        at.sort_unstable();
        let mut runs: Runs = Vec::new();
        let mut next = 0;
        for (position, i) in at {
            if position > next {
                runs.push((GAP, position - next));
            }
            next = position + 1;
            match runs.last_mut() {
                Some((j, n)) if *j == i => *n += 1,
                _ => runs.push((i, 1)),
            }
        }
        Ok(Some(runs))
    }

    /// Writes an `$all` order: its node, then the raw blocks of its runs;
    /// returns the node's ref, a root of the export.
    fn write_order<W: Write>(&self, runs: &Runs, w: &mut CarWriter<W>) -> Result<Ref, Error> {
        let chunks: Vec<(Ref, Vec<u8>)> = runs
            .chunks(ORDER_RUNS)
            .map(|c| {
                let bytes = postcard::to_allocvec(c).expect("runs encode");
                (Ref::of(Codec::Raw, &bytes), bytes)
            })
            .collect();
        let order = Node {
            kind: ALL_ORDER,
            links: chunks.iter().map(|(r, _)| *r).collect(),
            // The events it orders.
            body: runs
                .iter()
                .filter(|(i, _)| *i != GAP)
                .map(|(_, n)| n)
                .sum::<u64>(),
        }
        .encode();
        let root = Ref::of(Codec::PlainNode, &order);
        w.write(&root, &order).map_err(export_io)?;
        for (r, bytes) in &chunks {
            w.write(r, bytes).map_err(export_io)?;
        }
        Ok(root)
    }

    /// One reading of an export, part by part in the order of its roots:
    /// a stream's blocks are stored in its bucket as they come (each
    /// checked against its CID and taken only if a block before it links
    /// it), a bucket's objects checked or imported. Returns the streams'
    /// storage blocks, for checking and applying, and what the buckets'
    /// imports did.
    fn read_export(
        &self,
        input: impl std::io::Read,
        trusted: &[[u8; 32]],
        part: Part,
    ) -> Result<ExportRead, Error> {
        let mut car = CarReader::new(input).map_err(car_error)?;
        let corrupt = Error::BadImport;
        let (mut storages, mut buckets, mut order) = (Vec::new(), Vec::new(), None);
        for root in car.roots().to_vec() {
            let Some((r, root_block)) = car.next_block().map_err(car_error)? else {
                return Err(corrupt(
                    "the file ends before every part it names is complete".into(),
                ));
            };
            if r != root {
                return Err(corrupt(format!(
                    "block {r} is not the next part's root {root}"
                )));
            }
            if r.codec() == Codec::PlainNode
                && let Ok(node) = Node::<u64>::decode(ALL_ORDER, &root_block)
            {
                let mut runs: Runs = Vec::new();
                for want in node.links {
                    let Some((r, bytes)) = car.next_block().map_err(car_error)? else {
                        return Err(corrupt(format!(
                            "block {want} of the $all order is missing"
                        )));
                    };
                    if r != want {
                        return Err(corrupt(format!(
                            "block {r} is not the $all order's next block {want}"
                        )));
                    }
                    let chunk: Runs =
                        postcard::from_bytes(&bytes).map_err(|e| corrupt(e.to_string()))?;
                    runs.extend(chunk);
                }
                order = Some(runs);
                continue;
            }
            if r.codec() == Codec::Raw {
                match part {
                    Part::Check => {
                        hydra_bucket::check_objects(&root_block, &mut car, trusted)?;
                    }
                    Part::Apply => buckets.push(self.store().import_objects(
                        &root_block,
                        &mut car,
                        trusted,
                        None,
                        hydra_bucket::Part::OfMore,
                    )?),
                }
                continue;
            }
            let (stream, bucket) = self.storage_target(&root_block)?;
            let mut expected: HashSet<Ref> = links(Codec::PlainNode, &root_block)
                .map_err(|e| corrupt(e.to_string()))?
                .into_iter()
                .collect();
            let mut blocks = bucket.writer();
            while !expected.is_empty() {
                let Some((r, bytes)) = car.next_block().map_err(car_error)? else {
                    return Err(corrupt(format!(
                        "block {} of stream {stream} is missing ({} in all)",
                        expected.iter().next().expect("not empty"),
                        expected.len()
                    )));
                };
                if !expected.remove(&r) {
                    return Err(corrupt(format!(
                        "block {r} is not one of stream {stream}'s"
                    )));
                }
                if r.codec() == Codec::PlainNode {
                    expected.extend(
                        links(Codec::PlainNode, &bytes).map_err(|e| corrupt(e.to_string()))?,
                    );
                }
                blocks.put_stored(r, bytes)?;
            }
            blocks.flush()?;
            storages.push(root_block);
        }
        if let Some((r, _)) = car.next_block().map_err(car_error)? {
            return Err(corrupt(format!("block {r} follows the last part")));
        }
        Ok(ExportRead {
            storages,
            buckets,
            order,
        })
    }
}

/// What a reading of an export found: the streams' storage blocks, what
/// the buckets' imports did, and the `$all` order.
struct ExportRead {
    storages: Vec<Vec<u8>>,
    buckets: Vec<BucketImport>,
    order: Option<Runs>,
}

/// The streams of an import to apply in an `$all` order: those new here,
/// with the order's runs numbering them among themselves, and the others.
struct Ordered {
    prepared: Vec<Prepared>,
    runs: Runs,
    others: Vec<Checked>,
}

/// The new streams of `checked` (the file's streams, in its order) with
/// `runs` numbering them among themselves, when the runs give each
/// exactly its new events (runs of streams that bring nothing new here,
/// held already or blind, are left out, or with `gaps` left as gaps, as
/// are the order's own); the other streams beside. Gives `checked` back
/// when the runs do not fit them.
fn in_order(checked: Vec<Checked>, runs: &Runs, gaps: bool) -> Result<Ordered, Vec<Checked>> {
    let mut new = vec![None; checked.len()];
    let mut n = 0;
    for (i, c) in checked.iter().enumerate() {
        if let Checked::New(_) = c {
            new[i] = Some(n);
            n += 1;
        }
    }
    let mut given = vec![0u64; checked.len()];
    let mut numbered = Vec::with_capacity(runs.len());
    for &(i, events) in runs {
        if i == GAP {
            if gaps {
                numbered.push((GAP, events));
            }
            continue;
        }
        let Some(g) = given.get_mut(i as usize) else {
            return Err(checked);
        };
        *g = g.saturating_add(events);
        match new[i as usize] {
            Some(j) => numbered.push((j, events)),
            None if gaps => numbered.push((GAP, events)),
            None => {}
        }
    }
    let fits = checked.iter().zip(&given).all(|(c, &g)| match c {
        Checked::New(p) => p.events.len() as u64 == g,
        _ => true,
    });
    // As many positions as an order is written for, at most.
    let positions = numbered.iter().fold(0u64, |a, (_, n)| a.saturating_add(*n));
    if !fits || positions > KEEP_CHECKED {
        return Err(checked);
    }
    let (mut prepared, mut others) = (Vec::new(), Vec::new());
    for c in checked {
        match c {
            Checked::New(p) => prepared.push(*p),
            c => others.push(c),
        }
    }
    Ok(Ordered {
        prepared,
        runs: numbered,
        others,
    })
}

/// Whether a reading of an export checks its buckets' parts or imports
/// them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Check,
    Apply,
}
