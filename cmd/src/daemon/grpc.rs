//! The gRPC API (`hydra.v1.EventStore`, tonic) with server reflection:
//! thin translations into event-log calls, one status mapping.

use std::time::Duration;

use axum::serve::ListenerExt;
use futures_util::Stream;
use hydra_eventlog::{
    AllFilter, Direction, Error as LogError, ExpectedVersion, NewEvent, ReadFrom, RecordedEvent,
    StreamId, StreamWrite, Target,
};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::app::Shared;
use super::auth::{Caller, Denied};
use crate::access::Need;

pub mod pb {
    tonic::include_proto!("hydra.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("hydra_descriptor");
}

use pb::event_store_server::{EventStore, EventStoreServer};

/// Every call's encoder and decoder buffers. tonic's default starts each
/// at 8 KiB and lets a response stream gather 32 KiB before it yields: a
/// subscription holds its encoder for its whole life: 80 MB of heap for
/// 10,000 of them (heaptrack, under the load bench), a sixth of the
/// daemon's. Events and requests are small; a large one grows its buffer
/// for as long as it needs.
fn buffers() -> tonic::codec::BufferSettings {
    tonic::codec::BufferSettings::new(1 << 10, 8 << 10)
}

/// The protobuf codec of the generated code (`build.rs` names it), with
/// [`buffers`].
pub struct Codec<T, U>(std::marker::PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(std::marker::PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = tonic_prost::ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::new(buffers())
    }

    fn decoder(&mut self) -> Self::Decoder {
        tonic_prost::ProstDecoder::new(buffers())
    }
}

/// The one error mapping for gRPC.
fn status(e: LogError) -> Status {
    match &e {
        LogError::WrongExpectedVersion { actual, .. } => {
            let mut s = Status::failed_precondition(e.to_string());
            let v = actual.map_or_else(|| "none".to_owned(), |v| v.to_string());
            if let Ok(v) = v.parse() {
                s.metadata_mut().insert("actual-version", v);
            }
            s
        }
        LogError::StreamNotFound(_)
        | LogError::EventNotFound(_)
        | LogError::NoSuchPosition(_)
        | LogError::NoSuchVersion { .. }
        | LogError::SubscriptionNotFound(_)
        | LogError::SnapshotNotFound { .. } => Status::not_found(e.to_string()),
        LogError::StreamDeleted(_) | LogError::Scavenged { .. } => {
            Status::failed_precondition(e.to_string())
        }
        LogError::SubscriptionExists(_) => Status::already_exists(e.to_string()),
        LogError::Replicated { .. }
        | LogError::NotAReplica { .. }
        | LogError::OtherWriter { .. }
        | LogError::Inconsistent { .. }
        | LogError::OtherBucket { .. }
        | LogError::OtherPartition { .. } => Status::failed_precondition(e.to_string()),
        LogError::Bucket(b) => match **b {
            hydra_bucket::BucketError::NotFound(_) => Status::not_found(e.to_string()),
            hydra_bucket::BucketError::KeyRequired(_) | hydra_bucket::BucketError::WrongKey(_) => {
                Status::permission_denied(e.to_string())
            }
            _ => Status::internal(e.to_string()),
        },
        LogError::ImportGap { .. } | LogError::BadHeadSignature(_) => {
            Status::invalid_argument(e.to_string())
        }
        LogError::BadStreamId(_)
        | LogError::BadEventType(_)
        | LogError::DuplicateInAppend { .. }
        | LogError::DuplicateEventId { .. }
        | LogError::EmptyAppend
        | LogError::DuplicateStreamInAppend { .. }
        | LogError::BadHeadOrder { .. }
        | LogError::HeadMismatch { .. }
        | LogError::AckBeyondDelivered { .. } => Status::invalid_argument(e.to_string()),
        LogError::Closed => Status::unavailable(e.to_string()),
        _ => Status::internal(e.to_string()),
    }
}

fn stream_write(r: pb::AppendRequest) -> Result<StreamWrite, Status> {
    Ok(StreamWrite {
        stream: stream_id(&r.stream)?,
        expected: expected(r.expected),
        events: new_events(r.events)?,
        bucket: r
            .bucket
            .map(|b| b.parse())
            .transpose()
            .map_err(|e: hydra_bucket::BucketError| Status::invalid_argument(e.to_string()))?,
        partition_key: None,
    })
}

fn stream_id(s: &str) -> Result<StreamId, Status> {
    StreamId::new(s).map_err(|e| Status::invalid_argument(e.to_string()))
}

fn expected(e: Option<pb::ExpectedVersion>) -> ExpectedVersion {
    use pb::expected_version::Kind;
    match e.and_then(|e| e.kind) {
        None | Some(Kind::Any(_)) => ExpectedVersion::Any,
        Some(Kind::NoStream(_)) => ExpectedVersion::NoStream,
        Some(Kind::StreamExists(_)) => ExpectedVersion::StreamExists,
        Some(Kind::Exact(v)) => ExpectedVersion::Exact(v),
    }
}

fn new_events(events: Vec<pb::NewEvent>) -> Result<Vec<NewEvent>, Status> {
    events
        .into_iter()
        .map(|e| {
            Ok(NewEvent {
                id: if e.id.is_empty() {
                    None
                } else {
                    Some(e.id.parse().map_err(|_| {
                        Status::invalid_argument(format!("event id {:?} is not a UUID", e.id))
                    })?)
                },
                event_type: e.r#type,
                data: e.data,
                metadata: e.metadata,
                timestamp: e.timestamp,
            })
        })
        .collect()
}

fn event(e: RecordedEvent) -> pb::Event {
    pb::Event {
        id: e.id.to_string(),
        stream: e.stream.to_string(),
        version: e.version,
        position: e.position,
        r#type: e.event_type,
        data: e.data,
        metadata: e.metadata,
        timestamp: e.timestamp,
    }
}

fn result(r: hydra_eventlog::AppendResult) -> pb::AppendResponse {
    pb::AppendResponse {
        first_version: r.first_version,
        version: r.version,
        first_position: r.first_position,
        position: r.position,
    }
}

fn head(h: hydra_eventlog::Head) -> pb::Head {
    pb::Head {
        stream: h.stream.to_string(),
        length: h.length,
        root: h.root.to_vec(),
        position: h.position,
        signer: h.signer.to_vec(),
        signature: h.signature.to_vec(),
    }
}

fn direction(d: i32) -> Direction {
    if d == pb::Direction::Backwards as i32 {
        Direction::Backward
    } else {
        Direction::Forward
    }
}

pub struct Service {
    app: Shared,
}

impl Service {
    /// The caller of a request whose `authorization: Bearer` metadata
    /// allows `need` (see `auth.rs`).
    fn admit<T>(&self, req: &Request<T>, need: &Need) -> Result<Caller, Status> {
        let secret = req
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(super::auth::bearer);
        self.app.gate.admit(secret, need).map_err(denied)
    }
}

/// The gRPC status of a refusal.
fn denied(d: Denied) -> Status {
    match d {
        Denied::Missing => {
            Status::unauthenticated("a token is required: send authorization: Bearer TOKEN")
        }
        Denied::Unknown => Status::unauthenticated(super::auth::UNKNOWN),
        Denied::Forbidden(m) => Status::permission_denied(m),
    }
}

/// Runs storage work on a blocking thread.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Status> + Send + 'static,
) -> Result<T, Status> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Status::internal(format!("worker failed: {e}")))?
}

