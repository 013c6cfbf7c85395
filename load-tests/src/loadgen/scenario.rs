//! What the engine-driven scenarios (steady, burst, overload, soak, chats) share: their common
//! options, one measured run (rig up, warm-up, load, drain, hub state before and after), and
//! the saved result (JSON with the timeline, plus the SVG charts next to it).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::chart::Band;
use super::engine::{LoadOutcome, LoadSpec, Pace, run_load};
use super::report::{mib, outcome_json, outcome_text, timeline_json, write_charts, write_json};
use super::rig::{Rig, RigArgs, run_name};
use super::schedule::Think;
use super::throughput::{LOAD_NUMBER_BASE, unix_now, warm_up};
use super::wire::ChannelMix;

/// Options every engine-driven scenario takes.
#[derive(clap::Args, Clone, Debug)]
pub struct CommonArgs {
    /// Provider of the conversations: whatsapp, telegram, or mixed (odd conversations through
    /// Telegram webhooks, replies correlated at the fake Bot API).
    #[arg(long, value_enum, default_value_t = ChannelMix::Whatsapp)]
    pub channel: ChannelMix,
    /// Webhook requests in flight at most (open model; a request waiting out a 503's
    /// Retry-After keeps its slot).
    #[arg(long, default_value_t = 1024, value_name = "K")]
    pub concurrency: usize,
    /// The tenant's `ai.max_in_flight` for the run: model calls at once. The product default
    /// (256) caps a 300 ms model at ~850 replies/s.
    #[arg(long, default_value_t = 2048, value_name = "N")]
    pub ai_max_in_flight: usize,
    /// Seconds to wait for missing replies after the last acknowledgement.
    #[arg(long, default_value_t = 30, value_name = "S")]
    pub drain_timeout_secs: u64,
    /// Warm-up messages (10 other conversations) that must all be answered before measuring.
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub warmup: usize,
    /// JSON output; the charts go next to it as <stem>-throughput.svg, <stem>-latency.svg and
    /// <stem>-memory.svg [default: <repo>/load-tests/results/<scenario>.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fakes and hub.
    #[command(flatten)]
    pub rig: RigArgs,
}

/// Think time options of chats-mode runs.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThinkKind {
    /// Always --think-ms.
    Fixed,
    /// Exponentially distributed with mean --think-ms.
    Exp,
}

impl ThinkKind {
    /// The think time of `ms` milliseconds.
    pub fn think(self, ms: u64) -> Think {
        let mean = Duration::from_millis(ms);
        match self {
            ThinkKind::Fixed => Think::Fixed(mean),
            ThinkKind::Exp => Think::Exponential(mean),
        }
    }
}

/// A finished run and the hub around it.
pub struct Measured {
    pub outcome: LoadOutcome,
    /// Hub RSS after the warm-up, before the load (none when it cannot be read).
    pub rss_before: Option<u64>,
    /// Hub RSS after the drain.
    pub rss_after: Option<u64>,
    /// `GET /healthz` answered 2xx after the run (and a spawned hub was still running).
    pub healthy_after: bool,
    /// The hub's `/metrics` after the run.
    pub metrics: BTreeMap<String, f64>,
    /// The fake model's delay during the run.
    pub ai_delay_ms: u64,
    /// CPU and Redis commands per message answered (see `cost`), and that as a line to print.
    pub cost: Option<(Value, String)>,
}

impl CommonArgs {
    /// Checks the options that would make a run meaningless.
    pub fn check(&self) -> Result<()> {
        if self.concurrency == 0 {
            bail!("--concurrency must be positive");
        }
        Ok(())
    }

    /// A load spec with these options: `messages` over `conversations`, paced by `pace`.
    pub fn spec(&self, conversations: usize, messages: usize, pace: Pace) -> LoadSpec {
        LoadSpec {
            label: "load",
            conversations,
            messages,
            pace,
            concurrency: self.concurrency,
            channel: self.channel,
            number_base: LOAD_NUMBER_BASE,
            prefix: 'm',
            drain_timeout: Duration::from_secs(self.drain_timeout_secs),
            settle: Duration::from_millis(500),
        }
    }

