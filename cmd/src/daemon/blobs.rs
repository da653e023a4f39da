//! Bucket, block and object routes. Objects stream both ways with bounded
//! memory: the body feeds the chunker through a small channel.

use std::io::Read;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hydra_block::{Codec, Ref};
use hydra_bucket::{BucketConfig, BucketName, ObjectInfo};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};

use hydra_eventlog::BucketShown;

use super::api::Binary;
use super::app::{Shared, blocking, committing};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{Path, Query};

fn parse_ref(s: &str) -> ApiResult<Ref> {
    s.parse()
        .map_err(|e: hydra_block::RefParseError| ApiError::bad_request(e.to_string()))
}

/// A bucket and the volume that holds it.
#[derive(Serialize, ToSchema)]
pub struct BucketEntry {
    volume: String,
    config: BucketConfig,
}

/// Every bucket of every volume.
#[utoipa::path(get, path = "/buckets",
    responses((status = 200, description = "The buckets", body = Vec<BucketEntry>)))]
pub async fn list(State(app): State<Shared>) -> ApiResult<Json<Vec<BucketEntry>>> {
    let a = app.clone();
    let all = blocking(&app, move || {
        let mut out = Vec::new();
        for (volume, store) in &a.stores {
            for config in store.buckets()? {
                out.push(BucketEntry {
                    volume: volume.clone(),
                    config,
                });
            }
        }
        Ok(out)
    })
    .await?;
    Ok(Json(all))
}

/// A bucket's config and size, and why writes are refused, if they are
/// (a replica): a client can ask before it starts an upload the daemon
/// would refuse before reading it.
#[utoipa::path(get, path = "/buckets/{b}", params(("b" = BucketName, Path)),
    responses(
        (status = 200, description = "The bucket", body = BucketShown),
        (status = 404, description = "No such bucket", body = ErrorBody),
    ))]
pub async fn show(
    State(app): State<Shared>,
    Path(b): Path<String>,
) -> ApiResult<Json<BucketShown>> {
    let a = app.clone();
    let v = blocking(&app, move || {
        let bucket = a.bucket(&b)?;
        let stats = bucket.stats()?;
        Ok(BucketShown {
            config: bucket.config().clone(),
            blocks: stats.blocks,
            stored_bytes: stats.stored_bytes,
            writes_refused: a.p2p.refuse_writes(&b).err().map(|e| e.message),
        })
    })
    .await?;
    Ok(Json(v))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PutBlockQuery {
    /// Keep the block through gc (a root named `pin/<ref>`).
    pin: Option<bool>,
}

/// A block's ref.
#[derive(Serialize, ToSchema)]
pub struct BlockStored {
    reference: Ref,
}

/// Stores one raw block (the body); answers its ref.
#[utoipa::path(put, path = "/buckets/{b}/blocks", params(("b" = BucketName, Path), PutBlockQuery),
    request_body(content = Option<Binary>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = BlockStored),
        (status = 400, description = "Too large", body = ErrorBody),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 409, description = "A replica's bucket", body = ErrorBody),
    ))]
pub async fn put_block(
    State(app): State<Shared>,
    Path(b): Path<String>,
    Query(q): Query<PutBlockQuery>,
    body: Bytes,
) -> ApiResult<Response> {
    let a = app.clone();
    let n = body.len() as u64;
    let r = committing(move || {
        let bucket = a.writable_bucket(&b)?;
        let r = bucket.put(Codec::Raw, &body)?;
        if q.pin.unwrap_or(false) {
            bucket.set_root(&format!("pin/{r}"), r)?;
        }
        Ok(r)
    })
    .await?;
    app.metrics.bytes_in.inc_by(n);
    Ok((StatusCode::CREATED, Json(BlockStored { reference: r })).into_response())
}

/// A block and its size as stored (compressed, encrypted).
#[derive(Serialize, ToSchema)]
pub struct BlockEntry {
    reference: Ref,
    stored_bytes: u64,
}

