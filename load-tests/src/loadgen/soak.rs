//! `loadgen soak`: a long run at a moderate steady rate (or as closed-loop chats with
//! `--think-ms`), reporting the usual figures and the hub's RSS trend: the mean of the first
//! minute against the mean of the last minute of the load (a quarter of the run each when it
//! is shorter than four minutes). A leak shows as a growing line in the memory chart.

use anyhow::{Result, bail};
use serde_json::json;

use super::chats::chats_pace;
use super::engine::Pace;
use super::scenario::{CommonArgs, ThinkKind};
use super::schedule::Schedule;

/// Options of `loadgen soak`.
#[derive(clap::Args, Clone, Debug)]
pub struct SoakArgs {
    /// Length of the load, minutes.
    #[arg(long, default_value_t = 10, value_name = "MIN")]
    pub minutes: u64,
    /// Length of the load in seconds, instead of --minutes (short checks).
    #[arg(long, value_name = "S")]
    pub seconds: Option<u64>,
    /// Offered messages per second (open model).
    #[arg(long, default_value_t = 500.0, value_name = "R")]
    pub rate: f64,
    /// Conversations the messages are spread over (or simultaneous chats).
    #[arg(long, default_value_t = 1000, value_name = "C")]
    pub conversations: usize,
    /// Closed-loop chats instead of a fixed rate: the mean think time between a reply and the
    /// next message of a conversation, ms.
    #[arg(long, value_name = "MS")]
    pub think_ms: Option<u64>,
    /// Distribution of the think time (with --think-ms).
    #[arg(long, value_enum, default_value_t = ThinkKind::Exp)]
    pub think: ThinkKind,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs the scenario; `Ok(false)` when the run completed with anomalies.
pub async fn run(args: &SoakArgs) -> Result<bool> {
    let secs = args.seconds.unwrap_or(args.minutes * 60);
    if secs == 0 || args.conversations == 0 {
        bail!("the soak needs a length and conversations");
    }
    let (messages, pace) = match args.think_ms {
        Some(ms) => chats_pace(args.conversations, secs, args.think, ms)?,
        None => {
            let messages = (args.rate * secs as f64).round() as usize;
            (messages, Pace::Open(Schedule::constant(args.rate, messages)?))
        }
    };
    let spec = args.common.spec(args.conversations, messages, pace);
    let m = args.common.measure(&args.common.rig, "soak", &spec).await?;
    let trend = rss_trend(&m.outcome.trace.rss, secs as f64);
    match &trend {
        Some(t) => println!(
            "RSS trend: {:.1} MiB over the first {:.1} s, {:.1} MiB over the last {:.1} s ({:+.1} MiB, {:+.1} %)",
            t.first_mib,
            t.window_secs,
            t.last_mib,
            t.window_secs,
            t.last_mib - t.first_mib,
            t.growth_pct
        ),
        None => println!("RSS trend: unknown (no memory samples)"),
    }
    let load = match args.think_ms {
        Some(ms) => format!("chats with {ms} ms think"),
        None => format!("{} msg/s", args.rate),
    };
    let title =
        format!("soak: {} s, {} {} conversations, {load}", secs, args.conversations, args.common.channel.name());
    let extra = json!({ "soak": { "seconds": secs, "rss_trend": trend } });
    args.common.save("soak", &title, &m, extra, &[])?;
    Ok(m.outcome.is_clean())
}

/// Mean RSS at the start and at the end of the load.
#[derive(Debug, PartialEq, serde::Serialize)]
pub struct RssTrend {
    pub window_secs: f64,
    pub first_mib: f64,
    pub last_mib: f64,
    pub growth_pct: f64,
}

/// Compares the mean of the samples in the first and the last window of `[0, secs]` (a minute,
/// or a quarter of the load when shorter than four minutes; each window is `(lo, hi]`).
pub fn rss_trend(samples: &[(f64, u64)], secs: f64) -> Option<RssTrend> {
    let window = (secs / 4.0).min(60.0);
    // (lo, hi]: a sample on a window's edge counts once.
    let mean = |lo: f64, hi: f64| {
        let v: Vec<f64> = samples.iter().filter(|s| s.0 > lo && s.0 <= hi).map(|s| s.1 as f64).collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64 / (1024.0 * 1024.0))
    };
    let (first, last) = (mean(0.0, window)?, mean(secs - window, secs)?);
    let round = |x: f64| (x * 100.0).round() / 100.0;
    Some(RssTrend {
        window_secs: window,
        first_mib: round(first),
        last_mib: round(last),
        growth_pct: round((last / first - 1.0) * 100.0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trend_compares_the_first_and_last_windows_of_the_load() {
        const MIB: u64 = 1024 * 1024;
        // 8 s of load: 2 s windows. Samples after the load (the drain) do not count.
        let samples: Vec<(f64, u64)> = (1..=10).map(|t| (t as f64, (100 + 10 * t) * MIB)).collect();
        let t = rss_trend(&samples, 8.0).unwrap();
        assert_eq!(t.window_secs, 2.0);
        assert_eq!(t.first_mib, 115.0); // 110 and 120
        assert_eq!(t.last_mib, 175.0); // 170 and 180
        assert_eq!(t.growth_pct, 52.17);
        assert!(rss_trend(&[], 8.0).is_none());
        // An hour of load: one-minute windows, and the samples above are all in the first.
        assert!(rss_trend(&samples, 3600.0).is_none());
    }
}
