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
    pub append_seconds: Histogram,
    pub commits: Gauge,
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
            append_seconds: Histogram::new([
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
            ]),
            commits: Gauge::default(),
            registry: Registry::default(),
        };
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
            "Open live subscriptions (SSE)",
            m.subscriptions.clone(),
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
        Metrics { registry, ..m }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
