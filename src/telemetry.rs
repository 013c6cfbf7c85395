//! Logging setup and the webhook's named telemetry events: each event both logs and counts,
//! so logs and `/metrics` never disagree.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

/// Installs the tracing subscriber (`RUST_LOG` filters; default `info`).
pub fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = if format == "json" { builder.json().try_init() } else { builder.try_init() };
}

/// Webhook counters by channel and outcome.
#[derive(Debug, Default)]
pub struct WebhookMetrics {
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    /// Webhook items for `phone_number_id`s we do not serve.
    pub unknown_numbers: AtomicU64,
}

impl WebhookMetrics {
    fn add(&self, channel: &'static str, outcome: &'static str, n: u64) {
        if let Ok(mut c) = self.counts.lock() {
            *c.entry((channel, outcome)).or_default() += n;
        }
    }

    /// `(channel, outcome, count)` rows for exposition.
    pub fn rows(&self) -> Vec<(&'static str, &'static str, u64)> {
        self.counts.lock().map(|c| c.iter().map(|((ch, o), n)| (*ch, *o, *n)).collect()).unwrap_or_default()
    }

    /// Count of one row (tests).
    pub fn get(&self, channel: &str, outcome: &str) -> u64 {
        self.counts
            .lock()
            .map(|c| c.iter().filter(|((ch, o), _)| *ch == channel && *o == outcome).map(|(_, n)| *n).sum())
            .unwrap_or(0)
    }
}

/// A webhook was refused.
pub struct WebhookRejected<'a> {
    /// `whatsapp` or `telegram`.
    pub channel: &'static str,
    /// Short reason label (`bad_signature`, `malformed`, `too_large`, `busy`…).
    pub reason: &'static str,
    /// Trace id.
    pub trace_id: &'a str,
}

impl WebhookRejected<'_> {
    /// Logs and counts.
    pub fn emit(self, metrics: &WebhookMetrics) {
        tracing::warn!(channel = self.channel, reason = self.reason, trace_id = self.trace_id, "webhook rejected");
        metrics.add(self.channel, self.reason, 1);
    }
}

/// Emits [`WebhookRejected`] for `channel` and passes the error through: `map_err(|e| reject(reason, e))`.
pub fn rejecter<'a>(
    metrics: &'a WebhookMetrics,
    channel: &'static str,
    trace_id: &'a str,
) -> impl Fn(&'static str, crate::http_error::ApiError) -> crate::http_error::ApiError + 'a {
    move |reason, err| {
        WebhookRejected { channel, reason, trace_id }.emit(metrics);
        err
    }
}

/// A webhook was accepted.
pub struct WebhookAccepted<'a> {
    /// `whatsapp` or `telegram`.
    pub channel: &'static str,
    /// Items put on the bus.
    pub accepted: u64,
    /// Items dropped as repeats.
    pub duplicates: u64,
    /// Items ignored (unknown number, update kind we do not handle).
    pub ignored: u64,
    /// Trace id.
    pub trace_id: &'a str,
}

impl WebhookAccepted<'_> {
    /// Logs and counts.
    pub fn emit(self, metrics: &WebhookMetrics) {
        tracing::info!(
            channel = self.channel,
            accepted = self.accepted,
            duplicates = self.duplicates,
            ignored = self.ignored,
            trace_id = self.trace_id,
            "webhook accepted"
        );
        metrics.add(self.channel, "accepted", self.accepted);
        metrics.add(self.channel, "duplicate", self.duplicates);
        metrics.add(self.channel, "ignored", self.ignored);
    }
}
