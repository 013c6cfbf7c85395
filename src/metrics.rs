//! `/metrics`: every series of the node in the OpenMetrics text format (prometheus-client).
//!
//! The actors keep plain atomics (tests read them directly) and prometheus-client families and
//! histograms ([`Series`]); what the HTTP layer and the backend know (webhooks, tools, consoles,
//! leases, dead letters) is read at scrape time. Each scrape builds a small registry over all of
//! it, so nothing is counted twice and nothing needs registering at start-up.

use crate::app::AppState;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::Ordering;
use switchboard_actors::breaker::BreakerState;
use switchboard_actors::metrics::{Labels, Series};

/// The media type of the exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One series read at scrape time: `(labels, value)` rows under one name.
#[derive(Debug)]
struct Read {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    rows: Vec<(Labels, f64)>,
}

impl Read {
    fn one(name: &'static str, help: &'static str, kind: MetricType, value: f64) -> Self {
        Self { name, help, kind, rows: vec![(Vec::new(), value)] }
    }
}

/// What the scrape read, encoded by prometheus-client.
#[derive(Debug)]
struct Snapshot(Vec<Read>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for read in &self.0 {
            let mut family = encoder.encode_descriptor(read.name, read.help, None, read.kind)?;
            match read.rows.as_slice() {
                // One unlabelled value: `name 3`, not `name{} 3`.
                [(labels, value)] if labels.is_empty() => encode_value(&read.kind, *value, family)?,
                rows => {
                    for (labels, value) in rows {
                        encode_value(&read.kind, *value, family.encode_family(labels)?)?;
                    }
                }
            }
        }
        Ok(())
    }
}

/// Counters are whole numbers here; gauges mostly are too, and print as such (`3`, not `3.0`).
fn encode_value(kind: &MetricType, value: f64, metric: MetricEncoder) -> Result<(), std::fmt::Error> {
    match kind {
        MetricType::Counter => ConstCounter::new(value as u64).encode(metric),
        _ if value.fract() == 0.0 && value.abs() < 9e15 => ConstGauge::new(value as i64).encode(metric),
        _ => ConstGauge::new(value).encode(metric),
    }
}

/// The exposition text of this node.
pub async fn render(state: &AppState) -> String {
    let mut registry = Registry::with_prefix("switchboard");
    let hub = state.hub.metrics();
    register_series(&mut registry, &hub.series);
    let mut reads = Vec::new();
    for (name, help, value) in hub.counters() {
        reads.push(Read::one(name, help, MetricType::Counter, value as f64));
    }
    let live = hub.live_conversations.load(Ordering::Relaxed) as f64;
    reads.push(Read::one("live_conversations", "Conversation actors alive now.", MetricType::Gauge, live));
    reads.push(breakers(&hub.series));
    reads.extend(http_reads(state));
    reads.extend(backend_reads(state).await);
    registry.register_collector(Box::new(Snapshot(reads)));
    let mut process = Registry::default();
    if let Some(rss) = resident_bytes() {
        let help = "Resident memory of the process.";
        process.register_collector(Box::new(Snapshot(vec![Read::one(
            "process_resident_memory_bytes",
            help,
            MetricType::Gauge,
            rss as f64,
        )])));
    }
    let mut out = String::new();
    // The node's own registry carries the prefix; the process gauge keeps its standard name.
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &registry);
    let _ = prometheus_client::encoding::text::encode_registry(&mut out, &process);
    let _ = prometheus_client::encoding::text::encode_eof(&mut out);
    out
}

fn register_series(registry: &mut Registry, series: &Series) {
    let s = series.clone();
    registry.register(
        "reply_latency_seconds",
        "Customer message accepted at a webhook until the provider accepted the automated reply, by channel",
        s.reply_latency,
    );
    registry.register(
        "agent_latency_seconds",
        "How long an agent took: ai = model turn with its queueing, queue = wait for a human, by agent",
        s.agent_latency,
    );
    registry.register("events_published", "Events this node put on the bus, by partition", s.events_published);
    registry.register("events_consumed", "Events this node handed to conversations, by partition", s.events_consumed);
    registry.register("messages", "Customer messages in and messages sent out, by channel and direction", s.messages);
    registry.register(
        "rate_limited",
        "Work held back or refused by a rate limit, by scope (llm, provider, tools)",
        s.rate_limited,
    );
    registry.register(
        "replies_queued",
        "Replies in the outboxes, waiting or being sent (past server.max_queued_replies webhooks get 503)",
        s.replies_queued,
    );
    registry.register(
        "mailbox_depth",
        "Bus events handed to conversation actors and still in flight (queued or being handled)",
        s.mailbox_depth,
    );
}

