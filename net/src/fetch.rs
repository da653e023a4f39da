//! Fetching blocks by want-lists, for objects and streams alike: the
//! stored bytes of each ref, checked against it before anyone stores
//! them, from the best peers. A peer that lacks some leaves them to the
//! next; one that sends bytes that do not match their ref is banned and
//! disconnected, and what it was asked goes to another.

use std::collections::HashSet;

use hydra_block::{Ref, Verified};
use libp2p::PeerId;

use crate::node::{Node, NodeError};
use crate::peers::{FAILED, LIED, Peers};
use crate::stats::Stats;
use crate::wire::{Block, BlocksRequestV1, BlocksResponseV1};

/// Refs per want-list (a fraction of [`crate::MAX_WANT`], so that several
/// answers are in flight at once, each within the byte budget).
pub(crate) const WANT_BATCH: usize = 256;
/// Want-lists in flight per object or stream: bounds the memory of a
/// catch-up.
pub(crate) const IN_FLIGHT: usize = 3;

/// Whose blocks are wanted: a bucket's (objects), or a stream's storage's.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source<'a> {
    Bucket(&'a str),
    Stream(&'a str),
}

impl Source<'_> {
    fn request(&self, refs: Vec<Ref>) -> BlocksRequestV1 {
        match *self {
            Source::Bucket(bucket) => BlocksRequestV1::Want {
                bucket: bucket.to_owned(),
                refs,
            },
            Source::Stream(stream) => BlocksRequestV1::StreamBlocks {
                stream: stream.to_owned(),
                refs,
            },
        }
    }
}

impl std::fmt::Display for Source<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Bucket(b) => write!(f, "bucket {b}"),
            Source::Stream(s) => write!(f, "stream {s}"),
        }
    }
}

/// One fetch's view: where to ask, and whom to tell what arrived.
pub(crate) struct Fetch<'a> {
    pub node: &'a Node,
    pub peers: &'a Peers,
    pub source: Source<'a>,
    /// Told, for each answer, the good blocks, their bytes and the bad
    /// ones.
    pub note: &'a (dyn Fn(u64, u64, u64) + Send + Sync),
}

impl Fetch<'_> {
    /// The stored bytes of `refs`, each checked against its ref.
    pub async fn fetch(&self, refs: Vec<Ref>) -> Result<Vec<Verified>, NodeError> {
        let mut want = refs;
        let mut got = Vec::with_capacity(want.len());
        let mut tried: HashSet<PeerId> = HashSet::new();
        let mut last = None;
        while !want.is_empty() {
            let Some((peer, addr)) = self.peers.best(&tried) else {
                return Err(last.unwrap_or_else(|| {
                    NodeError::NoPeer(format!("no peer has block {} of {}", want[0], self.source))
                }));
            };
            let blocks = match self
                .node
                .blocks(&addr, self.source.request(want.clone()))
                .await
            {
                Ok(BlocksResponseV1::Blocks(b)) if b.len() == want.len() => b,
                Ok(_) => {
                    self.peers.penalize(peer, LIED);
                    tried.insert(peer);
                    continue;
                }
                Err(e) => {
                    self.peers.penalize(peer, FAILED);
                    tried.insert(peer);
                    last = Some(e);
                    continue;
                }
            };
            // Hash off the async threads: answers are up to 16 MiB.
            let asked = std::mem::take(&mut want);
            let checked = tokio::task::spawn_blocking(move || check(asked, blocks))
                .await
                .map_err(|_| NodeError::Stopped)?;
            let stats = self.node.stats();
            let bytes: u64 = checked.good.iter().map(|b| b.stored().len() as u64).sum();
            Stats::add(&stats.blocks_received, checked.good.len() as u64);
            Stats::add(&stats.bytes_received, bytes);
            (self.note)(checked.good.len() as u64, bytes, checked.bad);
            if checked.bad > 0 {
                Stats::add(&stats.bad_blocks, checked.bad);
                tracing::warn!(%addr, bad = checked.bad, "a peer sent blocks that do not match their refs: banned");
                self.peers.ban(peer);
                self.node.disconnect(peer).await;
                tried.insert(peer);
            } else if checked.good.is_empty() && checked.later == 0 {
                // It has none of what is left.
                tried.insert(peer);
            } else {
                self.peers.reward(peer);
            }
            got.extend(checked.good);
            want = checked.again;
        }
        Ok(got)
    }
}

/// A want-list answer, sorted.
struct Checked {
    good: Vec<Verified>,
    /// Refs to ask again (of this peer or another).
    again: Vec<Ref>,
    bad: u64,
    later: u64,
}

fn check(asked: Vec<Ref>, blocks: Vec<Block>) -> Checked {
    let mut c = Checked {
        good: Vec::new(),
        again: Vec::new(),
        bad: 0,
        later: 0,
    };
    for (r, b) in asked.into_iter().zip(blocks) {
        match b {
            Block::Have(bytes) => match r.verify(bytes.into_vec()) {
                Ok(block) => c.good.push(block),
                Err(_) => {
                    c.bad += 1;
                    c.again.push(r);
                }
            },
            Block::DontHave => c.again.push(r),
            Block::Later => {
                c.later += 1;
                c.again.push(r);
            }
        }
    }
    c
}
