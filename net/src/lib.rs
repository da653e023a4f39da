//! Peer-to-peer replication over libp2p: a node with the volume's own
//! identity that serves its streams and buckets to followers, and follows
//! other writers' streams and buckets, verifying everything it receives.
//!
//! Goals: every byte verified, trust only in the writers a follower names.
//!
//! Streams (`/hydra/sync/1`): a follower asks a peer for the heads of the
//! streams under a prefix, then for an export of each stream it is behind
//! on: a CARv1 file of the signed head and the events it lacks
//! (`hydra_eventlog::EventLog::export_part`). It applies that through
//! `EventLog::import_bytes`, which checks every block against its CID, the
//! head's signature against the trusted writer key, and the records
//! against the signed root from the follower's own Merkle peaks before
//! changing anything. So a peer that lies, corrupts or forks is refused,
//! and serving peers need no trust at all. A follower asks for each
//! stream from the version it already holds, so what an earlier head
//! covered is never sent again.
//!
//! Buckets (`/hydra/blocks/1`): a replica asks for the bucket's manifest
//! (`hydra_bucket::Manifest`, signed by the writer), then by want-lists
//! for each changed object's closure and the blocks it lacks, checking
//! each against its ref before storing it. A replica without the bucket's
//! key is blind: it stores, verifies and serves, and cannot read.
//!
//! New heads and manifests reach a follower as they commit: its heads and
//! manifest requests are long polls that the serving node answers as soon
//! as there is something newer than the follower has seen (or after
//! [`HEADS_WAIT`]). That is a direct protocol rather than gossipsub: a
//! follower names its peers and wants everything under a prefix or in a
//! bucket, which is one request away, with no mesh to maintain and nothing
//! relayed by peers it did not choose.
//!
//! Several peers can serve one follower: each has a score (see
//! [`peers`](crate::PeerScore)); a failed request moves to the next, and a
//! peer that sends bytes that do not match their ref is banned and
//! disconnected.
//!
//! Wire messages are versioned (`V1`) and encoded with postcard, one per
//! substream, with bounded request and response sizes, want-list lengths
//! and bytes per answer (see [`codec`] and [`wire`]); the decoders are
//! property-tested and a cargo-fuzz target.

pub mod codec;
mod fetch;
mod follow;
mod node;
mod objects;
mod peers;
mod serve;
mod stats;
pub mod wire;

pub use follow::{Follow, FollowReport, FollowStatus, Rate, Rounds, Status, StreamLag};
pub use libp2p::{Multiaddr, PeerId, multiaddr};
pub use node::{Node, NodeError, PeerInfo};
pub use objects::{BucketFollow, BucketReport, BucketStatus};
pub use peers::{BAN, PeerScore};
pub use serve::{ServedBuckets, Serving};
pub use stats::{Stats, StatsSnapshot};
pub use wire::{
    BLOCKS_PROTOCOL, HEADS_WAIT, MAX_RESPONSE, MAX_WANT, PROTOCOL, RequestV1, ResponseV1,
    SyncRequest, SyncResponse,
};
