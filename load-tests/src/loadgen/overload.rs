//! `loadgen overload`: twice a sustainable rate for T seconds, then half of it for T seconds
//! (open model; webhooks answered 503 are retried after their Retry-After, as providers do).
//! Reports the 503s (a hub that pushes back answers some), the hub's RSS at the start, at its
//! peak and at the end (bounded queues keep the peak near the start), whether the hub is still
//! healthy, and recovery: every acknowledged message answered exactly once by the end of the
//! drain.

use anyhow::{Result, bail};
use serde_json::json;

use super::engine::Pace;
use super::report::mib;
use super::scenario::{CommonArgs, band};
use super::schedule::{Phase, Schedule};
use super::timeline::PhaseSummary;

/// Options of `loadgen overload`.
#[derive(clap::Args, Clone, Debug)]
pub struct OverloadArgs {
    /// A rate the hub sustains, msg/s: the run offers twice this, then half of it.
    #[arg(long, default_value_t = 3000.0, value_name = "R")]
    pub sustainable: f64,
    /// Seconds of each phase.
    #[arg(long, default_value_t = 10.0, value_name = "T")]
    pub seconds: f64,
    /// Conversations the messages are spread over, round-robin.
    #[arg(long, default_value_t = 1000, value_name = "C")]
    pub conversations: usize,
    /// Highest acceptable peak/start RSS ratio ("memory stays flat").
    #[arg(long, default_value_t = 4.0, value_name = "X")]
    pub max_rss_ratio: f64,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the scenario; `Ok(false)` when the hub died, lost or doubled an acknowledged message,
/// or its memory grew past --max-rss-ratio.
pub async fn run(args: &OverloadArgs) -> Result<bool> {
    if args.conversations == 0 {
        bail!("--conversations must be positive");
    }
    let r = args.sustainable;
    let schedule = Schedule::new(vec![
        Phase::new("overload", 2.0 * r, args.seconds),
        Phase::new("recovery", r / 2.0, args.seconds),
    ])?;
    let bounds = schedule.bounds();
    let spec = args.common.spec(args.conversations, schedule.messages(), Pace::Open(schedule));
    let m = args.common.measure(&args.common.rig, "overload", &spec).await?;
    let o = &m.outcome;
    let phases: Vec<PhaseSummary> = bounds.iter().map(|(n, a, b)| o.trace.phase(n, *a, *b)).collect();
    super::burst::print_phases(&phases);

    let peak = o.trace.rss.iter().map(|&(_, b)| b).chain(m.rss_before).chain(m.rss_after).max();
    let ratio = match (peak, m.rss_before) {
        (Some(peak), Some(start)) if start > 0 => Some((peak as f64 / start as f64 * 100.0).round() / 100.0),
        _ => None,
    };
    let memory_flat = ratio.is_none_or(|x| x <= args.max_rss_ratio);
    let recovered = o.lost + o.duplicated + o.out_of_order + o.misrouted == 0;
    let clean = m.healthy_after && recovered && memory_flat;
    let show = |b: Option<u64>| b.map_or_else(|| "unknown".to_owned(), mib);
    println!(
        "overload: 503s {} (hub {}); RSS start {} peak {} end {} (peak/start {}); survived {}; \
         recovered {} ({} acked, {} answered, {} lost, {} doubled, {} never accepted)",
        o.busy_503,
        if o.busy_503 > 0 { "pushed back" } else { "never pushed back" },
        show(m.rss_before),
        show(peak),
        show(m.rss_after),
        ratio.map_or_else(|| "unknown".to_owned(), |x| format!("{x:.2}")),
        m.healthy_after,
        recovered,
        o.acked,
        o.replied,
        o.lost,
        o.duplicated,
        o.failed,
    );
    println!("overload verdict: {}", if clean { "CLEAN" } else { "ANOMALIES" });
    let extra = json!({
        "phases": phases,
        "overload": {
            "sustainable_per_sec": r,
            "phase_secs": args.seconds,
            "busy_503": o.busy_503,
            "pushed_back": o.busy_503 > 0,
            "rss_bytes_start": m.rss_before,
            "rss_bytes_peak": peak,
            "rss_bytes_end": m.rss_after,
            "rss_peak_over_start": ratio,
            "max_rss_ratio": args.max_rss_ratio,
            "memory_flat": memory_flat,
            "survived": m.healthy_after,
            "recovered": recovered,
            "never_accepted": o.failed,
            "clean": clean,
        },
    });
    let title = format!(
        "overload: {} msg/s then {} msg/s, {} {} chats",
        2.0 * r,
        r / 2.0,
        args.conversations,
        args.common.channel.name()
    );
    let bands: Vec<_> = band(&bounds, "overload").into_iter().collect();
    args.common.save("overload", &title, &m, extra, &bands)?;
    Ok(clean)
}