    /// Starts the rig (`rig` may differ from `self.rig` by scenario defaults), warms up, runs
    /// `spec`, and stops the rig.
    pub async fn measure(&self, rig_args: &RigArgs, scenario: &str, spec: &LoadSpec) -> Result<Measured> {
        self.check()?;
        let env = [("SWITCHBOARD__TENANTS__DEMO__AI__MAX_IN_FLIGHT", self.ai_max_in_flight.to_string())];
        let mut rig = Rig::start(rig_args, run_name(scenario, self.out.as_deref()), &env).await?;
        let result = measured_run(&mut rig, self.warmup, self.concurrency, spec).await;
        rig.stop().await;
        let mut measured = result?;
        measured.ai_delay_ms = rig_args_delay(rig_args);
        Ok(measured)
    }

    /// Where the JSON goes.
    pub fn out(&self, scenario: &str) -> PathBuf {
        self.out.clone().unwrap_or_else(|| self.rig.results_path(&format!("{scenario}.json")))
    }

    /// Prints the run, writes its JSON (`extra` merged at the top level) and its charts.
    pub fn save(&self, scenario: &str, title: &str, m: &Measured, extra: Value, bands: &[Band]) -> Result<()> {
        println!("{}", outcome_text(scenario, &m.outcome));
        let show = |b: Option<u64>| b.map_or_else(|| "unknown".to_owned(), mib);
        println!(
            "hub RSS {} before, {} after; healthy after the run: {}",
            show(m.rss_before),
            show(m.rss_after),
            m.healthy_after
        );
        if let Some((_, line)) = &m.cost {
            println!("{line}");
        }
        let rows = m.outcome.trace.rows();
        let r = &self.rig;
        let mut report = json!({
            "scenario": scenario,
            "title": title,
            "unix_time": unix_now(),
            "setup": {
                "target": r.target,
                "channel": self.channel.name(),
                "graph_workers": r.graph_workers,
                "openai_workers": r.openai_workers,
                "ai_delay_ms": m.ai_delay_ms,
                "ai_max_in_flight": self.ai_max_in_flight,
                "partition_capacity": r.partition_capacity,
                "redis": r.redis,
                "hub_env": r.hub_env,
                "warmup_messages": self.warmup,
            },
            "result": outcome_json(&m.outcome),
            "hub": {
                "rss_bytes_before": m.rss_before,
                "rss_bytes_after": m.rss_after,
                "healthy_after": m.healthy_after,
                "metrics": m.metrics,
            },
            "timeline": timeline_json(&rows),
        });
        if let (Value::Object(report), Some((cost, _))) = (&mut report, &m.cost) {
            report.insert("cost_per_message".into(), cost.clone());
        }
        if let (Value::Object(report), Value::Object(extra)) = (&mut report, extra) {
            report.extend(extra);
        }
        let out = self.out(scenario);
        write_json(&out, &report)?;
        write_charts(&out, title, &rows, bands)?;
        Ok(())
    }
}

pub(super) async fn measured_run(
    rig: &mut Rig,
    warmup: usize,
    concurrency: usize,
    spec: &LoadSpec,
) -> Result<Measured> {
    warm_up(rig, warmup, concurrency.min(256)).await?;
    let probe = rig.hub.mem_probe();
    let rss_before = probe.rss_bytes().await;
    let meter = rig.cost_meter();
    let outcome = run_load(rig, spec).await?;
    let cost = Some(meter.finish(outcome.replied));
    let rss_after = probe.rss_bytes().await;
    let healthy_after = rig.hub.ensure_running().is_ok() && rig.hub.healthy().await;
    let metrics = rig.hub.metrics().await.unwrap_or_default();
    Ok(Measured { outcome, rss_before, rss_after, healthy_after, metrics, ai_delay_ms: 0, cost })
}

fn rig_args_delay(rig: &RigArgs) -> u64 {
    rig.ai_delay(0)
}

/// A shaded band over the phase called `name` of a schedule's bounds.
pub fn band(bounds: &[(String, f64, f64)], name: &str) -> Option<Band> {
    bounds.iter().find(|b| b.0 == name).map(|(name, from, to)| Band { from: *from, to: *to, label: name.clone() })
}
