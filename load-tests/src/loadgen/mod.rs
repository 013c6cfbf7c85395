//! The Switchboard load generator behind the `loadgen` binary.
//!
//! A run starts the in-process fakes (Graph, OpenAI), spawns the real `switchboard` binary
//! against them on loopback, drives signed WhatsApp webhooks into it and correlates every AI
//! reply the fake Graph receives back to the message it answers.
//!
//! Modules:
//! * [`hub`] — spawning, health-checking, measuring (VmRSS, `/metrics`) and killing the hub.
//! * [`rig`] — fakes plus hub started together, and the shared CLI options for them.
//! * [`outcome`] — what a run is asked to do and what it measured.
//! * [`engine`] — the open-model (or closed-loop) sender with per-conversation lanes.
//! * [`collect`] — correlation of reply lines to messages (latency, loss, duplicates, order).
//! * [`report`] — histogram summaries, the printed report and JSON output.
//! * [`throughput`], [`idle`], [`mcp`], [`console`] and [`failover`] — the scenarios.

pub mod collect;
pub mod console;
pub mod engine;
pub mod failover;
pub mod hub;
pub mod idle;
pub mod mcp;
pub mod outcome;
pub mod report;
pub mod rig;
pub mod throughput;

use std::path::PathBuf;

/// The workspace root, where the hub must run (it reads `config/default.toml` from its cwd).
pub fn default_repo_root() -> PathBuf {
    // load-tests lives directly under the workspace root.
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map_or(manifest.clone(), PathBuf::from)
}

/// The WhatsApp number of a simulated customer: Brazilian-looking `55119` + 8 digits.
pub fn customer_number(n: u64) -> String {
    format!("55119{:08}", n % 100_000_000)
}
