//! Export and import: a verifiable backup, and replication between stores
//! with no network between them.
//!
//! An export is a CARv1 file. Its roots are one *head block* per stream: a
//! node holding the stream's signed head and linking, in order, the
//! stream's *bundles*, nodes of up to 256 event records each. Every block
//! is addressed by its hash, so the reader checks each one as it streams.
//!
//! Import runs the checks a network replica must run, before changing
//! anything: every block against its CID; every head against its
//! signature (and the trusted writers, if any are given); every bundle in
//! the order its head names; every record's version; and, starting from
//! the Merkle peaks the store already has for that stream, the root the
//! records lead to against the signed head's root. Only a file that passes
//! all of that is applied, in a second pass, through the single writer; a
//! stream imported this way is a replica: it serves its writer's head, and
//! local appends to it are refused. Importing again skips what is there.

use std::collections::VecDeque;
use std::io::Write;
use std::path::Path;

use hydra_block::{CarReader, CarWriter, Codec, Kind, Node, Ref};
use hydra_volume::KeyRange;
use serde::Serialize;
use serde_bytes::ByteBuf;

use crate::layout::{self, Deletion, EventRecord, StreamState};
use crate::merkle::{Hash, leaf_hash, push_leaf, root_of_peaks};
use crate::writer::Request;
use crate::{Direction, Error, EventLog, Head, StreamId};

/// Kind of a head block: body the signed head, links the bundles.
pub const STREAM_HEAD: Kind = Kind(0x0401);
/// Kind of a bundle block: body up to 256 event records.
pub const EVENT_BUNDLE: Kind = Kind(0x0402);
const BUNDLE: usize = 256;
/// Records per writer request while applying an import (16 bundles).
const IMPORT_BATCH: usize = 16 * BUNDLE;

/// What an export wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ExportReport {
    pub streams: u64,
    pub events: u64,
    pub blocks: u64,
}

/// What an import did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ImportReport {
    pub streams: u64,
    /// Events appended.
    pub events: u64,
    /// Events the store already had.
    pub skipped: u64,
}

fn car_error(e: hydra_block::CarError) -> Error {
    Error::Corrupt {
        what: "import file".into(),
        reason: e.to_string(),
    }
}

fn bundle_block(records: &[Vec<u8>]) -> (Ref, Vec<u8>) {
    let node = Node {
        kind: EVENT_BUNDLE,
        links: Vec::new(),
        body: records
            .iter()
            .map(|r| ByteBuf::from(r.clone()))
            .collect::<Vec<_>>(),
    };
    let bytes = node.encode();
    (Ref::of(Codec::Node, &bytes), bytes)
}

impl EventLog {
    /// Hands `f` the raw records of a stream from version `from` up to
    /// version `until`, in version order, a bundle (256) at a time; with
    /// `max_bytes`, no more records once that many bytes are read (but
    /// always at least one). Returns how many records it handed over.
    /// Bundles always start at `from` and every 256 records after it, so
    /// two readings of one range give the same bundles.
    fn each_bundle(
        &self,
        stream: &StreamId,
        st: &StreamState,
        (from, until): (u64, u64),
        max_bytes: Option<usize>,
        mut f: impl FnMut(&[Vec<u8>]) -> Result<(), Error>,
    ) -> Result<u64, Error> {
        if st.scavenged_before > from {
            return Err(Error::Scavenged {
                stream: stream.clone(),
                version: from,
            });
        }
        let until = until.min(st.length);
        let mut handed = 0;
        let mut bytes = 0;
        let max_bytes = max_bytes.map(|m| m.max(1));
        let mut next = from.min(until);
        while next < until && max_bytes.is_none_or(|m| bytes < m) {
            // One export bundle: 256 records from `next`, across stored spans.
            let mut records = Vec::with_capacity(BUNDLE);
            let bundle_end = (next + BUNDLE as u64).min(until);
            while next < bundle_end {
                let span = self.span_records(
                    st.num,
                    next,
                    (next, bundle_end),
                    BUNDLE,
                    Direction::Forward,
                )?;
                match span.first() {
                    Some((v, _, _)) if *v == next => {}
                    // A gap: scavenged while this export ran.
                    _ => {
                        return Err(Error::Scavenged {
                            stream: stream.clone(),
                            version: next,
                        });
                    }
                }
                next += span.len() as u64;
                records.extend(span.into_iter().map(|(_, _, r)| r.into_vec()));
            }
            if let Some(max) = max_bytes {
                // The loop only runs while under `max`: the first record
                // always goes.
                let mut keep = 0;
                for r in &records {
                    if bytes >= max {
                        break;
                    }
                    bytes += r.len();
                    keep += 1;
                }
                records.truncate(keep);
            }
            handed += records.len() as u64;
            f(&records)?;
        }
        Ok(handed)
    }

    /// Writes `streams` (each with its signed head and every event) as a
    /// CARv1 file.
    pub fn export(&self, streams: &[StreamId], out: impl Write) -> Result<ExportReport, Error> {
        let from: Vec<(StreamId, u64)> = streams.iter().map(|s| (s.clone(), 0)).collect();
        self.export_from(&from, out)
    }

