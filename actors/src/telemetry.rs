//! Named telemetry events of the actors: each one logs and counts in one place, so the logs and
//! `/metrics` never disagree (the webhook's events live in the binary's `telemetry`).

use crate::domain::ConversationId;
use crate::metrics::HubMetrics;
use crate::ports::LlmResponse;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// A provider accepted a message.
pub struct OutboundSent<'a> {
    /// Whose message.
    pub conversation: &'a ConversationId,
    /// Trace of the request that caused it.
    pub trace_id: &'a str,
    /// The provider's id for it.
    pub provider_message_id: &'a str,
    /// `whatsapp`, `telegram` or `webchat`.
    pub channel: &'static str,
    /// For an automated reply: how long since its customer message reached the hub.
    pub reply_latency: Option<Duration>,
}

impl OutboundSent<'_> {
    /// Logs and counts.
    pub fn emit(self, metrics: &HubMetrics) {
        tracing::debug!(conversation = %self.conversation, trace_id = %self.trace_id, provider_message_id = %self.provider_message_id, channel = self.channel, latency_ms = self.reply_latency.map(|d| d.as_millis() as u64), "outbound.message.sent");
        HubMetrics::inc(&metrics.outbound_sent);
        metrics.series.message(self.channel, "out");
        if let Some(took) = self.reply_latency {
            metrics.series.reply_took(self.channel, took);
        }
    }
}

/// A message was given up on.
pub struct OutboundFailed<'a> {
    /// Whose message.
    pub conversation: &'a ConversationId,
    /// Trace of the request that caused it.
    pub trace_id: &'a str,
    /// Why.
    pub reason: &'a str,
}

impl OutboundFailed<'_> {
    /// Logs and counts.
    pub fn emit(self, metrics: &HubMetrics) {
        tracing::warn!(conversation = %self.conversation, trace_id = %self.trace_id, reason = %self.reason, "outbound.message.failed");
        HubMetrics::inc(&metrics.outbound_failed);
    }
}

/// A rate limit held work back past its patience, or a provider throttled us.
pub struct RateLimited<'a> {
    /// `llm`, `provider` or `tools`.
    pub scope: &'static str,
    /// Whose limit (tenant, channel, caller).
    pub whose: &'a str,
}

impl RateLimited<'_> {
    /// Logs and counts.
    pub fn emit(self, metrics: &HubMetrics) {
        tracing::info!(scope = self.scope, whose = %self.whose, "rate.limited");
        metrics.series.rate_limit_hit(self.scope);
    }
}

/// A model call ended: answered, failed or timed out (refusals by the rate limit are
/// [`RateLimited`]).
pub enum ModelCall<'a> {
    /// It answered.
    Answered {
        /// The tenant.
        tenant: &'a str,
        /// Its answer (token usage).
        response: &'a LlmResponse,
        /// How long the turn took, queueing included.
        took: Duration,
    },
    /// It failed or timed out.
    Failed {
        /// The tenant.
        tenant: &'a str,
        /// Why, readably.
        why: &'a str,
        /// How long the turn took, queueing included.
        took: Duration,
    },
}

impl ModelCall<'_> {
    /// Logs and counts.
    pub fn emit(self, metrics: &HubMetrics) {
        match self {
            Self::Answered { tenant, response, took } => {
                tracing::debug!(%tenant, prompt_tokens = response.prompt_tokens, completion_tokens = response.completion_tokens, took_ms = took.as_millis() as u64, "agent.ai.call.answered");
                metrics.llm_prompt_tokens.fetch_add(u64::from(response.prompt_tokens), Ordering::Relaxed);
                metrics.llm_completion_tokens.fetch_add(u64::from(response.completion_tokens), Ordering::Relaxed);
                metrics.series.agent_took("ai", took);
            }
            Self::Failed { tenant, why, took } => {
                tracing::warn!(%tenant, %why, took_ms = took.as_millis() as u64, "agent.ai.call.failed");
                HubMetrics::inc(&metrics.llm_errors);
                metrics.series.agent_took("ai", took);
            }
        }
    }
}
