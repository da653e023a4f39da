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

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use hydra_block::{CarReader, CarWriter, Codec, Ref, links};
use serde::Serialize;

use crate::{Error, EventLog, Received, StreamId};

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

/// New events whose checked form an import keeps between checking a file
/// and applying it (about 100 bytes each).
const KEEP_CHECKED: u64 = 4 << 20;

fn car_error(e: hydra_block::CarError) -> Error {
    Error::Corrupt {
        what: "import file".into(),
        reason: e.to_string(),
    }
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
}
