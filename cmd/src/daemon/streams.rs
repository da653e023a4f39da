//! Stream, `$all`, event, metadata, snapshot and proof routes.

use std::time::Instant;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hydra_bucket::BucketName;
use hydra_eventlog::{
    AllFilter, AppendResult, ConsistencyProof, Direction, ExpectedVersion, Head, InclusionProof,
    ReadFrom, RecordedEvent, SnapshotInfo, StreamId, StreamInfo, StreamMetadata, StreamWrite,
};
use serde::{Deserialize, Serialize};
use tokio_stream::wrappers::ReceiverStream;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use super::api::Binary;
use super::app::{Shared, blocking, committing};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonBody, Path, Query};
use crate::events::{EventOut, Events, event_json_exact, parse_events};

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

/// What an append or a delete expects of the stream, as a parameter:
/// `any`, `no_stream`, `exists` or the version of its last event.
pub struct Expected;

impl utoipa::PartialSchema for Expected {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        pattern("^(any|no_stream|no-stream|empty|exists|stream_exists|stream-exists|[0-9]{1,19})$")
    }
}

impl ToSchema for Expected {}

/// The ways a read runs, as a parameter.
pub struct ReadDirection;

impl utoipa::PartialSchema for ReadDirection {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        pattern("^(forwards|forward|backwards|backward)$")
    }
}

impl ToSchema for ReadDirection {}

fn pattern(p: &str) -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::Type::String)
        .pattern(Some(p))
        .into()
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AppendQuery {
    /// `any` (the default), `no_stream`, `exists` or the version the
    /// stream's last event must have; or the `Expected-Version` header.
    #[param(value_type = Option<Expected>, inline)]
    expected_version: Option<String>,
    /// The bucket of a new stream (an existing one must be in it).
    #[param(value_type = Option<BucketName>)]
    bucket: Option<String>,
}

/// Appends one event or an array of them, atomically. Retrying with the
/// same event ids returns the first result.
#[utoipa::path(post, path = "/streams/{id}",
    params(("id" = StreamId, Path), AppendQuery,
        ("Expected-Version" = inline(Option<Expected>), Header, nullable = false, description = "As ?expected_version=")),
    request_body(content = Events, content_type = "application/json"),
    responses(
        (status = 201, description = "Appended", body = AppendResult),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "The stream is not at the expected version, or lives in another bucket", body = ErrorBody),
        (status = 410, description = "The stream is tombstoned", body = ErrorBody),
    ))]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// The first version to read (inclusive); the first or last event
    /// when absent.
    from: Option<u64>,
    /// Most events to read.
    count: Option<u64>,
    /// `forwards` (the default) or `backwards`.
    #[param(value_type = Option<ReadDirection>, inline)]
    direction: Option<String>,
    /// Read the stream as it was at this many events.
    length: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadAllQuery {
    /// The first position to read (inclusive); the first or last event
    /// when absent.
    from: Option<u64>,
    /// Most events to read.
    count: Option<u64>,
    /// `forwards` (the default) or `backwards`.
    #[param(value_type = Option<ReadDirection>, inline)]
    direction: Option<String>,
    /// Only events of these types (comma-separated).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only streams whose id starts with this.
    prefix: Option<String>,
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

/// Reads a stream, as JSON or NDJSON (`Accept: application/x-ndjson`),
/// streamed as it is read.
#[utoipa::path(get, path = "/streams/{id}", params(("id" = StreamId, Path), ReadQuery),
    responses(
        (status = 200, description = "The events", content(
            (Vec<EventOut> = "application/json"),
            (EventOut = "application/x-ndjson"))),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such stream, or no such length", body = ErrorBody),
        (status = 410, description = "The stream is deleted", body = ErrorBody),
    ))]
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

