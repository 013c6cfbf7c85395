//! The failover run second by second, as the other scenarios chart theirs: what became of each
//! webhook ([`Delivery`]), both nodes' RSS once a second, the per-second rows built from them
//! ([`Timeline`]) and their charts, the stretch from the kill to the takeover shaded.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use serde_json::{Value, json};
use tokio::time::MissedTickBehavior;

use super::{FailoverArgs, Replies};
use crate::loadgen::chart::{Band, Series};
use crate::loadgen::hub::MemProbe;
use crate::loadgen::report::{charts, save_charts, timeline_json};
use crate::loadgen::timeline::{NONE, Row, Trace, mib, sample_row};

/// What became of the webhook of message `i` (conversation `i % conversations`, its line
/// `i / conversations`, due `i / rate` seconds after the start).
#[derive(Clone, Debug)]
pub(super) struct Delivery {
    pub(super) i: usize,
    /// First attempt.
    pub(super) sent: Instant,
    /// When a node answered 200 (`None`: never).
    pub(super) acked: Option<Instant>,
    /// When a node answered 503 before one took it.
    pub(super) busy: Vec<Instant>,
}

/// RSS of node 0 and node 1, sampled once a second: (seconds since the start, bytes of each).
pub(super) type RssSamples = Vec<(f64, [Option<u64>; 2])>;

