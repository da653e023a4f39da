//! Peer-to-peer replication over libp2p: a node with the volume's own
//! identity that serves its streams and buckets to followers, and follows
//! other writers' streams and buckets, verifying everything it receives.
//!
//! Goals: every byte verified, trust only in the writers a follower names.
//!
//! A replica names a bucket, the peers that serve it and the writers it
//! trusts ([`BucketFollow`]); the bucket brings its objects and its
//! streams, each as the blocks the writer's bucket stores (compressed and
//! encrypted as they are), fetched by want-lists from the best peers and
//! checked against their refs before they are stored.
//!
//! Streams (`/hydra/sync/4`): a follower asks a peer for the heads of the
//! bucket's streams (each with its writer), and for each stream of a
//! trusted writer it is behind on, the stream's storage block (the
//! writer's signed stored head, with the open edge and the tree blocks
//! past the follower's tree; a live follower's heads answer carries the
//! storage of the streams it follows); it walks the storage down where
//! it differs from what it holds, fetches the tiles, bundles and edge
//! blocks it lacks and did not get along (`/hydra/blocks/1`), and
//! applies the stream through `hydra_eventlog::EventLog::apply_storage`,
//! which checks the signature against the trusted writers and every
//! block and record against what the signed head commits to before
//! changing anything. So a peer that lies, corrupts or forks is refused,
//! and serving peers need no trust at all.
//!
//! Objects (`/hydra/blocks/1`): a replica asks for the bucket's manifest
//! (`hydra_bucket::Manifest`, signed by the writer), then by want-lists
//! for each changed object's closure and the blocks it lacks. A replica
//! without the bucket's key is blind: it stores, verifies and serves its
//! objects and streams, and cannot read them.
//!
//! New heads and manifests reach a follower as they commit: its heads and
//! manifest requests are long polls that the serving node answers as soon
//! as there is something newer than the follower has seen (or after
//! [`HEADS_WAIT`]). That is a direct protocol rather than gossipsub: a
//! follower names its peers and wants everything in a bucket, which is
//! one request away, with no mesh to maintain and nothing relayed by
//! peers it did not choose.
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

pub use follow::{FollowReport, FollowStatus, Rate, Rounds, Status, StreamLag};
pub use libp2p::{Multiaddr, PeerId, multiaddr};
pub use node::{Node, NodeError, PeerInfo};
pub use objects::{BucketFollow, BucketReport, BucketStatus};
pub use peers::{BAN, PeerScore};
pub use serve::{ServedBuckets, Serving};
pub use stats::{Stats, StatsSnapshot};
pub use wire::{
    BLOCKS_PROTOCOL, Following, HEADS_WAIT, MAX_RESPONSE, MAX_WANT, PROTOCOL, RequestV1,
    ResponseV1, StreamHead, StreamStorage, SyncRequest, SyncResponse,
};
