//! Switchboard core: domain types, the event envelope, ports (traits the outside world
//! implements) and the actors. Nothing here knows Redis, HTTP or a provider's JSON.
//!
//! - `domain`: ids, channels, contacts, message content.
//! - `event`: the envelope, bus inputs and journal events.
//! - `state`: conversation state and how events change it.
//! - `ports`: `Bus`, `Dedup`, `ConversationStore`, `Outbound`, `LlmClient`, `Clock`.
//! - `tenant`: per-tenant policy (routing, menu, queues, AI, texts).
//! - `conversation`: the per-conversation actor.
//! - `registry`: per-partition registry (lazy spawn, passivation, rehydration).
//! - `dispatcher`: entry routing and handoffs.
//! - `agents`: AI, triage and queue agents.
//! - `outbox`: per-channel sending with retries, rate limits and a breaker.
//! - `breaker`, `partition`, `sink`, `metrics`, `telemetry`: shared mechanisms.
//! - `hub`: wiring and the entry points for ingress and commands.

pub mod agents;
pub mod breaker;
mod consumer;
pub mod conversation;
pub mod dispatcher;
pub mod domain;
pub mod event;
pub mod feed;
pub mod hub;
pub mod metrics;
pub mod outbox;
pub mod partition;
pub mod ports;
pub mod query;
pub mod registry;
pub mod sink;
pub mod state;
pub mod telemetry;
pub mod tenant;
