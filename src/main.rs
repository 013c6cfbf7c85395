//! `switchboard`: run the hub (`serve`, the default) or check a configuration (`check-config`).

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
        Command::Serve => match actix_web::rt::System::new().block_on(serve(settings, env)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("switchboard: {e:#}");
                ExitCode::FAILURE
            }
        },
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
    // actix-web stops accepting and drains on SIGTERM/SIGINT; then the consumers stop.
    running.server.await?;
    // Hand the partitions over (Redis): finish, passivate, delete the leases; let the outboxes
    // send what they hold (their results reach the new owners through the bus); then stop.
    let deadline = Duration::from_secs(settings.server.shutdown_timeout_secs);
    running.state.probe.leave(deadline).await;
    if !running.hub.flush_outboxes(deadline).await {
        tracing::warn!("some replies were still being sent at the shutdown deadline");
    }
    running.hub.shutdown();
    tracing::info!("switchboard stopped");
    Ok(())
}
