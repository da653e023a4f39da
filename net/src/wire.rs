//! The wire messages: `/hydra/sync/4` (a bucket's stream heads, streams'
//! storage) and
//! `/hydra/blocks/1` (bucket manifests, and blocks of buckets and streams
//! by ref). Each enum is versioned (`V1`) so that a later version can be
//! added beside it.

use hydra_block::Ref;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

/// The stream protocol's name.
pub const PROTOCOL: &str = "/hydra/sync/4";
/// The block exchange protocol's name.
pub const BLOCKS_PROTOCOL: &str = "/hydra/blocks/1";
/// Largest response a node accepts (a want-list's blocks).
pub const MAX_RESPONSE: u64 = 64 << 20;
/// Largest request a node accepts.
pub const MAX_REQUEST: u64 = 64 << 10;
/// Longest a heads or manifest request waits for a change before answering.
pub const HEADS_WAIT: std::time::Duration = std::time::Duration::from_secs(20);
/// Edge block bytes a storage answer carries along (a stream's open
/// edge is usually a few KiB: a live follower then needs one answer).
pub const STORAGE_EDGE_BYTES: usize = 1 << 20;
/// Streams a heads request may ask to have their storage carried.
pub const FOLLOWING: usize = 4;
/// Tree block bytes (tiles, then bundles) a storage answer carries along
/// past the asker's tree: a few bundles, so that a live follower needs
/// no want-list when bundles are sealed.
pub const STORAGE_TREE_BYTES: usize = 4 << 20;
/// Most refs one want-list may name.
pub const MAX_WANT: usize = 1024;
/// Block bytes a node puts in one answer; the rest are answered
/// [`Block::Later`] (one block always goes, however large: blocks are
/// bounded by `hydra_bucket::MAX_BLOCK_SIZE`, well within [`MAX_RESPONSE`]).
pub const MAX_BLOCKS_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncRequest {
    V1(RequestV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RequestV1 {
    /// The streams of `bucket` (its replica's follow loop asks) with
    /// their lengths and writers. With `after`, the answer waits (up to
    /// [`HEADS_WAIT`]) until the cursor passes `after`: a follower passes
    /// the `next` of its last answer and hears of new appends as they
    /// commit, without polling. The answer carries the storage of each
    /// stream `following` names (at most [`FOLLOWING`]) that is longer
    /// than the length named, so that a live round needs no storage
    /// request.
    Heads {
        bucket: String,
        after: Option<u64>,
        following: Vec<Following>,
    },
    /// The stream's storage block (`hydra_eventlog::Storage`): the
    /// writer's signed stored head, linking the stream's tree and edge
    /// blocks. Edge blocks come along up to [`STORAGE_EDGE_BYTES`], and
    /// the tree blocks past bundle `after` (the last one the asker's tree
    /// links; `None`: it holds none) up to [`STORAGE_TREE_BYTES`]; the
    /// rest is asked by want-lists ([`BlocksRequestV1::StreamBlocks`]).
    Storage { stream: String, after: Option<u64> },
    /// The stream's head, its root at `from_length` and the proof between
    /// them (`hydra_eventlog::Extension`): asked when a stream's storage
    /// does not extend the asker's copy, to tell a peer's lie from a
    /// forked writer.
    Extension { stream: String, from_length: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncResponse {
    V1(ResponseV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResponseV1 {
    /// The bucket's streams; a cursor to pass as the next request's
    /// `after` (it moves with every append and every stream taken in
    /// blind), and the log position the next append will get.
    /// `storages`: those of the streams followed that grew (see
    /// [`RequestV1::Heads`]).
    Heads {
        heads: Vec<StreamHead>,
        next: u64,
        position: u64,
        storages: Vec<StreamStorage>,
    },
    Storage(StreamStorage),
    Extension(Box<hydra_eventlog::Extension>),
    Error(String),
}

/// A stream a follower is following, and the length it holds (or will
/// have when its round ends): its storage is carried with the tree
/// blocks of the bundles that hold later events (those before, it holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Following {
    pub stream: String,
    pub length: u64,
}

/// A stream's storage, as stored: the storage block, edge blocks in its
/// link order (up to [`STORAGE_EDGE_BYTES`]), tree blocks (tiles top
/// first, then bundles; up to [`STORAGE_TREE_BYTES`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamStorage {
    pub root: ByteBuf,
    pub edges: Vec<ByteBuf>,
    pub tree: Vec<ByteBuf>,
}

/// A stream as a heads answer names it: a follower asks for the storage
/// of those whose writer it trusts and that it holds fewer events of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHead {
    pub stream: String,
    pub length: u64,
    /// The writer's public key (its signed head is checked when the
    /// storage comes: a peer that names the wrong one has lied).
    pub writer: [u8; 32],
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlocksRequest {
    V1(BlocksRequestV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlocksRequestV1 {
    /// The bucket's signed manifest (`hydra_bucket::Manifest`). With
    /// `after`, the answer waits (up to [`HEADS_WAIT`]) for one whose
    /// `seq` is greater: how replicas hear of new objects as they land.
    Manifest { bucket: String, after: Option<u64> },
    /// Blocks of the bucket, by ref (at most [`MAX_WANT`]).
    Want { bucket: String, refs: Vec<Ref> },
    /// Blocks of the stream's storage (tiles, bundles, edge blocks), by
    /// ref (at most [`MAX_WANT`]): served to the peers that may read
    /// streams, and only blocks of that stream.
    StreamBlocks { stream: String, refs: Vec<Ref> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlocksResponse {
    V1(BlocksResponseV1),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BlocksResponseV1 {
    Manifest(ByteBuf),
    /// One answer per ref asked, in order.
    Blocks(Vec<Block>),
    Error(String),
}

/// The answer for one wanted ref.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Block {
    /// The stored bytes: the asker checks them against the ref.
    Have(ByteBuf),
    DontHave,
    /// Not in this answer (over [`MAX_BLOCKS_BYTES`]): ask again.
    Later,
}
