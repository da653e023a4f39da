//! Counters of what a node sent, received and refused, for metrics and
//! `hydra replicate status`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters, shared by the node's tasks.
#[derive(Debug, Default)]
pub struct Stats {
    pub blocks_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub blocks_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    /// Blocks whose bytes did not hash to the ref they were sent for.
    pub bad_blocks: AtomicU64,
    /// Two manifests or heads from one writer that cannot both be true.
    pub equivocations: AtomicU64,
    pub events_received: AtomicU64,
}

/// The counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StatsSnapshot {
    pub blocks_received: u64,
    pub bytes_received: u64,
    pub blocks_sent: u64,
    pub bytes_sent: u64,
    pub bad_blocks: u64,
    pub equivocations: u64,
    pub events_received: u64,
}

impl Stats {
    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StatsSnapshot {
            blocks_received: get(&self.blocks_received),
            bytes_received: get(&self.bytes_received),
            blocks_sent: get(&self.blocks_sent),
            bytes_sent: get(&self.bytes_sent),
            bad_blocks: get(&self.bad_blocks),
            equivocations: get(&self.equivocations),
            events_received: get(&self.events_received),
        }
    }
}
