//! Export and import: a verifiable backup, and replication between stores
//! with no network between them.
//!
//! An export is a CARv1 file of streams as their stored blocks (see
//! `storage.rs`): its roots are one storage block per stream, each
//! followed by the blocks it links, exactly as the stream's bucket stores
//! them (compressed and encrypted when it is). Nothing is decoded or
//! encoded again on the way out.
//!
//! Import reads the file once, storing every block in its stream's
//! bucket as it comes, each checked against its CID and taken only if a
//! block before it links it; then checks every stream whole (signature,
//! trusted writer, tree, edge root, every new event against the signed
//! Merkle root from the peaks held here) before it applies any, and then
//! applies them, a commit each. A stream imported this way is a replica:
//! it serves its writer's head and storage, and local appends to it are
//! refused. Importing again applies only what is new. Blocks of a file
//! that fails a check stay unreferenced until `hydra gc` frees them.
//!
//! The network's follow loop still moves streams in signed parts of
//! re-encoded records ([`EventLog::export_part`] and
//! [`EventLog::import_bytes`]: a head block linking bundles of plain
//! records, applied event by event through the writer), until it moves
//! to blocks too.

use std::collections::{HashSet, VecDeque};
use std::io::Write;
use std::path::Path;

use hydra_block::{CarReader, CarWriter, Codec, Kind, Node, Ref, links};
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

    /// Writes `streams`, each as its stored blocks under its storage
    /// block, as a CARv1 file.
    pub fn export(&self, streams: &[StreamId], out: impl Write) -> Result<ExportReport, Error> {
        let storages = streams
            .iter()
            .map(|s| self.storage(s))
            .collect::<Result<Vec<_>, Error>>()?;
        let roots: Vec<Ref> = storages.iter().map(|s| s.root).collect();
        let io = |e: std::io::Error| Error::Corrupt {
            what: "export file".into(),
            reason: e.to_string(),
        };
        let mut car = CarWriter::new(out, &roots).map_err(io)?;
        let mut report = ExportReport::default();
        for storage in &storages {
            self.each_storage_block(storage, |r, bytes| car.write(r, bytes).map_err(io))?;
            report.streams += 1;
            report.events += storage.stored.head.length;
            report.blocks += storage.blocks();
        }
        car.finish().map_err(io)?;
        Ok(report)
    }

    /// Writes the events of `streams` from the version given beside each,
    /// in parts of about `max_bytes` of records, as the network's follow
    /// loop moves them (see the module docs): a stream this log writes
    /// stops once about `max_bytes` of its records are in (at a bundle's
    /// end), with its signed head at that length, and an importer applies
    /// that part and asks again from there. A replica cannot sign a head
    /// for its writer: it cuts at the writer heads its imports brought.
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

    /// Imports the export at `path` (see the module docs): every stream
    /// checked before any is applied. With `trusted` non-empty, only heads
    /// signed by one of those keys are accepted.
    pub fn import(&self, path: &Path, trusted: &[[u8; 32]]) -> Result<ImportReport, Error> {
        let file = std::fs::File::open(path).map_err(|e| Error::Corrupt {
            what: format!("import file {}", path.display()),
            reason: e.to_string(),
        })?;
        self.import_storage(std::io::BufReader::new(file), trusted)
    }

    /// [`EventLog::import`] from any reader.
    pub fn import_storage(
        &self,
        input: impl std::io::Read,
        trusted: &[[u8; 32]],
    ) -> Result<ImportReport, Error> {
        let mut car = CarReader::new(input).map_err(car_error)?;
        let mut roots = car.roots().to_vec().into_iter();
        let corrupt = |reason: String| Error::Corrupt {
            what: "import file".into(),
            reason,
        };
        let mut storages = Vec::new();
        let mut next = car.next_block().map_err(car_error)?;
        while let Some((r, root_block)) = next.take() {
            if roots.next() != Some(r) {
                return Err(corrupt(format!(
                    "block {r} is not the next stream's storage block"
                )));
            }
            let (stream, bucket) = self.storage_target(&root_block)?;
            let mut expected: HashSet<Ref> = links(Codec::PlainNode, &root_block)
                .map_err(|e| corrupt(e.to_string()))?
                .into_iter()
                .collect();
            let mut blocks = bucket.writer();
            loop {
                next = car.next_block().map_err(car_error)?;
                let Some((r, bytes)) = next.take_if(|(r, _)| expected.remove(r)) else {
                    break;
                };
                if r.codec() == Codec::PlainNode {
                    expected.extend(
                        links(Codec::PlainNode, &bytes).map_err(|e| corrupt(e.to_string()))?,
                    );
                }
                blocks.put_stored(r, bytes)?;
            }
            blocks.flush()?;
            if let Some(r) = expected.iter().next() {
                return Err(corrupt(format!(
                    "block {r} of stream {stream} is missing ({} in all)",
                    expected.len()
                )));
            }
            storages.push(root_block);
        }
        if roots.next().is_some() {
            return Err(corrupt(
                "the file ends before every stream it names is complete".into(),
            ));
        }
        if storages.len() > 1 {
            // All of them first: a file that fails changes nothing.
            for root_block in &storages {
                self.check_storage(root_block, trusted)?;
            }
        }
        let mut report = ImportReport::default();
        for root_block in &storages {
            let applied = self.apply_storage(root_block, trusted)?;
            report.streams += 1;
            report.events += applied.events;
            report.skipped += applied.held;
        }
        Ok(report)
    }

    /// Imports a part of [`EventLog::export_part`] (as a peer sent it):
    /// verified completely, then applied.
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
