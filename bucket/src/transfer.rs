//! A bucket as a CARv1 file: the offline form of object replication, and a
//! verifiable backup.
//!
//! The file's one root is the bucket's signed manifest (a raw block); the
//! blocks follow in order: the manifest, then for each object its closure
//! and every block the closure lists. Import runs the checks a network
//! replica runs: every block against its CID (the CAR reader), the
//! manifest's signature against the trusted writers, each object's blocks
//! against its closure, which the manifest names. Objects are named, and
//! those the manifest no longer lists removed, only when the whole file
//! has passed: a truncated or tampered file is refused and changes no
//! object (blocks stored before the fault are unreachable, freed by the
//! next gc; a bucket the import created is removed).

use std::io::{Read, Write};

use hydra_block::{CarReader, CarWriter, Codec, Ref};
use hydra_volume::Identity;
use serde::{Deserialize, Serialize};

use crate::{Bucket, BucketError, BucketName, Closure, Key, Manifest, Store};

/// What [`Bucket::export`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BucketExport {
    pub bucket: String,
    pub objects: u64,
    pub blocks: u64,
}

/// What [`Store::import`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BucketImport {
    pub bucket: String,
    pub objects: u64,
    /// Blocks stored now.
    pub blocks: u64,
    /// Blocks the bucket already had.
    pub skipped: u64,
}

fn car(e: hydra_block::CarError) -> BucketError {
    BucketError::Car(e.to_string())
}

impl Bucket {
    /// The signed manifest this bucket is served and exported with: its
    /// writer's, on a replica; else one signed now by `identity` with
    /// `seq`.
    pub fn signed_manifest(&self, identity: &Identity, seq: u64) -> Result<Vec<u8>, BucketError> {
        match self.replica_manifest()? {
            Some(m) => Ok(m),
            None => Ok(self.manifest(identity, seq)?.sign(identity)),
        }
    }

    /// Writes the bucket (its signed manifest, every object's closure and
    /// blocks) as a CARv1 file, streaming: memory holds one block and one
    /// closure.
    pub fn export(
        &self,
        identity: &Identity,
        seq: u64,
        out: impl Write,
    ) -> Result<BucketExport, BucketError> {
        let signed = self.signed_manifest(identity, seq)?;
        let root = Ref::of(Codec::Raw, &signed);
        let mut w = CarWriter::new(out, &[root]).map_err(BucketError::Write)?;
        let report = self.write_objects(&signed, &mut w)?;
        w.finish().map_err(BucketError::Write)?;
        Ok(report)
    }

    /// Writes the signed manifest `signed` and every object it lists (its
    /// closure, then every block the closure lists) into `w`: the
    /// bucket's part of an export.
    pub fn write_objects<W: Write>(
        &self,
        signed: &[u8],
        w: &mut CarWriter<W>,
    ) -> Result<BucketExport, BucketError> {
        let manifest = Manifest::decode_stored(signed)?;
        w.write(&Ref::of(Codec::Raw, signed), signed)
            .map_err(BucketError::Write)?;
        let mut report = BucketExport {
            bucket: manifest.bucket.clone(),
            blocks: 1,
            ..BucketExport::default()
        };
        for o in &manifest.objects {
            let block = |r: &Ref| {
                self.get_stored(r)?
                    .ok_or_else(|| BucketError::ObjectIncomplete {
                        key: o.key.clone(),
                        reference: *r,
                    })
            };
            let bytes = block(&o.closure)?;
            w.write(&o.closure, &bytes).map_err(BucketError::Write)?;
            for r in Closure::decode(&bytes)?.blocks {
                w.write(&r, &block(&r)?).map_err(BucketError::Write)?;
                report.blocks += 1;
            }
            report.blocks += 1;
            report.objects += 1;
        }
        Ok(report)
    }
}

impl Store {
    /// Verifies a bucket export as it reads it and applies it as a replica
    /// of its writer (see the module docs). With `trusted` empty, the
    /// manifest's own signer is trusted (its signature still must verify);
    /// `key` reads an encrypted bucket, and is not needed to import one.
    /// A bucket the import creates is removed again if the file is refused.
    pub fn import(
        &self,
        input: impl Read,
        trusted: &[[u8; 32]],
        key: Option<&Key>,
    ) -> Result<BucketImport, BucketError> {
        let mut reader = CarReader::new(input).map_err(car)?;
        let root = match reader.roots() {
            [r] if r.codec() == Codec::Raw => *r,
            _ => return Err(bad("its root is not one bucket manifest".into())),
        };
        let (r, signed) = next(&mut reader, "the manifest")?;
        if r != root {
            return Err(bad(format!("the first block is {r}, not the root")));
        }
        self.import_objects(&signed, &mut reader, trusted, key, Part::Whole)
    }