    /// Like [`EventLog::export`], but each stream's events start at the
    /// version given beside it: what a replica that holds the versions
    /// before it still lacks. The head is the current signed head, so an
    /// importer checks the new records against it from its own peaks.
    pub fn export_from(
        &self,
        streams: &[(StreamId, u64)],
        out: impl Write,
    ) -> Result<ExportReport, Error> {
        self.export_part(streams, None, out)
    }

    /// Like [`EventLog::export_from`], but a stream this log writes stops
    /// once about `max_bytes` of its records are in (at a bundle's end),
    /// with its signed head at that length: an importer applies that part
    /// and asks again from there. How a follower catches up on a stream of
    /// any size in bounded messages. A replica cannot sign a head for its
    /// writer: it cuts at the writer heads its own imports brought.
    pub fn export_part(
        &self,
        streams: &[(StreamId, u64)],
        max_bytes: Option<usize>,
        out: impl Write,
    ) -> Result<ExportReport, Error> {
        // Two readings, so that memory holds one bundle, not the export:
        // the first fixes each stream's range and head and the bundles'
        // refs (the header names the head blocks, which link them), the
        // second writes. Records below a stream's length never change.
        let mut report = ExportReport::default();
        let mut plan = Vec::new();
        for (stream, from) in streams {
            let st = self.readable(stream)?;
            if st.length == 0 {
                return Err(Error::StreamNotFound(stream.clone()));
            }
            // The head and the records from one state: an append landing
            // meanwhile must not give a head longer than the records.
            let (until, head) = match max_bytes {
                Some(max) if st.replica.is_some() => self.replica_cut(stream, &st, *from, max)?,
                _ => {
                    let n =
                        self.each_bundle(stream, &st, (*from, st.length), max_bytes, |_| Ok(()))?;
                    let until = (*from).min(st.length) + n;
                    let head = if until < st.length {
                        self.head_at(stream, until)?
                    } else {
                        self.sign_head(stream, &st)
                    };
                    (until, head)
                }
            };
            let mut links = Vec::new();
            self.each_bundle(stream, &st, (*from, until), None, |b| {
                links.push(bundle_block(b).0);
                Ok(())
            })?;
            let head_bytes = Node {
                kind: STREAM_HEAD,
                links,
                body: head,
            }
            .encode();
            report.events += until.saturating_sub(*from);
            plan.push((
                Ref::of(Codec::Node, &head_bytes),
                head_bytes,
                st,
                *from,
                until,
            ));
        }
        let roots: Vec<Ref> = plan.iter().map(|p| p.0).collect();
        let io = |e: std::io::Error| Error::Corrupt {
            what: "export file".into(),
            reason: e.to_string(),
        };
        let mut car = CarWriter::new(out, &roots).map_err(io)?;
        for ((r, bytes, st, from, until), (stream, _)) in plan.into_iter().zip(streams) {
            car.write(&r, &bytes).map_err(io)?;
            report.blocks += 1;
            self.each_bundle(stream, &st, (from, until), None, |b| {
                let (r, bytes) = bundle_block(b);
                report.blocks += 1;
                car.write(&r, &bytes).map_err(io)
            })?;
            report.streams += 1;
        }
        car.finish().map_err(io)?;
        Ok(report)
    }

    /// Where a part of a replica's stream ends: it cannot sign a head, so
    /// at a writer head an import brought (the last one within about `max`
    /// bytes, else the first one past them), or at the current one.
    fn replica_cut(
        &self,
        stream: &StreamId,
        st: &StreamState,
        from: u64,
        max: usize,
    ) -> Result<(u64, Head), Error> {
        let cut = from.min(st.length)
            + self.each_bundle(stream, st, (from, st.length), Some(max), |_| Ok(()))?;
        let stored: Vec<u64> = self
            .inner
            .volume
            .scan(
                KeyRange::between(
                    &layout::writer_head_key(st.num, from + 1),
                    &layout::writer_head_key(st.num, st.length),
                ),
                Direction::Forward,
            )
            .map(|e| {
                let (k, _) = e?;
                layout::u64_of(&k[k.len() - 8..], "writer head key")
            })
            .collect::<Result<_, _>>()?;
        let target = stored
            .iter()
            .rev()
            .find(|l| **l <= cut)
            .or_else(|| stored.iter().find(|l| **l > cut))
            .copied();
        let Some(target) = target else {
            return Ok((st.length, self.sign_head(stream, st)));
        };
        let what = || format!("writer head of {stream} at {target}");
        let bytes = self
            .inner
            .volume
            .get(&layout::writer_head_key(st.num, target))?
            .ok_or_else(|| Error::Corrupt {
                what: what(),
                reason: "missing".into(),
            })?;
        let head = postcard::from_bytes(&bytes).map_err(|e| Error::Corrupt {
            what: what(),
            reason: e.to_string(),
        })?;
        Ok((target, head))
    }

