//! Answering peers: stream heads, storage and bundles from the log,
//! manifests and blocks from the buckets this node serves. Runs on
//! blocking threads.
//!
//! Policy ([`Serving`]), per bucket, for its objects and its streams
//! alike: a bucket served to peers goes to the peers in `allow` (every
//! peer, when it is empty); a public bucket to any peer; any other bucket
//! (and every stream in it) is answered as not served, whoever asks.
//! Nothing a peer sends can change this node: it only answers.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hydra_bucket::{Bucket, BucketError, Manifest, Store};
use hydra_eventlog::{EventLog, Storage, StreamId};
use libp2p::PeerId;
use serde_bytes::ByteBuf;

use crate::stats::Stats;
use crate::wire::{
    Block, BlocksRequest, BlocksRequestV1, BlocksResponse, BlocksResponseV1, FOLLOWING, HEADS_WAIT,
    MAX_BLOCKS_BYTES, MAX_WANT, RequestV1, ResponseV1, STORAGE_EDGE_BYTES, STORAGE_TREE_BYTES,
    StreamHead, StreamStorage, SyncRequest, SyncResponse,
};

/// Finds a bucket this node serves, by name, and whether it is public:
/// `None` for any other, so that only buckets configured to be served are
/// visible to peers.
pub type ServedBuckets = dyn Fn(&str) -> Option<(Bucket, bool)> + Send + Sync;

/// What a node serves, and to whom: buckets, each with its objects and
/// its streams.
pub struct Serving {
    /// Peers that may read the served buckets that are not public.
    /// Empty: every peer that connects.
    pub allow: Vec<PeerId>,
    pub buckets: Box<ServedBuckets>,
}

impl Serving {
    /// Every bucket of `store`, with its streams, to every peer: a node
    /// that keeps nothing from anyone who can reach it.
    pub fn everything(store: Store) -> Serving {
        Serving {
            allow: Vec::new(),
            buckets: Box::new(move |name| {
                let bucket = store.bucket(&name.parse().ok()?, None).ok()?;
                Some((bucket, true))
            }),
        }
    }

    fn allows(&self, peer: &PeerId) -> bool {
        self.allow.is_empty() || self.allow.contains(peer)
    }

    /// Bucket `name`, when it is served to `peer`; else why not.
    fn serves(&self, name: &str, peer: &PeerId) -> Result<Bucket, String> {
        match (self.buckets)(name) {
            Some((bucket, public)) if public || self.allows(peer) => Ok(bucket),
            _ => Err(format!("bucket {name} is not served to peer {peer}")),
        }
    }
}

/// How long a waiting request sleeps before checking for a stop (and a
/// heads request for streams taken in blind, which no append signals).
const WAIT_SLICE: Duration = Duration::from_millis(25);

/// This node's own signed manifest of a bucket, kept while its roots
/// stay as they were.
struct Own {
    generation: u64,
    seq: u64,
    signed: Arc<Vec<u8>>,
}

/// Streams' storages kept for the want-lists that follow a storage
/// request (each holds its tiles and edge blocks).
const STORAGES_KEPT: usize = 4;

/// Which storage of a stream to serve from.
#[derive(Debug, Clone, Copy)]
enum Read {
    /// The one read last, if still kept (else read now, whole).
    Kept,
    /// Read now, whole: every block of it known.
    Whole,
    /// Read now, the tree past bundle `after` only (see
    /// `EventLog::storage_past`): what a storage answer carries, without
    /// reading a long stream's whole tree each live round. A want-list
    /// for a block it does not know reads the whole.
    Past(Option<u64>),
}

pub(crate) struct Served {
    log: EventLog,
    storages: Mutex<VecDeque<(String, Arc<Storage>)>>,
    serving: Serving,
    own: Mutex<HashMap<String, Own>>,
    stopped: Arc<AtomicBool>,
    stats: Arc<Stats>,
}

/// Stops waiting requests when the swarm task ends.
pub(crate) struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

impl Served {
    pub fn new(log: EventLog, serving: Serving, stats: Arc<Stats>) -> Served {
        Served {
            log,
            storages: Mutex::default(),
            serving,
            own: Mutex::default(),
            stopped: Arc::default(),
            stats,
        }
    }

    pub fn stop_on_drop(&self) -> StopOnDrop {
        StopOnDrop(self.stopped.clone())
    }

    /// Waits, in slices, until `done` or `HEADS_WAIT` or a stop.
    fn wait(&self, mut done: impl FnMut(Instant) -> bool) {
        let deadline = Instant::now() + HEADS_WAIT;
        while !self.stopped.load(Ordering::Relaxed)
            && !done(deadline.min(Instant::now() + WAIT_SLICE))
            && Instant::now() < deadline
        {}
    }

