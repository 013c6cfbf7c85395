//! `loadgen throughput`: M messages round-robin over C conversations at a fixed offered rate
//! (open model) or as fast as possible (closed loop), with latency, loss, duplicate and order
//! figures, the per-second timeline and its charts.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use super::engine::{LoadOutcome, LoadSpec, Pace, run_load};
use super::report::{mib, outcome_json, outcome_text, timeline_json, write_charts, write_json};
use super::rig::{Rig, RigArgs, run_name};
use super::scenario::{Measured, measured_run};
use super::schedule::Schedule;
use super::wire::ChannelMix;

/// Numbers of the measured conversations start here (`55119 1000 0000`).
pub const LOAD_NUMBER_BASE: u64 = 10_000_000;
/// Warm-up conversations use numbers from here, far from the measured ones.
pub const WARMUP_NUMBER_BASE: u64 = 90_000_000;

/// What frees a request slot in closed-loop mode.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseOn {
    /// The message's reply reached the fake Graph.
    Reply,
    /// The webhook was acknowledged.
    Ack,
}

/// Options of `loadgen throughput`.
#[derive(clap::Args, Clone, Debug)]
pub struct ThroughputArgs {
    /// Conversations (distinct customer numbers) the messages are spread over, round-robin.
    #[arg(long, default_value_t = 100, value_name = "C")]
    pub conversations: usize,
    /// Messages to send.
    #[arg(long, default_value_t = 2000, value_name = "M")]
    pub messages: usize,
    /// Offered messages per second (open model); 0 = closed loop, as fast as --concurrency
    /// allows, to find the maximum throughput.
    #[arg(long, default_value_t = 1000.0, value_name = "R")]
    pub rate: f64,
    /// Webhook requests in flight at most.
    #[arg(long, default_value_t = 256, value_name = "K")]
    pub concurrency: usize,
    /// With --rate 0: a message keeps its slot until its reply arrives (`reply`, the
    /// pipeline's capacity) or only until the webhook is acknowledged (`ack`, the ingest
    /// capacity; the backlog then grows without bound).
    #[arg(long, value_enum, default_value_t = CloseOn::Reply)]
    pub close_on: CloseOn,
    /// Seconds to wait for missing replies after the last acknowledgement.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout_secs: u64,
    /// Warm-up messages (10 other conversations) that must all be answered before measuring.
    #[arg(long, default_value_t = 100)]
    pub warmup: usize,
    /// Provider of the conversations: whatsapp, telegram, or mixed (odd ones on Telegram).
    #[arg(long, value_enum, default_value_t = ChannelMix::Whatsapp)]
    pub channel: ChannelMix,
    /// JSON output; charts go next to it as <stem>-throughput.svg, -latency.svg, -memory.svg
    /// [default: <repo>/load-tests/results/throughput.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fakes and hub.
    #[command(flatten)]
    pub rig: RigArgs,
}

/// Runs the scenario; `Ok(false)` when the run completed but saw anomalies.
pub async fn run(args: &ThroughputArgs) -> Result<bool> {
    if args.conversations == 0 || args.messages == 0 || args.concurrency == 0 {
        bail!("--conversations, --messages and --concurrency must be positive");
    }
    if !args.rate.is_finite() || args.rate < 0.0 {
        bail!("--rate must be a finite number >= 0");
    }
    let mut rig = Rig::start(&args.rig, run_name("throughput", args.out.as_deref()), &[]).await?;
    let result = measure(&mut rig, args).await;
    rig.stop().await;
    let (outcome, report) = result?;
    let out = args.out.clone().unwrap_or_else(|| args.rig.results_path("throughput.json"));
    write_json(&out, &report)?;
    let rate =
        if args.rate > 0.0 { format!("{} msg/s", args.rate) } else { format!("closed loop x{}", args.concurrency) };
    let title = format!("throughput: {} {} conversations, {rate}", args.conversations, args.channel.name());
    write_charts(&out, &title, &outcome.trace.rows(), &[])?;
    Ok(outcome.is_clean())
}

/// Checks end to end that the rig answers at all: `n` messages over up to 10 conversations
/// must all be acknowledged and answered, or the setup is broken (wrong secret, hub config...).
pub async fn warm_up(rig: &mut Rig, n: usize, concurrency: usize) -> Result<()> {
    if n == 0 {
        return Ok(());
    }
    let spec = LoadSpec {
        label: "warm-up",
        conversations: n.min(10),
        messages: n,
        pace: Pace::Open(Schedule::constant(500.0, n)?),
        concurrency,
        channel: ChannelMix::Whatsapp,
        number_base: WARMUP_NUMBER_BASE,
        prefix: 'w',
        drain_timeout: Duration::from_secs(15),
        settle: Duration::ZERO,
    };
    let o = run_load(rig, &spec).await?;
    if o.replied < n as u64 || o.failed > 0 {
        bail!(
            "setup failure: the warm-up was not fully answered (hub log: {})\n{}",
            rig.hub.log_path().display(),
            outcome_text("warm-up", &o)
        );
    }
    eprintln!("warm-up ok: {n} messages answered, e2e p50 {:.2} ms", o.e2e.value_at_quantile(0.5) as f64 / 1000.0);
    Ok(())
}

async fn measure(rig: &mut Rig, args: &ThroughputArgs) -> Result<(LoadOutcome, Value)> {
    let pace = if args.rate > 0.0 {
        Pace::Open(Schedule::constant(args.rate, args.messages)?)
    } else {
        Pace::Closed { close_on_reply: args.close_on == CloseOn::Reply }
    };
    let spec = LoadSpec {
        label: "load",
        conversations: args.conversations,
        messages: args.messages,
        pace,
        concurrency: args.concurrency,
        channel: args.channel,
        number_base: LOAD_NUMBER_BASE,
        prefix: 'm',
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
        settle: Duration::from_millis(500),
    };
    let Measured { outcome, rss_before, rss_after, metrics, cost, .. } =
        measured_run(rig, args.warmup, args.concurrency, &spec).await?;
    let (cost, cost_line) = cost.unwrap_or_default();
    println!("{}", outcome_text("throughput", &outcome));
    let show = |b: Option<u64>| b.map_or_else(|| "unknown".to_owned(), mib);
    println!(
        "hub RSS {} before, {} after; hub log {}",
        show(rss_before),
        show(rss_after),
        rig.hub.log_path().display()
    );
    println!("{cost_line}");
    let r = &args.rig;
    let report = json!({
        "scenario": "throughput",
        "unix_time": unix_now(),
        "setup": {
            "target": r.target,
            "channel": args.channel.name(),
            "graph_workers": r.graph_workers,
            "openai_workers": r.openai_workers,
            "ai_delay_ms": r.ai_delay(0),
            "partition_capacity": r.partition_capacity,
            "hub_env": r.hub_env,
            "warmup_messages": args.warmup,
        },
        "result": outcome_json(&outcome),
        "hub": {
            "rss_bytes_before": rss_before,
            "rss_bytes_after": rss_after,
            "metrics": metrics,
        },
        "timeline": timeline_json(&outcome.trace.rows()),
        "cost_per_message": cost,
    });
    Ok((outcome, report))
}

/// Seconds since the Unix epoch, to date a result file.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
