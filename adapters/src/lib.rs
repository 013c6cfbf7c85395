//! Switchboard adapters: everything that touches the outside world, translated into the core's
//! ports and domain types.
//!
//! - `memory`: the embedded backend (bus, dedup, store) for one process.
//! - `whatsapp`: WhatsApp Cloud API webhooks (verify + parse) and the Graph send API.
//! - `telegram`: Telegram Bot API webhooks (teloxide types) and sending with teloxide's `Bot`.
//! - `openai`: OpenAI-compatible chat completions (async-openai) as the `LlmClient` port.
//! - `phone`: phone number normalisation (Brazil's ninth digit).
//! - `tools`: the tool registry (MCP and staff chat commands), quotas, idempotency and audit.
//! - `mcp`: the tools as an MCP server (rmcp).

pub mod mcp;
pub mod memory;
pub mod openai;
pub mod phone;
pub mod redis;
pub mod telegram;
pub mod tools;
pub mod webchat;
pub mod whatsapp;

/// An HTTP client of its own for a sender or model on another actor thread (see
/// `Outbound::with_own_connections`), or `None`, logged, when it cannot be built: the caller
/// then shares the one it has.
pub(crate) fn own_client<T, E: std::fmt::Display>(built: Result<T, E>) -> Option<T> {
    built.map_err(|e| tracing::warn!(error = %e, "no HTTP client of its own for another thread: it shares one")).ok()
}
