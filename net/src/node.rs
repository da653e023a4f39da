//! The libp2p node: one swarm task that sends requests for the follow
//! loops, answers peers' requests on blocking threads, and keeps what it
//! knows of connected peers.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use hydra_eventlog::EventLog;
use libp2p::request_response::{self, OutboundRequestId, ProtocolSupport};
use libp2p::swarm::behaviour::toggle::Toggle;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, NetworkBehaviour, SwarmEvent};
use libp2p::{
    Multiaddr, PeerId, StreamProtocol, identify, mdns, multiaddr::Protocol, noise, ping, tcp, yamux,
};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::codec::Codec;
use crate::serve::{Served, Serving};
use crate::stats::Stats;
use crate::wire::{
    BLOCKS_PROTOCOL, BlocksRequest, BlocksRequestV1, BlocksResponse, BlocksResponseV1, PROTOCOL,
    RequestV1, ResponseV1, SyncRequest, SyncResponse,
};

/// Why the node or a request failed.
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
    #[error("bucket {bucket}: {reason}")]
    Bucket { bucket: String, reason: String },
    #[error("no peer to ask: {0}")]
    NoPeer(String),
    #[error("peer {peer} lied: {reason}")]
    Lied { peer: String, reason: String },
    #[error(
        "writer {writer} signed two histories of stream {stream} (heads at {length} events disagree); both kept as evidence, the stream is not followed"
    )]
    StreamEquivocation {
        stream: String,
        writer: String,
        length: u64,
    },
    #[error(transparent)]
    Log(hydra_eventlog::Error),
    #[error(
        "writer {writer} signed two manifests of bucket {bucket} at seq {seq}; both kept as evidence, replication stopped"
    )]
    Equivocation {
        bucket: String,
        writer: String,
        seq: u64,
    },
    #[error("dialing {addr}: {reason}")]
    Dial { addr: Multiaddr, reason: String },
    #[error("the node has stopped")]
    Stopped,
}

#[derive(NetworkBehaviour)]
struct Behaviour {
    sync: request_response::Behaviour<Codec<SyncRequest, SyncResponse>>,
    blocks: request_response::Behaviour<Codec<BlocksRequest, BlocksResponse>>,
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    /// Finds peers' addresses on the local network, so that a follower
    /// can name a peer by `/p2p/<peer id>` alone. Off unless asked for.
    mdns: Toggle<mdns::tokio::Behaviour>,
}

type Reply<T> = oneshot::Sender<Result<T, NodeError>>;

enum Command {
    Sync {
        peer: PeerId,
        addr: Multiaddr,
        request: SyncRequest,
        reply: Reply<SyncResponse>,
    },
    Blocks {
        peer: PeerId,
        addr: Multiaddr,
        request: BlocksRequest,
        reply: Reply<BlocksResponse>,
    },
    Peers(oneshot::Sender<Vec<PeerInfo>>),
    Connect {
        addr: Multiaddr,
        reply: Reply<PeerId>,
    },
    Disconnect(PeerId),
}

/// A connected peer, as `hydra peer ls` shows it.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PeerInfo {
    pub peer_id: String,
    /// The remote addresses of its connections.
    pub addresses: Vec<String>,
    /// Round-trip time of the last ping.
    pub rtt_ms: Option<f64>,
}

/// A running node. Cheap to clone; it stops when the last clone drops.
#[derive(Clone)]
pub struct Node {
    tx: mpsc::Sender<Command>,
    peer_id: PeerId,
    listening: Vec<Multiaddr>,
    stats: Arc<Stats>,
}

impl Node {
    /// Starts a node with the log's identity, listening on `listen`
    /// (port 0 picks one), that serves what `serving` says. Returns once
    /// it listens.
    pub async fn start(
        log: EventLog,
        serving: Serving,
        listen: Vec<Multiaddr>,
    ) -> Result<Node, NodeError> {
        Node::start_with(log, serving, listen, false).await
    }

