//! Stream, `$all`, event, metadata, snapshot and proof routes.

use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hydra_bucket::BucketName;
use hydra_eventlog::{
    AllFilter, Direction, ExpectedVersion, ReadFrom, RecordedEvent, StreamId, StreamMetadata,
    StreamWrite,
};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::app::{Shared, blocking, committing};
use super::error::{ApiError, ApiResult};
use crate::events::{EventOut, event_json_exact, parse_events};

fn stream_id(id: String) -> ApiResult<StreamId> {
    Ok(StreamId::new(id)?)
}

fn expected(q: Option<&str>, headers: &HeaderMap) -> ApiResult<ExpectedVersion> {
    let h = headers
        .get("expected-version")
        .and_then(|v| v.to_str().ok());
    match q.or(h) {
        None => Ok(ExpectedVersion::Any),
        Some(s) => s.parse().map_err(ApiError::bad_request),
    }
}

#[derive(Deserialize)]
pub struct AppendQuery {
    expected_version: Option<String>,
    /// The bucket of a new stream (an existing one must be in it).
    bucket: Option<String>,
}

/// `POST /streams/{id}`: one event or an array; 201 with the result.
pub async fn append(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<AppendQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let expected = expected(q.expected_version.as_deref(), &headers)?;
    let bucket = q
        .bucket
        .map(|b| b.parse::<BucketName>())
        .transpose()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let events = parse_events(&body).map_err(ApiError::bad_request)?;
    let n = events.len() as u64;
    let started = Instant::now();
    let a = app.clone();
    let write = StreamWrite {
        bucket,
        ..StreamWrite::new(stream, expected, events)
    };
    let r = committing(move || Ok(a.log.write(write)?)).await?;
    app.metrics
        .append_seconds
        .observe(started.elapsed().as_secs_f64());
    app.metrics.appends.inc();
    app.metrics.events_appended.inc_by(n);
    app.metrics.bytes_in.inc_by(body.len() as u64);
    Ok((StatusCode::CREATED, Json(r)).into_response())
}

#[derive(Deserialize)]
pub struct ReadQuery {
    from: Option<u64>,
    count: Option<u64>,
    direction: Option<String>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    prefix: Option<String>,
    /// Read the stream as it was at this many events.
    length: Option<u64>,
}

fn direction(d: Option<&str>) -> ApiResult<Direction> {
    match d {
        None | Some("forwards") | Some("forward") => Ok(Direction::Forward),
        Some("backwards") | Some("backward") => Ok(Direction::Backward),
        Some(other) => Err(ApiError::bad_request(format!(
            "direction {other:?}: use forwards or backwards"
        ))),
    }
}

fn wants_ndjson(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/x-ndjson"))
}

/// Streams events as a JSON array or NDJSON, a few KiB at a time, never
/// holding the whole read in memory.
pub fn stream_events(
    app: Shared,
    events: impl Iterator<Item = Result<RecordedEvent, hydra_eventlog::Error>> + Send + 'static,
    ndjson: bool,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::task::spawn_blocking(move || {
        let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
        if !ndjson {
            buf.push(b'[');
        }
        let mut first = true;
        for e in events {
            let e = match e {
                Ok(e) => e,
                Err(e) => {
                    // Headers are sent: abort the body so the client sees
                    // a broken response, never a silently short one.
                    let _ = tx.blocking_send(Err(std::io::Error::other(e.to_string())));
                    return;
                }
            };
            if !ndjson && !first {
                buf.push(b',');
            }
            first = false;
            serde_json::to_writer(&mut buf, &EventOut::new(&e, false)).expect("events serialise");
            if ndjson {
                buf.push(b'\n');
            }
            app.metrics.events_read.inc();
            app.metrics.bytes_out.inc_by(e.data.len() as u64);
            if buf.len() >= 32 << 10
                && tx
                    .blocking_send(Ok(Bytes::from(std::mem::take(&mut buf))))
                    .is_err()
            {
                return;
            }
        }
        if !ndjson {
            buf.push(b']');
        }
        let _ = tx.blocking_send(Ok(Bytes::from(buf)));
    });
    let content_type = if ndjson {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    Response::builder()
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from_stream(ReceiverStream::new(rx)))
        .expect("a valid response")
}

