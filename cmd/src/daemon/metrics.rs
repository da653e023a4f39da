//! Prometheus metrics (`GET /metrics`, text format).

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Counters the handlers update. Names have no `_total`: the client
/// library appends it to counters.
pub struct Metrics {
    registry: Registry,
    pub appends: Counter,
    pub events_appended: Counter,
    pub events_read: Counter,
    pub bytes_in: Counter,
    pub bytes_out: Counter,
    pub subscriptions: Gauge,
    /// Connections served in the subscribers' lane (see `lanes.rs`).
    pub subscriber_lane: Gauge,
    pub append_seconds: Histogram,
    pub commits: Gauge,
    p2p: P2pCounters,
    pub replication_blocks_behind: Gauge,
    pub replication_failing: Gauge,
    /// Requests refused for a missing, unknown or insufficient token.
    pub auth_failures: Counter,
}

/// Counters mirrored from the libp2p node's own (`hydra_net::Stats`):
/// raised by the difference at each scrape, one scrape at a time.
#[derive(Default)]
struct P2pCounters {
    lock: std::sync::Mutex<()>,
    blocks_received: Counter,
    bytes_received: Counter,
    blocks_sent: Counter,
    bytes_sent: Counter,
    bad_blocks: Counter,
    equivocations: Counter,
    events_received: Counter,
}

impl P2pCounters {
    /// Each counter: name, help, and its value in `s`.
    fn each(
        &self,
        s: &hydra_net::StatsSnapshot,
    ) -> [(&'static str, &'static str, &Counter, u64); 7] {
        [
            (
                "p2p_blocks_received",
                "Blocks received from peers, each verified",
                &self.blocks_received,
                s.blocks_received,
            ),
            (
                "p2p_bytes_received",
                "Bytes received from peers (blocks and stream exports)",
                &self.bytes_received,
                s.bytes_received,
            ),
            (
                "p2p_blocks_sent",
                "Blocks served to peers",
                &self.blocks_sent,
                s.blocks_sent,
            ),
            (
                "p2p_bytes_sent",
                "Bytes served to peers",
                &self.bytes_sent,
                s.bytes_sent,
            ),
            (
                "p2p_bad_blocks",
                "Blocks refused: their bytes did not match their ref",
                &self.bad_blocks,
                s.bad_blocks,
            ),
            (
                "p2p_equivocations",
                "Writers caught signing two contradicting manifests",
                &self.equivocations,
                s.equivocations,
            ),
            (
                "p2p_events_received",
                "Events replicated from followed writers",
                &self.events_received,
                s.events_received,
            ),
        ]
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("hydra");
        let m = Metrics {
            appends: Counter::default(),
            events_appended: Counter::default(),
            events_read: Counter::default(),
            bytes_in: Counter::default(),
            bytes_out: Counter::default(),
            subscriptions: Gauge::default(),
            subscriber_lane: Gauge::default(),
            append_seconds: Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
            ]),
            commits: Gauge::default(),
            p2p: P2pCounters::default(),
            replication_blocks_behind: Gauge::default(),
            replication_failing: Gauge::default(),
            auth_failures: Counter::default(),
            registry: Registry::default(),
        };
        for (name, help, c, _) in m.p2p.each(&Default::default()) {
            registry.register(name, help, c.clone());
        }
        registry.register(
            "replication_blocks_behind",
            "Blocks replica buckets still have to fetch",
            m.replication_blocks_behind.clone(),
        );
        registry.register(
            "replication_failing",
            "Follow loops and replica buckets whose last round failed",
            m.replication_failing.clone(),
        );
        registry.register(
            "appends",
            "Append requests that succeeded",
            m.appends.clone(),
        );
        registry.register(
            "events_appended",
            "Events appended",
            m.events_appended.clone(),
        );
        registry.register(
            "events_read",
            "Events returned by reads and subscriptions",
            m.events_read.clone(),
        );
        registry.register(
            "bytes_in",
            "Request body bytes stored (events, blocks, objects)",
            m.bytes_in.clone(),
        );
        registry.register("bytes_out", "Payload bytes served", m.bytes_out.clone());
        registry.register(
            "subscriptions",
            "Open live subscriptions (SSE, gRPC, RESP3)",
            m.subscriptions.clone(),
        );
        registry.register(
            "subscriber_lane_connections",
            "Connections moved to the subscribers' lane (a request on them subscribed)",
            m.subscriber_lane.clone(),
        );
        registry.register(
            "append_duration_seconds",
            "Time from an append request to its durable commit",
            m.append_seconds.clone(),
        );
        registry.register(
            "commits",
            "Event log commits (one fsync each in sync mode)",
            m.commits.clone(),
        );
        registry.register(
            "auth_failures",
            "Requests refused: no token, an unknown or revoked one, or one without the scope",
            m.auth_failures.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Brings the p2p counters up to the node's.
    pub fn set_p2p(&self, s: &hydra_net::StatsSnapshot) {
        let _one = self.p2p.lock.lock().unwrap_or_else(|e| e.into_inner());
        for (_, _, c, v) in self.p2p.each(s) {
            c.inc_by(v.saturating_sub(c.get()));
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
