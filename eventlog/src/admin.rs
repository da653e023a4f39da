//! [`Admin`]: what an operator does to a store (its volume, buckets,
//! garbage collection, export and import), whether the store is in this
//! process ([`EventLog`], with the buckets of its volume) or behind a
//! `hydra daemon` (the `hydra-client` crate). The `hydra` CLI's volume,
//! bucket, gc, export and import commands are one body over it for both.
//!
//! As with [`EventStore`](crate::EventStore), the methods are async
//! because a remote store is; [`EventLog`] does its work when the future
//! is first polled, on the calling thread. A daemon may hold several
//! volumes: its answers cover all of them, where [`EventLog`]'s cover the
//! one it lives on.

use std::future::Future;
use std::io::{Read, Write};
use std::path::Path;

use hydra_block::{CarReader, Codec};
use hydra_bucket::{
    BucketConfig, BucketImport, BucketName, BucketUpdate, CreateOptions, GcReport, Manifest,
    StoreError, VerifyReport,
};
use serde::{Deserialize, Serialize};

use crate::{Error, EventLog, EventsReport, ExportReport, ImportReport, StreamId};

/// A store's volume: what it runs on and holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VolumeInfo {
    /// `redb`, `lmdb` or `memory`.
    pub backend: String,
    /// This node's libp2p peer id (its signing key).
    pub peer_id: String,
    pub buckets: u64,
    pub blocks: u64,
    pub stored_bytes: u64,
}

/// What a verify found in one volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct VolumeVerified {
    /// The volume's id (a daemon's config names its volumes).
    pub volume: String,
    /// Every block re-hashed.
    pub report: VerifyReport,
    /// Every stored event checked (the event log's volume only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events: Option<EventsReport>,
}

/// A bucket's config and size.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BucketShown {
    pub config: BucketConfig,
    pub blocks: u64,
    pub stored_bytes: u64,
    /// Why writes are refused (a daemon's replica bucket), when they are.
    #[serde(default)]
    pub writes_refused: Option<String>,
}

/// What a collection did in one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BucketCollected {
    pub bucket: String,
    pub report: GcReport,
}

/// What an export holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// These streams, each as its stored blocks under its writer's head.
    Streams(Vec<StreamId>),
    /// A bucket's signed manifest, objects and blocks.
    Bucket(BucketName),
    /// Everything: every bucket with objects and every stream (a backup).
    All,
}

/// What an import did: streams (and a backup's buckets), or one bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(untagged)]
pub enum Imported {
    Bucket(BucketImport),
    Streams(ImportReport),
}

/// A store's volume, buckets, garbage collection, export and import. The
/// semantics are [`EventLog`]'s and [`Store`](hydra_bucket::Store)'s
/// methods of the same names.
pub trait Admin: Send + Sync {
    type Error: StoreError;

    fn volume(&self) -> impl Future<Output = Result<VolumeInfo, Self::Error>> + Send;

    /// Re-hashes every block and checks every stored event; what is
    /// corrupt, per volume.
    fn verify(&self) -> impl Future<Output = Result<Vec<VolumeVerified>, Self::Error>> + Send;

    fn buckets(&self) -> impl Future<Output = Result<Vec<BucketConfig>, Self::Error>> + Send;

    /// Creates a bucket. A daemon keeps the keys of its encrypted buckets
    /// in its config, so a client refuses `options.key`.
    fn create_bucket(
        &self,
        name: &BucketName,
        options: CreateOptions<'_>,
    ) -> impl Future<Output = Result<BucketConfig, Self::Error>> + Send;

    fn bucket(
        &self,
        name: &BucketName,
    ) -> impl Future<Output = Result<BucketShown, Self::Error>> + Send;

    /// A new version of a bucket's config (`version`, default the next
    /// one; `zstd_level`, a check of what the client expects).
    fn update_bucket(
        &self,
        name: &BucketName,
        version: Option<u64>,
        zstd_level: Option<i32>,
    ) -> impl Future<Output = Result<BucketConfig, Self::Error>> + Send;

