//! Following a bucket's objects: the writer's signed manifest from any
//! peer that serves the bucket, then each changed object's closure and the
//! blocks this replica lacks, by want-lists, each checked against its ref
//! before it is stored. A peer that sends bytes that do not match is
//! banned and disconnected, and the blocks are asked of another peer.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use hydra_block::{Ref, Verified};
use hydra_bucket::{
    Bucket, BucketError, BucketName, Closure, Key, Manifest, ManifestObject, Store,
};
use libp2p::Multiaddr;
use serde::Serialize;

use crate::fetch::{Fetch, IN_FLIGHT, Source, WANT_BATCH};
use crate::follow::{Rate, Rounds, Status, update};
use crate::node::{Node, NodeError};
use crate::peers::{FAILED, LIED, Peers};
use crate::stats::Stats;
use crate::wire::{BlocksRequestV1, BlocksResponseV1};

/// What a bucket replica follows.
#[derive(Debug, Clone)]
pub struct BucketFollow {
    pub bucket: BucketName,
    /// Peers that serve the bucket: the writer, or other replicas.
    pub from: Vec<Multiaddr>,
    /// Public keys whose manifests this replica accepts.
    pub writers: Vec<[u8; 32]>,
    /// How long to wait after a failed round before asking again.
    pub retry: Duration,
}

/// How a bucket replica is doing, updated as blocks arrive.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BucketReport {
    pub bucket: String,
    /// The peer of the last manifest.
    pub peer: Option<String>,
    /// Seq of the manifest applied here, and of the newest one seen.
    pub local_seq: Option<u64>,
    pub remote_seq: Option<u64>,
    pub objects: u64,
    /// Objects of the newest manifest not yet complete here.
    pub objects_behind: u64,
    /// Blocks still to fetch for them.
    pub blocks_behind: u64,
    pub blocks_received: u64,
    pub bytes_received: u64,
    /// Bytes received per second, while catching up.
    pub bytes_per_s: Rate,
    pub bad_blocks: u64,
    pub equivocations: u64,
    #[serde(flatten)]
    pub rounds: Rounds,
}

pub type BucketStatus = Status<BucketReport>;

/// One round's view: where to ask, where to report.
struct Round<'a> {
    node: &'a Node,
    peers: &'a Peers,
    status: &'a BucketStatus,
    bucket: &'a str,
}

impl BucketFollow {
    pub fn status(&self) -> BucketStatus {
        Arc::new(Mutex::new(BucketReport {
            bucket: self.bucket.to_string(),
            ..BucketReport::default()
        }))
    }

    /// One round: the newest manifest, and every object it lists that
    /// this replica lacks. `key` reads an encrypted bucket; without it the
    /// replica is blind (stores, verifies and serves; cannot read).
    pub async fn round(
        &self,
        node: &Node,
        store: &Store,
        key: Option<&Key>,
        status: &BucketStatus,
    ) -> Result<u64, NodeError> {
        let peers = Peers::new(&self.from)?;
        let synced = self.sync(node, store, key, &peers, None, status).await;
        update(status, |r| r.rounds.peers = peers.report());
        synced
    }

    /// How far this replica is behind the best peer that answers now (its
    /// manifest, asked without waiting): the objects listed there that are
    /// not complete here (at least 1 while a newer manifest is not
    /// applied); 0 when caught up.
    pub async fn lag(&self, node: &Node, store: &Store) -> Result<u64, NodeError> {
        let peers = Peers::new(&self.from)?;
        let status = self.status();
        let round = Round {
            node,
            peers: &peers,
            status: &status,
            bucket: self.bucket.as_str(),
        };
        let (_, _, manifest) = self.manifest(&round, None).await?;
        let (store, name) = (store.clone(), self.bucket.clone());
        blocking(self.bucket.as_str(), move || {
            let Ok(b) = store.bucket(&name, None) else {
                return Ok(manifest.objects.len().max(1) as u64);
            };
            let held = b.replica_manifest()?;
            if let Some(held) = held
                && Manifest::decode_stored(&held)?.seq >= manifest.seq
            {
                return Ok(0);
            }
            let mut missing = 0;
            for o in &manifest.objects {
                missing += u64::from(!b.holds(o)?);
            }
            Ok(missing.max(1))
        })
        .await
    }

