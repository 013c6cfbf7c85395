//! The `switchboard` binary's library: config loading, wiring ports to actors, and the HTTP
//! surface (webhooks, health, metrics). `main.rs` is only the CLI.
//!
//! - `auth`: agent and admin accounts (bearer tokens kept as SHA-256) and who may see what.
//! - `config`: layered, strict, documented configuration.
//! - `app`: builds the hub from config and serves HTTP.
//! - `dlq`: the `switchboard dlq` commands (dead letters of the Redis bus).
//! - `routes`: webhook, health, metrics and REST (`/api`) handlers.
//! - `http_error`: the one place where errors become HTTP statuses.
//! - `telemetry`: logging setup and named webhook events that log and count.
//! - `trace`: `X-Trace-Id` middleware.

pub mod app;
pub mod auth;
pub mod backend;
pub mod config;
pub mod console;
pub mod dlq;
pub mod http_error;
pub mod metrics;
pub mod routes;
pub mod staff;
pub mod telemetry;
pub mod trace;
pub mod ws;