    /// Removes a bucket, its streams and every block; how many blocks.
    fn remove_bucket(
        &self,
        name: &BucketName,
    ) -> impl Future<Output = Result<u64, Self::Error>> + Send;

    /// Collects `bucket`, or every bucket the store can read (encrypted
    /// ones without their key are passed over).
    fn gc(
        &self,
        bucket: Option<&BucketName>,
    ) -> impl Future<Output = Result<Vec<BucketCollected>, Self::Error>> + Send;

    /// Writes `what` to `out` as a CARv1 file.
    fn export(
        &self,
        what: &Export,
        out: impl Write + Send,
    ) -> impl Future<Output = Result<ExportReport, Self::Error>> + Send;

    /// Verifies the export at `file` completely, then applies it; with
    /// `trusted` non-empty, only heads and manifests signed by one of
    /// those keys are accepted.
    fn import(
        &self,
        file: &Path,
        trusted: &[[u8; 32]],
    ) -> impl Future<Output = Result<Imported, Self::Error>> + Send;
}

/// The bucket an export file holds, or `None` for streams or a whole
/// store: a bucket's manifest is a raw block, the file's one root and its
/// first block (its name is read here only to choose where to import; the
/// import checks everything).
pub fn bucket_of(file: &Path) -> Result<Option<String>, Error> {
    let f = std::fs::File::open(file)
        .map_err(|e| Error::BadImport(format!("{}: {e}", file.display())))?;
    let bad = |e: hydra_block::CarError| Error::BadImport(e.to_string());
    let mut car = CarReader::new(std::io::BufReader::new(f)).map_err(bad)?;
    if !matches!(car.roots(), [r] if r.codec() == Codec::Raw) {
        return Ok(None);
    }
    let (_, signed) = car
        .next_block()
        .map_err(bad)?
        .ok_or_else(|| Error::BadImport("it holds no block".into()))?;
    Ok(Some(Manifest::decode_stored(&signed)?.bucket))
}

impl ExportReport {
    /// What the export `input` holds, counted from its bytes as the
    /// export that wrote it counted what it wrote (every block, each
    /// bucket manifest's objects, each stream's events under its head),
    /// and checked block by block against the CIDs: a client that receives
    /// an export over the network reports it as an embedded export does.
    pub fn scan(input: impl Read) -> Result<ExportReport, Error> {
        let bad = |reason: String| Error::Corrupt {
            what: "export file".into(),
            reason,
        };
        let mut car = CarReader::new(input).map_err(|e| bad(e.to_string()))?;
        let roots: std::collections::HashSet<_> = car.roots().iter().copied().collect();
        let mut report = ExportReport::default();
        while let Some((r, bytes)) = car.next_block().map_err(|e| bad(e.to_string()))? {
            report.blocks += 1;
            if !roots.contains(&r) {
                continue;
            }
            if r.codec() == Codec::Raw {
                report.buckets += 1;
                report.objects += Manifest::decode_stored(&bytes)?.objects.len() as u64;
            } else if let Some(length) = crate::storage::stored_length(&bytes) {
                report.streams += 1;
                report.events += length;
            }
        }
        Ok(report)
    }
}

impl EventLog {
    /// The volume the log lives on: what [`Admin::volume`] answers (a
    /// daemon's too, for its first volume).
    pub fn volume_info(&self) -> Result<VolumeInfo, Error> {
        let store = self.store();
        let stats = store.block_stats()?;
        Ok(VolumeInfo {
            backend: store.volume().backend().to_string(),
            peer_id: self.identity().peer_id().to_string(),
            buckets: store.buckets()?.len() as u64,
            blocks: stats.blocks,
            stored_bytes: stats.stored_bytes,
        })
    }

