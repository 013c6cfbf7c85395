//! What happened when: every message's timestamps ([`Trace`]) turned into per-second rows
//! ([`Row`]: sent, acked, replied, 503s, latency percentiles, hub RSS) and per-phase summaries
//! ([`PhaseSummary`]).
//!
//! Built after the run from exact per-message times rather than sampled counters, so a row
//! counts what happened in that second whatever the sampler's own lateness, and its
//! percentiles are exact (sorted values, nearest rank), not histogram buckets.

use serde::Serialize;

/// "Never happened" in a [`Trace`] timestamp.
pub const NONE: u64 = u64::MAX;
const NS_PER_SEC: u64 = 1_000_000_000;

/// Per-message timestamps of one run, in ns since the run's `t0` ([`NONE`] when it did not
/// happen), plus the per-second counters that are not per message.
#[derive(Clone, Debug, Default)]
pub struct Trace {
    /// When each message was due (open model) or sent (closed loop): latencies start here.
    pub intended_ns: Vec<u64>,
    /// First attempt.
    pub sent_ns: Vec<u64>,
    /// Webhook answered 200.
    pub acked_ns: Vec<u64>,
    /// First reply line at the fake provider.
    pub replied_ns: Vec<u64>,
    /// 503 answers, per second since `t0` (index = second).
    pub busy_per_sec: Vec<u64>,
    /// Hub RSS samples: (seconds since `t0`, bytes).
    pub rss: Vec<(f64, u64)>,
}

/// One second of the run (the second ending at `t`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    /// End of the second, seconds since the start.
    pub t: f64,
    /// Messages due in this second (open model: the offered load; otherwise as `sent`).
    pub offered: u64,
    /// Messages first attempted in this second.
    pub sent: u64,
    /// Webhooks answered 200 in this second.
    pub acked: u64,
    /// Messages whose first reply line arrived in this second.
    pub replied: u64,
    /// 503 answers in this second.
    pub busy_503: u64,
    /// Acknowledged but not yet answered at the end of the second.
    pub awaiting: u64,
    /// End-to-end latency of the replies of this second, median and 99th percentile (ms).
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    /// Ack latency of the acks of this second, 99th percentile (ms).
    pub ack_p99_ms: Option<f64>,
    /// Hub RSS sampled at the end of this second, MiB (none without a sample).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rss_mib: Option<f64>,
}

/// Figures of the messages due within one phase of a schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseSummary {
    pub name: String,
    pub start_secs: f64,
    pub end_secs: f64,
    /// Messages due in the phase.
    pub messages: u64,
    pub offered_per_sec: f64,
    pub acked: u64,
    pub replied: u64,
    /// Acknowledged, never answered.
    pub lost: u64,
    /// 503 answers during the phase's seconds.
    pub busy_503: u64,
    /// Replies received during the phase's window, per second.
    pub replied_per_sec_in_window: f64,
    pub ack_p50_ms: Option<f64>,
    pub ack_p99_ms: Option<f64>,
    pub e2e_p50_ms: Option<f64>,
    pub e2e_p99_ms: Option<f64>,
    pub e2e_max_ms: Option<f64>,
}

impl Trace {
    /// An empty trace for `m` messages.
    pub fn new(m: usize) -> Trace {
        Trace {
            intended_ns: vec![NONE; m],
            sent_ns: vec![NONE; m],
            acked_ns: vec![NONE; m],
            replied_ns: vec![NONE; m],
            busy_per_sec: Vec::new(),
            rss: Vec::new(),
        }
    }

    /// Rows needed to hold every event: up to the last second with anything in it.
    fn seconds(&self) -> usize {
        let last = |v: &[u64]| v.iter().copied().filter(|&x| x != NONE).max().map_or(0, |ns| ns / NS_PER_SEC + 1);
        let events = [&self.sent_ns, &self.acked_ns, &self.replied_ns].into_iter().map(|v| last(v)).max().unwrap_or(0);
        let busy = self.busy_per_sec.iter().rposition(|&n| n > 0).map_or(0, |s| s as u64 + 1);
        let rss = self.rss.iter().map(|&(t, _)| t.round() as u64).max().unwrap_or(0);
        events.max(busy).max(rss) as usize
    }