/// Reads `$all`, every stream's events in one global order, as JSON or
/// NDJSON (`Accept: application/x-ndjson`).
#[utoipa::path(get, path = "/all", params(ReadAllQuery),
    responses(
        (status = 200, description = "The events", content(
            (Vec<EventOut> = "application/json"),
            (EventOut = "application/x-ndjson"))),
        (status = 400, description = "Bad input", body = ErrorBody),
    ))]
pub async fn read_all(
    State(app): State<Shared>,
    Query(q): Query<ReadAllQuery>,
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

/// One event, by its id.
#[utoipa::path(get, path = "/events/{event_id}", params(("event_id" = Uuid, Path)),
    responses(
        (status = 200, description = "The event", body = EventOut),
        (status = 400, description = "Not a UUID", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
    ))]
pub async fn get_event(State(app): State<Shared>, Path(id): Path<String>) -> ApiResult<Response> {
    let id: Uuid = id
        .parse()
        .map_err(|e| ApiError::bad_request(format!("event id {id:?}: {e}")))?;
    let a = app.clone();
    let e = blocking(&app, move || Ok(a.log.get_event(id)?)).await?;
    Ok(Json(EventOut::new(&e, false)).into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only streams whose id starts with this.
    prefix: Option<String>,
}

/// Lists streams with their version, bucket and deletion.
#[utoipa::path(get, path = "/streams", params(ListQuery),
    responses((status = 200, description = "The streams", body = Vec<StreamInfo>)))]
pub async fn list(
    State(app): State<Shared>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Vec<StreamInfo>>> {
    let a = app.clone();
    let all = blocking(&app, move || {
        Ok(a.log
            .list_streams(q.prefix.as_deref().unwrap_or(""))
            .collect::<Result<Vec<_>, _>>()?)
    })
    .await?;
    Ok(Json(all))
}

/// A stream's version.
#[derive(Serialize, ToSchema)]
pub struct StreamVersion {
    stream: StreamId,
    /// The version of its last event.
    version: u64,
}

/// The version of the stream's last event.
#[utoipa::path(get, path = "/streams/{id}/version", params(("id" = StreamId, Path)),
    responses(
        (status = 200, description = "The version", body = StreamVersion),
        (status = 404, description = "No such stream", body = ErrorBody),
    ))]
pub async fn version(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<StreamVersion>> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let s = stream.clone();
    match blocking(&app, move || Ok(a.log.stream_version(&s)?)).await? {
        Some(version) => Ok(Json(StreamVersion { stream, version })),
        None => Err(hydra_eventlog::Error::StreamNotFound(stream).into()),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeleteQuery {
    /// A tombstone: the stream can never be written again.
    hard: Option<bool>,
    /// As for an append.
    #[param(value_type = Option<Expected>, inline)]
    expected_version: Option<String>,
}

/// Deletes a stream: soft (a later append starts it again, after its
/// last version) or hard (`?hard=true`, a tombstone).
#[utoipa::path(delete, path = "/streams/{id}",
    params(("id" = StreamId, Path), DeleteQuery,
        ("Expected-Version" = inline(Option<Expected>), Header, nullable = false, description = "As ?expected_version=")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such stream", body = ErrorBody),
        (status = 409, description = "Not at the expected version", body = ErrorBody),
        (status = 410, description = "Already tombstoned", body = ErrorBody),
    ))]
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

/// The stream's metadata: retention (`max_count`, `max_age`,
/// `truncate_before`) and the application's own.
#[utoipa::path(get, path = "/streams/{id}/metadata", params(("id" = StreamId, Path)),
    responses(
        (status = 200, description = "The metadata", body = StreamMetadata),
        (status = 404, description = "No such stream", body = ErrorBody),
    ))]
