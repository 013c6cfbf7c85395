//! A test rig: the fake Graph, Telegram and OpenAI endpoints plus the hub wired to them, and
//! the CLI options every scenario shares.
//!
//! With `--target URL` no hub is spawned: the fakes listen on fixed ports (`--fakes-bind`,
//! Graph on PORT, OpenAI on PORT+1, Telegram on PORT+2) and the operator points the running
//! deployment at them with the environment [`Rig::start`] prints (the same the spawned hub
//! gets: loadgen's credentials, the demo tenant on `entry = "ai"`, rate limits lifted).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use super::hub::{HubProcess, HubSpec};
use crate::fakes::openai::{FakeOpenAi, Mode};
use crate::fakes::telegram::FakeTelegram;
use crate::fakes::whatsapp::FakeGraph;
use crate::redis_server::RedisServer;

/// The business number the demo tenant answers on (webhook `metadata.phone_number_id`).
pub const PHONE_NUMBER_ID: &str = "200000000000002";
/// Graph access token the hub sends and the fake checks.
pub const ACCESS_TOKEN: &str = "loadgen-access-token";
/// App secret signing the webhooks.
pub const APP_SECRET: &str = "loadgen-app-secret";
/// Bot token of the demo tenant's Telegram channel (the fake checks it in `/bot<token>/`).
pub const TG_BOT_TOKEN: &str = "123456:LOADGEN";
/// Secret token the hub expects in `X-Telegram-Bot-Api-Secret-Token`.
pub const TG_SECRET: &str = "loadgen-tg-secret";
/// The demo tenant's Telegram channel: `POST /webhooks/telegram/demo`.
pub const TG_CHANNEL: &str = "demo";
/// Fake ports with `--target` and no `--fakes-bind`.
const DEFAULT_FAKES_BIND: &str = "127.0.0.1:9300";

/// Options for the fakes and the hub, shared by every scenario.
#[derive(clap::Args, Clone, Debug)]
pub struct RigArgs {
    /// The `switchboard` binary [default: <repo>/target/release/switchboard].
    #[arg(long, value_name = "PATH")]
    pub hub_bin: Option<PathBuf>,
    /// Workspace root: the hub's working directory [default: this crate's parent].
    #[arg(long, value_name = "DIR")]
    pub repo_root: Option<PathBuf>,
    /// File for the hub's stdout/stderr [default: <repo>/load-tests/results/hub-<name>.log, where
    /// <name> is the stem of `--out` if given, else the scenario's name].
    #[arg(long, value_name = "FILE")]
    pub hub_log: Option<PathBuf>,
    /// Delay of every fake OpenAI answer, in milliseconds [default: 0; steady: 300].
    #[arg(long, value_name = "D")]
    pub ai_delay_ms: Option<u64>,
    /// Delay of every fake Graph API answer, in milliseconds: a slow provider (the hub sends at
    /// most 256 messages at once per channel, so 100 ms caps it near 2,500 sends/s).
    #[arg(long, value_name = "D", default_value_t = 0)]
    pub graph_delay_ms: u64,
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
    /// A setting of that redis-server, as in its config file (repeatable), e.g.
    /// `--redis-config "auto-aof-rewrite-min-size 1gb"`.
    #[arg(long = "redis-config", value_name = "NAME VALUE", requires = "redis")]
    pub redis_config: Vec<String>,
    /// Drive an already-running deployment at URL (e.g. `http://10.0.0.5:8080`) instead of
    /// spawning a hub. Point it at the fakes (--fakes-bind) with the environment printed at
    /// start; its memory is charted only if its /metrics has process_resident_memory_bytes.
    #[arg(long, value_name = "URL")]
    pub target: Option<String>,
    /// Where the fakes listen: Graph on PORT, OpenAI on PORT+1, Telegram on PORT+2
    /// [default: free loopback ports; with --target 127.0.0.1:9300, use 0.0.0.0:PORT for a
    /// deployment on another machine].
    #[arg(long, value_name = "HOST:PORT")]
    pub fakes_bind: Option<SocketAddr>,
}

impl RigArgs {
    /// The workspace root to use.
    pub fn repo_root(&self) -> PathBuf {
        self.repo_root.clone().unwrap_or_else(super::default_repo_root)
    }

    /// The fake model's delay, `default` unless --ai-delay-ms was given.
    pub fn ai_delay(&self, default: u64) -> u64 {
        self.ai_delay_ms.unwrap_or(default)
    }