    /// One row per second, from the first second to the last one with anything in it.
    pub fn rows(&self) -> Vec<Row> {
        let n = self.seconds();
        let mut rows: Vec<Row> = (0..n)
            .map(|s| Row {
                t: (s + 1) as f64,
                offered: 0,
                sent: 0,
                acked: 0,
                replied: 0,
                busy_503: self.busy_per_sec.get(s).copied().unwrap_or(0),
                awaiting: 0,
                e2e_p50_ms: None,
                e2e_p99_ms: None,
                ack_p99_ms: None,
                rss_mib: None,
            })
            .collect();
        let bucket = |ns: u64| (ns / NS_PER_SEC) as usize;
        // (second, latency µs) pairs, sorted, give each second's exact percentiles.
        let (mut e2e, mut ack) = (Vec::new(), Vec::new());
        for i in 0..self.intended_ns.len() {
            let intended = self.intended_ns[i];
            // A message due after the last event (never sent) has no row.
            if let Some(row) = rows.get_mut(bucket(intended)).filter(|_| intended != NONE) {
                row.offered += 1;
            }
            if self.sent_ns[i] != NONE {
                rows[bucket(self.sent_ns[i])].sent += 1;
            }
            if self.acked_ns[i] != NONE {
                rows[bucket(self.acked_ns[i])].acked += 1;
                ack.push((bucket(self.acked_ns[i]), self.acked_ns[i].saturating_sub(intended) / 1000));
            }
            if self.replied_ns[i] != NONE {
                rows[bucket(self.replied_ns[i])].replied += 1;
                e2e.push((bucket(self.replied_ns[i]), self.replied_ns[i].saturating_sub(intended) / 1000));
            }
        }
        for (s, p50, p99) in per_bucket(e2e) {
            rows[s].e2e_p50_ms = Some(p50);
            rows[s].e2e_p99_ms = Some(p99);
        }
        for (s, _, p99) in per_bucket(ack) {
            rows[s].ack_p99_ms = Some(p99);
        }
        let (mut acked, mut replied) = (0, 0);
        for row in &mut rows {
            acked += row.acked;
            replied += row.replied;
            row.awaiting = acked.saturating_sub(replied);
        }
        for &(t, bytes) in &self.rss {
            if let Some(s) = sample_row(t, n) {
                rows[s].rss_mib = Some(mib(bytes));
            }
        }
        rows
    }

    /// Figures of the messages due in `[start, end)` seconds.
    pub fn phase(&self, name: &str, start: f64, end: f64) -> PhaseSummary {
        let (lo, hi) = ((start * NS_PER_SEC as f64) as u64, (end * NS_PER_SEC as f64) as u64);
        let (mut messages, mut acked, mut replied, mut lost) = (0, 0, 0, 0);
        let (mut ack, mut e2e) = (Vec::new(), Vec::new());
        for i in 0..self.intended_ns.len() {
            let intended = self.intended_ns[i];
            if intended == NONE || intended < lo || intended >= hi {
                continue;
            }
            messages += 1;
            if self.acked_ns[i] != NONE {
                acked += 1;
                ack.push(self.acked_ns[i].saturating_sub(intended) / 1000);
                if self.replied_ns[i] == NONE {
                    lost += 1;
                }
            }
            if self.replied_ns[i] != NONE {
                replied += 1;
                e2e.push(self.replied_ns[i].saturating_sub(intended) / 1000);
            }
        }
        ack.sort_unstable();
        e2e.sort_unstable();
        let in_window = self.replied_ns.iter().filter(|&&r| r != NONE && r >= lo && r < hi).count();
        let secs = (end - start).max(1e-9);
        let first_sec = start.floor() as usize;
        let last_sec = (end.ceil() as usize).max(first_sec);
        let busy = self.busy_per_sec.iter().skip(first_sec).take(last_sec - first_sec).sum();
        PhaseSummary {
            name: name.to_owned(),
            start_secs: start,
            end_secs: end,
            messages,
            offered_per_sec: round2(messages as f64 / secs),
            acked,
            replied,
            lost,
            busy_503: busy,
            replied_per_sec_in_window: round2(in_window as f64 / secs),
            ack_p50_ms: percentile_ms(&ack, 0.5),
            ack_p99_ms: percentile_ms(&ack, 0.99),
            e2e_p50_ms: percentile_ms(&e2e, 0.5),
            e2e_p99_ms: percentile_ms(&e2e, 0.99),
            e2e_max_ms: e2e.last().map(|&us| round2(us as f64 / 1000.0)),
        }
    }
}

/// The row of `rows` a sample taken `t` seconds after the start belongs to: sampled on whole
/// seconds, it belongs to the row ending nearest to it.
pub fn sample_row(t: f64, rows: usize) -> Option<usize> {
    let s = (t.round() as usize).clamp(1, rows.max(1)) - 1;
    (s < rows).then_some(s)
}

