//! A test rig: the fake Graph and OpenAI endpoints plus the hub wired to them, and the CLI
//! options every scenario shares.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::hub::{HubProcess, HubSpec};
use crate::fakes::openai::{FakeOpenAi, Mode};
use crate::fakes::whatsapp::FakeGraph;
use crate::redis_server::RedisServer;

/// The business number the demo tenant answers on (webhook `metadata.phone_number_id`).
pub const PHONE_NUMBER_ID: &str = "200000000000002";
/// Graph access token the hub sends and the fake checks.
pub const ACCESS_TOKEN: &str = "loadgen-access-token";
/// App secret signing the webhooks.
pub const APP_SECRET: &str = "loadgen-app-secret";

/// Options for the fakes and the hub, shared by every scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct RigArgs {
    /// The `switchboard` binary [default: <repo>/target/release/switchboard].
    #[arg(long, value_name = "PATH")]
    pub hub_bin: Option<PathBuf>,
    /// Workspace root: the hub's working directory [default: this crate's parent].
    #[arg(long, value_name = "DIR")]
    pub repo_root: Option<PathBuf>,
    /// File for the hub's stdout/stderr [default: <repo>/load-tests/results/hub-<scenario>.log].
    #[arg(long, value_name = "FILE")]
    pub hub_log: Option<PathBuf>,
    /// Delay of every fake OpenAI answer, in milliseconds.
    #[arg(long, default_value_t = 0, value_name = "D")]
    pub ai_delay_ms: u64,
    /// Actix workers of the fake Graph API.
    #[arg(long, default_value_t = 1)]
    pub graph_workers: usize,
    /// Actix workers of the fake OpenAI API.
    #[arg(long, default_value_t = 1)]
    pub openai_workers: usize,
    /// Events one partition may queue before the hub answers 503 (hub default if omitted).
    #[arg(long, value_name = "N")]
    pub partition_capacity: Option<usize>,
    /// Extra hub environment, e.g. `--hub-env SWITCHBOARD__SERVER__HTTP_WORKERS=1` (repeatable).
    #[arg(long = "hub-env", value_name = "KEY=VALUE")]
    pub hub_env: Vec<String>,
    /// Seconds to wait for the hub's /healthz.
    #[arg(long, default_value_t = 30)]
    pub health_timeout_secs: u64,
    /// Run the hub on the Redis backend, with a redis-server of its own (AOF on, fsync every
    /// second) started on a free port.
    #[arg(long)]
    pub redis: bool,
}

impl RigArgs {
    /// The workspace root to use.
    pub fn repo_root(&self) -> PathBuf {
        self.repo_root.clone().unwrap_or_else(super::default_repo_root)
    }

    /// `<repo>/load-tests/results/<file>`, where results go by default.
    pub fn results_path(&self, file: &str) -> PathBuf {
        self.repo_root().join("load-tests/results").join(file)
    }
}

/// Fakes plus hub. Dropping it kills the hub and stops the fakes; [`Rig::stop`] does it
/// gracefully.
pub struct Rig {
    /// The fake WhatsApp Graph API receiving the hub's replies.
    pub graph: FakeGraph,
    /// The fake OpenAI endpoint answering in echo mode.
    pub openai: FakeOpenAi,
    /// The hub process.
    pub hub: HubProcess,
    /// The Redis of `--redis`.
    pub redis: Option<RedisServer>,
}

impl Rig {
    /// Starts the fakes and the hub (`extra_env` after the standard variables, so it wins) and
    /// waits until the hub is healthy.
    pub async fn start(args: &RigArgs, scenario: &str, extra_env: &[(&str, String)]) -> Result<Rig> {
        let graph =
            FakeGraph::start_with_workers(ACCESS_TOKEN, args.graph_workers).await.context("starting fake Graph")?;
        // A load run would otherwise store every request body for the whole run.
        graph.set_recording(false);
        let openai = FakeOpenAi::start_with_workers(args.openai_workers).await.context("starting fake OpenAI")?;
        openai.recorder().set_enabled(false);
        openai.set_mode(Mode::Echo { delay: Duration::from_millis(args.ai_delay_ms) });

        let mut env: Vec<(String, String)> = [
            ("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN.to_owned()),
            ("WHATSAPP_APP_SECRET", APP_SECRET.to_owned()),
            ("WHATSAPP_VERIFY_TOKEN", "v".to_owned()),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID.to_owned()),
            ("WHATSAPP_GRAPH_URL", graph.base_url()),
            ("OPENAI_API_KEY", "test".to_owned()),
            ("OPENAI_BASE_URL", openai.base_url()),
            ("OPENAI_MODEL", "test-model".to_owned()),
            ("RUST_LOG", "warn".to_owned()),
            // Every new conversation goes straight to the AI, and no limiter caps the run.
            ("SWITCHBOARD__TENANTS__DEMO__ENTRY", "ai".to_owned()),
            ("SWITCHBOARD__TENANTS__DEMO__AI__RATE_PER_SECOND", "1000000".to_owned()),
            ("SWITCHBOARD__TENANTS__DEMO__WHATSAPP__MAIN__RATE_PER_SECOND", "1000000".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        if let Some(cap) = args.partition_capacity {
            env.push(("SWITCHBOARD__BACKEND__PARTITION_CAPACITY".into(), cap.to_string()));
        }
        let redis = if args.redis {
            let server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "everysec"])?;
            env.push(("SWITCHBOARD__BACKEND__KIND".into(), "redis".into()));
            env.push(("SWITCHBOARD__BACKEND__REDIS__URL".into(), server.url().to_owned()));
            env.push(("SWITCHBOARD__BACKEND__REDIS__PREFIX".into(), server.prefix().to_owned()));
            Some(server)
        } else {
            None
        };
        env.extend(extra_env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        for kv in &args.hub_env {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--hub-env wants KEY=VALUE, got {kv:?}");
            };
            env.push((k.to_owned(), v.to_owned()));
        }

        let root = args.repo_root();
        let spec = HubSpec {
            bin: args.hub_bin.clone().unwrap_or_else(|| root.join("target/release/switchboard")),
            workdir: root,
            env,
            log: args.hub_log.clone().unwrap_or_else(|| args.results_path(&format!("hub-{scenario}.log"))),
            port: None,
        };
        let _ = std::fs::remove_file(&spec.log); // the hub appends; this run starts a new log
        let mut hub = HubProcess::spawn(&spec)?;
        let took = hub.wait_healthy(Duration::from_secs(args.health_timeout_secs)).await?;
        eprintln!(
            "hub pid {} healthy at {} after {} ms (log: {}); fake graph {}, fake openai {}",
            hub.pid(),
            hub.base_url(),
            took.as_millis(),
            hub.log_path().display(),
            graph.base_url(),
            openai.base_url()
        );
        Ok(Rig { graph, openai, hub, redis })
    }

    /// Kills the hub, then stops the fakes (hub first, so it does not log errors about them).
    pub async fn stop(mut self) {
        self.hub.kill();
        self.graph.stop().await;
        self.openai.stop().await;
    }
}