    /// [`Node::start`], with mDNS discovery on the local network when
    /// `mdns` is set: peers found there can be named by peer id alone.
    pub async fn start_with(
        log: EventLog,
        serving: Serving,
        listen: Vec<Multiaddr>,
        mdns: bool,
    ) -> Result<Node, NodeError> {
        let start = |e: &dyn std::fmt::Display| NodeError::Start(e.to_string());
        let keypair = libp2p::identity::Keypair::ed25519_from_bytes(log.identity().secret_seed())
            .map_err(|e| start(&e))?;
        let peer_id = keypair.public().to_peer_id();
        let config =
            || request_response::Config::default().with_request_timeout(Duration::from_secs(60));
        let mut swarm = libp2p::SwarmBuilder::with_existing_identity(keypair)
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )
            .map_err(|e| start(&e))?
            .with_behaviour(
                |key| -> Result<Behaviour, Box<dyn std::error::Error + Send + Sync>> {
                    Ok(Behaviour {
                        sync: request_response::Behaviour::with_codec(
                            Codec::default(),
                            [(StreamProtocol::new(PROTOCOL), ProtocolSupport::Full)],
                            config(),
                        ),
                        blocks: request_response::Behaviour::with_codec(
                            Codec::default(),
                            [(StreamProtocol::new(BLOCKS_PROTOCOL), ProtocolSupport::Full)],
                            config(),
                        ),
                        identify: identify::Behaviour::new(identify::Config::new(
                            "/hydra/1".into(),
                            key.public(),
                        )),
                        ping: ping::Behaviour::default(),
                        mdns: Toggle::from(
                            mdns.then(|| {
                                mdns::tokio::Behaviour::new(
                                    mdns::Config::default(),
                                    key.public().to_peer_id(),
                                )
                            })
                            .transpose()?,
                        ),
                    })
                },
            )
            .map_err(|e| start(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
            .build();
        let listens = !listen.is_empty();
        for addr in listen {
            swarm.listen_on(addr).map_err(|e| start(&e))?;
        }
        // Wait for the listeners to report their addresses (a node that
        // only follows listens on nothing).
        let mut listening = Vec::new();
        while listens && listening.is_empty() {
            if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
                listening.push(address.with(Protocol::P2p(peer_id)));
            }
        }
        let stats = Arc::new(Stats::default());
        let (tx, rx) = mpsc::channel(64);
        let served = Arc::new(Served::new(log, serving, stats.clone()));
        tokio::spawn(run(swarm, rx, served));
        Ok(Node {
            tx,
            peer_id,
            listening,
            stats,
        })
    }

    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses it listens on, each ending in `/p2p/<peer id>`.
    pub fn listening(&self) -> &[Multiaddr] {
        &self.listening
    }

    /// Counters of what it sent, received and refused.
    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Sends a `/hydra/sync/4` request to the peer at `addr`.
    pub async fn request(
        &self,
        addr: &Multiaddr,
        request: RequestV1,
    ) -> Result<ResponseV1, NodeError> {
        let peer = peer_of(addr)?;
        let answer = self.ask(|reply| Command::Sync {
            peer,
            addr: addr.clone(),
            request: SyncRequest::V1(request),
            reply,
        });
        match answer.await?? {
            SyncResponse::V1(ResponseV1::Error(reason)) => Err(NodeError::Remote { peer, reason }),
            SyncResponse::V1(r) => Ok(r),
        }
    }

    /// Sends a `/hydra/blocks/1` request to the peer at `addr`.
    pub async fn blocks(
        &self,
        addr: &Multiaddr,
        request: BlocksRequestV1,
    ) -> Result<BlocksResponseV1, NodeError> {
        let peer = peer_of(addr)?;
        let answer = self.ask(|reply| Command::Blocks {
            peer,
            addr: addr.clone(),
            request: BlocksRequest::V1(request),
            reply,
        });
        match answer.await?? {
            BlocksResponse::V1(BlocksResponseV1::Error(reason)) => {
                Err(NodeError::Remote { peer, reason })
            }
            BlocksResponse::V1(r) => Ok(r),
        }
    }