    /// Addresses of the fakes (Graph, OpenAI, Telegram).
    fn fake_addrs(&self) -> Result<[SocketAddr; 3]> {
        let base = match (self.fakes_bind, &self.target) {
            (Some(addr), _) => addr,
            (None, Some(_)) => DEFAULT_FAKES_BIND.parse()?,
            (None, None) => return Ok([SocketAddr::from(([127, 0, 0, 1], 0)); 3]),
        };
        if base.port() == 0 {
            return Ok([base; 3]);
        }
        let at = |k: u16| SocketAddr::new(base.ip(), base.port() + k);
        Ok([at(0), at(1), at(2)])
    }

    /// `<repo>/load-tests/results/<file>`, where results go by default.
    pub fn results_path(&self, file: &str) -> PathBuf {
        self.repo_root().join("load-tests/results").join(file)
    }
}

/// A run's name: the stem of its `--out` file if given (so that runs with different outputs
/// keep their hub logs apart), else the scenario's name.
pub fn run_name<'a>(scenario: &'a str, out: Option<&'a Path>) -> &'a str {
    out.and_then(|o| o.file_stem()).and_then(|s| s.to_str()).unwrap_or(scenario)
}

/// Fakes plus hub. Dropping it kills the hub and stops the fakes; [`Rig::stop`] does it
/// gracefully.
pub struct Rig {
    /// The fake WhatsApp Graph API receiving the hub's replies.
    pub graph: FakeGraph,
    /// The fake Telegram Bot API receiving the replies to Telegram chats.
    pub telegram: FakeTelegram,
    /// The fake OpenAI endpoint answering in echo mode.
    pub openai: FakeOpenAi,
    /// The hub process.
    pub hub: HubProcess,
    /// The Redis of `--redis`.
    pub redis: Option<RedisServer>,
}

impl Rig {
    /// Starts measuring what the hub, this generator and Redis spend per message (see `cost`).
    pub fn cost_meter(&self) -> super::cost::Meter {
        super::cost::Meter::start(self.hub.pid(), self.redis.as_ref().map(|r| r.url().to_owned()))
    }

