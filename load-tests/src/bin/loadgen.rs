//! `loadgen`: load generator for the Switchboard hub. Starts the fake Graph and OpenAI APIs,
//! spawns the real hub against them on loopback, and runs one scenario:
//!
//! * `throughput` — latency, throughput, loss, duplicates and order under a given rate;
//! * `idle-rss` — resident memory per idle (and passivated) conversation;
//! * `mcp-tools` — tool calls per second through `/mcp`;
//! * `console-fanout` — queue events delivered to many agent consoles;
//! * `failover` — two nodes on Redis, one killed with SIGKILL mid-run.
//!
//! Exit status: 0 clean run, 1 setup or runtime failure, 3 run completed with anomalies.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchboard_load_tests::loadgen::{console, failover, idle, mcp, throughput};

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
    /// Measure hub RSS per idle and per passivated conversation.
    IdleRss(idle::IdleArgs),
    /// Tool calls per second through `/mcp`.
    McpTools(mcp::McpArgs),
    /// Queue events fanned out to many `/ws/console` sessions.
    ConsoleFanout(console::ConsoleArgs),
    /// Two nodes on Redis under steady load; node 0 gets `kill -9` mid-run.
    Failover(failover::FailoverArgs),
}

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
