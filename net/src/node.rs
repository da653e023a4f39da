//! The libp2p node: a swarm task, and the follow loop.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hydra_eventlog::{EventLog, StreamId};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, identify, multiaddr::Protocol, noise, ping, tcp, yamux,
};
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use crate::wire::{
    HEADS_WAIT, MAX_RESPONSE, PROTOCOL, RequestV1, ResponseV1, SyncRequest, SyncResponse,
};

/// Why the node failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NodeError {
    #[error("starting the libp2p node: {0}")]
    Start(String),
    #[error("{addr} has no /p2p/<peer id>: a follower must know whom it dials")]
    NoPeerId { addr: Multiaddr },
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
    #[error("peer {peer} answered: {reason}")]
    Remote { peer: PeerId, reason: String },
    #[error("peer {peer} answered {what} with something else")]
    Unexpected { peer: String, what: &'static str },
    #[error("importing from {peer}: {reason}")]
    Import { peer: String, reason: String },
    #[error("the node has stopped")]
    Stopped,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    sync: request_response::Behaviour<crate::codec::Codec>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

enum Command {
    Request {
        peer: PeerId,
        addr: Multiaddr,
        request: SyncRequest,
        reply: oneshot::Sender<Result<SyncResponse, NodeError>>,
    },
}

/// A running node. Cheap to clone.
#[derive(Clone)]
pub struct Node {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    listening: Vec<Multiaddr>,
}

impl Node {
    /// Starts a node with the log's identity, listening on `listen`
    /// (port 0 picks one). Returns once it listens.
    pub async fn start(log: EventLog, listen: Vec<Multiaddr>) -> Result<Node, NodeError> {
        let start = |e: &dyn std::fmt::Display| NodeError::Start(e.to_string());
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(log.identity().secret_seed())
            .map_err(|e| start(&e))?;
        let peer_id = keypair.public().to_peer_id();
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default(),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| start(&e))?
            .with_behaviour(|key| Behaviour {
                sync: request_response::Behaviour::with_codec(
                    crate::codec::Codec,
                    [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                    request_response::Config::default()
                        .with_request_timeout(Duration::from_secs(60)),
                ),
                identify: identify::Behaviour::new(identify::Config::new(
                    "/hydra/1".into(),
                    key.public(),
                )),
                ping: ping::Behaviour::default(),
            })
            .map_err(|e| start(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let serving = !listen.is_empty();
        for addr in listen {
            swarm.listen_on(addr).map_err(|e| start(&e))?;
        }
        // Wait for the listeners to report their addresses (a node that
        // only follows listens on nothing).
        let mut listening = Vec::new();
        while serving && listening.is_empty() {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                listening.push(address.with(Protocol::P2p(peer_id)));
            }
        }
        let (tx, rx) = mpsc::channel(64);
        tokio::spawn(run(swarm, rx, log));
        Ok(Node {
            tx,
            peer_id,
            listening,
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses it listens on, each ending in `/p2p/<peer id>`.
    pub fn listening(&self) -> &[Multiaddr] {
        &self.listening
    }

    /// Sends a request to the peer at `addr` (which names the peer id).
    pub async fn request(
        &self,
        addr: &Multiaddr,
        request: RequestV1,
    ) -> Result<ResponseV1, NodeError> {
        let peer = match addr.iter().last() {
            Some(Protocol::P2p(p)) => p,
            _ => return Err(NodeError::NoPeerId { addr: addr.clone() }),
        };
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Command::Request {
                peer,
                addr: addr.clone(),
                request: SyncRequest::V1(request),
                reply,
            })
            .await
            .map_err(|_| NodeError::Stopped)?;
        match answer.await.map_err(|_| NodeError::Stopped)?? {
            SyncResponse::V1(ResponseV1::Error(reason)) => Err(NodeError::Remote { peer, reason }),
            SyncResponse::V1(r) => Ok(r),
        }
    }
}

/// Answers a request from a peer: heads or exports of this log's streams.
fn answer(log: &EventLog, request: SyncRequest, stopped: &AtomicBool) -> SyncResponse {
    let SyncRequest::V1(request) = request;
    SyncResponse::V1(match request {
        RequestV1::Heads { prefix, after } => {
            if let Some(after) = after {
                // In slices, so a stopping node frees its blocking threads
                // (a runtime waits for them when it shuts down).
                let deadline = Instant::now() + HEADS_WAIT;
                while !stopped.load(Ordering::Relaxed)
                    && !log.wait_past(after, deadline.min(Instant::now() + WAIT_SLICE))
                    && Instant::now() < deadline
                {}
            }
            let next = log.next_position();
            let heads = log
                .list_streams(&prefix)
                .filter_map(Result::ok)
                .filter_map(|s| s.version.map(|v| (s.stream.to_string(), v + 1)))
                .collect();
            ResponseV1::Heads { heads, next }
        }
        RequestV1::Export { streams } => {
            let ids: Result<Vec<(StreamId, u64)>, _> = streams
                .into_iter()
                .map(|(s, from)| StreamId::new(s).map(|s| (s, from)))
                .collect();
            let mut out = Vec::new();
            match ids
                .map_err(|e| e.to_string())
                .and_then(|ids| log.export_from(&ids, &mut out).map_err(|e| e.to_string()))
            {
                Ok(_) if out.len() as u64 <= MAX_RESPONSE => ResponseV1::Car(ByteBuf::from(out)),
                Ok(_) => {
                    ResponseV1::Error(format!("the export is larger than {MAX_RESPONSE} bytes"))
                }
                Err(e) => ResponseV1::Error(e),
            }
        }
    })
}

/// How long a waiting heads request sleeps before checking for a stop.
const WAIT_SLICE: Duration = Duration::from_millis(100);

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

type Pending =
    HashMap<request_response::OutboundRequestId, oneshot::Sender<Result<SyncResponse, NodeError>>>;

async fn run(mut swarm: libp2p::Swarm<Behaviour>, mut rx: mpsc::Receiver<Command>, log: EventLog) {
    let mut pending: Pending = HashMap::new();
    let stopped = Arc::new(AtomicBool::new(false));
    // Set when the last handle is dropped and the loop ends.
    let _stop = StopOnDrop(stopped.clone());
    // Answers are built on blocking threads and come back here, so a large
    // export never stalls the swarm (other peers, pings, our own requests).
    let (answered, mut answers) = mpsc::unbounded_channel();
    loop {
        tokio::select! {
            Some((channel, response)) = answers.recv() => {
                let _ = swarm.behaviour_mut().sync.send_response(channel, response);
            },
            cmd = rx.recv() => match cmd {
                Some(Command::Request { peer, addr, request, reply }) => {
                    swarm.add_peer_address(peer, addr);
                    let id = swarm.behaviour_mut().sync.send_request(&peer, request);
                    pending.insert(id, reply);
                }
                None => return,
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::Message { message, .. })) => match message {
                    request_response::Message::Request { request, channel, .. } => {
                        let (log, answered, stopped) = (log.clone(), answered.clone(), stopped.clone());
                        tokio::task::spawn_blocking(move || {
                            let _ = answered.send((channel, answer(&log, request, &stopped)));
                        });
                    }
                    request_response::Message::Response { request_id, response } => {
                        if let Some(reply) = pending.remove(&request_id) {
                            let _ = reply.send(Ok(response));
                        }
                    }
                },
                SwarmEvent::Behaviour(BehaviourEvent::Sync(request_response::Event::OutboundFailure { peer, request_id, error, .. })) => {
                    if let Some(reply) = pending.remove(&request_id) {
                        let _ = reply.send(Err(NodeError::Request { peer, reason: error.to_string() }));
                    }
                }
                _ => {}
            },
        }
    }
}

/// How a follow loop is doing, for status pages and `hydra replicate
/// status`: updated after every round.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct FollowReport {
    pub peer: String,
    pub prefix: String,
    /// Rounds answered so far (each a heads request, and exports if behind).
    pub rounds: u64,
    /// Events imported since the loop started.
    pub events: u64,
    /// The peer's next log position at the last answer.
    pub peer_next_position: Option<u64>,
    /// When the last round succeeded, in ms since the Unix epoch.
    pub last_ok_unix_ms: Option<u64>,
    /// The last round's error, cleared by the next success.
    pub last_error: Option<String>,
}

/// A follow loop's report, shared with whoever shows it.
pub type FollowStatus = std::sync::Arc<std::sync::Mutex<FollowReport>>;

/// What a follower follows: a peer, the writer whose heads it trusts, and
/// the streams under a prefix.
#[derive(Debug, Clone)]
pub struct Follow {
    pub from: Multiaddr,
    pub writer: [u8; 32],
    pub prefix: String,
    /// How long to wait after a failed round before asking again.
    pub retry: Duration,
}

impl Follow {
    /// A report for [`Follow::run`] to keep, naming the peer and prefix
    /// before the first round answers.
    pub fn status(&self) -> FollowStatus {
        std::sync::Arc::new(std::sync::Mutex::new(FollowReport {
            peer: self.from.to_string(),
            prefix: self.prefix.clone(),
            ..FollowReport::default()
        }))
    }

    /// One round: fetch the peer's heads, and import an export of every
    /// stream this log is behind on. Returns the events imported, or the
    /// first refusal once every stream has been tried.
    pub async fn round(&self, node: &Node, log: &EventLog) -> Result<u64, NodeError> {
        Ok(self.sync(node, log, None).await?.0)
    }

    /// A round whose heads request waits, at the peer, until the peer's
    /// log holds position `after`. Returns the events imported and the
    /// peer's next position, to wait past next time.
    async fn sync(
        &self,
        node: &Node,
        log: &EventLog,
        after: Option<u64>,
    ) -> Result<(u64, u64), NodeError> {
        let ResponseV1::Heads { heads, next } = node
            .request(
                &self.from,
                RequestV1::Heads {
                    prefix: self.prefix.clone(),
                    after,
                },
            )
            .await?
        else {
            return Err(NodeError::Unexpected {
                peer: self.from.to_string(),
                what: "a heads request",
            });
        };
        let mut behind = Vec::new();
        for (stream, length) in heads {
            let Ok(id) = StreamId::new(stream.clone()) else {
                continue;
            };
            let have = log.stream_version(&id).ok().flatten().map_or(0, |v| v + 1);
            if have < length {
                behind.push((stream, have));
            }
        }
        // One export per stream, of only the events this log lacks (what
        // an earlier head covered is not sent again): each response stays within the size
        // bound however many streams are behind, and one refused stream
        // (forked, wrongly signed) does not hold back the others. The next
        // export downloads while the last one is verified and applied.
        let mut exports = futures::stream::iter(behind)
            .map(|stream| self.download(node, stream))
            .buffered(2);
        let (mut imported, mut refused) = (0, None);
        while let Some(car) = exports.next().await {
            let applied = match car {
                Ok(car) => self.apply(log, car).await,
                Err(e) => Err(e),
            };
            match applied {
                Ok(n) => imported += n,
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        match refused {
            None => Ok((imported, next)),
            Some(e) => Err(e),
        }
    }

    /// One stream's export from version `from`, as the peer sent it.
    async fn download(
        &self,
        node: &Node,
        (stream, from): (String, u64),
    ) -> Result<ByteBuf, NodeError> {
        match node
            .request(
                &self.from,
                RequestV1::Export {
                    streams: vec![(stream, from)],
                },
            )
            .await?
        {
            ResponseV1::Car(car) => Ok(car),
            _ => Err(NodeError::Unexpected {
                peer: self.from.to_string(),
                what: "an export request",
            }),
        }
    }

    /// Imports an export, verified completely before anything changes.
    async fn apply(&self, log: &EventLog, car: ByteBuf) -> Result<u64, NodeError> {
        let log = log.clone();
        let writer = self.writer;
        let peer = self.from.to_string();
        tokio::task::spawn_blocking(move || {
            log.import_bytes(&car, &[writer])
                .map(|r| r.events)
                .map_err(|e| NodeError::Import {
                    peer,
                    reason: e.to_string(),
                })
        })
        .await
        .map_err(|_| NodeError::Stopped)?
    }

    /// Follows until the task is dropped: each heads request waits at
    /// the peer for the next append past the last one seen, so new events
    /// arrive as they commit. After a failure it waits `retry`, then
    /// asks again without waiting.
    pub async fn run(self, node: Node, log: EventLog, status: FollowStatus) {
        let mut after = None;
        let report = |f: &dyn Fn(&mut FollowReport)| {
            f(&mut status.lock().unwrap_or_else(|e| e.into_inner()));
        };
        loop {
            match self.sync(&node, &log, after).await {
                Ok((n, next)) => {
                    if n > 0 {
                        tracing::info!(from = %self.from, events = n, "replicated");
                    }
                    after = Some(next);
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as u64);
                    report(&|r| {
                        r.rounds += 1;
                        r.events += n;
                        r.peer_next_position = Some(next);
                        r.last_ok_unix_ms = Some(now);
                        r.last_error = None;
                    });
                }
                Err(e) => {
                    tracing::warn!(from = %self.from, "replication: {e}");
                    let e = e.to_string();
                    report(&|r| {
                        r.rounds += 1;
                        r.last_error = Some(e.clone());
                    });
                    after = None;
                    tokio::time::sleep(self.retry).await;
                }
            }
        }
    }
}