    /// The bucket part of an import whose signed manifest, `signed`, was
    /// just read: the blocks `reader` gives next are its objects' (see
    /// [`Store::import`]).
    pub fn import_objects(
        &self,
        signed: &[u8],
        reader: &mut CarReader<impl Read>,
        trusted: &[[u8; 32]],
        key: Option<&Key>,
        part: Part,
    ) -> Result<BucketImport, BucketError> {
        let (name, manifest) = opened(signed, trusted)?;
        let created = self.bucket_config(&name).is_err();
        let bucket = self.replica(&name, &manifest, key)?;
        let applied = apply(&bucket, signed, &manifest, reader, part);
        if applied.is_err() && created {
            let _ = self.remove_bucket(&name);
        }
        applied
    }
}

/// Checks the bucket part of an export whose signed manifest, `signed`,
/// was just read, storing nothing: the manifest's signature, and each
/// object's closure and blocks in order (each block against its CID, as
/// the reader gives it). Returns the objects.
pub fn check_objects(
    signed: &[u8],
    reader: &mut CarReader<impl Read>,
    trusted: &[[u8; 32]],
) -> Result<u64, BucketError> {
    let (_, manifest) = opened(signed, trusted)?;
    for o in &manifest.objects {
        let (r, bytes) = next(reader, &format!("the closure of {:?}", o.key))?;
        if r != o.closure {
            return Err(bad(format!("block {r} is not the closure of {:?}", o.key)));
        }
        for want in Closure::decode(&bytes)?.blocks {
            let (r, _) = next(reader, &format!("every block of {:?}", o.key))?;
            if r != want {
                return Err(bad(format!(
                    "block {r} is not the next block of {:?}",
                    o.key
                )));
            }
        }
    }
    Ok(manifest.objects.len() as u64)
}

/// A signed manifest opened: its bucket and content, signed by one of
/// `trusted` (or, with none, by the writer it names).
fn opened(signed: &[u8], trusted: &[[u8; 32]]) -> Result<(BucketName, Manifest), BucketError> {
    let claimed = Manifest::decode_stored(signed)?;
    let name: BucketName = claimed.bucket.parse()?;
    let writers = if trusted.is_empty() {
        vec![claimed.writer]
    } else {
        trusted.to_vec()
    };
    let manifest = Manifest::open(signed, &name, &writers)?;
    Ok((name, manifest))
}

/// Whether a bucket's objects are a whole file, or a part of a larger
/// one (a store's backup) that goes on after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Whole,
    OfMore,
}

fn bad(reason: String) -> BucketError {
    BucketError::Car(reason)
}

/// The next block, which must be there.
fn next(reader: &mut CarReader<impl Read>, what: &str) -> Result<(Ref, Vec<u8>), BucketError> {
    reader
        .next_block()
        .map_err(car)?
        .ok_or_else(|| bad(format!("the file ends before {what}")))
}

/// The rest of an import into `bucket`: every object's blocks, then the
/// manifest.
fn apply(
    bucket: &Bucket,
    signed: &[u8],
    manifest: &Manifest,
    reader: &mut CarReader<impl Read>,
    part: Part,
) -> Result<BucketImport, BucketError> {
    let name = bucket.name();
    match bucket.replica_manifest()? {
        Some(held) => {
            let held_seq = Manifest::decode_stored(&held)?.seq;
            if held_seq > manifest.seq {
                return Err(bad(format!(
                    "its manifest (seq {}) is older than the one bucket {name} holds (seq {held_seq})",
                    manifest.seq
                )));
            }
            if held_seq == manifest.seq && held != signed {
                bucket.keep_evidence(signed)?;
                return Err(bad(format!(
                    "its manifest and the one bucket {name} holds are both seq {held_seq} and differ: the writer equivocated (kept as evidence)"
                )));
            }
        }
        // A bucket with objects of its own: a manifest would replace them.
        None if bucket.roots(crate::object::ROOT_PREFIX).next().is_some() => {
            return Err(bad(format!(
                "bucket {name} has objects of its own: import into a new bucket or a replica"
            )));
        }
        None => {}
    }
    let mut report = BucketImport {
        bucket: name.to_string(),
        ..BucketImport::default()
    };
    // Every object complete before any is named: the receivers keep their
    // blocks pinned until the manifest names them all.
    let mut received = Vec::new();
    for o in &manifest.objects {
        let (r, bytes) = next(reader, &format!("the closure of {:?}", o.key))?;
        if r != o.closure {
            return Err(bad(format!("block {r} is not the closure of {:?}", o.key)));
        }
        let closure = Closure::decode(&bytes)?;
        let mut rx = bucket.receiver();
        rx.block(r, bytes)?;
        for want in &closure.blocks {
            let (r, bytes) = next(reader, &format!("every block of {:?}", o.key))?;
            if r != *want {
                return Err(bad(format!(
                    "block {r} is not the next block of {:?}",
                    o.key
                )));
            }
            rx.block(r, bytes)?;
        }
        let written = rx.complete(o, &closure)?;
        received.push(rx);
        report.blocks += written;
        report.skipped += closure.blocks.len() as u64 + 1 - written;
        report.objects += 1;
    }
    if part == Part::Whole
        && let Some((r, _)) = reader.next_block().map_err(car)?
    {
        return Err(bad(format!("block {r} follows the last object")));
    }
    bucket.apply_manifest(signed, manifest)?;
    drop(received);
    Ok(report)
}
