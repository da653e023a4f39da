//! Server-Sent Events (catch-up then live) and persistent subscriptions.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use futures_util::Stream;
use hydra_eventlog::{PersistentSubscription, StreamId, Target};
use serde::{Deserialize, Serialize};
use tokio_stream::StreamExt;
use utoipa::{IntoParams, PartialSchema, ToSchema};

use super::app::{Shared, blocking};
use super::auth::Caller;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{JsonBody, Path, Query};
use super::lanes::Lane;
use crate::events::EventOut;

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscribeQuery {
    /// The first version to deliver (default: only events appended from
    /// now on).
    from: Option<u64>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SubscribeAllQuery {
    /// The first position to deliver (default: only events appended from
    /// now on).
    from: Option<u64>,
    /// Only events of these types (comma-separated).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
    /// Only streams whose id starts with this.
    prefix: Option<String>,
}

/// One Server-Sent Events message: `id:` the event's version (a stream)
/// or position (`$all`), `data:` the event as JSON.
pub struct SseMessage;

impl utoipa::PartialSchema for SseMessage {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::{ObjectBuilder, Type};
        let text = || ObjectBuilder::new().schema_type(Type::String);
        ObjectBuilder::new()
            .property(
                "data",
                text()
                    .content_media_type("application/json")
                    .content_schema(Some(utoipa::openapi::Ref::from_schema_name(
                        EventOut::name(),
                    ))),
            )
            .property("id", text().pattern(Some("^[0-9]+$")))
            .property("event", text())
            .required("data")
            .into()
    }
}

impl ToSchema for SseMessage {
    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        schemas.push((EventOut::name().into(), EventOut::schema()));
    }
}

/// Where to start: after `Last-Event-ID` (a reconnect) if given, else
/// `from`, else now.
fn start(headers: &HeaderMap, from: Option<u64>) -> ApiResult<Option<u64>> {
    match headers.get("last-event-id").map(|v| v.to_str()) {
        Some(Ok(id)) => id
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|v| v.checked_add(1))
            .map(Some)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Last-Event-ID {id:?} is not a number below {}",
                    u64::MAX
                ))
            }),
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
    lane: Option<Extension<Lane>>,
    target: Target,
    from: Option<u64>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    if let Some(Extension(lane)) = lane {
        lane.subscribe();
    }
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

/// Server-Sent Events of one stream: catch up from `?from=`, then live;
/// each message's `id:` is the event's version and its `data:` the event
/// (JSON), so `Last-Event-ID` resumes after a reconnect.
#[utoipa::path(get, path = "/subscribe/streams/{id}",
    params(("id" = StreamId, Path), SubscribeQuery,
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, maximum = 18446744073709551614_u64, description = "Resume after this version")),
    responses(
        (status = 200, description = "Events as they come, until the client leaves", content_type = "text/event-stream", body = SseMessage),
        (status = 400, description = "Bad input", body = ErrorBody),
    ))]
pub async fn stream(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    lane: Option<Extension<Lane>>,
    Path(id): Path<String>,
    Query(q): Query<SubscribeQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let stream = StreamId::new(id)?;
    let from = start(&headers, q.from)?;
    Ok(sse(app, caller, lane, Target::Stream(stream), from)
        .await?
        .into_response())
}

/// Server-Sent Events of `$all`, filtered: catch up from `?from=`, then
/// live; each message's `id:` is the event's position.
#[utoipa::path(get, path = "/subscribe/all",
    params(SubscribeAllQuery,
        ("Last-Event-ID" = Option<u64>, Header, nullable = false, maximum = 18446744073709551614_u64, description = "Resume after this position")),
    responses(
        (status = 200, description = "Events as they come, until the client leaves", content_type = "text/event-stream", body = SseMessage),
        (status = 400, description = "Bad input", body = ErrorBody),
    ))]
pub async fn all(
    State(app): State<Shared>,
    Extension(caller): Extension<Caller>,
    lane: Option<Extension<Lane>>,
    Query(q): Query<SubscribeAllQuery>,
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
    Ok(sse(app, caller, lane, target, from).await?.into_response())
}