/// `GET /streams/{id}`.
pub async fn read(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let dir = direction(q.direction.as_deref())?;
    let from = q.from.map_or(ReadFrom::Edge, ReadFrom::Version);
    let count = q.count.unwrap_or(u64::MAX);
    let a = app.clone();
    let length = q.length;
    let events = blocking(&app, move || {
        Ok(match length {
            Some(l) => a.log.read_at(&stream, l, from, count, dir)?,
            None => a.log.read(&stream, from, count, dir)?,
        })
    })
    .await?;
    Ok(stream_events(app, events, wants_ndjson(&headers)))
}

/// `GET /all`.
pub async fn read_all(
    State(app): State<Shared>,
    Query(q): Query<ReadQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let dir = direction(q.direction.as_deref())?;
    let filter = AllFilter {
        stream_prefix: q.prefix,
        event_types: q
            .event_type
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    let events = app
        .log
        .read_all(q.from, q.count.unwrap_or(u64::MAX), dir, filter);
    Ok(stream_events(app, events, wants_ndjson(&headers)))
}

/// `GET /events/{event_id}`.
pub async fn get_event(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let id: Uuid = id
        .parse()
        .map_err(|e| ApiError::bad_request(format!("event id {id:?}: {e}")))?;
    let a = app.clone();
    let e = blocking(&app, move || Ok(a.log.get_event(id)?)).await?;
    Ok(Json(serde_json::to_value(EventOut::new(&e, false)).expect("serialises")).into_response())
}

#[derive(Deserialize)]
pub struct ListQuery {
    prefix: Option<String>,
}

/// `GET /streams`.
pub async fn list(State(app): State<Shared>, Query(q): Query<ListQuery>) -> ApiResult<Response> {
    let a = app.clone();
    let all = blocking(&app, move || {
        Ok(a.log
            .list_streams(q.prefix.as_deref().unwrap_or(""))
            .collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    Ok(Json(all).into_response())
}

/// `GET /streams/{id}/version`.
pub async fn version(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let s = stream.clone();
    match blocking(&app, move || Ok(a.log.stream_version(&s)?)).await? {
        Some(v) => Ok(Json(json!({"stream": stream.as_str(), "version": v})).into_response()),
        None => Err(hydra_eventlog::Error::StreamNotFound(stream).into()),
    }
}

#[derive(Deserialize)]
pub struct DeleteQuery {
    hard: Option<bool>,
    expected_version: Option<String>,
}

/// `DELETE /streams/{id}`.
pub async fn delete(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<DeleteQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let expected = expected(q.expected_version.as_deref(), &headers)?;
    let hard = q.hard.unwrap_or(false);
    let a = app.clone();
    committing(move || Ok(a.log.delete(&stream, expected, hard)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `GET /streams/{id}/metadata`.
pub async fn get_metadata(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let m = blocking(&app, move || Ok(a.log.metadata(&stream)?)).await?;
    Ok(Json(m).into_response())
}

/// `PUT /streams/{id}/metadata`.
pub async fn set_metadata(
    State(app): State<Shared>,
    Path(id): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let m: StreamMetadata = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("bad metadata: {e}")))?;
    let a = app.clone();
    committing(move || Ok(a.log.set_metadata(&stream, m)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `PUT /streams/{id}/snapshots/{version}`: the body is the snapshot, its
/// metadata (if any) base64 in the `Snapshot-Metadata` header.
pub async fn save_snapshot(
    State(app): State<Shared>,
    Path((id, version)): Path<(String, u64)>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let metadata = match headers.get(super::SNAPSHOT_METADATA) {
        Some(v) => STANDARD.decode(v.as_bytes()).map_err(|e| {
            ApiError::bad_request(format!("{} is not base64: {e}", super::SNAPSHOT_METADATA))
        })?,
        None => Vec::new(),
    };
    let a = app.clone();
    let r = committing(move || {
        Ok(a.log
            .save_snapshot(&stream, version, body.to_vec(), metadata)?)
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"version": version, "reference": r})),
    )
        .into_response())
}

#[derive(Deserialize)]
pub struct SnapshotQuery {
    at: Option<u64>,
}

/// `GET /streams/{id}/snapshot`: the latest at or before `at`; the body
/// is the snapshot, the version in the `Snapshot-Version` header, its
/// metadata base64 in `Snapshot-Metadata` (when it has any).
pub async fn load_snapshot(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let s = blocking(&app, move || Ok(a.log.load_snapshot(&stream, q.at)?)).await?;
    let mut r = Response::builder()
        .header("snapshot-version", s.version)
        .header("snapshot-timestamp", s.timestamp);
    if !s.metadata.is_empty() {
        r = r.header(super::SNAPSHOT_METADATA, STANDARD.encode(&s.metadata));
    }
    Ok(r.body(Body::from(s.data)).expect("a valid response"))
}

/// `GET /streams/{id}/snapshots`.
pub async fn list_snapshots(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let all = blocking(&app, move || Ok(a.log.list_snapshots(&stream)?)).await?;
    Ok(Json(all).into_response())
}

/// `DELETE /streams/{id}/snapshots/{version}`.
pub async fn delete_snapshot(
    State(app): State<Shared>,
    Path((id, version)): Path<(String, u64)>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let s = stream.clone();
    if committing(move || Ok(a.log.delete_snapshot(&s, version)?)).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ApiError::not_found(format!(
            "no snapshot of stream {stream} at version {version}"
        )))
    }
}

/// `DELETE /streams/{id}/snapshots`.
pub async fn delete_snapshots(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let n = committing(move || Ok(a.log.delete_snapshots(&stream)?)).await?;
    Ok(Json(json!({"deleted": n})).into_response())
}

#[derive(Deserialize)]
pub struct HeadQuery {
    length: Option<u64>,
    from_length: Option<u64>,
}

/// `GET /streams/{id}/head`: the signed head (at `length`, if given).
pub async fn head(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HeadQuery>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let h = blocking(&app, move || {
        Ok(match q.length {
            Some(l) => a.log.head_at(&stream, l)?,
            None => a.log.head(&stream)?,
        })
    })
    .await?;
    Ok(Json(h).into_response())
}

/// `GET /streams/{id}/proof/{version}`: head, inclusion proof and the
/// event (payloads as base64, exact bytes).
pub async fn proof(
    State(app): State<Shared>,
    Path((id, version)): Path<(String, u64)>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let v = blocking(&app, move || {
        let (head, proof) = a.log.prove(&stream, version)?;
        let event = a
            .log
            .read(&stream, ReadFrom::Version(version), 1, Direction::Forward)?
            .next()
            .transpose()?
            .ok_or(hydra_eventlog::Error::NoSuchVersion {
                stream: stream.clone(),
                version,
                length: head.length,
            })?;
        Ok(json!({"head": head, "proof": proof, "event": event_json_exact(&event)}))
    })
    .await?;
    Ok(Json(v).into_response())
}

/// `GET /streams/{id}/consistency?from_length=N`: proof that the head of
/// length N is a prefix of the current head.
pub async fn consistency(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HeadQuery>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let old = q
        .from_length
        .ok_or_else(|| ApiError::bad_request("from_length is required"))?;
    let a = app.clone();
    let v = blocking(&app, move || {
        let head = a.log.head(&stream)?;
        let proof = a.log.prove_consistency(&stream, old, head.length)?;
        let old_head = a.log.head_at(&stream, old)?;
        Ok(json!({"old_head": old_head, "head": head, "consistency": proof}))
    })
    .await?;
    Ok(Json(v).into_response())
}