/// Samples both nodes' RSS on whole seconds after `t0` (as the other scenarios sample the hub,
/// so a sample belongs to the timeline row ending then) until aborted; a node that is gone
/// gives nothing.
pub(super) async fn sample_rss(t0: Instant, probes: [Option<MemProbe>; 2], into: Arc<Mutex<RssSamples>>) {
    let mut tick = tokio::time::interval_at((t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let mut bytes = [None, None];
        for (b, probe) in bytes.iter_mut().zip(&probes) {
            if let Some(probe) = probe {
                *b = probe.rss_bytes().await;
            }
        }
        into.lock().unwrap_or_else(|e| e.into_inner()).push((t0.elapsed().as_secs_f64(), bytes));
    }
}

/// The run as per-message timestamps since `t0`, for the per-second rows of the other
/// scenarios: message `i` was due at `i / rate`, its first reply is the earliest line; the
/// hub RSS is node 1's, the node that survives.
pub(super) fn trace(
    t0: Instant,
    args: &FailoverArgs,
    deliveries: &[Delivery],
    replies: &Replies,
    rss: &RssSamples,
) -> Trace {
    let total = (args.rate * args.secs as f64) as usize;
    let ns = |at: Instant| at.saturating_duration_since(t0).as_nanos() as u64;
    let mut trace = Trace::new(total);
    for (i, due) in trace.intended_ns.iter_mut().enumerate() {
        *due = (i as f64 / args.rate * 1e9) as u64;
    }
    for d in deliveries.iter().filter(|d| d.i < total) {
        trace.sent_ns[d.i] = ns(d.sent);
        trace.acked_ns[d.i] = d.acked.map_or(NONE, ns);
        for &at in &d.busy {
            let second = (ns(at) / 1_000_000_000) as usize;
            if trace.busy_per_sec.len() <= second {
                trace.busy_per_sec.resize(second + 1, 0);
            }
            trace.busy_per_sec[second] += 1;
        }
    }
    for (&(c, k), arrivals) in replies {
        let i = k * args.conversations + c;
        if c >= args.conversations || i >= total {
            continue;
        }
        if let Some(&first) = arrivals.iter().min() {
            trace.replied_ns[i] = ns(first);
        }
    }
    trace.rss = rss.iter().filter_map(|&(t, [_, node1])| Some((t, node1?))).collect();
    trace
}

/// The per-second rows, and beside them node 0's RSS (until the kill).
pub(super) struct Timeline {
    pub(super) rows: Vec<Row>,
    /// Node 0's RSS at the end of each row's second, MiB.
    node0_mib: Vec<Option<f64>>,
}

impl Timeline {
    pub(super) fn build(trace: &Trace, rss: &RssSamples) -> Timeline {
        let rows = trace.rows();
        let mut node0_mib = vec![None; rows.len()];
        for &(t, [node0, _]) in rss {
            if let (Some(s), Some(bytes)) = (sample_row(t, rows.len()), node0) {
                node0_mib[s] = Some(mib(bytes));
            }
        }
        Timeline { rows, node0_mib }
    }

    /// The rows as JSON; `rss_mib` is node 1's, `node0_rss_mib` node 0's.
    pub(super) fn json(&self) -> Value {
        let mut rows = timeline_json(&self.rows);
        if let Value::Array(rows) = &mut rows {
            for (row, node0) in rows.iter_mut().zip(&self.node0_mib) {
                if let (Value::Object(row), Some(node0)) = (row, node0) {
                    row.insert("node0_rss_mib".to_owned(), json!(node0));
                }
            }
        }
        rows
    }

    /// The charts of the other scenarios, `band` shaded on each, the memory chart showing both
    /// nodes.
    pub(super) fn save_charts(&self, out: &Path, title: &str, band: Band) -> Result<()> {
        let mut charts = charts(title, &self.rows, &[band]);
        if let Some((_, memory)) = charts.iter_mut().find(|(what, _)| *what == "memory") {
            memory.title = format!("{title}: resident memory of the nodes");
            // The one series of the memory chart is the rows' RSS: node 1's.
            for series in &mut memory.series {
                series.name = "node 1 RSS (survives)".to_owned();
            }
            let points = self.rows.iter().zip(&self.node0_mib).filter_map(|(r, m)| Some((r.t, (*m)?))).collect();
            memory.series.push(Series {
                name: "node 0 RSS (until the kill)".to_owned(),
                color: "#8c564b",
                points,
                dashed: false,
            });
        }
        save_charts(out, &charts)?;
        Ok(())
    }
}

/// The shaded stretch of the charts: from the kill to the first answer for node 0's
/// partitions (to `end` when none came), at least a tenth of a second wide to stay visible.
pub(super) fn kill_band(kill_secs: f64, first_reclaimed: Option<Duration>, end: f64) -> Band {
    let (to, label) = match first_reclaimed {
        Some(after) => (kill_secs + after.as_secs_f64(), "kill -9 \u{2192} takeover"),
        None => (end, "kill -9, no takeover"),
    };
    Band { from: kill_secs, to: to.max(kill_secs + 0.1), label: label.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> FailoverArgs {
        FailoverArgs {
            conversations: 2,
            rate: 2.0,
            secs: 3,
            kill_at: 1,
            lease_ttl_ms: 3000,
            heartbeat_ms: 500,
            partitions: 64,
            hub_bin: None,
            out: None,
        }
    }

    #[test]
    fn messages_land_in_the_rows_of_their_seconds() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // 6 messages due every 0.5 s; message 3 is answered late (the kill), 5 never acked.
        let deliveries: Vec<Delivery> = (0..6)
            .map(|i| Delivery {
                i,
                sent: at(500 * i as u64 + 2),
                acked: (i != 5).then(|| at(500 * i as u64 + 10)),
                busy: if i == 4 { vec![at(2_003), at(2_060)] } else { Vec::new() },
            })
            .collect();
        let mut replies = Replies::new();
        for i in 0..5usize {
            let first = if i == 3 { 2_900 } else { 500 * i as u64 + 20 };
            // Message 0 is answered twice: the first line counts.
            let arrivals = if i == 0 { vec![at(700), at(first)] } else { vec![at(first)] };
            replies.insert((i % 2, i / 2), arrivals);
        }
        // A line of no message of the run is ignored.
        replies.insert((7, 0), vec![at(100)]);
        let rss = vec![
            (1.001, [Some(10 << 20), Some(20 << 20)]),
            (2.002, [None, Some(21 << 20)]),
            (3.0, [None, Some(22 << 20)]),
        ];
        let trace = trace(t0, &args(), &deliveries, &replies, &rss);
        assert_eq!(trace.intended_ns[3], 1_500_000_000);
        assert_eq!(trace.replied_ns[0], 20_000_000);
        let timeline = Timeline::build(&trace, &rss);
        let counts: Vec<_> =
            timeline.rows.iter().map(|r| (r.t, r.offered, r.sent, r.acked, r.replied, r.busy_503)).collect();
        assert_eq!(counts, vec![(1.0, 2, 2, 2, 2, 0), (2.0, 2, 2, 2, 1, 0), (3.0, 2, 2, 1, 2, 2)]);
        assert_eq!(timeline.rows[2].e2e_p99_ms, Some(1400.0), "message 3: due 1.5 s, answered 2.9 s");
        let rss_rows: Vec<_> = timeline.rows.iter().map(|r| r.rss_mib).collect();
        assert_eq!(rss_rows, vec![Some(20.0), Some(21.0), Some(22.0)], "the survivor's");
        assert_eq!(timeline.node0_mib, vec![Some(10.0), None, None]);
        let json = timeline.json();
        assert_eq!(json[0]["node0_rss_mib"], json!(10.0));
        assert!(json[1].get("node0_rss_mib").is_none());
    }

    #[test]
    fn the_band_runs_from_the_kill_to_the_takeover() {
        let band = kill_band(8.2, Some(Duration::from_millis(3100)), 20.0);
        assert_eq!((band.from, band.to), (8.2, 8.2 + 3.1));
        assert!(band.label.contains("takeover"));
        let never = kill_band(8.2, None, 20.0);
        assert_eq!((never.to, never.label.as_str()), (20.0, "kill -9, no takeover"));
        let instant = kill_band(8.2, Some(Duration::ZERO), 20.0);
        assert!(instant.to > instant.from, "still visible");
    }
}
