//! OpenAI-compatible chat completions (async-openai) as the hub's `LlmClient` port.
//!
//! `outbound` builds the request (system prompt, history, the `handoff_to_human` and
//! `close_conversation` tools) and calls the endpoint; `inbound` turns the model's answer into
//! an `LlmAction`; `config` holds the endpoint settings. Retries are left to the AI agent, which
//! owns the timeout and circuit breaker, so async-openai's own retry loop is switched off.

pub mod config;
pub mod inbound;
pub mod outbound;

pub use config::OpenAiSettings;
pub use inbound::to_llm_response;
pub use outbound::OpenAiClient;

/// Name of the tool the model calls to hand the conversation to a human agent.
pub const HANDOFF_TOOL: &str = "handoff_to_human";
/// Name of the tool the model calls to end the conversation.
pub const CLOSE_TOOL: &str = "close_conversation";

/// OpenAI adapter errors (per-call failures are `switchboard_actors::ports::LlmError`).
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// Settings cannot work (bad base URL, empty model).
    #[error("invalid openai configuration: {0}")]
    InvalidConfig(String),
}