    /// The peers connected now.
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, NodeError> {
        self.ask(Command::Peers).await
    }

    /// Dials `addr` and returns the peer id that answered.
    pub async fn connect(&self, addr: Multiaddr) -> Result<PeerId, NodeError> {
        self.ask(|reply| Command::Connect { addr, reply }).await?
    }

    /// Closes every connection to `peer` (one that misbehaved).
    pub async fn disconnect(&self, peer: PeerId) {
        let _ = self.send(Command::Disconnect(peer)).await;
    }

    async fn send(&self, c: Command) -> Result<(), NodeError> {
        self.tx.send(c).await.map_err(|_| NodeError::Stopped)
    }

    /// Sends the swarm task a command carrying a reply channel, and waits
    /// for the reply.
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, NodeError> {
        let (reply, answer) = oneshot::channel();
        self.send(command(reply)).await?;
        answer.await.map_err(|_| NodeError::Stopped)
    }
}

/// The peer id an address ends with.
pub(crate) fn peer_of(addr: &Multiaddr) -> Result<PeerId, NodeError> {
    match addr.iter().last() {
        Some(Protocol::P2p(p)) => Ok(p),
        _ => Err(NodeError::NoPeerId { addr: addr.clone() }),
    }
}

/// Requests in flight, by protocol.
#[derive(Default)]
struct Pending {
    sync: HashMap<OutboundRequestId, Reply<SyncResponse>>,
    blocks: HashMap<OutboundRequestId, Reply<BlocksResponse>>,
    dials: HashMap<ConnectionId, (Multiaddr, Reply<PeerId>)>,
}

/// What the node knows of a connected peer.
#[derive(Default)]
struct Connected {
    addresses: Vec<Multiaddr>,
    rtt: Option<Duration>,
}

enum Answer {
    Sync(
        request_response::ResponseChannel<SyncResponse>,
        SyncResponse,
    ),
    Blocks(
        request_response::ResponseChannel<BlocksResponse>,
        BlocksResponse,
    ),
}

