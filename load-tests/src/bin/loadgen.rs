//! `loadgen`: load generator for the Switchboard hub. Starts the fake Graph, Telegram and
//! OpenAI APIs, spawns the real hub against them on loopback (or drives a running deployment
//! with `--target`), and runs one scenario:
//!
//! * `throughput` — latency, throughput, loss, duplicates and order under a given rate;
//! * `steady` — 10,000 concurrent chats at a steady rate with a slow (300 ms) model;
//! * `burst` — a baseline rate, N× for a few seconds, the baseline again, per phase;
//! * `overload` — twice a sustainable rate, then half: 503s, memory, survival, recovery;
//! * `soak` — a long steady run and the hub's RSS trend;
//! * `chats` — closed-loop customers: send, wait for the reply, think, send again;
//! * `idle-rss` — resident memory per idle (and passivated) conversation;
//! * `mcp-tools` — tool calls per second through `/mcp`;
//! * `console-fanout` — queue events delivered to many agent consoles;
//! * `failover` — two nodes on Redis, one killed with SIGKILL mid-run.
//!
//! The engine-driven scenarios (throughput to chats, idle-rss) print a progress line every
//! second and write, next to their JSON, `<stem>-throughput.svg`, `<stem>-latency.svg` and
//! `<stem>-memory.svg`. `--channel telegram|mixed` sends (some) conversations through Telegram.
//! `--target URL --fakes-bind HOST:PORT` drives a deployment that is already running instead of
//! a hub of loadgen's own: it prints the environment to give that deployment (fake URLs,
//! loadgen's credentials), and charts its memory if its /metrics has
//! `process_resident_memory_bytes`.
//!
//! Exit status: 0 clean run, 1 setup or runtime failure, 3 run completed with anomalies.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard_load_tests::loadgen::{burst, chats, console, failover, idle, mcp, overload, soak, steady, throughput};

/// Load generator for the Switchboard hub (exit 0 clean, 1 failure, 3 anomalies).
#[derive(Parser)]
#[command(name = "loadgen", version)]
struct Cli {
    /// Tokio worker threads of the load generator itself (it shares the cores with the hub).
    #[arg(long, global = true, default_value_t = 2)]
    threads: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Send M messages over C conversations at rate R (0 = as fast as possible).
    Throughput(throughput::ThroughputArgs),
    /// Many concurrent chats at a steady rate with a slow model (default 10,000 chats, 2,000
    /// msg/s, 300 ms model).
    Steady(steady::SteadyArgs),
    /// Baseline rate, a burst of N× for some seconds, baseline again; figures per phase.
    Burst(burst::BurstArgs),
    /// Twice a sustainable rate, then half of it: 503s, RSS start/peak/end, survival, recovery.
    Overload(overload::OverloadArgs),
    /// A long steady run (default 10 minutes) and the hub's RSS trend.
    Soak(soak::SoakArgs),
    /// Closed-loop customers: each chat sends, waits for its reply, thinks, sends again.
    Chats(chats::ChatsArgs),
    /// Measure hub RSS per idle and per passivated conversation.
    IdleRss(idle::IdleArgs),
    /// Tool calls per second through `/mcp`.
    McpTools(mcp::McpArgs),
    /// Queue events fanned out to many `/ws/console` sessions.
    ConsoleFanout(console::ConsoleArgs),
    /// Two nodes on Redis under steady load; node 0 gets `kill -9` mid-run.
    Failover(failover::FailoverArgs),
}

/// The hub's allocator, so that the generator and its fakes, which share the hub's cores, spend
/// as little as it does per allocation (glibc's malloc took about 15 % of their CPU).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime =
        match tokio::runtime::Builder::new_multi_thread().worker_threads(cli.threads.max(1)).enable_all().build() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("loadgen: cannot start the runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
    let result = runtime.block_on(async {
        let scenario = async {
            match &cli.scenario {
                Scenario::Throughput(args) => throughput::run(args).await,
                Scenario::Steady(args) => steady::run(args).await,
                Scenario::Burst(args) => burst::run(args).await,
                Scenario::Overload(args) => overload::run(args).await,
                Scenario::Soak(args) => soak::run(args).await,
                Scenario::Chats(args) => chats::run(args).await,
                Scenario::IdleRss(args) => idle::run(args).await,
                Scenario::McpTools(args) => mcp::run(args).await,
                Scenario::ConsoleFanout(args) => console::run(args).await,
                Scenario::Failover(args) => failover::run(args).await,
            }
        };
        // On Ctrl-C the scenario future is dropped, and with it the hub guard that kills the
        // child: the default SIGINT action would exit without running any destructor.
        tokio::select! {
            result = scenario => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
        }
    });
    // Request tasks of an aborted run may still be parked on timers; do not wait for them.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("loadgen: {e:#}");
            ExitCode::FAILURE
        }
    }
}
