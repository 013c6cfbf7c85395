//! Counters, gauges and histograms the actors keep. The binary renders them at `/metrics`;
//! tests read them directly.

use crate::breaker::{BreakerState, CircuitBreaker};
use prometheus_client::metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

macro_rules! counters {
    ($($(#[doc = $doc:literal])* $name:ident),* $(,)?) => {
        /// Hub-wide counters, shared by all actors of a node.
        #[derive(Debug, Default)]
        pub struct HubMetrics {
            $($(#[doc = $doc])* pub $name: AtomicU64,)*
            /// Conversation actors alive now.
            pub live_conversations: AtomicI64,
            /// Labelled series and histograms.
            pub series: Series,
        }

        impl HubMetrics {
            /// `(name, help, value)` of every counter, for exposition (the help is the doc).
            pub fn counters(&self) -> Vec<(&'static str, &'static str, u64)> {
                vec![$((stringify!($name), concat!($($doc),*).trim_ascii(), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Inputs conversation actors handled (events from the bus, and send results handed to them
    /// directly).
    inputs_handled,
    /// Provider messages dropped by a conversation because it had handled them already.
    duplicates_in_conversation,
    /// Conversation actors stopped after being idle.
    passivations,
    /// Conversation actors started from a stored snapshot.
    rehydrations,
    /// AI replies dropped because ownership changed while the model was thinking.
    stale_ai_replies_dropped,
    /// Model calls made.
    llm_calls,
    /// Model calls that failed or timed out.
    llm_errors,
    /// Fallback answers sent because the model was unavailable or the breaker open.
    llm_fallbacks,
    /// Prompt tokens used.
    llm_prompt_tokens,
    /// Completion tokens used.
    llm_completion_tokens,
    /// Messages accepted by a provider.
    outbound_sent,
    /// Messages given up on.
    outbound_failed,
    /// Messages sent again by a conversation taken over with no result recorded for them (the
    /// first copy may have reached the provider: each one is a possible duplicate).
    outbound_resent,
    /// Send attempts retried (throttling or transient errors).
    outbound_retries,
    /// Send results handed straight to their conversation, running on this node.
    send_results_direct,
    /// Send results that went through the bus (their conversation was not running here).
    send_results_via_bus,
    /// Replies refused because WhatsApp's 24-hour window was closed.
    window_refusals,
}

impl HubMetrics {
    /// Adds one.
    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Label set of the labelled series: `(name, value)` pairs in a fixed order.
pub type Labels = Vec<(&'static str, String)>;

/// A family of histograms sharing [`LATENCY_BUCKETS`].
pub type LatencyFamily = Family<Labels, Histogram, fn() -> Histogram>;

/// Latency buckets, seconds: 1 ms to 30 s (a fast path answers in milliseconds, a model in
/// hundreds of them, a retried send in seconds).
pub const LATENCY_BUCKETS: [f64; 15] =
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0];

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

/// The labelled series and histograms (Prometheus types: the binary registers them as they
/// are). Cloning shares the values.
#[derive(Clone, Debug)]
pub struct Series {
    /// Customer message accepted at a webhook → the provider accepted the automated reply
    /// (AI, menu or system text; a human's reply measures the human). Labels: `channel`.
    pub reply_latency: LatencyFamily,
    /// How long an agent took to produce its step. Labels: `agent` (`ai`: the model turn
    /// with its queueing; `queue`: waiting in a queue until a human took the conversation).
    pub agent_latency: LatencyFamily,
    /// Events put on the bus by this node. Labels: `partition`.
    pub events_published: Family<Labels, Counter>,
    /// Events this node's consumers handed to conversations. Labels: `partition`.
    pub events_consumed: Family<Labels, Counter>,
    /// Customer messages in and messages sent out. Labels: `channel`, `direction`.
    pub messages: Family<Labels, Counter>,
    /// Work refused or given up because a rate limit was reached. Labels: `scope`
    /// (`llm`: a tenant's model rate or concurrency; `provider`: the provider throttled a send).
    pub rate_limited: Family<Labels, Counter>,
    /// Inputs handed to conversation actors and not yet handled (their mailboxes' depth).
    pub mailbox_depth: Gauge,
    /// Replies in the outboxes, waiting or being sent: past the hub's bound, ingress answers
    /// 503 (a slow or failing provider must not make the queue grow without end).
    pub replies_queued: Gauge,
    breakers: Arc<Mutex<Vec<Watched>>>,
    hot: Hot,
}

/// Channels, directions, agent kinds and rate-limit scopes: the label values known up front.
const CHANNELS: [&str; 3] = ["whatsapp", "telegram", "webchat"];
const DIRECTIONS: [&str; 2] = ["in", "out"];
const AGENTS: [&str; 2] = ["ai", "queue"];
const SCOPES: [&str; 3] = ["llm", "provider", "tools"];

/// Handles of the series the hot path touches, resolved once, so that counting an event takes
/// no allocation, hashing or lock (a handle shares its value with the family's series).
#[derive(Clone, Debug, Default)]
struct Hot {
    /// Per partition: (published, consumed); filled by [`Series::prepare`].
    partitions: Arc<OnceLock<Vec<(Counter, Counter)>>>,
    /// Per channel: (in, out).
    messages: Vec<(Counter, Counter)>,
    /// Per channel.
    replies: Vec<Histogram>,
    /// Per agent kind.
    agents: Vec<Histogram>,
    /// Per scope.
    scopes: Vec<Counter>,
}

fn labels(name: &'static str, value: &str) -> Labels {
    vec![(name, value.to_owned())]
}

/// A breaker reported by name while its owner lives.
type Watched = (String, Weak<Mutex<CircuitBreaker>>);

impl Default for Series {
    /// Every series whose labels are known up front exists at zero from the start, so that
    /// dashboards and `rate()` see it before its first event (a series that appears later loses
    /// its first increase).
    fn default() -> Self {
        let mut series = Self {
            reply_latency: Family::new_with_constructor(latency_histogram),
            agent_latency: Family::new_with_constructor(latency_histogram),
            events_published: Family::default(),
            events_consumed: Family::default(),
            messages: Family::default(),
            rate_limited: Family::default(),
            mailbox_depth: Gauge::default(),
            replies_queued: Gauge::default(),
            breakers: Arc::default(),
            hot: Hot::default(),
        };
        let message = |channel: &str, direction: &str| {
            let labels = vec![("channel", channel.to_owned()), ("direction", direction.to_owned())];
            series.messages.get_or_create(&labels).clone()
        };
        let hot = Hot {
            partitions: Arc::default(),
            messages: CHANNELS.iter().map(|c| (message(c, DIRECTIONS[0]), message(c, DIRECTIONS[1]))).collect(),
            replies: CHANNELS
                .iter()
                .map(|c| series.reply_latency.get_or_create(&labels("channel", c)).clone())
                .collect(),
            agents: AGENTS.iter().map(|a| series.agent_latency.get_or_create(&labels("agent", a)).clone()).collect(),
            scopes: SCOPES.iter().map(|s| series.rate_limited.get_or_create(&labels("scope", s)).clone()).collect(),
        };
        series.hot = hot;
        series
    }
}

impl Series {
    /// Creates the per-partition series (at zero) and their handles; counting before this
    /// still works, through the families.
    pub fn prepare(&self, partitions: u32) {
        let handles = (0..partitions)
            .map(|p| {
                let partition = labels("partition", &p.to_string());
                let published = self.events_published.get_or_create(&partition).clone();
                (published, self.events_consumed.get_or_create(&partition).clone())
            })
            .collect();
        let _ = self.hot.partitions.set(handles);
    }

    /// Counts one event published to `partition`.
    pub fn published(&self, partition: u32) {
        match self.hot.partitions.get().and_then(|all| all.get(partition as usize)) {
            Some((published, _)) => published.inc(),
            None => self.events_published.get_or_create(&labels("partition", &partition.to_string())).inc(),
        };
    }

    /// Counts `n` events of `partition` handed to conversations.
    pub fn consumed(&self, partition: u32, n: u64) {
        match self.hot.partitions.get().and_then(|all| all.get(partition as usize)) {
            Some((_, consumed)) => consumed.inc_by(n),
            None => self.events_consumed.get_or_create(&labels("partition", &partition.to_string())).inc_by(n),
        };
    }

    /// Counts one message on `channel` (`whatsapp`, `telegram`, `webchat`) in `direction`
    /// (`in` or `out`).
    pub fn message(&self, channel: &str, direction: &'static str) {
        let known = CHANNELS.iter().position(|c| *c == channel).map(|i| &self.hot.messages[i]);
        match (known, direction) {
            (Some((inbound, _)), "in") => inbound.inc(),
            (Some((_, outbound)), "out") => outbound.inc(),
            _ => self
                .messages
                .get_or_create(&vec![("channel", channel.to_owned()), ("direction", direction.to_owned())])
                .inc(),
        };
    }

    /// Counts one refusal by the rate limit of `scope`.
    pub fn rate_limit_hit(&self, scope: &'static str) {
        match SCOPES.iter().position(|s| *s == scope) {
            Some(i) => self.hot.scopes[i].inc(),
            None => self.rate_limited.get_or_create(&labels("scope", scope)).inc(),
        };
    }

    /// Records how long an agent of `kind` took.
    pub fn agent_took(&self, kind: &'static str, took: Duration) {
        match AGENTS.iter().position(|a| *a == kind) {
            Some(i) => self.hot.agents[i].observe(took.as_secs_f64()),
            None => self.agent_latency.get_or_create(&labels("agent", kind)).observe(took.as_secs_f64()),
        }
    }

    /// Records a reply's latency on `channel`.
    pub fn reply_took(&self, channel: &str, took: Duration) {
        match CHANNELS.iter().position(|c| *c == channel) {
            Some(i) => self.hot.replies[i].observe(took.as_secs_f64()),
            None => self.reply_latency.get_or_create(&labels("channel", channel)).observe(took.as_secs_f64()),
        }
    }

    /// Reports `breaker` as `name` at `/metrics` for as long as its owner keeps it.
    pub fn watch_breaker(&self, name: String, breaker: &Arc<Mutex<CircuitBreaker>>) {
        if let Ok(mut all) = self.breakers.lock() {
            all.retain(|(_, b)| b.strong_count() > 0);
            all.push((name, Arc::downgrade(breaker)));
        }
    }

    /// `(name, state)` of every live breaker, sorted by name.
    pub fn breaker_states(&self) -> Vec<(String, BreakerState)> {
        let Ok(all) = self.breakers.lock() else { return Vec::new() };
        let mut states: Vec<_> =
            all.iter().filter_map(|(name, b)| Some((name.clone(), b.upgrade()?.lock().ok()?.state()))).collect();
        states.sort_by(|a, b| a.0.cmp(&b.0));
        states
    }
}

/// Counts an input as waiting in a conversation's mailbox until dropped (handled or refused).
pub struct InMailbox(Gauge);

impl InMailbox {
    /// Starts counting one input.
    pub fn enter(series: &Series) -> Self {
        series.mailbox_depth.inc();
        Self(series.mailbox_depth.clone())
    }
}

impl Drop for InMailbox {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_breaker_is_no_longer_reported() {
        let series = Series::default();
        let kept = Arc::new(Mutex::new(CircuitBreaker::new(1, Duration::from_secs(60))));
        let gone = Arc::new(Mutex::new(CircuitBreaker::new(1, Duration::from_secs(60))));
        series.watch_breaker("outbound:main".into(), &kept);
        series.watch_breaker("llm:demo".into(), &gone);
        kept.lock().unwrap().on_failure();
        drop(gone);
        assert_eq!(series.breaker_states(), vec![("outbound:main".to_owned(), BreakerState::Open)]);
    }

    #[test]
    fn the_mailbox_gauge_follows_inputs_in_and_out() {
        let series = Series::default();
        let first = InMailbox::enter(&series);
        let second = InMailbox::enter(&series);
        assert_eq!(series.mailbox_depth.get(), 2);
        drop(first);
        drop(second);
        assert_eq!(series.mailbox_depth.get(), 0);
    }
}
