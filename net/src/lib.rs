//! Peer-to-peer replication over libp2p: a node with the volume's own
//! identity that serves its streams to followers, and follows other
//! writers' streams, verifying everything it receives.
//!
//! Goals: every byte verified, trust only in the writers a follower names.
//! A follower asks a peer for the heads of the streams under a prefix,
//! then for an export of each stream it is behind on: a CARv1 file of the
//! signed head and the events it lacks (`hydra_eventlog::EventLog::export_from`).
//! It applies that through `EventLog::import`, which checks every block
//! against its CID, the head's signature against the trusted writer key,
//! and the records against the signed root from the follower's own Merkle
//! peaks before changing anything. So a peer that lies, corrupts or forks
//! is refused, and serving peers need no trust at all.
//!
//! New heads reach a follower as they commit: its heads request is a long
//! poll that the serving node answers as soon as its log holds a position
//! past the last one the follower saw (or after [`HEADS_WAIT`]). That is a
//! direct protocol rather than gossipsub: a follower names its peer and
//! wants every head under a prefix, which is one request away, with no
//! mesh to maintain and nothing relayed by peers it did not choose.
//!
//! A follower asks for each stream from the version it already holds, so
//! what an earlier head covered is never sent again.
//!
//! Non-goals here, for now: block want-lists for buckets and objects,
//! mDNS, catch-ups larger than one response ([`MAX_RESPONSE`]).
//!
//! Wire messages are versioned (`V1`) and encoded with postcard, one per
//! substream, with bounded request and response sizes (see [`codec`]; its
//! decoders are property-tested and a cargo-fuzz target).

pub mod codec;
mod node;
mod wire;

pub use libp2p::Multiaddr;
pub use node::{Follow, FollowReport, FollowStatus, Node, NodeError};
pub use wire::{
    HEADS_WAIT, MAX_RESPONSE, PROTOCOL, RequestV1, ResponseV1, SyncRequest, SyncResponse,
};
