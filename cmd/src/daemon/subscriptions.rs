//! Server-Sent Events (catch-up then live) and persistent subscriptions.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::Stream;
use hydra_eventlog::{StreamId, Target};
use serde::Deserialize;
use serde_json::json;
use tokio_stream::StreamExt;

use super::app::{Shared, blocking};
use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use crate::events::EventOut;

#[derive(Deserialize)]
pub struct SubscribeQuery {
    from: Option<u64>,
    #[serde(rename = "type")]
    event_type: Option<String>,
    prefix: Option<String>,
}

/// Where to start: after `Last-Event-ID` (a reconnect) if given, else
/// `from`, else now.
fn start(headers: &HeaderMap, from: Option<u64>) -> ApiResult<Option<u64>> {
    match headers.get("last-event-id").map(|v| v.to_str()) {
        Some(Ok(id)) => id
            .trim()
            .parse::<u64>()
            .map(|v| Some(v + 1))
            .map_err(|_| ApiError::bad_request(format!("Last-Event-ID {id:?} is not a number"))),
        Some(Err(_)) => Err(ApiError::bad_request("Last-Event-ID is not text")),
        None => Ok(from),
    }
}

/// Follows the live feed (see `live.rs`) as the connection's body, each
/// event an SSE message whose `id:` is its version (stream) or position
/// (`$all`), so that `Last-Event-ID` resumes exactly after a reconnect. A
/// client that stops reading stops its follower, which falls behind the
/// feed and reads from the log when the client resumes.
async fn sse(
    app: Shared,
    caller: Caller,
    target: Target,
    from: Option<u64>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let by_version = matches!(target, Target::Stream(_));
    let follower = app.live.follow(&app, target, from).await?;
    let stream = super::live::stream(&app, follower, &caller, move |e| {
        let e = e.ok()?;
        let id = if by_version {
            e.event.version
        } else {
            e.event.position
        };
        Some(Event::default().id(id.to_string()).data(e.json()))
    });
    let stream = stream.map(Ok::<_, Infallible>);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// `GET /subscribe/streams/{id}`.
pub async fn stream(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<SubscribeQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let stream = StreamId::new(id)?;
    let from = start(&headers, q.from)?;
    Ok(sse(app, caller, Target::Stream(stream), from)
        .await?
        .into_response())
}

/// `GET /subscribe/all`.
pub async fn all(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<SubscribeQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let from = start(&headers, q.from)?;
    let target = Target::All {
        stream_prefix: q.prefix,
        event_types: q
            .event_type
            .map(|t| t.split(',').map(str::to_owned).collect())
            .unwrap_or_default(),
    };
    Ok(sse(app, caller, target, from).await?.into_response())
}

/// Body of `PUT /subscriptions/{name}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// Follow one stream...
    stream: Option<String>,
    /// ...or `$all`, filtered.
    #[serde(default)]
    prefix: Option<String>,
    #[serde(default)]
    types: Vec<String>,
    /// Start (version or position); absent: from now.
    from: Option<u64>,
    #[serde(default = "default_window")]
    window: u32,
}

fn default_window() -> u32 {
    100
}

/// `PUT /subscriptions/{name}`.
pub async fn create(
    State(app): State<Shared>,
    Path(name): Path<String>,
    Json(body): Json<CreateSubscription>,
) -> ApiResult<Response> {
    let target = match body.stream {
        Some(s) => Target::Stream(StreamId::new(s)?),
        None => Target::All {
            stream_prefix: body.prefix,
            event_types: body.types,
        },
    };
    let a = app.clone();
    let sub = blocking(&app, move || {
        Ok(a.log
            .create_subscription(&name, target, body.from, body.window)?)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(sub)).into_response())
}

/// `GET /subscriptions`.
pub async fn list(State(app): State<Shared>) -> ApiResult<Response> {
    let a = app.clone();
    Ok(Json(blocking(&app, move || Ok(a.log.subscriptions()?)).await?).into_response())
}

/// `GET /subscriptions/{name}`.
pub async fn show(State(app): State<Shared>, Path(name): Path<String>) -> ApiResult<Response> {
    let a = app.clone();
    Ok(Json(blocking(&app, move || Ok(a.log.subscription(&name)?)).await?).into_response())
}

#[derive(Deserialize)]
pub struct ReadQuery {
    max: Option<usize>,
    timeout_ms: Option<u64>,
}

/// `GET /subscriptions/{name}/events`: up to `max` events within the
/// window, waiting up to `timeout_ms` for the first.
pub async fn read(
    State(app): State<Shared>,
    Path(name): Path<String>,
    Query(q): Query<ReadQuery>,
) -> ApiResult<Response> {
    let max = q.max.unwrap_or(100);
    let wait = Duration::from_millis(
        q.timeout_ms
            .unwrap_or(0)
            .min(app.timeout.as_millis() as u64 / 2),
    );
    let events = super::live::read_subscription(&app, &name, max, wait).await?;
    let out: Vec<_> = events.iter().map(|e| EventOut::new(e, false)).collect();
    Ok(Json(serde_json::to_value(out).expect("serialises")).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Version (stream) or position (`$all`) of the last event handled.
    position: u64,
}

/// `POST /subscriptions/{name}/ack`.
pub async fn ack(
    State(app): State<Shared>,
    Path(name): Path<String>,
    Json(body): Json<Ack>,
) -> ApiResult<Response> {
    let a = app.clone();
    blocking(&app, move || Ok(a.log.ack(&name, body.position)?)).await?;
    Ok(Json(json!({"acked": body.position})).into_response())
}

/// `DELETE /subscriptions/{name}`.
pub async fn delete(State(app): State<Shared>, Path(name): Path<String>) -> ApiResult<Response> {
    let a = app.clone();
    blocking(&app, move || Ok(a.log.delete_subscription(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