/// Breaker positions: 0 closed, 1 half-open, 2 open.
fn breakers(series: &Series) -> Read {
    let rows = series
        .breaker_states()
        .into_iter()
        .map(|(name, state)| {
            let value = match state {
                BreakerState::Closed => 0.0,
                BreakerState::HalfOpen => 1.0,
                BreakerState::Open => 2.0,
            };
            (vec![("breaker", name)], value)
        })
        .collect();
    let help = "Circuit breaker position (0 closed, 1 half-open, 2 open), by breaker (llm:<tenant>, outbound:<tenant>:<channel>).";
    Read { name: "circuit_breaker_state", help, kind: MetricType::Gauge, rows }
}

/// What the HTTP surfaces counted: webhooks, tools, consoles, web chat sockets.
fn http_reads(state: &AppState) -> Vec<Read> {
    let webhooks = state
        .webhooks
        .rows()
        .into_iter()
        .map(|(channel, outcome, n)| (vec![("channel", channel.to_owned()), ("outcome", outcome.to_owned())], n as f64))
        .collect();
    let tools = state
        .tools
        .call_counts()
        .into_iter()
        .map(|(tool, result, n)| (vec![("tool", tool), ("result", result.to_owned())], n as f64))
        .collect();
    let unknown = state.webhooks.unknown_numbers.load(Ordering::Relaxed) as f64;
    let sockets: usize = state.channels.webchat.values().map(|w| w.desk.open_sockets()).sum();
    vec![
        Read {
            name: "webhooks",
            help: "Webhook items by channel and outcome (accepted, duplicate, ignored, or the rejection reason).",
            kind: MetricType::Counter,
            rows: webhooks,
        },
        Read::one(
            "webhook_unknown_numbers",
            "Webhook items for numbers this hub does not serve.",
            MetricType::Counter,
            unknown,
        ),
        Read {
            name: "tool_calls",
            help: "Tool calls (MCP and staff commands) by tool and result.",
            kind: MetricType::Counter,
            rows: tools,
        },
        Read::one(
            "console_sessions",
            "Open agent console sessions.",
            MetricType::Gauge,
            state.console.open_sessions() as f64,
        ),
        Read::one("webchat_sockets", "Open web chat sockets.", MetricType::Gauge, sockets as f64),
    ]
}

/// Leases and dead letters (Redis only; left out, not reported as 0, where they do not apply or
/// Redis does not answer).
async fn backend_reads(state: &AppState) -> Vec<Read> {
    let mut reads = Vec::new();
    if let Some((moved, entries)) = state.probe.dead_letters().await {
        reads.push(Read::one(
            "dead_lettered",
            "Entries this node moved to dead-letter streams.",
            MetricType::Counter,
            moved as f64,
        ));
        if let Some(entries) = entries {
            reads.push(Read::one(
                "dlq_entries",
                "Entries in all dead-letter streams.",
                MetricType::Gauge,
                entries as f64,
            ));
        }
    }
    if let Some(owned) = state.probe.partitions_owned() {
        reads.push(Read::one("partitions_owned", "Partitions this node runs now.", MetricType::Gauge, owned as f64));
    }
    if let Some(leases) = state.probe.lease_stats() {
        let counter = |name, help, n: u64| Read::one(name, help, MetricType::Counter, n as f64);
        reads.push(counter("lease_acquisitions", "Partition leases this node won.", leases.acquired));
        reads.push(counter(
            "lease_takeovers",
            "Leases won of partitions another owner had run (failover, rebalance).",
            leases.taken_over,
        ));
        reads.push(counter("leases_lost", "Leases lost (taken over, or not renewed in time).", leases.lost));
        reads.push(counter("leases_released", "Leases this node handed back.", leases.released));
    }
    reads
}

/// VmRSS of this process, from `/proc` (Linux); `None` elsewhere.
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
