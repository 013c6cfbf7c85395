//! `loadgen idle-rss`: memory per idle conversation. Creates N conversations (one message each),
//! and compares the hub's VmRSS before, with N live idle actors, and (with an idle timeout)
//! after they were passivated and only the store holds them.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;

use super::engine::{LoadSpec, Pace, run_load};
use super::report::{mib, outcome_json, outcome_text, timeline_json, write_charts, write_json};
use super::rig::{Rig, RigArgs, run_name};
use super::schedule::Schedule;
use super::throughput::{LOAD_NUMBER_BASE, unix_now, warm_up};
use super::timeline::Row;
use super::wire::ChannelMix;

/// Gauge of conversation actors alive, in `/metrics`.
const LIVE: &str = "switchboard_live_conversations";

/// Options of `loadgen idle-rss`.
#[derive(clap::Args, Clone, Debug)]
pub struct IdleArgs {
    /// Conversations to create (one message each).
    #[arg(long, value_name = "N")]
    pub conversations: usize,
    /// Hub idle timeout; when given, also measures after passivation.
    #[arg(long, value_name = "S")]
    pub idle_timeout_secs: Option<u64>,
    /// Creation rate, messages per second (503s are retried).
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Webhook requests in flight at most.
    #[arg(long, default_value_t = 256, value_name = "K")]
    pub concurrency: usize,
    /// Warm-up messages before the baseline reading.
    #[arg(long, default_value_t = 200)]
    pub warmup: usize,
    /// Seconds to let the hub settle before each RSS reading.
    #[arg(long, default_value_t = 2)]
    pub settle_secs: u64,
    /// Seconds to wait for missing replies after the last acknowledgement.
    #[arg(long, default_value_t = 60)]
    pub drain_timeout_secs: u64,
    /// JSON output [default: <repo>/load-tests/results/idle-rss.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fakes and hub.
    #[command(flatten)]
    pub rig: RigArgs,
}

/// Runs the scenario; `Ok(false)` when some conversations were not created cleanly.
pub async fn run(args: &IdleArgs) -> Result<bool> {
    if args.conversations == 0 || args.concurrency == 0 || !args.rate.is_finite() || args.rate <= 0.0 {
        bail!("--conversations, --concurrency and --rate must be positive");
    }
    if args.rig.target.is_some() {
        bail!("idle-rss reads the hub's /proc status: it needs a hub of its own, not --target");
    }
    let mut env = Vec::new();
    if let Some(s) = args.idle_timeout_secs {
        env.push(("SWITCHBOARD__TENANTS__DEMO__IDLE_TIMEOUT_SECS", s.to_string()));
    }
    let mut rig = Rig::start(&args.rig, run_name("idle-rss", args.out.as_deref()), &env).await?;
    let result = measure(&mut rig, args).await;
    rig.stop().await;
    let (clean, report, rows) = result?;
    let out = args.out.clone().unwrap_or_else(|| args.rig.results_path("idle-rss.json"));
    write_json(&out, &report)?;
    let title = format!("idle-rss: creating {} conversations at {} msg/s", args.conversations, args.rate);
    write_charts(&out, &title, &rows, &[])?;
    Ok(clean)
}

/// The live-conversation gauge, or -1 if `/metrics` could not be read.
async fn live_conversations(rig: &Rig) -> f64 {
    let metrics = rig.hub.metrics().await.unwrap_or_default();
    metrics.get(LIVE).copied().unwrap_or(-1.0)
}

/// `(after - before) / n`, signed: RSS may shrink.
fn per_conversation(after: u64, before: u64, n: usize) -> f64 {
    let delta = after as f64 - before as f64;
    (delta / n as f64 * 10.0).round() / 10.0
}

async fn measure(rig: &mut Rig, args: &IdleArgs) -> Result<(bool, serde_json::Value, Vec<Row>)> {
    let n = args.conversations;
    let settle = Duration::from_secs(args.settle_secs);
    let rss_start = rig.hub.rss_bytes()?;
    warm_up(rig, args.warmup, args.concurrency).await?;
    tokio::time::sleep(settle).await;
    let rss_baseline = rig.hub.rss_bytes()?;
    eprintln!("baseline RSS {} (at start {})", mib(rss_baseline), mib(rss_start));

    let spec = LoadSpec {
        label: "create",
        conversations: n,
        messages: n,
        pace: Pace::Open(Schedule::constant(args.rate, n)?),
        concurrency: args.concurrency,
        channel: ChannelMix::Whatsapp,
        number_base: LOAD_NUMBER_BASE,
        prefix: 'm',
        drain_timeout: Duration::from_secs(args.drain_timeout_secs),
        settle: Duration::ZERO,
    };
    let created = run_load(rig, &spec).await?;
    let rows = created.trace.rows();
    tokio::time::sleep(settle).await;
    let rss_live = rig.hub.rss_bytes()?;
    let live_at_live = live_conversations(rig).await;
    let per_live = per_conversation(rss_live, rss_baseline, n);
    println!("{}", outcome_text("create conversations", &created));
    println!(
        "live: RSS {} (+{}), {live_at_live} live conversations → {per_live} bytes/conversation",
        mib(rss_live),
        mib(rss_live.saturating_sub(rss_baseline))
    );
    if live_at_live >= 0.0 && live_at_live < n as f64 {
        eprintln!("note: fewer live actors than conversations — some passivated already");
    }

    let mut passivated = serde_json::Value::Null;
    if let Some(timeout) = args.idle_timeout_secs {
        let limit = Duration::from_secs(3 * timeout.max(1));
        let start = Instant::now();
        let mut live = live_conversations(rig).await;
        while live != 0.0 && start.elapsed() < limit {
            rig.hub.ensure_running()?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            live = live_conversations(rig).await;
        }
        let waited = start.elapsed();
        tokio::time::sleep(settle).await;
        let rss = rig.hub.rss_bytes()?;
        let metrics = rig.hub.metrics().await.unwrap_or_default();
        let per = per_conversation(rss, rss_baseline, n);
        println!(
            "passivated: RSS {} after {:.1} s, {live} live conversations → {per} bytes/conversation",
            mib(rss),
            waited.as_secs_f64()
        );
        if live != 0.0 {
            eprintln!("warning: {live} conversations still live after {limit:?}");
        }
        passivated = json!({
            "rss_bytes": rss,
            "bytes_per_conversation": per,
            "live_conversations": live,
            "wait_secs": waited.as_secs_f64(),
            "passivations_total": metrics.get("switchboard_passivations_total"),
            "complete": live == 0.0,
        });
    }
    let metrics = rig.hub.metrics().await.unwrap_or_default();
    let report = json!({
        "scenario": "idle-rss",
        "unix_time": unix_now(),
        "conversations": n,
        "idle_timeout_secs": args.idle_timeout_secs,
        "rss_bytes": {
            "start": rss_start,
            "baseline": rss_baseline,
            "live": rss_live,
        },
        "live": {
            "rss_bytes": rss_live,
            "bytes_per_conversation": per_live,
            "live_conversations": live_at_live,
        },
        "passivated": passivated,
        "note": "RSS deltas include allocator retention: freed memory is not always returned to the OS",
        "creation": outcome_json(&created),
        "hub_metrics": metrics,
        "timeline": timeline_json(&rows),
    });
    Ok((created.is_clean(), report, rows))
}