type EventStream = ReceiverStream<Result<pb::Event, Status>>;

/// Streams an iterator of events (reads) or a subscription (live).
fn stream_of(
    app: Shared,
    mut next: impl FnMut() -> Option<Result<RecordedEvent, LogError>> + Send + 'static,
) -> EventStream {
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::task::spawn_blocking(move || {
        while !tx.is_closed() && !app.shutting_down() {
            let Some(item) = next() else { break };
            let item = item.map(event).map_err(status);
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                break;
            }
            app.metrics.events_read.inc();
        }
    });
    ReceiverStream::new(rx)
}

/// A live subscription's events.
type LiveStream = std::pin::Pin<Box<dyn Stream<Item = Result<pb::Event, Status>> + Send>>;

/// Streams a subscription's follower (see `live.rs`) until the client or
/// the daemon goes away.
fn follow(app: Shared, follower: super::live::Follower, caller: &Caller) -> LiveStream {
    Box::pin(super::live::stream(&app, follower, caller, |e| {
        Some(e.map(|e| event(e.event.clone())).map_err(status))
    }))
}

#[tonic::async_trait]
impl EventStore for Service {
    async fn append(
        &self,
        req: Request<pb::AppendRequest>,
    ) -> Result<Response<pb::AppendResponse>, Status> {
        self.admit(&req, &Need::Write(req.get_ref().stream.clone()))?;
        let write = stream_write(req.into_inner())?;
        let n = write.events.len() as u64;
        let app = self.app.clone();
        let res = blocking(move || app.log.write(write).map_err(status)).await?;
        self.app.metrics.appends.inc();
        self.app.metrics.events_appended.inc_by(n);
        Ok(Response::new(result(res)))
    }

