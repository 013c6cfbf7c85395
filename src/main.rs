//! `switchboard`: run the hub (`serve`, the default), check a configuration (`check-config`) or
//! look after the Redis bus's dead letters (`dlq list`, `dlq replay <id>`).

use clap::{Parser, Subcommand};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use switchboard::config::{self, Settings};
use switchboard_actors::ports::SystemClock;

/// Actor-based conversational messaging hub.
#[derive(Parser)]
#[command(name = "switchboard", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Config file layered over config/default.toml.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the hub (default).
    Serve,
    /// Validate the configuration: prints `ok`, or every problem with its path and exits 2.
    CheckConfig,
    /// Dead letters of the Redis bus: events the hub could not handle (needs backend = redis).
    Dlq {
        #[command(subcommand)]
        command: switchboard::dlq::DlqCommand,
    },
}

/// mimalloc: lower fragmentation with many small per-conversation allocations, and freed memory
/// goes back to the OS, so passivated conversations actually leave RSS.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BASE_CONFIG: &str = "config/default.toml";

fn load(cli: &Cli, env: &BTreeMap<String, String>) -> Result<Settings, config::ConfigError> {
    let base = Path::new(BASE_CONFIG);
    config::load(base.exists().then_some(base), cli.config.as_deref(), env)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let settings = match load(&cli, &env) {
        Ok(s) => s,
        Err(e) => {
            eprint!("invalid configuration:\n{e}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::CheckConfig => {
            println!("ok");
            ExitCode::SUCCESS
        }
        Command::Dlq { command } => match switchboard::dlq::run(&settings, command, &mut std::io::stdout().lock()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard dlq: {e}");
                ExitCode::from(e.exit_code())
            }
        },
        Command::Serve => match actix_web::rt::System::new().block_on(serve(settings, env)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard: {e:#}");
                ExitCode::FAILURE
            }
        },
    }
}

/// SIGTERM (orchestrators, `docker stop`) or SIGINT (Ctrl-C). The HTTP server's own signal
/// handling is off: it would stop the whole actix system, and with it the partition consumers,
/// before they could hand their partitions over.
async fn shutdown_signal() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the hub");
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}

async fn serve(settings: Settings, env: BTreeMap<String, String>) -> anyhow::Result<()> {
    switchboard::telemetry::init_logging(&settings.server.log_format);
    let listener = TcpListener::bind(&settings.server.bind)?;
    let running = switchboard::app::start(&settings, &env, Arc::new(SystemClock), listener).await?;
    for warning in &running.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(bind = %settings.server.bind, tenants = settings.tenants.len(), "switchboard listening");
    let deadline = Duration::from_secs(settings.server.shutdown_timeout_secs);
    let handle = running.server.handle();
    let mut server = running.server;
    tokio::select! {
        stopped = &mut server => stopped?,
        signal = shutdown_signal() => {
            // The HTTP server stops accepting and finishes its requests while, at the same time,
            // the partitions are handed over (Redis: model turns finish, sends are reported,
            // leases deleted) and the outboxes send what they hold. Webhooks accepted meanwhile
            // are on the bus for the partitions' next owners.
            tracing::info!(signal, deadline_secs = deadline.as_secs(), "stopping");
            let until = tokio::time::Instant::now() + deadline;
            // The listener closes at once; the requests in progress (and open WebSockets, which
            // may last until the deadline) finish while the hub drains. The server future does
            // the stopping: it must be polled while `stop` waits.
            let http = async { tokio::join!(handle.stop(true), server).1 };
            let hub = async {
                running.state.probe.leave(deadline).await;
                // Memory backend: what the bus holds exists only in this process, so it is
                // handled now. Redis: the partitions' next owners have it, and this finds
                // nothing left to wait for.
                if !running.hub.drain(until).await {
                    tracing::warn!("model turns were still running at the shutdown deadline");
                }
                let left = until.saturating_duration_since(tokio::time::Instant::now());
                if !running.hub.flush_outboxes(left).await {
                    tracing::warn!("some replies were still being sent at the shutdown deadline");
                }
            };
            let (stopped, ()) = tokio::join!(http, hub);
            stopped?;
        }
    }
    running.hub.shutdown();
    tracing::info!("switchboard stopped");
    Ok(())
}