    pub fn sync(&self, peer: PeerId, request: SyncRequest) -> SyncResponse {
        let SyncRequest::V1(request) = request;
        SyncResponse::V1(match request {
            RequestV1::Heads {
                bucket,
                after,
                following,
            } => {
                let name = match self.serving.serves(&bucket, &peer) {
                    Ok(b) => b.name().clone(),
                    Err(e) => return SyncResponse::V1(ResponseV1::Error(e)),
                };
                // A cursor that moves with every append to the log and
                // every stream a bucket takes in blind (a root change).
                let store = self.log.store();
                let cursor = || self.log.next_position() + store.roots_generation();
                if let Some(after) = after {
                    // Past already: at once; else at the next commit.
                    self.wait(|until| {
                        let seen = self.log.next_position();
                        cursor() > after || {
                            self.log.wait_past(seen, until);
                            cursor() > after
                        }
                    });
                }
                let next = cursor();
                match self.log.held_streams(&name) {
                    Ok(held) => {
                        // The followed streams that grew, with their
                        // storage (one that fails is asked for again).
                        let storages = following
                            .iter()
                            .take(FOLLOWING)
                            .filter(|f| {
                                held.iter()
                                    .any(|h| h.stream.as_str() == f.stream && h.length > f.length)
                            })
                            .filter_map(|f| {
                                let after = (f.length / hydra_eventlog::BUNDLE).checked_sub(1);
                                self.storage(peer, &f.stream, after).ok()
                            })
                            .collect();
                        ResponseV1::Heads {
                            heads: held
                                .into_iter()
                                .map(|h| StreamHead {
                                    stream: h.stream.to_string(),
                                    length: h.length,
                                    writer: h.writer,
                                })
                                .collect(),
                            next,
                            position: self.log.next_position(),
                            storages,
                        }
                    }
                    Err(e) => ResponseV1::Error(e.to_string()),
                }
            }
            RequestV1::Storage { stream, after } => match self.storage(peer, &stream, after) {
                Ok(storage) => ResponseV1::Storage(storage),
                Err(e) => ResponseV1::Error(e),
            },
            RequestV1::Extension {
                stream,
                from_length,
            } => match self
                .served_storage(peer, &stream, Read::Kept)
                .and_then(|_| {
                    let s = StreamId::new(stream).map_err(|e| e.to_string())?;
                    self.log
                        .extension(&s, from_length)
                        .map_err(|e| e.to_string())
                }) {
                Ok(e) => ResponseV1::Extension(Box::new(e)),
                Err(e) => ResponseV1::Error(e),
            },
        })
    }

    /// A stream's storage block, with its first edge blocks and the tree
    /// blocks past bundle `after`; the rest goes by want-lists.
    fn storage(
        &self,
        peer: PeerId,
        stream: &str,
        after: Option<u64>,
    ) -> Result<StreamStorage, String> {
        let storage = self.served_storage(peer, stream, Read::Past(after))?;
        let tree = storage
            .tree_since(after, STORAGE_TREE_BYTES)
            .map_err(|e| e.to_string())?;
        let mut bytes = storage.root_block().len();
        let edges = storage
            .edge_blocks()
            .map_while(|(_, b)| {
                bytes += b.len();
                (bytes <= STORAGE_EDGE_BYTES).then(|| ByteBuf::from(b.to_vec()))
            })
            .collect();
        bytes += tree.iter().map(Vec::len).sum::<usize>();
        Stats::add(&self.stats.bytes_sent, bytes as u64);
        Ok(StreamStorage {
            root: ByteBuf::from(storage.root_block().to_vec()),
            edges,
            tree: tree.into_iter().map(ByteBuf::from).collect(),
        })
    }

    /// The stream's storage (see [`Served::stream_storage`]), when its
    /// bucket is served to `peer`.
    fn served_storage(
        &self,
        peer: PeerId,
        stream: &str,
        read: Read,
    ) -> Result<Arc<Storage>, String> {
        let storage = self
            .stream_storage(stream, read)
            .map_err(|e| e.to_string())?;
        self.serving
            .serves(storage.bucket().as_str(), &peer)
            .map_err(|e| format!("stream {stream}: {e}"))?;
        Ok(storage)
    }