    /// Verifies the export at `path` completely, then applies it. With
    /// `trusted` non-empty, only heads signed by one of those keys are
    /// accepted.
    pub fn import(&self, path: &Path, trusted: &[[u8; 32]]) -> Result<ImportReport, Error> {
        let open = || {
            std::fs::File::open(path)
                .map(std::io::BufReader::new)
                .map_err(|e| Error::Corrupt {
                    what: format!("import file {}", path.display()),
                    reason: e.to_string(),
                })
        };
        self.import_pass(open()?, trusted, false)?;
        self.import_pass(open()?, trusted, true)
    }

    /// [`EventLog::import`] of an export already in memory (as a peer
    /// sent it): verified completely, then applied.
    pub fn import_bytes(&self, car: &[u8], trusted: &[[u8; 32]]) -> Result<ImportReport, Error> {
        self.import_pass(car, trusted, false)?;
        self.import_pass(car, trusted, true)
    }

    /// One reading of an export: verifying everything, or applying it.
    fn import_pass(
        &self,
        input: impl std::io::Read,
        trusted: &[[u8; 32]],
        apply: bool,
    ) -> Result<ImportReport, Error> {
        let mut car = CarReader::new(input).map_err(car_error)?;
        let mut roots: VecDeque<Ref> = car.roots().iter().copied().collect();
        let mut report = ImportReport::default();
        // The stream being read: its head, the bundles still expected, and
        // (while verifying) the peaks and length reached so far.
        let mut current: Option<(Head, VecDeque<Ref>, Vec<Hash>, u64)> = None;
        let mut pending: Vec<Vec<u8>> = Vec::new();
        let corrupt = |reason: String| Error::Corrupt {
            what: "import file".into(),
            reason,
        };
        while let Some((r, bytes)) = car.next_block().map_err(car_error)? {
            match current.as_mut() {
                None => {
                    if roots.pop_front() != Some(r) {
                        return Err(corrupt(format!("block {r} is not the next root")));
                    }
                    let node = Node::<Head>::decode(STREAM_HEAD, &bytes)
                        .map_err(|e| corrupt(e.to_string()))?;
                    let head = node.body;
                    if !trusted.is_empty() && !trusted.contains(&head.signer) {
                        return Err(crate::ProofError::UntrustedSigner {
                            signer: head.signer_peer_id(),
                        })
                        .map_err(|e| corrupt(e.to_string()));
                    }
                    head.verify(&head.signer)
                        .map_err(|_| Error::BadHeadSignature(head.stream.clone()))?;
                    let (peaks, length) = match self.state(&head.stream)? {
                        Some(s)
                            if s.replica.is_some()
                                || (s.length == 0 && s.deletion == Deletion::None) =>
                        {
                            (s.peaks, s.length)
                        }
                        Some(_) => {
                            return Err(Error::NotAReplica {
                                stream: head.stream.clone(),
                            });
                        }
                        None => (Vec::new(), 0),
                    };
                    report.streams += 1;
                    current = Some((head, node.links.into_iter().collect(), peaks, length));
                }
                Some((head, expected, peaks, length)) => {
                    if expected.pop_front() != Some(r) {
                        return Err(corrupt(format!(
                            "block {r} is not the next bundle of stream {}",
                            head.stream
                        )));
                    }
                    let node = Node::<Vec<ByteBuf>>::decode(EVENT_BUNDLE, &bytes)
                        .map_err(|e| corrupt(e.to_string()))?;
                    let records: Vec<Vec<u8>> =
                        node.body.into_iter().map(ByteBuf::into_vec).collect();
                    if apply {
                        // Bundles go to the writer in groups, so a large
                        // import is a few commits, not one per bundle.
                        pending.extend(records);
                        let last = expected.is_empty();
                        if !last && pending.len() < IMPORT_BATCH {
                            continue;
                        }
                        let records = std::mem::take(&mut pending);
                        let (before, given) = (*length, records.len() as u64);
                        let head = head.clone();
                        *length = self.request(|reply| Request::Import {
                            head,
                            records,
                            last,
                            reply,
                        })?;
                        report.events += *length - before;
                        report.skipped += given - (*length - before);
                    } else {
                        for bytes in &records {
                            let record = EventRecord::decode(bytes)?;
                            if record.stream != head.stream.as_str() {
                                return Err(corrupt(format!(
                                    "a record of stream {:?} in the bundles of {}",
                                    record.stream, head.stream
                                )));
                            }
                            if record.version < *length {
                                continue;
                            }
                            if record.version != *length {
                                return Err(Error::ImportGap {
                                    stream: head.stream.clone(),
                                    expected: *length,
                                    found: record.version,
                                });
                            }
                            push_leaf(peaks, *length, leaf_hash(bytes), |_, _, _| {});
                            *length += 1;
                        }
                    }
                }
            }
            if let Some((head, expected, peaks, length)) = &current
                && expected.is_empty()
            {
                if !apply && (*length != head.length || root_of_peaks(peaks) != head.root) {
                    return Err(Error::Inconsistent {
                        stream: head.stream.clone(),
                        length: head.length,
                    });
                }
                current = None;
            }
        }
        if current.is_some() || !roots.is_empty() {
            return Err(corrupt(
                "the file ends before every stream it names is complete".into(),
            ));
        }
        Ok(report)
    }
}
