//! The Switchboard load generator behind the `loadgen` binary.
//!
//! A run starts the in-process fakes (Graph, Telegram, OpenAI), spawns the real `switchboard`
//! binary against them on loopback (or, with `--target`, drives a deployment already running
//! and pointed at the fakes), drives signed WhatsApp and Telegram webhooks into it and
//! correlates every AI reply the fakes receive back to the message it answers. While it runs it
//! prints a progress line and samples the hub's RSS every second; the result is a JSON report
//! with a per-second timeline, and SVG charts of throughput, latency and memory next to it.
//!
//! Modules:
//! * [`hub`] — spawning, health-checking, measuring (VmRSS, `/metrics`) and killing the hub.
//! * [`rig`] — fakes plus hub started together (or a `--target`), and their CLI options.
//! * [`wire`] — which provider a conversation writes through, and its webhook requests.
//! * [`outcome`] — what a run is asked to do (pacing included) and what it measured.
//! * [`schedule`] — open-model rate schedules in phases, and chat think times.
//! * [`engine`] — the sender (open model, closed loop or chats) with per-conversation lanes.
//! * [`collect`] — correlation of reply lines to messages (latency, loss, duplicates, order).
//! * [`progress`] — the once-a-second status line and RSS sampling.
//! * [`timeline`] — per-message timestamps to per-second rows and per-phase summaries.
//! * [`chart`] — hand-written SVG line charts.
//! * [`cost`] — CPU time (hub, generator, Redis) and Redis commands per message answered.
//! * [`report`] — histogram summaries, the printed report, JSON output and the run's charts.
//! * [`scenario`] — options and plumbing shared by the engine-driven scenarios.
//! * [`throughput`], [`steady`], [`burst`], [`overload`], [`soak`], [`chats`], [`idle`],
//!   [`mcp`], [`console`] and [`failover`] — the scenarios.

pub mod burst;
pub mod chart;
pub mod chats;
pub mod collect;
pub mod console;
pub mod cost;
pub mod engine;
pub mod failover;
pub mod hub;
pub mod idle;
pub mod mcp;
pub mod outcome;
pub mod overload;
pub mod progress;
pub mod report;
pub mod rig;
pub mod scenario;
pub mod schedule;
pub mod soak;
pub mod steady;
pub mod throughput;
pub mod timeline;
pub mod wire;

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