    /// Follows until the task is dropped: each manifest request waits at
    /// the peer for a newer manifest, so new objects arrive as they land.
    pub async fn run(self, node: Node, store: Store, key: Option<Key>, status: BucketStatus) {
        let peers = match Peers::new(&self.from) {
            Ok(p) => p,
            Err(e) => return update(&status, |r| r.rounds.last_error = Some(e.to_string())),
        };
        let mut after = None;
        loop {
            let result = self
                .sync(&node, &store, key.as_ref(), &peers, after, &status)
                .await;
            update(&status, |r| r.rounds.record(&result, &peers));
            match result {
                Ok(seq) => after = Some(seq),
                Err(e) => {
                    tracing::warn!(bucket = %self.bucket, "replication: {e}");
                    after = None;
                    tokio::time::sleep(self.retry).await;
                }
            }
        }
    }

    /// Returns the seq of the manifest applied (or already held).
    async fn sync(
        &self,
        node: &Node,
        store: &Store,
        key: Option<&Key>,
        peers: &Peers,
        after: Option<u64>,
        status: &BucketStatus,
    ) -> Result<u64, NodeError> {
        let round = Round {
            node,
            peers,
            status,
            bucket: self.bucket.as_str(),
        };
        let (addr, signed, manifest) = self.manifest(&round, after).await?;
        update(status, |r| {
            r.peer = Some(addr.to_string());
            r.remote_seq = Some(manifest.seq);
            // Behind until a manifest at least this new is applied.
            r.rounds.caught_up &= r.local_seq >= Some(manifest.seq);
        });
        let (name, m, key) = (self.bucket.clone(), manifest.clone(), key.cloned());
        let store = store.clone();
        let (bucket, held) = blocking(self.bucket.as_str(), move || {
            let b = store.replica(&name, &m, key.as_ref())?;
            let held = b.replica_manifest()?;
            Ok((b, held))
        })
        .await?;
        if let Some(held) = held {
            let have = Manifest::decode_stored(&held)
                .map_err(|e| bucket_error(self.bucket.as_str(), e))?;
            if have.seq > manifest.seq || (have.seq == manifest.seq && held == signed) {
                update(status, |r| {
                    r.local_seq = Some(have.seq);
                    r.bytes_per_s.idle();
                });
                return Ok(have.seq.max(manifest.seq));
            }
            if have.seq == manifest.seq && have.writer == manifest.writer {
                return Err(self.equivocation(&round, &bucket, signed, &manifest).await);
            }
        }
        let (b, listed) = (bucket.clone(), manifest.objects.clone());
        let todo = blocking(self.bucket.as_str(), move || {
            let mut todo = Vec::new();
            for o in listed {
                if !b.holds(&o)? {
                    todo.push(o);
                }
            }
            Ok(todo)
        })
        .await?;
        update(status, |r| {
            r.objects = manifest.objects.len() as u64;
            r.objects_behind = todo.len() as u64;
            r.blocks_behind = todo.iter().map(|o| o.blocks).sum();
        });
        for o in todo {
            round.object(&bucket, o).await?;
            update(status, |r| {
                r.objects_behind = r.objects_behind.saturating_sub(1)
            });
        }
        let seq = manifest.seq;
        let b = bucket.clone();
        blocking(self.bucket.as_str(), move || {
            b.apply_manifest(&signed, &manifest)
        })
        .await?;
        update(status, |r| {
            r.local_seq = Some(seq);
            r.blocks_behind = 0;
            r.bytes_per_s.idle();
        });
        tracing::info!(bucket = %self.bucket, seq, "replicated manifest");
        Ok(seq)
    }

    /// The newest manifest a trusted writer signed, from the best peer
    /// that answers with one.
    async fn manifest(
        &self,
        round: &Round<'_>,
        after: Option<u64>,
    ) -> Result<(Multiaddr, Vec<u8>, Manifest), NodeError> {
        let mut tried = HashSet::new();
        let mut last = None;
        while let Some((peer, addr)) = round.peers.best(&tried) {
            tried.insert(peer);
            let request = BlocksRequestV1::Manifest {
                bucket: self.bucket.to_string(),
                after,
            };
            let signed = match round.node.blocks(&addr, request).await {
                Ok(BlocksResponseV1::Manifest(m)) => m.into_vec(),
                Ok(_) => {
                    round.peers.penalize(peer, LIED);
                    last = Some(NodeError::Unexpected {
                        peer: addr.to_string(),
                        what: "a manifest request",
                    });
                    continue;
                }
                Err(e) => {
                    round.peers.penalize(peer, FAILED);
                    last = Some(e);
                    continue;
                }
            };
            match Manifest::open(&signed, &self.bucket, &self.writers) {
                Ok(m) => {
                    round.peers.reward(peer);
                    return Ok((addr, signed, m));
                }
                Err(e) => {
                    // Wrongly signed, another signer, or garbage: that
                    // peer is not to be believed.
                    tracing::warn!(%addr, bucket = %self.bucket, "refused a manifest: {e}");
                    round.peers.ban(peer);
                    round.node.disconnect(peer).await;
                    last = Some(bucket_error(self.bucket.as_str(), e));
                }
            }
        }
        Err(last.unwrap_or_else(|| NodeError::NoPeer("every peer is banned".into())))
    }