/// Body of `PUT /subscriptions/{name}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSubscription {
    /// Follow one stream...
    #[schema(value_type = Option<StreamId>)]
    stream: Option<String>,
    /// ...or `$all`, filtered: streams whose id starts with this...
    #[serde(default)]
    prefix: Option<String>,
    /// ...and events of these types (any, when empty).
    #[serde(default)]
    types: Vec<String>,
    /// Start (version or position); absent: from now.
    from: Option<u64>,
    /// Most events delivered and not yet acknowledged.
    #[serde(default = "default_window")]
    #[schema(default = 100)]
    window: u32,
}

fn default_window() -> u32 {
    100
}

/// Creates a persistent subscription: the daemon keeps its place, and
/// its readers acknowledge what they handled.
#[utoipa::path(put, path = "/subscriptions/{name}", params(("name" = String, Path)),
    request_body = CreateSubscription,
    responses(
        (status = 201, description = "Created", body = PersistentSubscription),
        (status = 400, description = "Bad input", body = ErrorBody),
        (status = 409, description = "It exists", body = ErrorBody),
    ))]
pub async fn create(
    State(app): State<Shared>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<CreateSubscription>,
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

/// The persistent subscriptions.
#[utoipa::path(get, path = "/subscriptions",
    responses((status = 200, description = "The subscriptions", body = Vec<PersistentSubscription>)))]
pub async fn list(State(app): State<Shared>) -> ApiResult<Json<Vec<PersistentSubscription>>> {
    let a = app.clone();
    Ok(Json(
        blocking(&app, move || Ok(a.log.subscriptions()?)).await?,
    ))
}

/// One persistent subscription.
#[utoipa::path(get, path = "/subscriptions/{name}", params(("name" = String, Path)),
    responses(
        (status = 200, description = "The subscription", body = PersistentSubscription),
        (status = 404, description = "No such subscription", body = ErrorBody),
    ))]
pub async fn show(
    State(app): State<Shared>,
    Path(name): Path<String>,
) -> ApiResult<Json<PersistentSubscription>> {
    let a = app.clone();
    Ok(Json(
        blocking(&app, move || Ok(a.log.subscription(&name)?)).await?,
    ))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ReadQuery {
    /// Most events to answer (default 100).
    max: Option<usize>,
    /// How long to wait for a first event, in ms (default 0, at most half
    /// the request timeout).
    timeout_ms: Option<u64>,
}

/// The subscription's next events within its window, waiting up to
/// `timeout_ms` for the first.
#[utoipa::path(get, path = "/subscriptions/{name}/events", params(("name" = String, Path), ReadQuery),
    responses(
        (status = 200, description = "The events (none when the window is full or nothing came)", body = Vec<EventOut>),
        (status = 404, description = "No such subscription", body = ErrorBody),
    ))]
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
    Ok(Json(out).into_response())
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Ack {
    /// Version (stream) or position (`$all`) of the last event handled.
    position: u64,
}

/// How far a subscription is acknowledged.
#[derive(Serialize, ToSchema)]
pub struct Acked {
    acked: u64,
}

/// Acknowledges the subscription's events up to a version or position.
#[utoipa::path(post, path = "/subscriptions/{name}/ack", params(("name" = String, Path)),
    request_body = Ack,
    responses(
        (status = 200, description = "Acknowledged", body = Acked),
        (status = 400, description = "Beyond what was delivered", body = ErrorBody),
        (status = 404, description = "No such subscription", body = ErrorBody),
    ))]
pub async fn ack(
    State(app): State<Shared>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<Ack>,
) -> ApiResult<Json<Acked>> {
    let a = app.clone();
    blocking(&app, move || Ok(a.log.ack(&name, body.position)?)).await?;
    Ok(Json(Acked {
        acked: body.position,
    }))
}

/// Deletes a persistent subscription.
#[utoipa::path(delete, path = "/subscriptions/{name}", params(("name" = String, Path)),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such subscription", body = ErrorBody),
    ))]
pub async fn delete(State(app): State<Shared>, Path(name): Path<String>) -> ApiResult<Response> {
    let a = app.clone();
    blocking(&app, move || Ok(a.log.delete_subscription(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