    async fn append_multi(
        &self,
        req: Request<pb::AppendMultiRequest>,
    ) -> Result<Response<pb::AppendMultiResponse>, Status> {
        let caller = self.admit(&req, &Need::Token)?;
        for w in &req.get_ref().streams {
            caller
                .check(&Need::Write(w.stream.clone()))
                .map_err(denied)?;
        }
        let writes = req
            .into_inner()
            .streams
            .into_iter()
            .map(stream_write)
            .collect::<Result<Vec<_>, Status>>()?;
        let app = self.app.clone();
        let rs = blocking(move || app.log.append_multi(writes).map_err(status)).await?;
        Ok(Response::new(pb::AppendMultiResponse {
            results: rs.into_iter().map(result).collect(),
        }))
    }

    type ReadStreamStream = EventStream;

    async fn read_stream(
        &self,
        req: Request<pb::ReadStreamRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.admit(&req, &Need::Read(req.get_ref().stream.clone()))?;
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let app = self.app.clone();
        let from = r.from.map_or(ReadFrom::Edge, ReadFrom::Version);
        let count = r.count.unwrap_or(u64::MAX);
        let dir = direction(r.direction);
        let mut events =
            blocking(move || app.log.read(&stream, from, count, dir).map_err(status)).await?;
        Ok(Response::new(stream_of(self.app.clone(), move || {
            events.next()
        })))
    }

    type ReadAllStream = EventStream;

    async fn read_all(
        &self,
        req: Request<pb::ReadAllRequest>,
    ) -> Result<Response<EventStream>, Status> {
        self.admit(&req, &Need::Read(req.get_ref().stream_prefix.clone()))?;
        let r = req.into_inner();
        let filter = AllFilter {
            stream_prefix: (!r.stream_prefix.is_empty()).then_some(r.stream_prefix),
            event_types: r.types,
        };
        let mut events = self.app.log.read_all(
            r.from,
            r.count.unwrap_or(u64::MAX),
            direction(r.direction),
            filter,
        );
        Ok(Response::new(stream_of(self.app.clone(), move || {
            events.next()
        })))
    }