pub async fn get_metadata(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<StreamMetadata>> {
    let stream = stream_id(id)?;
    let a = app.clone();
    Ok(Json(
        blocking(&app, move || Ok(a.log.metadata(&stream)?)).await?,
    ))
}

/// Sets the stream's metadata.
#[utoipa::path(put, path = "/streams/{id}/metadata", params(("id" = StreamId, Path)),
    request_body = StreamMetadata,
    responses(
        (status = 204, description = "Set"),
        (status = 400, description = "Bad metadata", body = ErrorBody),
        (status = 404, description = "No such stream", body = ErrorBody),
    ))]
pub async fn set_metadata(
    State(app): State<Shared>,
    Path(id): Path<String>,
    JsonBody(m): JsonBody<StreamMetadata>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    committing(move || Ok(a.log.set_metadata(&stream, m)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A saved snapshot.
#[derive(Serialize, ToSchema)]
pub struct SnapshotSaved {
    /// The version of the last event it folds in.
    version: u64,
    /// Its block in the snapshots bucket.
    reference: hydra_block::Ref,
}

/// Saves a snapshot of the stream at a version: the body is the
/// snapshot, its metadata (if any) base64 in the `Snapshot-Metadata`
/// header.
#[utoipa::path(put, path = "/streams/{id}/snapshots/{version}",
    params(("id" = StreamId, Path), ("version" = u64, Path),
        ("Snapshot-Metadata" = Option<String>, Header, nullable = false, format = Byte, description = "The snapshot's metadata, base64")),
    request_body(content = Option<Binary>, content_type = "application/octet-stream"),
    responses(
        (status = 201, description = "Saved", body = SnapshotSaved),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such stream or version", body = ErrorBody),
    ))]
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
        Json(SnapshotSaved {
            version,
            reference: r,
        }),
    )
        .into_response())
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SnapshotQuery {
    /// The latest snapshot at or before this version (default: the latest).
    at: Option<u64>,
}

/// The latest snapshot: the body is the snapshot, its version in the
/// `Snapshot-Version` header, its metadata base64 in `Snapshot-Metadata`
/// (when it has any).
#[utoipa::path(get, path = "/streams/{id}/snapshot", params(("id" = StreamId, Path), SnapshotQuery),
    responses(
        (status = 200, description = "The snapshot", content_type = "application/octet-stream", body = Binary,
            headers(
                ("Snapshot-Version" = u64, description = "The version of the last event it folds in"),
                ("Snapshot-Timestamp" = u64, description = "When it was saved, ms since the Unix epoch"),
                ("Snapshot-Metadata" = String, description = "Its metadata, base64, when it has any"))),
        (status = 404, description = "No snapshot", body = ErrorBody),
    ))]
pub async fn load_snapshot(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<SnapshotQuery>,
) -> ApiResult<Response> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let s = blocking(&app, move || Ok(a.log.load_snapshot(&stream, q.at)?)).await?;
    let mut r = Response::builder()
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header("snapshot-version", s.version)
        .header("snapshot-timestamp", s.timestamp);
    if !s.metadata.is_empty() {
        r = r.header(super::SNAPSHOT_METADATA, STANDARD.encode(&s.metadata));
    }
    Ok(r.body(Body::from(s.data)).expect("a valid response"))
}

/// The stream's snapshots.
#[utoipa::path(get, path = "/streams/{id}/snapshots", params(("id" = StreamId, Path)),
    responses(
        (status = 200, description = "The snapshots", body = Vec<SnapshotInfo>),
        (status = 404, description = "No such stream", body = ErrorBody),
    ))]
pub async fn list_snapshots(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Vec<SnapshotInfo>>> {
    let stream = stream_id(id)?;
    let a = app.clone();
    Ok(Json(
        blocking(&app, move || Ok(a.log.list_snapshots(&stream)?)).await?,
    ))
}

/// Deletes one snapshot.
#[utoipa::path(delete, path = "/streams/{id}/snapshots/{version}",
    params(("id" = StreamId, Path), ("version" = u64, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such snapshot", body = ErrorBody),
    ))]
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

/// How many things a request removed.
#[derive(Serialize, ToSchema)]
pub struct Deleted {
    deleted: u64,
}