    /// The stream's storage, as `read` says. Its blocks are
    /// content-addressed, so one read a moment ago serves a want-list as
    /// well as a new one.
    fn stream_storage(
        &self,
        stream: &str,
        read: Read,
    ) -> Result<Arc<Storage>, hydra_eventlog::Error> {
        let mut kept = self.storages.lock().unwrap_or_else(|e| e.into_inner());
        let after = match read {
            Read::Kept => match kept.iter().find(|(name, _)| name == stream) {
                Some((_, s)) => return Ok(s.clone()),
                None => None,
            },
            Read::Whole => None,
            Read::Past(after) => after,
        };
        drop(kept);
        let storage = Arc::new(self.log.storage_past(&StreamId::new(stream)?, after)?);
        kept = self.storages.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|(name, _)| name != stream);
        kept.push_front((stream.to_owned(), storage.clone()));
        kept.truncate(STORAGES_KEPT);
        Ok(storage)
    }

    pub fn blocks(&self, peer: PeerId, request: BlocksRequest) -> BlocksResponse {
        let BlocksRequest::V1(request) = request;
        let refs = match &request {
            BlocksRequestV1::Want { refs, .. } | BlocksRequestV1::StreamBlocks { refs, .. } => {
                refs.len()
            }
            BlocksRequestV1::Manifest { .. } => 0,
        };
        if refs > MAX_WANT {
            return BlocksResponse::V1(BlocksResponseV1::Error(format!(
                "a want-list of {refs} refs; at most {MAX_WANT}"
            )));
        }
        let bucket_name = match request {
            BlocksRequestV1::StreamBlocks { stream, refs } => {
                return BlocksResponse::V1(self.stream_blocks(peer, &stream, refs));
            }
            BlocksRequestV1::Manifest { ref bucket, .. }
            | BlocksRequestV1::Want { ref bucket, .. } => bucket.clone(),
        };
        let bucket = match self.serving.serves(&bucket_name, &peer) {
            Ok(bucket) => bucket,
            Err(e) => return BlocksResponse::V1(BlocksResponseV1::Error(e)),
        };
        BlocksResponse::V1(match request {
            BlocksRequestV1::Manifest { after, .. } => match self.manifest(&bucket, after) {
                Ok(m) => BlocksResponseV1::Manifest(ByteBuf::from(m)),
                Err(e) => BlocksResponseV1::Error(e.to_string()),
            },
            BlocksRequestV1::Want { refs, .. } => {
                BlocksResponseV1::Blocks(self.want(refs, |r| bucket.get_stored(r).ok().flatten()))
            }
            BlocksRequestV1::StreamBlocks { .. } => unreachable!("answered above"),
        })
    }

    /// Blocks of a stream's storage, to a peer its bucket is served to:
    /// only that storage's (no other block of its bucket leaves).
    fn stream_blocks(
        &self,
        peer: PeerId,
        stream: &str,
        refs: Vec<hydra_block::Ref>,
    ) -> BlocksResponseV1 {
        let mut storage = match self.served_storage(peer, stream, Read::Kept) {
            Ok(s) => s,
            Err(e) => return BlocksResponseV1::Error(e),
        };
        // Blocks of a newer storage than the one kept, or outside the part
        // of the tree it holds: read it again, whole.
        if refs
            .iter()
            .any(|r| storage.block(r).ok().flatten().is_none())
        {
            match self.stream_storage(stream, Read::Whole) {
                Ok(s) => storage = s,
                Err(e) => return BlocksResponseV1::Error(e.to_string()),
            }
        }
        BlocksResponseV1::Blocks(self.want(refs, |r| storage.block(r).ok().flatten()))
    }

    /// The stored bytes of each ref that `get` finds, within the answer's
    /// byte budget.
    fn want(
        &self,
        refs: Vec<hydra_block::Ref>,
        get: impl Fn(&hydra_block::Ref) -> Option<Vec<u8>>,
    ) -> Vec<Block> {
        let mut budget = MAX_BLOCKS_BYTES;
        let mut sent = (0, 0);
        let blocks = refs
            .iter()
            .map(|r| {
                if budget == 0 {
                    return Block::Later;
                }
                match get(r) {
                    Some(bytes) if bytes.len() <= budget || sent.0 == 0 => {
                        budget = budget.saturating_sub(bytes.len());
                        sent = (sent.0 + 1, sent.1 + bytes.len() as u64);
                        Block::Have(ByteBuf::from(bytes))
                    }
                    Some(_) => {
                        budget = 0;
                        Block::Later
                    }
                    // A block that fails its own hash here is not served.
                    None => Block::DontHave,
                }
            })
            .collect();
        Stats::add(&self.stats.blocks_sent, sent.0);
        Stats::add(&self.stats.bytes_sent, sent.1);
        blocks
    }

    /// The bucket's manifest: as its writer signed it, when this node is a
    /// replica; else this node's own. With `after`, waits for a newer one.
    fn manifest(&self, bucket: &Bucket, after: Option<u64>) -> Result<Vec<u8>, BucketError> {
        let (mut seq, mut signed) = self.current(bucket)?;
        if let Some(after) = after
            && seq <= after
        {
            let mut generation = bucket.roots_generation();
            self.wait(|until| {
                let now = bucket.wait_roots_change(generation, until);
                if now == generation {
                    return false;
                }
                generation = now;
                match self.current(bucket) {
                    Ok(c) => (seq, signed) = c,
                    Err(_) => return false,
                }
                seq > after
            });
        }
        Ok(signed.to_vec())
    }

    fn current(&self, bucket: &Bucket) -> Result<(u64, Arc<Vec<u8>>), BucketError> {
        if let Some(signed) = bucket.replica_manifest()? {
            return Ok((Manifest::decode_stored(&signed)?.seq, Arc::new(signed)));
        }
        let generation = bucket.roots_generation();
        let mut own = self.own.lock().unwrap_or_else(|e| e.into_inner());
        let previous = own.get(bucket.name().as_str());
        if let Some(o) = previous.filter(|o| o.generation == generation) {
            return Ok((o.seq, o.signed.clone()));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let seq = now.max(previous.map_or(0, |o| o.seq + 1));
        let identity = self.log.identity();
        let signed = Arc::new(bucket.manifest(identity, seq)?.sign(identity));
        own.insert(
            bucket.name().to_string(),
            Own {
                generation,
                seq,
                signed: signed.clone(),
            },
        );
        Ok((seq, signed))
    }
}