/// Every block of a bucket with its stored size.
#[utoipa::path(get, path = "/buckets/{b}/blocks", params(("b" = BucketName, Path)),
    responses(
        (status = 200, description = "The blocks", body = Vec<BlockEntry>),
        (status = 404, description = "No such bucket", body = ErrorBody),
    ))]
pub async fn list_blocks(
    State(app): State<Shared>,
    Path(b): Path<String>,
) -> ApiResult<Json<Vec<BlockEntry>>> {
    let a = app.clone();
    let all = blocking(&app, move || {
        let bucket = a.bucket(&b)?;
        Ok(bucket
            .blocks()
            .map(|e| {
                e.map(|(reference, stored_bytes)| BlockEntry {
                    reference,
                    stored_bytes,
                })
            })
            .collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    Ok(Json(all))
}

/// A block's bytes, verified against its ref.
#[utoipa::path(get, path = "/buckets/{b}/blocks/{ref}",
    params(("b" = BucketName, Path), ("ref" = Ref, Path)),
    responses(
        (status = 200, description = "The block", content_type = "application/octet-stream", body = Binary),
        (status = 400, description = "Not a ref", body = ErrorBody),
        (status = 404, description = "No such bucket or block", body = ErrorBody),
    ))]
pub async fn get_block(
    State(app): State<Shared>,
    Path((b, r)): Path<(String, String)>,
) -> ApiResult<Response> {
    let r = parse_ref(&r)?;
    let a = app.clone();
    let data = blocking(&app, move || Ok(a.bucket(&b)?.get(&r)?)).await?;
    app.metrics.bytes_out.inc_by(data.len() as u64);
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}

/// Deletes a block (and its pin).
#[utoipa::path(delete, path = "/buckets/{b}/blocks/{ref}",
    params(("b" = BucketName, Path), ("ref" = Ref, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "Not a ref", body = ErrorBody),
        (status = 404, description = "No such bucket or block", body = ErrorBody),
        (status = 409, description = "A replica's bucket", body = ErrorBody),
    ))]
pub async fn delete_block(
    State(app): State<Shared>,
    Path((b, r)): Path<(String, String)>,
) -> ApiResult<Response> {
    let r = parse_ref(&r)?;
    let a = app.clone();
    let bb = b.clone();
    let existed = committing(move || {
        let bucket = a.writable_bucket(&bb)?;
        bucket.remove_root(&format!("pin/{r}"))?;
        Ok(bucket.delete(&r)?)
    })
    .await?;
    if existed {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "block {r} not found in bucket {b}"
        )))
    }
}

/// A `Read` over body chunks arriving on a channel.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    current: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

/// Stores an object: the body, streamed, of any size.
#[utoipa::path(put, path = "/buckets/{b}/objects/{key}",
    params(("b" = BucketName, Path), ("key" = String, Path, min_length = 1, description = "1 to 256 bytes; may hold slashes")),
    request_body(content = Option<Binary>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Stored", body = ObjectInfo),
        (status = 400, description = "Bad key", body = ErrorBody),
        (status = 404, description = "No such bucket", body = ErrorBody),
        (status = 409, description = "A replica's bucket", body = ErrorBody),
    ))]
pub async fn put_object(
    State(app): State<Shared>,
    Path((b, key)): Path<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let bucket = {
        let a = app.clone();
        blocking(&app, move || a.writable_bucket(&b)).await?
    };
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let reader = ChannelReader {
        rx,
        current: Bytes::new(),
    };
    let store = tokio::task::spawn_blocking(move || bucket.put_object(&key, reader, |_| {}));
    let mut stream = body.into_data_stream();
    let mut bytes = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| std::io::Error::other(e.to_string()));
        if let Ok(c) = &chunk {
            bytes += c.len() as u64;
        }
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            break;
        }
    }
    drop(tx);
    let info = store
        .await
        .map_err(|e| ApiError::internal(format!("upload worker failed: {e}")))??;
    app.metrics.bytes_in.inc_by(bytes);
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// A `Write` that sends what it gets down a channel, a chunk at a time:
/// how a blocking producer streams a response body.
pub(super) struct ChannelWriter {
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
    buf: Vec<u8>,
}