    async fn get_event(
        &self,
        req: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::Event>, Status> {
        self.admit(&req, &Need::read_all())?;
        let id = req.into_inner().id;
        let id = id
            .parse()
            .map_err(|_| Status::invalid_argument(format!("event id {id:?} is not a UUID")))?;
        let app = self.app.clone();
        let e = blocking(move || app.log.get_event(id).map_err(status)).await?;
        Ok(Response::new(event(e)))
    }

    async fn stream_version(
        &self,
        req: Request<pb::StreamVersionRequest>,
    ) -> Result<Response<pb::StreamVersionResponse>, Status> {
        self.admit(&req, &Need::Read(req.get_ref().stream.clone()))?;
        let stream = stream_id(&req.into_inner().stream)?;
        let app = self.app.clone();
        let version = blocking(move || app.log.stream_version(&stream).map_err(status)).await?;
        Ok(Response::new(pb::StreamVersionResponse { version }))
    }

    async fn delete_stream(
        &self,
        req: Request<pb::DeleteStreamRequest>,
    ) -> Result<Response<pb::DeleteStreamResponse>, Status> {
        self.admit(&req, &Need::Delete(req.get_ref().stream.clone()))?;
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let exp = expected(r.expected);
        let app = self.app.clone();
        blocking(move || app.log.delete(&stream, exp, r.hard).map_err(status)).await?;
        Ok(Response::new(pb::DeleteStreamResponse {}))
    }

    type SubscribeToStreamStream = LiveStream;

    async fn subscribe_to_stream(
        &self,
        req: Request<pb::SubscribeToStreamRequest>,
    ) -> Result<Response<LiveStream>, Status> {
        let caller = self.admit(&req, &Need::Read(req.get_ref().stream.clone()))?;
        super::lanes::Lane::subscribe_from(req.extensions());
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let follower = self
            .app
            .live
            .follow(&self.app, Target::Stream(stream), r.from)
            .await
            .map_err(status)?;
        Ok(Response::new(follow(self.app.clone(), follower, &caller)))
    }

    type SubscribeToAllStream = LiveStream;

    async fn subscribe_to_all(
        &self,
        req: Request<pb::SubscribeToAllRequest>,
    ) -> Result<Response<LiveStream>, Status> {
        let caller = self.admit(&req, &Need::Read(req.get_ref().stream_prefix.clone()))?;
        super::lanes::Lane::subscribe_from(req.extensions());
        let r = req.into_inner();
        let target = Target::All {
            stream_prefix: (!r.stream_prefix.is_empty()).then_some(r.stream_prefix),
            event_types: r.types,
        };
        let follower = self
            .app
            .live
            .follow(&self.app, target, r.from)
            .await
            .map_err(status)?;
        Ok(Response::new(follow(self.app.clone(), follower, &caller)))
    }

    async fn create_subscription(
        &self,
        req: Request<pb::CreateSubscriptionRequest>,
    ) -> Result<Response<pb::PersistentSubscription>, Status> {
        self.admit(&req, &Need::read_all())?;
        let r = req.into_inner();
        let target = if r.stream.is_empty() {
            Target::All {
                stream_prefix: (!r.stream_prefix.is_empty()).then_some(r.stream_prefix),
                event_types: r.types,
            }
        } else {
            Target::Stream(stream_id(&r.stream)?)
        };
        let app = self.app.clone();
        let window = if r.window == 0 { 100 } else { r.window };
        let s = blocking(move || {
            app.log
                .create_subscription(&r.name, target, r.from, window)
                .map_err(status)
        })
        .await?;
        Ok(Response::new(pb::PersistentSubscription {
            name: s.name,
            acked: s.acked,
            start: s.start,
            window: s.window,
        }))
    }

    async fn read_subscription(
        &self,
        req: Request<pb::ReadSubscriptionRequest>,
    ) -> Result<Response<pb::ReadSubscriptionResponse>, Status> {
        self.admit(&req, &Need::read_all())?;
        let r = req.into_inner();
        let max = if r.max == 0 { 100 } else { r.max as usize };
        let wait = Duration::from_millis(r.timeout_ms.min(10_000));
        let events = super::live::read_subscription(&self.app, &r.name, max, wait)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ReadSubscriptionResponse {
            events: events.into_iter().map(event).collect(),
        }))
    }

    async fn ack(&self, req: Request<pb::AckRequest>) -> Result<Response<pb::AckResponse>, Status> {
        self.admit(&req, &Need::read_all())?;
        let r = req.into_inner();
        let app = self.app.clone();
        blocking(move || app.log.ack(&r.name, r.position).map_err(status)).await?;
        Ok(Response::new(pb::AckResponse {}))
    }

    async fn delete_subscription(
        &self,
        req: Request<pb::DeleteSubscriptionRequest>,
    ) -> Result<Response<pb::DeleteSubscriptionResponse>, Status> {
        self.admit(&req, &Need::read_all())?;
        let name = req.into_inner().name;
        let app = self.app.clone();
        blocking(move || app.log.delete_subscription(&name).map_err(status)).await?;
        Ok(Response::new(pb::DeleteSubscriptionResponse {}))
    }

    async fn save_snapshot(
        &self,
        req: Request<pb::SaveSnapshotRequest>,
    ) -> Result<Response<pb::SaveSnapshotResponse>, Status> {
        self.admit(&req, &Need::Write(req.get_ref().stream.clone()))?;
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let app = self.app.clone();
        let reference = blocking(move || {
            app.log
                .save_snapshot(&stream, r.version, r.data, r.metadata)
                .map_err(status)
        })
        .await?;
        Ok(Response::new(pb::SaveSnapshotResponse {
            reference: reference.to_string(),
        }))
    }

    async fn load_snapshot(
        &self,
        req: Request<pb::LoadSnapshotRequest>,
    ) -> Result<Response<pb::Snapshot>, Status> {
        self.admit(&req, &Need::Read(req.get_ref().stream.clone()))?;
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let app = self.app.clone();
        let s = blocking(move || app.log.load_snapshot(&stream, r.at).map_err(status)).await?;
        Ok(Response::new(pb::Snapshot {
            stream: s.stream.to_string(),
            version: s.version,
            data: s.data,
            metadata: s.metadata,
            timestamp: s.timestamp,
        }))
    }

    async fn list_snapshots(
        &self,
        req: Request<pb::ListSnapshotsRequest>,
    ) -> Result<Response<pb::ListSnapshotsResponse>, Status> {
        self.admit(&req, &Need::Read(req.get_ref().stream.clone()))?;
        let stream = stream_id(&req.into_inner().stream)?;
        let app = self.app.clone();
        let all = blocking(move || app.log.list_snapshots(&stream).map_err(status)).await?;
        Ok(Response::new(pb::ListSnapshotsResponse {
            versions: all.into_iter().map(|s| s.version).collect(),
        }))
    }

    async fn delete_snapshot(
        &self,
        req: Request<pb::DeleteSnapshotRequest>,
    ) -> Result<Response<pb::DeleteSnapshotResponse>, Status> {
        self.admit(&req, &Need::Delete(req.get_ref().stream.clone()))?;
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let app = self.app.clone();
        let deleted =
            blocking(move || app.log.delete_snapshot(&stream, r.version).map_err(status)).await?;
        Ok(Response::new(pb::DeleteSnapshotResponse { deleted }))
    }

    async fn get_head(
        &self,
        req: Request<pb::GetHeadRequest>,
    ) -> Result<Response<pb::Head>, Status> {
        self.admit(&req, &Need::Read(req.get_ref().stream.clone()))?;
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let app = self.app.clone();
        let h = blocking(move || {
            match r.length {
                Some(l) => app.log.head_at(&stream, l),
                None => app.log.head(&stream),
            }
            .map_err(status)
        })
        .await?;
        Ok(Response::new(head(h)))
    }

    async fn prove(
        &self,
        req: Request<pb::ProveRequest>,
    ) -> Result<Response<pb::ProveResponse>, Status> {
        self.admit(&req, &Need::Read(req.get_ref().stream.clone()))?;
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let app = self.app.clone();
        let (h, proof, e) = blocking(move || {
            let (h, proof) = app.log.prove(&stream, r.version).map_err(status)?;
            let e = app
                .log
                .read(&stream, ReadFrom::Version(r.version), 1, Direction::Forward)
                .map_err(status)?
                .next()
                .ok_or_else(|| Status::not_found("the event is not readable"))?
                .map_err(status)?;
            Ok((h, proof, e))
        })
        .await?;
        Ok(Response::new(pb::ProveResponse {
            head: Some(head(h)),
            event: Some(event(e)),
            length: proof.length,
            path: proof.path.iter().map(|p| p.to_vec()).collect(),
        }))
    }

    async fn prove_consistency(
        &self,
        req: Request<pb::ProveConsistencyRequest>,
    ) -> Result<Response<pb::ProveConsistencyResponse>, Status> {
        self.admit(&req, &Need::Read(req.get_ref().stream.clone()))?;
        let r = req.into_inner();
        let stream = stream_id(&r.stream)?;
        let app = self.app.clone();
        let (old, new, proof) = blocking(move || {
            let new = app.log.head(&stream).map_err(status)?;
            let proof = app
                .log
                .prove_consistency(&stream, r.old_length, new.length)
                .map_err(status)?;
            let old = app.log.head_at(&stream, r.old_length).map_err(status)?;
            Ok((old, new, proof))
        })
        .await?;
        Ok(Response::new(pb::ProveConsistencyResponse {
            old_head: Some(head(old)),
            head: Some(head(new)),
            path: proof.path.iter().map(|p| p.to_vec()).collect(),
        }))
    }

    async fn health(
        &self,
        _req: Request<pb::HealthRequest>,
    ) -> Result<Response<pb::HealthResponse>, Status> {
        // Open, as HTTP's /health is: load balancers probe without tokens.
        Ok(Response::new(pb::HealthResponse {
            status: "ok".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            peer_id: self.app.log.identity().peer_id().to_string(),
            next_position: self.app.log.next_position(),
        }))
    }
}

/// Serves gRPC (with reflection) on `listener` until the daemon stops.
pub async fn serve(
    app: Shared,
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    lanes: super::lanes::Lanes,
) -> anyhow::Result<()> {
    // Both reflection versions: grpcurl asks v1, older clients v1alpha.
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let reflection_alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    let shutdown_app = app.clone();
    let shutdown = async move {
        while !shutdown_app.shutting_down() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Served by the lanes' loop rather than tonic's own, so that a
    // connection whose request subscribes moves to the subscribers' lane.
    let router = tonic::service::Routes::new(EventStoreServer::new(Service { app }))
        .add_service(reflection)
        .add_service(reflection_alpha)
        .into_axum_router();
    let two = super::lanes::Http::Two;
    match tls {
        None => {
            let listener = listener.tap_io(|tcp| {
                let _ = tcp.set_nodelay(true);
            });
            super::lanes::serve(listener, router, two, lanes, shutdown).await
        }
        Some(acceptor) => {
            let local = listener.local_addr()?;
            let tls = super::tls::Listener {
                incoming: super::tls::incoming(listener, acceptor),
                local,
            };
            super::lanes::serve(tls, router, two, lanes, shutdown).await
        }
    }
    Ok(())
}