async fn run(
    mut swarm: libp2p::Swarm<Behaviour>,
    mut rx: mpsc::Receiver<Command>,
    served: Arc<Served>,
) {
    let mut pending = Pending::default();
    let mut peers: HashMap<PeerId, Connected> = HashMap::new();
    // Set when the last handle is dropped and the loop ends.
    let _stop = served.stop_on_drop();
    // Answers are built on blocking threads and come back here, so a large
    // export never stalls the swarm (other peers, pings, our own requests).
    let (answered, mut answers) = mpsc::unbounded_channel();
    loop {
        tokio::select! {
            Some(answer) = answers.recv() => match answer {
                Answer::Sync(channel, response) => {
                    let _ = swarm.behaviour_mut().sync.send_response(channel, response);
                }
                Answer::Blocks(channel, response) => {
                    let _ = swarm.behaviour_mut().blocks.send_response(channel, response);
                }
            },
            cmd = rx.recv() => match cmd {
                Some(Command::Sync { peer, addr, request, reply }) => {
                    remember(&mut swarm, peer, addr);
                    let id = swarm.behaviour_mut().sync.send_request(&peer, request);
                    pending.sync.insert(id, reply);
                }
                Some(Command::Blocks { peer, addr, request, reply }) => {
                    remember(&mut swarm, peer, addr);
                    let id = swarm.behaviour_mut().blocks.send_request(&peer, request);
                    pending.blocks.insert(id, reply);
                }
                Some(Command::Peers(reply)) => {
                    let mut list: Vec<PeerInfo> = peers
                        .iter()
                        .map(|(p, c)| PeerInfo {
                            peer_id: p.to_string(),
                            addresses: c.addresses.iter().map(|a| a.to_string()).collect(),
                            rtt_ms: c.rtt.map(|d| d.as_secs_f64() * 1e3),
                        })
                        .collect();
                    list.sort_by(|a, b| a.peer_id.cmp(&b.peer_id));
                    let _ = reply.send(list);
                }
                Some(Command::Connect { addr, reply }) => {
                    let opts = DialOpts::from(addr.clone());
                    let id = opts.connection_id();
                    match swarm.dial(opts) {
                        Ok(()) => {
                            pending.dials.insert(id, (addr, reply));
                        }
                        Err(e) => {
                            let _ = reply.send(Err(NodeError::Dial { addr, reason: e.to_string() }));
                        }
                    }
                }
                Some(Command::Disconnect(peer)) => {
                    let _ = swarm.disconnect_peer_id(peer);
                }
                None => return,
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::Behaviour(BehaviourEvent::Sync(e)) => route(e, &mut pending.sync, |peer, request, channel| {
                    let (served, answered) = (served.clone(), answered.clone());
                    tokio::task::spawn_blocking(move || {
                        let _ = answered.send(Answer::Sync(channel, served.sync(peer, request)));
                    });
                }),
                SwarmEvent::Behaviour(BehaviourEvent::Blocks(e)) => route(e, &mut pending.blocks, |peer, request, channel| {
                    let (served, answered) = (served.clone(), answered.clone());
                    tokio::task::spawn_blocking(move || {
                        let _ = answered.send(Answer::Blocks(channel, served.blocks(peer, request)));
                    });
                }),
                SwarmEvent::Behaviour(BehaviourEvent::Mdns(mdns::Event::Discovered(found))) => {
                    for (peer, addr) in found {
                        tracing::debug!(%peer, %addr, "found by mDNS");
                        swarm.add_peer_address(peer, addr);
                    }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result: Ok(rtt), .. })) => {
                    peers.entry(peer).or_default().rtt = Some(rtt);
                }
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, connection_id, .. } => {
                    peers.entry(peer_id).or_default().addresses.push(endpoint.get_remote_address().clone());
                    if let Some((_, reply)) = pending.dials.remove(&connection_id) {
                        let _ = reply.send(Ok(peer_id));
                    }
                }
                SwarmEvent::ConnectionClosed { peer_id, endpoint, num_established, .. } => {
                    if num_established == 0 {
                        peers.remove(&peer_id);
                    } else if let Some(c) = peers.get_mut(&peer_id) {
                        let gone = endpoint.get_remote_address();
                        if let Some(i) = c.addresses.iter().position(|a| a == gone) {
                            c.addresses.remove(i);
                        }
                    }
                }
                SwarmEvent::OutgoingConnectionError { connection_id, error, .. } => {
                    if let Some((addr, reply)) = pending.dials.remove(&connection_id) {
                        let _ = reply.send(Err(NodeError::Dial { addr, reason: error.to_string() }));
                    }
                }
                _ => {}
            },
        }
    }
}

/// Adds a peer's address, unless it is only `/p2p/<peer id>` (a peer to be
/// found by mDNS, or already connected).
fn remember(swarm: &mut libp2p::Swarm<Behaviour>, peer: PeerId, addr: Multiaddr) {
    if addr.iter().count() > 1 {
        swarm.add_peer_address(peer, addr);
    }
}

/// Routes one protocol's event: a peer's request to `serve`, an answer or
/// a failure to whoever asked.
fn route<Req, Resp>(
    event: request_response::Event<Req, Resp>,
    pending: &mut HashMap<OutboundRequestId, Reply<Resp>>,
    serve: impl FnOnce(PeerId, Req, request_response::ResponseChannel<Resp>),
) {
    use request_response::{Event, Message};
    match event {
        Event::Message {
            peer,
            message: Message::Request {
                request, channel, ..
            },
            ..
        } => serve(peer, request, channel),
        Event::Message {
            message:
                Message::Response {
                    request_id,
                    response,
                },
            ..
        } => {
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Ok(response));
            }
        }
        Event::OutboundFailure {
            peer,
            request_id,
            error,
            ..
        } => {
            if let Some(reply) = pending.remove(&request_id) {
                let _ = reply.send(Err(NodeError::Request {
                    peer,
                    reason: error.to_string(),
                }));
            }
        }
        _ => {}
    }
}
