//! The `switchboard` binary's library: config loading, wiring ports to actors, and the HTTP
//! surface (webhooks, health, metrics). `main.rs` is only the CLI.
//!
//! - `config`: layered, strict, documented configuration.
//! - `app`: builds the hub from config and serves HTTP.
//! - `routes`: webhook, health and metrics handlers.
//! - `http_error`: the one place where errors become HTTP statuses.
//! - `telemetry`: logging setup and named webhook events that log and count.
//! - `trace`: `X-Trace-Id` middleware.

pub mod app;
pub mod config;
pub mod http_error;
pub mod routes;
pub mod staff;
pub mod telemetry;
pub mod trace;
