//! Counters the actors keep. The binary renders them at `/metrics`; tests read them directly.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Hub-wide counters, shared by all actors of a node.
        #[derive(Debug, Default)]
        pub struct HubMetrics {
            $($(#[$doc])* pub $name: AtomicU64,)*
            /// Conversation actors alive now.
            pub live_conversations: AtomicI64,
        }

        impl HubMetrics {
            /// `(name, value)` of every counter, for exposition.
            pub fn counters(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name.load(Ordering::Relaxed)),)*]
            }
        }
    };
}

counters! {
    /// Events handed to conversation actors.
    events_consumed,
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
