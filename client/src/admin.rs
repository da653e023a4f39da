//! [`Admin`] over the daemon's HTTP API: its volumes, buckets, gc, and
//! export and import streamed both ways a chunk at a time.

use std::io::{Read, Write};
use std::path::Path;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use hydra_bucket::{BucketConfig, BucketName, CreateOptions, ErrorKind};
use hydra_eventlog::{
    Admin, BucketCollected, BucketShown, Export, ExportReport, Imported, VolumeInfo, VolumeVerified,
};
use serde::Deserialize;
use serde_json::json;

use crate::blobs::upload;
use crate::{Client, Error, json};

fn bucket_path(name: &BucketName) -> String {
    format!("/buckets/{name}")
}

/// An export's bytes, handed from the download to the scan that counts
/// them (a blocking thread).
struct Chunks {
    rx: tokio::sync::mpsc::Receiver<Bytes>,
    chunk: Bytes,
}

impl Read for Chunks {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while !self.chunk.has_remaining() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.chunk = chunk,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.chunk.remaining());
        self.chunk.copy_to_slice(&mut buf[..n]);
        Ok(n)
    }
}

fn writing(e: std::io::Error) -> Error {
    Error::refused(ErrorKind::Other, format!("writing the export: {e}"))
}

impl Admin for Client {
    type Error = Error;

    async fn volume(&self) -> Result<VolumeInfo, Error> {
        json(self.send(|h| h.get(self.at("/volume"))).await?, "volume").await
    }

    async fn verify(&self) -> Result<Vec<VolumeVerified>, Error> {
        let r = self.send(|h| h.post(self.at("/volume/verify"))).await?;
        json(r, "verify").await
    }

    async fn buckets(&self) -> Result<Vec<BucketConfig>, Error> {
        #[derive(Deserialize)]
        struct Entry {
            config: BucketConfig,
        }
        let all: Vec<Entry> =
            json(self.send(|h| h.get(self.at("/buckets"))).await?, "buckets").await?;
        Ok(all.into_iter().map(|e| e.config).collect())
    }

    async fn create_bucket(
        &self,
        name: &BucketName,
        options: CreateOptions<'_>,
    ) -> Result<BucketConfig, Error> {
        if options.key.is_some() {
            return Err(Error::invalid(
                "encrypted buckets are declared in the daemon's config (buckets: encrypt, key_file), which keeps their key",
            ));
        }
        let request = self
            .http
            .put(self.at(&bucket_path(name)))
            .json(&json!({ "zstd_level": options.zstd_level }));
        json(self.send_once(request).await?, "bucket").await
    }

    async fn bucket(&self, name: &BucketName) -> Result<BucketShown, Error> {
        let r = self.send(|h| h.get(self.at(&bucket_path(name)))).await?;
        json(r, "bucket").await
    }

    async fn update_bucket(
        &self,
        name: &BucketName,
        version: Option<u64>,
        zstd_level: Option<i32>,
    ) -> Result<BucketConfig, Error> {
        let request = self
            .http
            .patch(self.at(&bucket_path(name)))
            .json(&json!({ "version": version, "zstd_level": zstd_level }));
        json(self.send_once(request).await?, "bucket").await
    }

    async fn remove_bucket(&self, name: &BucketName) -> Result<u64, Error> {
        #[derive(Deserialize)]
        struct Removed {
            blocks: u64,
        }
        let request = self.http.delete(self.at(&bucket_path(name)));
        let removed: Removed = json(self.send_once(request).await?, "bucket").await?;
        Ok(removed.blocks)
    }

    async fn gc(&self, bucket: Option<&BucketName>) -> Result<Vec<BucketCollected>, Error> {
        let query: Vec<(&str, String)> = bucket
            .map(|b| ("bucket", b.to_string()))
            .into_iter()
            .collect();
        let r = self.send(|h| h.post(self.at("/gc")).query(&query)).await?;
        json(r, "gc").await
    }

    async fn export(
        &self,
        what: &Export,
        mut out: impl Write + Send,
    ) -> Result<ExportReport, Error> {
        let query: Vec<(&str, String)> = match what {
            Export::Streams(streams) => streams.iter().map(|s| ("stream", s.to_string())).collect(),
            Export::Bucket(name) => vec![("bucket", name.to_string())],
            Export::All => vec![("all", "true".to_owned())],
        };
        let answer = self
            .send(|h| h.get(self.at("/export")).query(&query))
            .await?;
        // The daemon streams the file before it knows what it holds: the
        // report is counted here from the bytes, as they are written.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let scan = tokio::task::spawn_blocking(move || {
            ExportReport::scan(Chunks {
                rx,
                chunk: Bytes::new(),
            })
        });
        let mut body = answer.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::transport(&self.base, e))?;
            out.write_all(&chunk).map_err(writing)?;
            // A scan that stopped has its error waiting below.
            let _ = tx.send(chunk).await;
        }
        out.flush().map_err(writing)?;
        drop(tx);
        scan.await
            .map_err(|e| Error::garbled("export", e))?
            .map_err(|e| Error::garbled("export", e))
    }

    async fn import(&self, file: &Path, trusted: &[[u8; 32]]) -> Result<Imported, Error> {
        let f = std::fs::File::open(file)
            .map_err(|e| Error::invalid(format!("opening {}: {e}", file.display())))?;
        let query: Vec<(&str, String)> = trusted
            .iter()
            .map(|w| ("writer", hydra_volume::hex::encode(w)))
            .collect();
        let request = self
            .http
            .post(self.at("/import"))
            .query(&query)
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(upload(std::io::BufReader::new(f)));
        json(self.send_once(request).await?, "import").await
    }
}