/// Bytes as MiB, 2 decimals (a row's `rss_mib`).
pub fn mib(bytes: u64) -> f64 {
    round2(bytes as f64 / (1024.0 * 1024.0))
}

/// Per bucket present in `pairs` (bucket, µs): (bucket, p50 ms, p99 ms).
fn per_bucket(mut pairs: Vec<(usize, u64)>) -> Vec<(usize, f64, f64)> {
    pairs.sort_unstable();
    let mut out = Vec::new();
    for group in pairs.chunk_by(|a, b| a.0 == b.0) {
        let values: Vec<u64> = group.iter().map(|&(_, v)| v).collect();
        if let (Some(p50), Some(p99)) = (percentile_ms(&values, 0.5), percentile_ms(&values, 0.99)) {
            out.push((group[0].0, p50, p99));
        }
    }
    out
}

/// Nearest-rank percentile of sorted µs values, in ms (2 decimals).
pub fn percentile_ms(sorted_us: &[u64], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let rank = ((q * sorted_us.len() as f64).ceil() as usize).clamp(1, sorted_us.len());
    Some(round2(sorted_us[rank - 1] as f64 / 1000.0))
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// 4 messages: two in second 0, one in second 1 (503'd twice first), one never answered.
    fn trace() -> Trace {
        let mut t = Trace::new(4);
        t.intended_ns = vec![0, 500 * MS, 1000 * MS, 1200 * MS];
        t.sent_ns = vec![0, 500 * MS, 1000 * MS, 1200 * MS];
        t.acked_ns = vec![MS, 502 * MS, 2100 * MS, 1210 * MS];
        t.replied_ns = vec![10 * MS, 1100 * MS, 2300 * MS, NONE];
        t.busy_per_sec = vec![0, 2];
        t.rss = vec![(1.002, 10 * 1024 * 1024), (2.001, 12 * 1024 * 1024), (3.0, 11 * 1024 * 1024)];
        t
    }

    #[test]
    fn events_land_in_the_second_they_happened() {
        let rows = trace().rows();
        assert_eq!(rows.len(), 3, "{rows:?}");
        let counts: Vec<_> =
            rows.iter().map(|r| (r.t, r.offered, r.sent, r.acked, r.replied, r.busy_503, r.awaiting)).collect();
        assert_eq!(
            counts,
            vec![
                (1.0, 2, 2, 2, 1, 0, 1), // acked 0 and 1, replied 0
                (2.0, 2, 2, 1, 1, 2, 1), // acked 3, replied 1, two 503s
                (3.0, 0, 0, 1, 1, 0, 1), // acked and replied 2; 3 still awaiting
            ]
        );
        // Second 1 got the reply of message 1: due at 0.5 s, answered at 1.1 s.
        assert_eq!(rows[1].e2e_p50_ms, Some(600.0));
        assert_eq!(rows[0].e2e_p99_ms, Some(10.0));
        // Acks of second 2: message 2, due 1.0 s, acked 2.1 s.
        assert_eq!(rows[2].ack_p99_ms, Some(1100.0));
        let rss: Vec<_> = rows.iter().map(|r| r.rss_mib).collect();
        assert_eq!(rss, vec![Some(10.0), Some(12.0), Some(11.0)]);
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).map(|x| x * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.5), Some(50.0));
        assert_eq!(percentile_ms(&v, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&v, 1.0), Some(100.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
        let rows = per_bucket(vec![(3, 5000), (1, 1000), (1, 3000), (1, 2000)]);
        assert_eq!(rows, vec![(1, 2.0, 3.0), (3, 5.0, 5.0)]);
    }

    #[test]
    fn phase_counts_messages_by_due_time() {
        let t = trace();
        let first = t.phase("first", 0.0, 1.0);
        assert_eq!((first.messages, first.acked, first.replied, first.lost), (2, 2, 2, 0));
        assert_eq!(first.e2e_p99_ms, Some(600.0));
        assert_eq!(first.busy_503, 0);
        let second = t.phase("second", 1.0, 2.0);
        assert_eq!((second.messages, second.acked, second.replied, second.lost), (2, 2, 1, 1));
        assert_eq!(second.busy_503, 2);
        assert_eq!(second.offered_per_sec, 2.0);
        // Replies that arrived between 1 s and 2 s: message 1's.
        assert_eq!(second.replied_per_sec_in_window, 1.0);
        assert_eq!(second.ack_p50_ms, Some(10.0));
    }
}