    /// Keeps a second manifest of the same seq as evidence and reports it.
    async fn equivocation(
        &self,
        round: &Round<'_>,
        bucket: &Bucket,
        signed: Vec<u8>,
        manifest: &Manifest,
    ) -> NodeError {
        let b = bucket.clone();
        if let Err(e) = blocking(self.bucket.as_str(), move || b.keep_evidence(&signed)).await {
            return e;
        }
        Stats::add(&round.node.stats().equivocations, 1);
        update(round.status, |r| r.equivocations += 1);
        let e = NodeError::Equivocation {
            bucket: self.bucket.to_string(),
            writer: hydra_volume::peer_id_of(&manifest.writer)
                .map(|p| p.to_string())
                .unwrap_or_default(),
            seq: manifest.seq,
        };
        tracing::error!("{e}");
        e
    }
}

impl Round<'_> {
    /// Fetches one object: its closure, then the blocks this replica
    /// lacks, stored (pinned) as they arrive; names it when complete.
    async fn object(&self, bucket: &Bucket, o: ManifestObject) -> Result<(), NodeError> {
        let closure_block = self
            .fetch(vec![o.closure])
            .await?
            .pop()
            .expect("one block asked, one got");
        let closure =
            Closure::decode(closure_block.stored()).map_err(|e| bucket_error(self.bucket, e))?;
        let b = bucket.clone();
        let listed = closure.blocks.clone();
        let lacking = blocking(self.bucket, move || b.lacking(&listed)).await?;
        update(self.status, |r| {
            r.blocks_behind = r
                .blocks_behind
                .saturating_sub(o.blocks - lacking.len() as u64)
        });
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<Verified>>(IN_FLIGHT);
        let (b, name) = (bucket.clone(), self.bucket.to_string());
        let store = tokio::task::spawn_blocking(move || {
            let mut receiver = b.receiver();
            receiver.verified(closure_block)?;
            while let Some(batch) = rx.blocking_recv() {
                for block in batch {
                    receiver.verified(block)?;
                }
            }
            receiver.finish(&o, &closure)
        });
        let mut batches = futures::stream::iter(lacking.chunks(WANT_BATCH).map(<[Ref]>::to_vec))
            .map(|refs| self.fetch(refs))
            .buffered(IN_FLIGHT);
        while let Some(batch) = batches.next().await {
            let batch = batch?;
            let n = batch.len() as u64;
            if tx.send(batch).await.is_err() {
                break; // the store failed; its error comes below
            }
            update(self.status, |r| {
                r.blocks_behind = r.blocks_behind.saturating_sub(n)
            });
        }
        drop(tx);
        store
            .await
            .map_err(|_| NodeError::Stopped)?
            .map(|_| ())
            .map_err(|e| bucket_error(&name, e))
    }

    /// The stored bytes of `refs`, each checked against its ref, from the
    /// best peers (see [`Fetch`]).
    async fn fetch(&self, refs: Vec<Ref>) -> Result<Vec<Verified>, NodeError> {
        let note = |blocks: u64, bytes: u64, bad: u64| {
            update(self.status, |r| {
                r.blocks_received += blocks;
                r.bytes_received += bytes;
                r.bytes_per_s.note(r.bytes_received);
                r.bad_blocks += bad;
            })
        };
        Fetch {
            node: self.node,
            peers: self.peers,
            source: Source::Bucket(self.bucket),
            note: &note,
        }
        .fetch(refs)
        .await
    }
}

fn bucket_error(bucket: &str, e: BucketError) -> NodeError {
    NodeError::Bucket {
        bucket: bucket.to_owned(),
        reason: e.to_string(),
    }
}

async fn blocking<T: Send + 'static>(
    bucket: &str,
    f: impl FnOnce() -> Result<T, BucketError> + Send + 'static,
) -> Result<T, NodeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| NodeError::Stopped)?
        .map_err(|e| bucket_error(bucket, e))
}
