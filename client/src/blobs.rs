//! [`BlobStore`] over the daemon's HTTP API: blocks, and objects streamed
//! both ways a chunk at a time.

use std::io::{Read, Write};

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use hydra_block::Ref;
use hydra_bucket::{BlobStore, BucketName, ErrorKind, ObjectInfo};
use reqwest::Response;
use serde::Deserialize;

use crate::{Client, Error, json, path_segment};

/// Bytes of an upload read per chunk.
const CHUNK: usize = 256 << 10;

fn blocks_path(bucket: &BucketName) -> String {
    format!("/buckets/{bucket}/blocks")
}

fn block_path(bucket: &BucketName, r: &Ref) -> String {
    format!("/buckets/{bucket}/blocks/{r}")
}

/// An object's path: the key's segments encoded, its slashes kept.
fn object_path(bucket: &BucketName, key: &str) -> String {
    let key: Vec<String> = key.split('/').map(path_segment).collect();
    format!("/buckets/{bucket}/objects/{}", key.join("/"))
}

/// The object an answer's headers describe.
fn object_of(key: &str, r: &Response) -> Result<ObjectInfo, Error> {
    let root = r
        .headers()
        .get("object-root")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::garbled("object", "no Object-Root header"))?;
    // The header, not the body's length: a HEAD answer has no body.
    let size = r
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| Error::garbled("object", "no Content-Length"))?;
    Ok(ObjectInfo {
        key: key.to_owned(),
        root,
        size,
    })
}

/// A request body read from `data` on a blocking thread, a chunk at a
/// time, as it goes out.
pub(crate) fn upload(mut data: impl Read + Send + 'static) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<std::io::Result<Bytes>>(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut chunk = vec![0u8; CHUNK];
            let chunk = match data.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    chunk.truncate(n);
                    Ok(Bytes::from(chunk))
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
            let failed = chunk.is_err();
            if tx.blocking_send(chunk).is_err() || failed {
                return;
            }
        }
    });
    reqwest::Body::wrap_stream(stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|c| (c, rx))
    }))
}

impl Client {
    /// A HEAD request; refused, the same GET tells why (a HEAD answer
    /// has no body to say it in).
    async fn head(&self, path: &str) -> Result<Response, Error> {
        match self.send(|h| h.head(self.at(path))).await {
            Err(e) if e.status().is_some() => match self.send(|h| h.get(self.at(path))).await {
                Err(why) => Err(why),
                Ok(_) => Err(e),
            },
            answer => answer,
        }
    }
}

impl BlobStore for Client {
    type Error = Error;

    async fn put_block(&self, bucket: &BucketName, data: Vec<u8>, pin: bool) -> Result<Ref, Error> {
        #[derive(Deserialize)]
        struct Stored {
            reference: Ref,
        }
        let data = Bytes::from(data);
        let path = blocks_path(bucket);
        // A block is its ref: storing it again changes nothing.
        let r = self
            .send(|h| {
                h.put(self.at(&path))
                    .query(&[("pin", pin)])
                    .body(data.clone())
            })
            .await?;
        Ok(json::<Stored>(r, "block").await?.reference)
    }

    async fn get_block(&self, bucket: &BucketName, r: &Ref) -> Result<Vec<u8>, Error> {
        let path = block_path(bucket, r);
        let answer = self.send(|h| h.get(self.at(&path))).await?;
        let bytes = answer
            .bytes()
            .await
            .map_err(|e| Error::transport(&self.base, e))?;
        Ok(bytes.to_vec())
    }

    async fn has_block(&self, bucket: &BucketName, r: &Ref) -> Result<bool, Error> {
        match self.head(&block_path(bucket, r)).await {
            Ok(_) => Ok(true),
            // A missing bucket is an error; a missing block an answer.
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.list_blocks(bucket).await.map(|_| false)
            }
            Err(e) => Err(e),
        }
    }

    async fn list_blocks(&self, bucket: &BucketName) -> Result<Vec<(Ref, u64)>, Error> {
        #[derive(Deserialize)]
        struct Listed {
            reference: Ref,
            stored_bytes: u64,
        }
        let path = blocks_path(bucket);
        let listed: Vec<Listed> =
            json(self.send(|h| h.get(self.at(&path))).await?, "block list").await?;
        Ok(listed
            .into_iter()
            .map(|b| (b.reference, b.stored_bytes))
            .collect())
    }

    async fn delete_block(&self, bucket: &BucketName, r: &Ref) -> Result<bool, Error> {
        let path = block_path(bucket, r);
        match self.send_once(self.http.delete(self.at(&path))).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.list_blocks(bucket).await.map(|_| false)
            }
            Err(e) => Err(e),
        }
    }

    async fn put_object(
        &self,
        bucket: &BucketName,
        key: &str,
        data: impl Read + Send + 'static,
    ) -> Result<ObjectInfo, Error> {
        // Refusals come before the upload: the daemon answers them without
        // reading the body, which a large upload would see as a broken
        // pipe instead of the reason.
        if let Some(why) = hydra_eventlog::Admin::bucket(self, bucket)
            .await?
            .writes_refused
        {
            return Err(Error::refused(ErrorKind::Conflict, why));
        }
        let request = self
            .http
            .put(self.at(&object_path(bucket, key)))
            .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(upload(data));
        json(self.send_once(request).await?, "object").await
    }

    async fn get_object(
        &self,
        bucket: &BucketName,
        key: &str,
        mut out: impl Write + Send,
    ) -> Result<ObjectInfo, Error> {
        let path = object_path(bucket, key);
        let answer = self.send(|h| h.get(self.at(&path))).await?;
        let info = object_of(key, &answer)?;
        let mut body = answer.bytes_stream();
        let mut written = 0u64;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::transport(&self.base, e))?;
            out.write_all(&chunk).map_err(|e| {
                Error::refused(ErrorKind::Other, format!("writing object data: {e}"))
            })?;
            written += chunk.len() as u64;
        }
        out.flush()
            .map_err(|e| Error::refused(ErrorKind::Other, format!("writing object data: {e}")))?;
        if written != info.size {
            return Err(Error::garbled(
                "object",
                format!("{written} bytes of {} came", info.size),
            ));
        }
        Ok(info)
    }

    async fn object(&self, bucket: &BucketName, key: &str) -> Result<Option<ObjectInfo>, Error> {
        match self.head(&object_path(bucket, key)).await {
            Ok(answer) => object_of(key, &answer).map(Some),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.list_objects(bucket, key).await.map(|_| None)
            }
            Err(e) => Err(e),
        }
    }

    async fn list_objects(
        &self,
        bucket: &BucketName,
        prefix: &str,
    ) -> Result<Vec<ObjectInfo>, Error> {
        let path = format!("/buckets/{bucket}/objects");
        let r = self
            .send(|h| h.get(self.at(&path)).query(&[("prefix", prefix)]))
            .await?;
        json(r, "object list").await
    }

    async fn delete_object(&self, bucket: &BucketName, key: &str) -> Result<bool, Error> {
        let path = object_path(bucket, key);
        match self.send_once(self.http.delete(self.at(&path))).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                self.list_objects(bucket, key).await.map(|_| false)
            }
            Err(e) => Err(e),
        }
    }
}