    /// Starts the fakes and the hub (`extra_env` after the standard variables, so it wins) and
    /// waits until the hub is healthy.
    /// `run` names the hub's log (see [`run_name`]).
    pub async fn start(args: &RigArgs, run: &str, extra_env: &[(&str, String)]) -> Result<Rig> {
        let [graph_at, openai_at, telegram_at] = args.fake_addrs()?;
        let graph = FakeGraph::start_at(graph_at, ACCESS_TOKEN, args.graph_workers)
            .await
            .with_context(|| format!("starting fake Graph on {graph_at}"))?;
        // A load run would otherwise store every request body for the whole run.
        graph.set_recording(false);
        graph.set_delay(Duration::from_millis(args.graph_delay_ms));
        let telegram = FakeTelegram::start_at(telegram_at, TG_BOT_TOKEN, 1).await.context("starting fake Telegram")?;
        telegram.set_recording(false);
        let openai = FakeOpenAi::start_at(openai_at, args.openai_workers).await.context("starting fake OpenAI")?;
        openai.recorder().set_enabled(false);
        openai.set_mode(Mode::Echo { delay: Duration::from_millis(args.ai_delay(0)) });

        let mut env = hub_env(&graph.base_url(), &openai.base_url(), &telegram.base_url());
        if let Some(cap) = args.partition_capacity {
            env.push(("SWITCHBOARD__BACKEND__PARTITION_CAPACITY".into(), cap.to_string()));
        }
        env.extend(extra_env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        for kv in &args.hub_env {
            let Some((k, v)) = kv.split_once('=') else {
                bail!("--hub-env wants KEY=VALUE, got {kv:?}");
            };
            env.push((k.to_owned(), v.to_owned()));
        }
        if let Some(target) = &args.target {
            return Rig::attach(target, args, env, graph, telegram, openai).await;
        }
        let redis = if args.redis {
            let mut config = vec!["--appendonly".to_owned(), "yes".into(), "--appendfsync".into(), "everysec".into()];
            for setting in &args.redis_config {
                let Some((name, value)) = setting.trim().split_once(' ') else {
                    bail!("--redis-config wants \"NAME VALUE\", got {setting:?}");
                };
                config.extend([format!("--{name}"), value.trim().to_owned()]);
            }
            let server = RedisServer::start_with(&config.iter().map(String::as_str).collect::<Vec<_>>())?;
            env.push(("SWITCHBOARD__BACKEND__KIND".into(), "redis".into()));
            env.push(("SWITCHBOARD__BACKEND__REDIS__URL".into(), server.url().to_owned()));
            env.push(("SWITCHBOARD__BACKEND__REDIS__PREFIX".into(), server.prefix().to_owned()));
            Some(server)
        } else {
            None
        };

        let root = args.repo_root();
        let spec = HubSpec {
            bin: args.hub_bin.clone().unwrap_or_else(|| root.join("target/release/switchboard")),
            workdir: root,
            env,
            log: args.hub_log.clone().unwrap_or_else(|| args.results_path(&format!("hub-{run}.log"))),
            port: None,
        };
        let _ = std::fs::remove_file(&spec.log); // the hub appends; this run starts a new log
        let mut hub = HubProcess::spawn(&spec)?;
        let took = hub.wait_healthy(Duration::from_secs(args.health_timeout_secs)).await?;
        eprintln!(
            "hub pid {} healthy at {} after {} ms (log: {}); fake graph {}, fake telegram {}, fake openai {}",
            hub.pid(),
            hub.base_url(),
            took.as_millis(),
            hub.log_path().display(),
            graph.base_url(),
            telegram.base_url(),
            openai.base_url()
        );
        Ok(Rig { graph, telegram, openai, hub, redis })
    }

    /// `--target`: prints what the deployment must be given, then waits for its /healthz.
    async fn attach(
        target: &str,
        args: &RigArgs,
        env: Vec<(String, String)>,
        graph: FakeGraph,
        telegram: FakeTelegram,
        openai: FakeOpenAi,
    ) -> Result<Rig> {
        eprintln!("driving the deployment at {target}; it must run with this environment (fake URLs as");
        eprintln!("seen from this machine: replace 0.0.0.0 or 127.0.0.1 by an address it can reach):");
        for (k, v) in &env {
            eprintln!("  {k}={v}");
        }
        let mut hub = HubProcess::external(target)?;
        let took = hub.wait_healthy(Duration::from_secs(args.health_timeout_secs)).await?;
        eprintln!("target healthy after {} ms", took.as_millis());
        Ok(Rig { graph, telegram, openai, hub, redis: None })
    }

    /// Kills the hub, then stops the fakes (hub first, so it does not log errors about them).
    pub async fn stop(mut self) {
        self.hub.kill();
        self.graph.stop().await;
        self.telegram.stop().await;
        self.openai.stop().await;
    }
}

/// The hub's environment for a load run: loadgen's credentials, the fakes' URLs, every new
/// conversation straight to the AI and no limiter capping the run.
pub fn hub_env(graph_url: &str, openai_url: &str, telegram_url: &str) -> Vec<(String, String)> {
    [
        ("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN),
        ("WHATSAPP_APP_SECRET", APP_SECRET),
        ("WHATSAPP_VERIFY_TOKEN", "v"),
        ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID),
        ("WHATSAPP_GRAPH_URL", graph_url),
        ("TELEGRAM_BOT_TOKEN", TG_BOT_TOKEN),
        ("TELEGRAM_SECRET_TOKEN", TG_SECRET),
        ("TELEGRAM_API_URL", telegram_url),
        ("OPENAI_API_KEY", "test"),
        ("OPENAI_BASE_URL", openai_url),
        ("OPENAI_MODEL", "test-model"),
        ("RUST_LOG", "warn"),
        ("SWITCHBOARD__TENANTS__DEMO__ENTRY", "ai"),
        ("SWITCHBOARD__TENANTS__DEMO__AI__RATE_PER_SECOND", "1000000"),
        ("SWITCHBOARD__TENANTS__DEMO__WHATSAPP__MAIN__RATE_PER_SECOND", "1000000"),
        ("SWITCHBOARD__TENANTS__DEMO__TELEGRAM__DEMO__RATE_PER_SECOND", "1000000"),
        // Telegram's real limit is about one message per second per chat; loadgen's chats may
        // get several replies a second, and the point is the hub, not the limiter.
        ("SWITCHBOARD__TENANTS__DEMO__TELEGRAM__DEMO__PER_CHAT_PER_SECOND", "1000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

#[cfg(test)]
mod run_name_tests {
    use super::run_name;
    use std::path::Path;

    #[test]
    fn a_run_with_an_output_file_names_its_hub_log_after_it() {
        let out = Path::new("load-tests/results/2026-12-03/throughput-redis-max.json");
        assert_eq!(run_name("throughput", Some(out)), "throughput-redis-max");
        assert_eq!(run_name("throughput", None), "throughput");
    }
}
