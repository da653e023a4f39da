//! Following a replica bucket's streams: learn the bucket's stream heads
//! from a peer; for each stream of a trusted writer this log is behind
//! on, take the peer's storage block (the writer's signed stored head)
//! with its first edge blocks and the tree blocks past the tree this log
//! holds (carried in the heads answer for the streams a live loop
//! follows, else asked for), fetch the blocks this log still lacks
//! (tiles, bundles, the rest of the edge) by want-lists from any peer,
//! stored as they are, then apply the stream, checked whole, or hold it
//! blind when its bucket is encrypted and this log has no key (see
//! `hydra_eventlog::EventLog::apply_storage`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hydra_block::{Codec, Ref, Verified};
use hydra_eventlog::{EventLog, Received, StreamId};
use libp2p::Multiaddr;
use serde_bytes::ByteBuf;

use crate::fetch::{Fetch, IN_FLIGHT, Source, WANT_BATCH};
use crate::node::{Node, NodeError};
use crate::objects::BucketFollow;
use crate::peers::{FAILED, PeerScore, Peers};
use crate::stats::Stats;
use crate::wire::{FOLLOWING, Following, RequestV1, ResponseV1, StreamHead, StreamStorage};

/// How a replication loop's rounds go: the part of its report that every
/// kind of loop keeps.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rounds {
    /// Rounds answered so far.
    pub rounds: u64,
    /// Whether the last round brought in everything the peer had.
    pub caught_up: bool,
    /// When the last round succeeded, in ms since the Unix epoch.
    pub last_ok_unix_ms: Option<u64>,
    /// The last round's error, cleared by the next success.
    pub last_error: Option<String>,
    /// Each peer's score (see `PeerScore`).
    pub peers: Vec<PeerScore>,
}

/// How a replica bucket's streams loop is doing, for status pages and
/// `hydra replicate status`: updated after every round.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FollowReport {
    /// The peer of the last round.
    pub peer: String,
    pub bucket: String,
    /// The trusted writers' peer ids.
    pub writers: Vec<String>,
    /// Events imported since the loop started.
    pub events: u64,
    /// The peer's next log position at the last answer.
    pub peer_next_position: Option<u64>,
    /// Events imported per second, while catching up.
    pub events_per_s: Rate,
    /// Blocks fetched since the loop started, their bytes, and bytes per
    /// second while catching up.
    pub blocks_received: u64,
    pub bytes_received: u64,
    pub bytes_per_s: Rate,
    /// Streams the peer had more of at the last heads answer, with the
    /// length here and there (the first 100), until they catch up.
    pub behind: Vec<StreamLag>,
    /// Streams whose writer signed two histories (evidence kept in the
    /// default bucket under `evidence/`): no longer followed.
    pub equivocations: Vec<String>,
    #[serde(flatten)]
    pub rounds: Rounds,
}

/// A rate over the last second or more: what a status shows as current.
#[derive(Debug, Clone, Default, serde::Serialize)]
#[serde(transparent)]
pub struct Rate {
    per_s: u64,
    #[serde(skip)]
    since: Option<(std::time::Instant, u64)>,
}

/// A rate in the OpenAPI document: what it serialises as.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Rate {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        u64::schema()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Rate {}

impl Rate {
    /// Notes that the running total is now `total`.
    pub(crate) fn note(&mut self, total: u64) {
        let now = std::time::Instant::now();
        match self.since {
            Some((t, before)) if now - t >= Duration::from_secs(1) => {
                self.per_s = ((total - before) as f64 / (now - t).as_secs_f64()) as u64;
                self.since = Some((now, total));
            }
            Some(_) => {}
            None => self.since = Some((now, total)),
        }
    }

    /// Nothing is arriving.
    pub(crate) fn idle(&mut self) {
        *self = Rate::default();
    }

    pub fn per_s(&self) -> u64 {
        self.per_s
    }
}

impl Rounds {
    /// Records a round's outcome.
    pub(crate) fn record<T>(&mut self, result: &Result<T, NodeError>, peers: &Peers) {
        self.rounds += 1;
        self.caught_up = result.is_ok();
        self.peers = peers.report();
        match result {
            Ok(_) => {
                self.last_ok_unix_ms = Some(now_ms());
                self.last_error = None;
            }
            Err(e) => self.last_error = Some(e.to_string()),
        }
    }
}

/// One stream a follower is behind on.
#[derive(Debug, Clone, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StreamLag {
    pub stream: String,
    pub local: u64,
    pub remote: u64,
}