/// Deletes every snapshot of the stream.
#[utoipa::path(delete, path = "/streams/{id}/snapshots", params(("id" = StreamId, Path)),
    responses(
        (status = 200, description = "How many were deleted", body = Deleted),
        (status = 404, description = "No such stream", body = ErrorBody),
    ))]
pub async fn delete_snapshots(
    State(app): State<Shared>,
    Path(id): Path<String>,
) -> ApiResult<Json<Deleted>> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let deleted = committing(move || Ok(a.log.delete_snapshots(&stream)?)).await? as u64;
    Ok(Json(Deleted { deleted }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HeadQuery {
    /// The head the stream had at this many events (default: now).
    length: Option<u64>,
}

/// The stream's signed head: its length and Merkle root, signed by this
/// node's key.
#[utoipa::path(get, path = "/streams/{id}/head", params(("id" = StreamId, Path), HeadQuery),
    responses(
        (status = 200, description = "The head", body = Head),
        (status = 404, description = "No such stream, or no such length", body = ErrorBody),
    ))]
pub async fn head(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<HeadQuery>,
) -> ApiResult<Json<Head>> {
    let stream = stream_id(id)?;
    let a = app.clone();
    let h = blocking(&app, move || {
        Ok(match q.length {
            Some(l) => a.log.head_at(&stream, l)?,
            None => a.log.head(&stream)?,
        })
    })
    .await?;
    Ok(Json(h))
}

/// An event with the proof that it is in the stream the head signs.
#[derive(Serialize, ToSchema)]
pub struct EventProof {
    head: Head,
    proof: InclusionProof,
    /// The event, payloads as base64 (the proof covers exact bytes).
    #[schema(value_type = EventOut)]
    event: serde_json::Value,
}

/// An event, the head and the inclusion proof linking them; payloads as
/// base64 (exact bytes). `hydra stream verify` checks it.
#[utoipa::path(get, path = "/streams/{id}/proof/{version}",
    params(("id" = StreamId, Path), ("version" = u64, Path)),
    responses(
        (status = 200, description = "The proof", body = EventProof),
        (status = 404, description = "No such stream or version", body = ErrorBody),
    ))]
pub async fn proof(
    State(app): State<Shared>,
    Path((id, version)): Path<(String, u64)>,
) -> ApiResult<Json<EventProof>> {
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
        Ok(EventProof {
            head,
            proof,
            event: event_json_exact(&event),
        })
    })
    .await?;
    Ok(Json(v))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConsistencyQuery {
    /// The length of the older head.
    from_length: u64,
}

/// Two heads of a stream and the proof that the older is a prefix of the
/// newer.
#[derive(Serialize, ToSchema)]
pub struct HeadConsistency {
    old_head: Head,
    head: Head,
    consistency: ConsistencyProof,
}

/// Proof that the stream's head at `from_length` is a prefix of its
/// head now.
#[utoipa::path(get, path = "/streams/{id}/consistency", params(("id" = StreamId, Path), ConsistencyQuery),
    responses(
        (status = 200, description = "The proof", body = HeadConsistency),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 404, description = "No such stream, or no such length", body = ErrorBody),
    ))]
pub async fn consistency(
    State(app): State<Shared>,
    Path(id): Path<String>,
    Query(q): Query<ConsistencyQuery>,
) -> ApiResult<Json<HeadConsistency>> {
    let stream = stream_id(id)?;
    let old = q.from_length;
    let a = app.clone();
    let v = blocking(&app, move || {
        // A length the stream never had is not found, as for a head.
        let old_head = a.log.head_at(&stream, old)?;
        let head = a.log.head(&stream)?;
        let proof = a.log.prove_consistency(&stream, old, head.length)?;
        Ok(HeadConsistency {
            old_head,
            head,
            consistency: proof,
        })
    })
    .await?;
    Ok(Json(v))
}
