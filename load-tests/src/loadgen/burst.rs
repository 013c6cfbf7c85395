//! `loadgen burst`: a baseline rate, then N× that rate for a few seconds, then the baseline
//! again (open model throughout). Reports each phase on its own — how acks and replies held up
//! during the burst and how fast the backlog cleared after it — and the timeline shows it.

use anyhow::{Result, bail};
use serde_json::json;

use super::engine::Pace;
use super::scenario::{CommonArgs, band};
use super::schedule::{Phase, Schedule};
use super::timeline::PhaseSummary;

/// Options of `loadgen burst`.
#[derive(clap::Args, Clone, Debug)]
pub struct BurstArgs {
    /// Conversations the messages are spread over, round-robin.
    #[arg(long, default_value_t = 1000, value_name = "C")]
    pub conversations: usize,
    /// Baseline offered rate, messages per second.
    #[arg(long, default_value_t = 500.0, value_name = "R")]
    pub rate: f64,
    /// The burst offers this many times the baseline rate.
    #[arg(long, default_value_t = 4.0, value_name = "N")]
    pub factor: f64,
    /// Seconds of baseline before the burst, and again after it.
    #[arg(long, default_value_t = 10.0, value_name = "S")]
    pub baseline_secs: f64,
    /// Seconds of burst.
    #[arg(long, default_value_t = 5.0, value_name = "S")]
    pub burst_secs: f64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the scenario; `Ok(false)` when the run completed with anomalies.
pub async fn run(args: &BurstArgs) -> Result<bool> {
    if args.conversations == 0 || !args.factor.is_finite() || args.factor < 1.0 {
        bail!("--conversations must be positive and --factor at least 1");
    }
    let schedule = Schedule::new(vec![
        Phase::new("before", args.rate, args.baseline_secs),
        Phase::new("burst", args.rate * args.factor, args.burst_secs),
        Phase::new("after", args.rate, args.baseline_secs),
    ])?;
    let bounds = schedule.bounds();
    let spec = args.common.spec(args.conversations, schedule.messages(), Pace::Open(schedule));
    let m = args.common.measure(&args.common.rig, "burst", &spec).await?;
    let phases: Vec<PhaseSummary> = bounds.iter().map(|(n, a, b)| m.outcome.trace.phase(n, *a, *b)).collect();
    print_phases(&phases);
    let title = format!(
        "burst: {} msg/s, {}x for {} s, {} {} chats",
        args.rate,
        args.factor,
        args.burst_secs,
        args.conversations,
        args.common.channel.name()
    );
    let bands: Vec<_> = band(&bounds, "burst").into_iter().collect();
    args.common.save("burst", &title, &m, json!({ "phases": phases }), &bands)?;
    Ok(m.outcome.is_clean())
}

/// One line per phase.
pub fn print_phases(phases: &[PhaseSummary]) {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for p in phases {
        println!(
            "phase {:<9} {:>5.1}-{:<5.1}s offered {:>7.1}/s  msgs {:>6}  acked {:>6}  replied {:>6}  lost {:>3}  503s {:>5}  \
             ack p50/p99 {}/{} ms  e2e p50/p99/max {}/{}/{} ms",
            p.name,
            p.start_secs,
            p.end_secs,
            p.offered_per_sec,
            p.messages,
            p.acked,
            p.replied,
            p.lost,
            p.busy_503,
            ms(p.ack_p50_ms),
            ms(p.ack_p99_ms),
            ms(p.e2e_p50_ms),
            ms(p.e2e_p99_ms),
            ms(p.e2e_max_ms),
        );
    }
}