    /// Writes `bucket` (of any store) as a CARv1 file under a manifest
    /// this log's identity signs now (a replica's: its writer's).
    pub fn export_bucket(
        &self,
        bucket: &hydra_bucket::Bucket,
        out: impl Write,
    ) -> Result<ExportReport, Error> {
        let r = bucket.export(self.identity(), crate::writer::now_ms(), out)?;
        Ok(ExportReport {
            buckets: 1,
            objects: r.objects,
            blocks: r.blocks,
            ..ExportReport::default()
        })
    }
}

/// The event log's volume, whose buckets hold its streams and objects,
/// with the keys the log was unlocked with.
impl Admin for EventLog {
    type Error = Error;

    async fn volume(&self) -> Result<VolumeInfo, Error> {
        self.volume_info()
    }

    async fn verify(&self) -> Result<Vec<VolumeVerified>, Error> {
        Ok(vec![VolumeVerified {
            // As a daemon names its first volume, where the log lives.
            volume: "main".into(),
            report: self.store().verify(|_| {})?,
            events: Some(EventLog::verify(self, |_| {})?),
        }])
    }

    async fn buckets(&self) -> Result<Vec<BucketConfig>, Error> {
        Ok(self.store().buckets()?)
    }

    async fn create_bucket(
        &self,
        name: &BucketName,
        options: CreateOptions<'_>,
    ) -> Result<BucketConfig, Error> {
        Ok(self.store().create_bucket(name, options)?)
    }

    async fn bucket(&self, name: &BucketName) -> Result<BucketShown, Error> {
        let bucket = self.store().bucket(name, None)?;
        let stats = bucket.stats()?;
        Ok(BucketShown {
            config: bucket.config().clone(),
            blocks: stats.blocks,
            stored_bytes: stats.stored_bytes,
            writes_refused: None,
        })
    }

    async fn update_bucket(
        &self,
        name: &BucketName,
        version: Option<u64>,
        zstd_level: Option<i32>,
    ) -> Result<BucketConfig, Error> {
        let current = self.store().bucket_config(name)?.version;
        Ok(self.store().update_bucket(
            name,
            BucketUpdate {
                version: version.unwrap_or(current + 1),
                zstd_level,
                policies: None,
            },
        )?)
    }

    async fn remove_bucket(&self, name: &BucketName) -> Result<u64, Error> {
        EventLog::remove_bucket(self, name)
    }

    async fn gc(&self, bucket: Option<&BucketName>) -> Result<Vec<BucketCollected>, Error> {
        let names = match bucket {
            Some(b) => vec![b.clone()],
            None => self.store().buckets()?.into_iter().map(|c| c.id).collect(),
        };
        let mut out = Vec::new();
        for name in names {
            let b = self.store().bucket(&name, None)?;
            // A bucket named is collected as it can be (a replica's
            // blind, through its objects' closures); among all, those
            // this store cannot read are passed over.
            if bucket.is_none() && !b.is_readable() {
                continue;
            }
            out.push(BucketCollected {
                report: b.gc()?,
                bucket: name.to_string(),
            });
        }
        Ok(out)
    }

    async fn export(&self, what: &Export, out: impl Write + Send) -> Result<ExportReport, Error> {
        match what {
            Export::Streams(streams) => EventLog::export(self, streams, out),
            Export::All => self.export_all(out),
            Export::Bucket(name) => self.export_bucket(&self.store().bucket(name, None)?, out),
        }
    }

    async fn import(&self, file: &Path, trusted: &[[u8; 32]]) -> Result<Imported, Error> {
        if bucket_of(file)?.is_none() {
            return Ok(Imported::Streams(EventLog::import(self, file, trusted)?));
        }
        let f = std::fs::File::open(file)
            .map_err(|e| Error::BadImport(format!("{}: {e}", file.display())))?;
        // A key the log was offered reads the bucket once it is here.
        Ok(Imported::Bucket(self.store().import(
            std::io::BufReader::new(f),
            trusted,
            None,
        )?))
    }
}