/// Most streams a report lists as behind.
const LAG_LISTED: usize = 100;

/// A loop's report, shared with whoever shows it.
pub type Status<T> = Arc<Mutex<T>>;
pub type FollowStatus = Status<FollowReport>;

pub(crate) fn update<T>(status: &Status<T>, f: impl FnOnce(&mut T)) {
    f(&mut status.lock().unwrap_or_else(|e| e.into_inner()));
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A stream a follower is behind on: its length here and at the peer,
/// and the writer the peer named.
struct Behind {
    stream: String,
    have: u64,
    length: u64,
    writer: [u8; 32],
}

/// The next heads request of a live loop, sent as soon as the last one
/// answered: it waits at the peer while this round fetches and applies,
/// so appends made meanwhile are heard of without a round trip more.
struct NextHeads {
    from: Multiaddr,
    after: u64,
    /// The streams whose storage it asks to have carried.
    following: Vec<Following>,
    answer: tokio::task::JoinHandle<Result<ResponseV1, NodeError>>,
}

impl Drop for NextHeads {
    fn drop(&mut self) {
        self.answer.abort();
    }
}

/// A writer's peer id, as reports and errors name it.
fn peer_id(writer: &[u8; 32]) -> String {
    hydra_volume::peer_id_of(writer)
        .map(|p| p.to_string())
        .unwrap_or_default()
}

/// A replica bucket's streams: the same peers and writers as its objects
/// (a stream belongs to a bucket, and the bucket is what replicates).
impl BucketFollow {
    /// A report for [`BucketFollow::run_streams`] to keep, naming the
    /// bucket and writers before the first round answers.
    pub fn streams_status(&self) -> FollowStatus {
        Arc::new(Mutex::new(FollowReport {
            peer: self.from.first().map(|a| a.to_string()).unwrap_or_default(),
            bucket: self.bucket.to_string(),
            writers: self.writers.iter().map(peer_id).collect(),
            ..FollowReport::default()
        }))
    }

    /// One round of the bucket's streams: their heads from the first peer
    /// that answers, then every stream of a trusted writer this log is
    /// behind on. Returns the events brought in, or the first refusal once
    /// every stream has been tried.
    pub async fn streams_round(&self, node: &Node, log: &EventLog) -> Result<u64, NodeError> {
        let peers = Peers::new(&self.from)?;
        let status = self.streams_status();
        Ok(self
            .sync_streams(node, log, &peers, None, &status, None)
            .await?
            .0)
    }

    /// A round against the best peer, then the others in turn while they
    /// fail. The heads request waits, at the peer, until the peer's log
    /// holds position `after`. With `ahead`, a live loop's, the following
    /// heads request goes out as soon as this one answers (see
    /// [`NextHeads`]) and is taken up by the next round. Returns the
    /// events imported, the peer's next position (to wait past next time)
    /// and the peer.
    async fn sync_streams(
        &self,
        node: &Node,
        log: &EventLog,
        peers: &Peers,
        after: Option<u64>,
        status: &FollowStatus,
        mut ahead: Option<&mut Option<NextHeads>>,
    ) -> Result<(u64, u64, Multiaddr), NodeError> {
        let mut tried = HashSet::new();
        let mut last = None;
        while let Some((peer, addr)) = peers.best(&tried) {
            let ahead = ahead.as_deref_mut();
            match self
                .sync_streams_with(node, log, (&addr, peers), after, status, ahead)
                .await
            {
                Ok((n, next)) => {
                    peers.reward(peer);
                    return Ok((n, next, addr));
                }
                // The writer's fault, not the peer's: the same from any.
                Err(e @ NodeError::StreamEquivocation { .. }) => return Err(e),
                Err(e) => {
                    tracing::debug!(%addr, "replication round failed: {e}");
                    if let NodeError::Lied { .. } = e {
                        peers.ban(peer);
                        node.disconnect(peer).await;
                    } else {
                        peers.penalize(peer, FAILED);
                    }
                    tried.insert(peer);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| NodeError::NoPeer("every peer is banned".into())))
    }

    async fn sync_streams_with(
        &self,
        node: &Node,
        log: &EventLog,
        (from, peers): (&Multiaddr, &Peers),
        after: Option<u64>,
        status: &FollowStatus,
        mut ahead: Option<&mut Option<NextHeads>>,
    ) -> Result<(u64, u64), NodeError> {
        let request = |after, following| RequestV1::Heads {
            bucket: self.bucket.to_string(),
            after,
            following,
        };
        // The request the last round sent ahead, if it is the one wanted.
        let sent = ahead
            .as_deref_mut()
            .and_then(Option::take)
            .filter(|n| n.from == *from && Some(n.after) == after);
        let followed = sent.as_ref().map(|n| n.following.clone());
        let answer = match sent {
            Some(mut n) => (&mut n.answer).await.unwrap_or_else(|_| {
                Err(NodeError::NoPeer(
                    "the heads request ahead was dropped".into(),
                ))
            }),
            None => node.request(from, request(after, Vec::new())).await,
        };
        let ResponseV1::Heads {
            heads,
            next,
            position,
            storages,
        } = answer?
        else {
            return Err(NodeError::Unexpected {
                peer: from.to_string(),
                what: "a heads request",
            });
        };
        update(status, |r| r.peer_next_position = Some(position));
        // The streams followed so far, at the lengths the peer holds now
        // (so that only their next appends bring their storage along).
        let followed: Vec<Following> = followed
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| {
                let head = heads.iter().find(|h| h.stream == f.stream)?;
                Some(Following {
                    length: head.length,
                    ..f
                })
            })
            .collect();
        // Streams whose writer was caught signing two histories stay out.
        let forked = status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .equivocations
            .clone();
        let (still_forked, behind): (Vec<_>, Vec<_>) = self
            .behind(log, heads)
            .into_iter()
            .partition(|b| forked.contains(&b.stream));
        if let Some(slot) = ahead {
            // The streams this round brings in are the ones likely to
            // grow next (or, when none is behind, those followed so far).
            let following = match behind.is_empty() {
                true => followed,
                false => behind
                    .iter()
                    .take(FOLLOWING)
                    .map(|b| Following {
                        stream: b.stream.clone(),
                        length: b.length,
                    })
                    .collect(),
            };
            let (node, to) = (node.clone(), from.clone());
            let asked = request(Some(next), following.clone());
            *slot = Some(NextHeads {
                from: from.clone(),
                after: next,
                following,
                answer: tokio::spawn(async move { node.request(&to, asked).await }),
            });
        }
        // The storages that came along, by stream (one that does not
        // decode is asked for as any other).
        let mut carried: HashMap<String, StreamStorage> = storages
            .into_iter()
            .filter_map(|s| {
                let (id, _) = hydra_eventlog::storage_bucket(&s.root).ok()?;
                Some((id.to_string(), s))
            })
            .collect();
        update(status, |r| {
            r.rounds.caught_up &= behind.is_empty();
            r.behind = behind
                .iter()
                .take(LAG_LISTED)
                .map(|b| StreamLag {
                    stream: b.stream.clone(),
                    local: b.have,
                    remote: b.length,
                })
                .collect();
        });
        // Only the blocks this log lacks are fetched (what an earlier
        // round brought is not sent again). Four streams catch up at once,
        // and one refused stream (forked, wrongly signed) does not hold
        // back the others.
        let mut streams = futures::stream::iter(behind)
            .map(|behind| {
                let storage = carried.remove(&behind.stream);
                self.catch_up(node, log, (from, peers), (behind, storage), status)
            })
            .buffer_unordered(4);
        let (mut imported, mut refused) = (0, None);
        while let Some(result) = streams.next().await {
            match result {
                Ok(n) => imported += n,
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        // A forked stream keeps the loop failing, so that it is seen.
        if let Some(b) = still_forked.into_iter().next() {
            refused.get_or_insert(NodeError::StreamEquivocation {
                stream: b.stream,
                writer: peer_id(&b.writer),
                length: b.have,
            });
        }
        match refused {
            None => Ok((imported, next)),
            Some(e) => Err(e),
        }
    }

    /// Brings one stream from `have` events to the peer's storage (at
    /// least `length` events): its storage block from `from` (unless it
    /// came with the heads), the blocks this log lacks from the best
    /// peers, then the stream applied, checked whole. Returns the new
    /// events.
    async fn catch_up(
        &self,
        node: &Node,
        log: &EventLog,
        (from, peers): (&Multiaddr, &Peers),
        (Behind { stream, have, .. }, carried): (Behind, Option<StreamStorage>),
        status: &FollowStatus,
    ) -> Result<u64, NodeError> {
        // The tree held here: the peer sends what came after it, and the
        // walk below does not look under what the two trees share.
        let (l, id) = (log.clone(), StreamId::new(stream.clone()));
        let held = blocking(move || l.held_tree(&id?))
            .await
            .map_err(NodeError::Log)?;
        let StreamStorage { root, edges, tree } = match carried {
            Some(storage) => storage,
            None => {
                let request = RequestV1::Storage {
                    stream: stream.clone(),
                    after: held.map(|h| h.last_bundle),
                };
                let ResponseV1::Storage(storage) = node.request(from, request).await? else {
                    return Err(NodeError::Unexpected {
                        peer: from.to_string(),
                        what: "a storage request",
                    });
                };
                storage
            }
        };
        let edges: Vec<Vec<u8>> = edges.into_iter().map(ByteBuf::into_vec).collect();
        let received = root.len()
            + edges.iter().map(Vec::len).sum::<usize>()
            + tree.iter().map(|b| b.len()).sum::<usize>();
        Stats::add(&node.stats().bytes_received, received as u64);
        let given: HashSet<Ref> = edges.iter().map(|b| Ref::of(Codec::PlainNode, b)).collect();
        // Tree blocks that came along, by hash: each is taken only where
        // the walk finds a link to it.
        let mut brought: HashMap<[u8; 32], Vec<u8>> = tree
            .into_iter()
            .map(|b| (*Ref::raw(b.as_slice()).hash(), b.into_vec()))
            .collect();
        let (root, edges) = (Arc::new(root.into_vec()), Arc::new(edges));
        let judged = |e: hydra_eventlog::Error| judged(e, from);
        // The storage must be of this bucket at its writer (the peer said
        // so), and here too: nothing of it is stored otherwise.
        let (id, named) = hydra_eventlog::storage_bucket(&root).map_err(judged)?;
        if named != self.bucket || id.as_str() != stream {
            return Err(NodeError::Lied {
                peer: from.to_string(),
                reason: format!(
                    "it named stream {stream} of bucket {}, and sent the storage of stream {id} of bucket {named}",
                    self.bucket
                ),
            });
        }
        let (l, r, want) = (log.clone(), root.clone(), self.bucket.clone());
        let bucket = blocking(move || {
            let (stream, bucket) = l.storage_target(&r)?;
            if *bucket.name() != want {
                return Err(hydra_eventlog::Error::OtherBucket {
                    stream,
                    bucket: bucket.name().to_string(),
                    asked: want.to_string(),
                });
            }
            Ok(bucket)
        })
        .await
        .map_err(judged)?;

        // Down the DAG from the storage block, a level at a time: what came
        // along or the bucket holds is not fetched again (its tiles are
        // read for their links), the rest comes by want-lists from the best
        // peers and is stored as it arrives.
        let note = |blocks: u64, bytes: u64, _bad: u64| {
            update(status, |r| {
                r.blocks_received += blocks;
                r.bytes_received += bytes;
                r.bytes_per_s.note(r.bytes_received);
            })
        };
        let fetch = Fetch {
            node,
            peers,
            source: Source::Stream(&stream),
            note: &note,
        };
        let malformed = |e: hydra_block::DecodeError| NodeError::Import {
            peer: from.to_string(),
            reason: format!("a block of stream {stream}'s storage: {e}"),
        };
        // Stores verified blocks; returns the plain ones' bytes (tiles),
        // to be walked.
        let store = |batch: Vec<Verified>| {
            let b = bucket.clone();
            blocking(move || {
                let mut blocks = b.writer();
                let mut plain = Vec::new();
                for block in batch {
                    if block.reference().codec().is_plain() {
                        plain.push(block.stored().to_vec());
                    }
                    blocks.put_verified(block)?;
                }
                blocks.flush()?;
                Ok(plain)
            })
        };
        // The held tree's top (a live stream whose new events are all on
        // its edge) is held whole: not walked again.
        let mut level = hydra_block::links(Codec::PlainNode, &root).map_err(malformed)?;
        level.retain(|r| !given.contains(r) && Some(*r) != held.map(|h| h.top));
        while !level.is_empty() {
            let b = bucket.clone();
            let (mut next, lacking) = blocking(move || {
                let (mut next, mut lacking) = (Vec::new(), Vec::new());
                for r in level {
                    if !r.codec().is_plain() {
                        if !b.has(&r)? {
                            lacking.push(r);
                        }
                        continue;
                    }
                    match b.get_stored(&r)? {
                        Some(bytes) => next.push(bytes),
                        None => lacking.push(r),
                    }
                }
                Ok((next, lacking))
            })
            .await
            .map_err(NodeError::Log)?;
            let (came, lacking): (Vec<Ref>, Vec<Ref>) = lacking
                .into_iter()
                .partition(|r| brought.contains_key(r.hash()));
            let came = came
                .into_iter()
                .filter_map(|r| r.verify(brought.remove(r.hash())?).ok())
                .collect();
            next.extend(store(came).await.map_err(NodeError::Log)?);
            let mut batches =
                futures::stream::iter(lacking.chunks(WANT_BATCH).map(<[Ref]>::to_vec))
                    .map(|refs| fetch.fetch(refs))
                    .buffered(IN_FLIGHT);
            while let Some(batch) = batches.next().await {
                next.extend(store(batch?).await.map_err(NodeError::Log)?);
            }
            // What the held tree has at a tile's place is not looked
            // under: a round costs what changed, not the stream.
            let (next, shared): (Vec<Vec<u8>>, Vec<HashSet<Ref>>) = match held {
                None => (next, Vec::new()),
                Some(held) => {
                    let (l, s) = (log.clone(), id.clone());
                    blocking(move || {
                        let shared = next
                            .iter()
                            .map(|b| Ok(l.held_under(&s, &held, b)?.into_iter().collect()))
                            .collect::<Result<_, hydra_eventlog::Error>>()?;
                        Ok((next, shared))
                    })
                    .await
                    .map_err(judged)?
                }
            };
            level = Vec::new();
            for (i, bytes) in next.iter().enumerate() {
                let links = hydra_block::links(Codec::PlainNode, bytes).map_err(malformed)?;
                let held_here = shared.get(i);
                level.extend(
                    links
                        .into_iter()
                        .filter(|r| held_here.is_none_or(|h| !h.contains(r))),
                );
            }
        }

        let (l, writers) = (log.clone(), self.writers.clone());
        let applied = blocking(move || {
            let received = Received {
                root: &root,
                edges: &edges,
            };
            l.apply_storage(received, &writers)
        });
        let n = match applied.await {
            Ok(applied) => applied.events,
            Err(hydra_eventlog::Error::Inconsistent { .. }) if have > 0 => {
                return Err(self.judge(node, log, from, &stream, status).await);
            }
            Err(e) => return Err(judged(e)),
        };
        Stats::add(&node.stats().events_received, n);
        update(status, |r| {
            r.events += n;
            r.events_per_s.note(r.events);
            if let Some(lag) = r.behind.iter_mut().find(|l| l.stream == stream) {
                lag.local += n;
            }
            r.behind.retain(|l| l.local < l.remote);
        });
        if n == 0 {
            return Err(NodeError::Import {
                peer: from.to_string(),
                reason: format!("the storage of stream {stream} brought nothing new"),
            });
        }
        Ok(n)
    }

    /// How many events of the bucket's streams this log lacks of what
    /// the best peer that answers holds now (its heads, asked without
    /// waiting): 0 when caught up.
    pub async fn streams_lag(&self, node: &Node, log: &EventLog) -> Result<u64, NodeError> {
        let peers = Peers::new(&self.from)?;
        let mut tried = HashSet::new();
        let mut last = None;
        while let Some((peer, addr)) = peers.best(&tried) {
            tried.insert(peer);
            let request = RequestV1::Heads {
                bucket: self.bucket.to_string(),
                after: None,
                following: Vec::new(),
            };
            match node.request(&addr, request).await {
                Ok(ResponseV1::Heads { heads, .. }) => {
                    return Ok(self
                        .behind(log, heads)
                        .iter()
                        .map(|b| b.length - b.have)
                        .sum());
                }
                Ok(_) => {
                    last = Some(NodeError::Unexpected {
                        peer: addr.to_string(),
                        what: "a heads request",
                    })
                }
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| NodeError::NoPeer("every peer is banned".into())))
    }

    /// The storage of `stream` did not extend this log's copy: asks the
    /// peer for its root at this copy's length and the proof to its head.
    /// The same root means the peer's history extends this one, so the
    /// blocks it sent were wrong (the peer lied); another root, proven
    /// under the writer's signature, means the writer signed two
    /// histories: both heads and the proof are kept as evidence.
    async fn judge(
        &self,
        node: &Node,
        log: &EventLog,
        from: &Multiaddr,
        stream: &str,
        status: &FollowStatus,
    ) -> NodeError {
        let held = match StreamId::new(stream).map(|id| log.head(&id)) {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => return NodeError::Log(e),
            Err(e) => return NodeError::Log(e.into()),
        };
        let lied = |reason: String| NodeError::Lied {
            peer: from.to_string(),
            reason,
        };
        let request = RequestV1::Extension {
            stream: stream.to_owned(),
            from_length: held.length,
        };
        let ext = match node.request(from, request).await {
            Ok(ResponseV1::Extension(ext)) => ext,
            Ok(_) => {
                return lied(format!(
                    "it answered an extension of {stream} with something else"
                ));
            }
            Err(e) => return e,
        };
        if let Err(e) = ext.verify(&held.signer) {
            return lied(format!(
                "its proof for stream {stream} does not verify: {e}"
            ));
        }
        if !ext.contradicts(&held) {
            return lied(format!(
                "its storage of stream {stream} does not lead to the head its own history proves"
            ));
        }
        let evidence = serde_json::to_vec_pretty(&serde_json::json!({
            "held": held,
            "extension": ext,
        }))
        .expect("heads encode");
        let store = log.store().clone();
        let kept = tokio::task::spawn_blocking(move || {
            store
                .bucket(&hydra_bucket::BucketName::default_bucket(), None)
                .and_then(|b| b.keep_evidence(&evidence))
        })
        .await;
        if let Ok(Err(e)) = kept {
            tracing::error!("keeping evidence: {e}");
        }
        let e = NodeError::StreamEquivocation {
            stream: stream.to_owned(),
            writer: held.signer_peer_id(),
            length: held.length,
        };
        let mut first = false;
        update(status, |r| {
            first = !r.equivocations.iter().any(|s| s == stream);
            if first {
                r.equivocations.push(stream.to_owned());
            }
        });
        if first {
            Stats::add(&node.stats().equivocations, 1);
            tracing::error!("{e}");
        }
        e
    }

    /// The streams of `heads` by a trusted writer that this log holds
    /// fewer events of (a relay may hold other writers' streams in the
    /// bucket: they are not asked for).
    fn behind(&self, log: &EventLog, heads: Vec<StreamHead>) -> Vec<Behind> {
        heads
            .into_iter()
            .filter(|h| self.writers.contains(&h.writer))
            .filter_map(|h| {
                let id = StreamId::new(h.stream.clone()).ok()?;
                let have = log.held_length(&id).unwrap_or(0);
                (have < h.length).then_some(Behind {
                    stream: h.stream,
                    have,
                    length: h.length,
                    writer: h.writer,
                })
            })
            .collect()
    }

    /// Follows the bucket's streams until the task is dropped: each heads
    /// request waits at the peer for the next append past the last one
    /// seen, so new events arrive as they commit. When every peer fails it
    /// waits `retry`, then asks again without waiting.
    pub async fn run_streams(self, node: Node, log: EventLog, status: FollowStatus) {
        let peers = match Peers::new(&self.from) {
            Ok(p) => p,
            Err(e) => return update(&status, |r| r.rounds.last_error = Some(e.to_string())),
        };
        let (mut after, mut ahead) = (None, None);
        loop {
            let result = self
                .sync_streams(&node, &log, &peers, after, &status, Some(&mut ahead))
                .await;
            update(&status, |r| r.rounds.record(&result, &peers));
            match result {
                Ok((n, next, peer)) => {
                    if n > 0 {
                        tracing::info!(from = %peer, events = n, "replicated");
                    }
                    update(&status, |r| {
                        r.peer = peer.to_string();
                        if n == 0 {
                            r.events_per_s.idle();
                        }
                    });
                    after = Some(next);
                }
                Err(e) => {
                    tracing::warn!(bucket = %self.bucket, "replicating streams: {e}");
                    after = None;
                    tokio::time::sleep(self.retry).await;
                }
            }
        }
    }
}

/// A stream's storage refused: the peer's fault when what it sent is
/// not what the writer signed, else this log's.
fn judged(e: hydra_eventlog::Error, peer: &Multiaddr) -> NodeError {
    use hydra_eventlog::Error as E;
    match e {
        E::StoredMismatch { .. }
        | E::CorruptEvent { .. }
        | E::BadHeadSignature(_)
        | E::UntrustedWriter { .. }
        | E::Corrupt { .. } => NodeError::Lied {
            peer: peer.to_string(),
            reason: e.to_string(),
        },
        e => NodeError::Log(e),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, hydra_eventlog::Error> + Send + 'static,
) -> Result<T, hydra_eventlog::Error> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or(Err(hydra_eventlog::Error::Closed))
}