impl std::io::Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= 256 << 10 {
            self.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.buf.is_empty() {
            let chunk = Bytes::from(std::mem::take(&mut self.buf));
            self.tx.blocking_send(Ok(chunk)).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away")
            })?;
        }
        Ok(())
    }
}

/// A response body that `produce` writes on a blocking thread, a chunk at
/// a time (memory holds a few chunks, whatever the size). An error after
/// the first bytes can only cut the body short: the client sees a
/// truncated transfer, not a status.
pub(super) fn streamed(
    produce: impl FnOnce(&mut ChannelWriter) -> Result<(), String> + Send + 'static,
) -> Body {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        let mut w = ChannelWriter {
            tx: tx.clone(),
            buf: Vec::with_capacity(256 << 10),
        };
        let done =
            produce(&mut w).and_then(|()| std::io::Write::flush(&mut w).map_err(|e| e.to_string()));
        if let Err(e) = done {
            let _ = tx.blocking_send(Err(std::io::Error::other(e)));
        }
    });
    Body::from_stream(ReceiverStream::new(rx))
}

/// An object's bytes, streamed.
#[utoipa::path(get, path = "/buckets/{b}/objects/{key}",
    params(("b" = BucketName, Path), ("key" = String, Path, min_length = 1)),
    responses(
        (status = 200, description = "The object", content_type = "application/octet-stream", body = Binary,
            headers(("Object-Root" = Ref, description = "The ref of the object's root block"))),
        (status = 404, description = "No such bucket or object", body = ErrorBody),
    ))]
pub async fn get_object(
    State(app): State<Shared>,
    Path((b, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let a = app.clone();
    let k = key.clone();
    let (bucket, info) = blocking(&app, move || {
        let bucket = a.bucket(&b)?;
        let info = bucket
            .object(&k)?
            .ok_or_else(|| hydra_bucket::BucketError::ObjectNotFound {
                bucket: bucket.name().clone(),
                key: k.clone(),
            })?;
        Ok((bucket, info))
    })
    .await?;
    let size = info.size;
    app.metrics.bytes_out.inc_by(size);
    let body = streamed(move |w| {
        bucket
            .get_object(&key, w, |_| {})
            .map(|_| ())
            .map_err(|e| e.to_string())
    });
    Ok(Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::CONTENT_LENGTH, size)
        .header("object-root", info.root.to_string())
        .body(body)
        .expect("a valid response"))
}

/// Removes an object (its blocks go at the next gc).
#[utoipa::path(delete, path = "/buckets/{b}/objects/{key}",
    params(("b" = BucketName, Path), ("key" = String, Path, min_length = 1)),
    responses(
        (status = 204, description = "Removed"),
        (status = 404, description = "No such bucket or object", body = ErrorBody),
        (status = 409, description = "A replica's bucket", body = ErrorBody),
    ))]
pub async fn delete_object(
    State(app): State<Shared>,
    Path((b, key)): Path<(String, String)>,
) -> ApiResult<Response> {
    let a = app.clone();
    let (bb, k) = (b.clone(), key.clone());
    if committing(move || Ok(a.writable_bucket(&bb)?.remove_object(&k)?)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "object {key:?} not found in bucket {b}"
        )))
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only keys that start with this.
    prefix: Option<String>,
}

/// A bucket's objects.
#[utoipa::path(get, path = "/buckets/{b}/objects", params(("b" = BucketName, Path), ListQuery),
    responses(
        (status = 200, description = "The objects", body = Vec<ObjectInfo>),
        (status = 404, description = "No such bucket", body = ErrorBody),
    ))]
pub async fn list_objects(
    State(app): State<Shared>,
    Path(b): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<ObjectInfo>>> {
    let a = app.clone();
    let all = blocking(&app, move || {
        let bucket = a.bucket(&b)?;
        Ok(bucket
            .objects(q.prefix.as_deref().unwrap_or(""))
            .collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    Ok(Json(all))
}
