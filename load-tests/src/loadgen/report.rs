//! Histogram summaries, the printed report of a load run, JSON output, and the SVG charts of
//! a run's timeline written next to the JSON.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::chart::{Band, Chart, Scale, Series};
use super::engine::{LoadOutcome, Pace};
use super::timeline::Row;

/// Percentiles reported for every latency histogram.
const QUANTILES: [(&str, f64); 4] = [("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("p99_9", 0.999)];

/// Count, mean, percentiles and max of a µs histogram, as JSON (values in µs).
pub fn hist_json(h: &Histogram<u64>) -> Value {
    let mut v = json!({ "count": h.len(), "unit": "us" });
    if h.is_empty() {
        return v;
    }
    v["min"] = h.min().into();
    v["mean"] = ((h.mean() * 10.0).round() / 10.0).into();
    for (name, q) in QUANTILES {
        v[name] = h.value_at_quantile(q).into();
    }
    v["max"] = h.max().into();
    v
}

/// One line: `label  p50 … p99.9 … max` in milliseconds.
pub fn hist_line(label: &str, h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return format!("{label:<12} (no samples)");
    }
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "{label:<12} p50 {:>9.2}  p90 {:>9.2}  p99 {:>9.2}  p99.9 {:>9.2}  max {:>9.2} ms  (n={})",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.len()
    )
}

/// The figures of a run as JSON.
pub fn outcome_json(o: &LoadOutcome) -> Value {
    let s = &o.spec;
    json!({
        "conversations": s.conversations,
        "messages": s.messages,
        "rate_per_sec": round1(s.rate()),
        "mode": s.mode(),
        "think_ms": match s.pace {
            Pace::Chats { think, .. } => Some(think.mean().as_secs_f64() * 1000.0),
            _ => None,
        },
        "channel": s.channel.name(),
        "concurrency": s.concurrency,
        "drain_timeout_secs": s.drain_timeout.as_secs_f64(),
        "sent": o.sent,
        "acked": o.acked,
        "replied": o.replied,
        "busy_503": o.busy_503,
        "http_errors": o.http_errors,
        "transport_errors": o.transport_errors,
        "failed": o.failed,
        "lost": o.lost,
        "duplicated": o.duplicated,
        "out_of_order": o.out_of_order,
        "unexpected_replies": o.unexpected,
        "misrouted": o.misrouted,
        "foreign_lines": o.foreign,
        "reply_sends": o.reply_sends,
        "messages_per_reply": ratio(o.replied, o.reply_sends),
        "max_messages_per_reply": o.max_batch,
        "ack_span_secs": o.ack_span.as_secs_f64(),
        "reply_span_secs": o.reply_span.as_secs_f64(),
        "ack_rate_per_sec": round1(o.ack_rate()),
        "throughput_per_sec": round1(o.throughput()),
        "clean": o.is_clean(),
        "latency": {
            "ack": hist_json(&o.ack),
            "ack_service": hist_json(&o.ack_service),
            "send_lag": hist_json(&o.send_lag),
            "e2e": hist_json(&o.e2e),
        },
        "lost_samples": o.lost_samples,
        "samples": o.samples,
    })
}

/// The readable summary of a run, for stdout.
pub fn outcome_text(title: &str, o: &LoadOutcome) -> String {
    let s = &o.spec;
    let mode = match s.pace {
        Pace::Open(_) => format!("open model, {:.0} msg/s offered", s.rate()),
        Pace::Closed { close_on_reply } => {
            let until = if close_on_reply { "reply" } else { "ack" };
            format!("closed loop, {} in flight until {until}", s.concurrency)
        }
        Pace::Chats { think, .. } => format!("chats, {} ms think time", think.mean().as_millis()),
    };
    let mut out = format!(
        "== {title}: {} messages over {} {} conversations, {mode}\n",
        if matches!(s.pace, Pace::Chats { .. }) { o.sent as usize } else { s.messages },
        s.conversations,
        s.channel.name()
    );
    out += &format!(
        "sent {}  acked {}  replied {}  503s {}  http errors {}  transport errors {}\n",
        o.sent, o.acked, o.replied, o.busy_503, o.http_errors, o.transport_errors
    );
    out += &format!(
        "failed {}  lost {}  duplicated {}  out-of-order {}  misrouted {}  unexpected {}  foreign {}\n",
        o.failed, o.lost, o.duplicated, o.out_of_order, o.misrouted, o.unexpected, o.foreign
    );
    out += &format!(
        "throughput {:.1} replied msg/s over {:.2} s (acks {:.1}/s over {:.2} s); {} AI replies, {:.2} msgs/reply (max {})\n",
        o.throughput(),
        o.reply_span.as_secs_f64(),
        o.ack_rate(),
        o.ack_span.as_secs_f64(),
        o.reply_sends,
        ratio(o.replied, o.reply_sends),
        o.max_batch
    );
    out += &hist_line("ack", &o.ack);
    out += "\n";
    out += &hist_line("ack service", &o.ack_service);
    out += "\n";
    out += &hist_line("e2e", &o.e2e);
    out += "\n";
    out += &hist_line("send lag", &o.send_lag);
    out += "\n";
    if !o.lost_samples.is_empty() {
        out += &format!("lost e.g. {:?}\n", o.lost_samples);
    }
    for sample in &o.samples {
        out += &format!("sample: {sample}\n");
    }
    out += if o.is_clean() {
        "verdict: CLEAN (every message acknowledged and answered once, in order)\n"
    } else {
        "verdict: ANOMALIES (see failed/lost/duplicated/out-of-order/misrouted)\n"
    };
    out
}

/// `a / b` rounded to 2 decimals, 0 when `b` is 0.
fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 { 0.0 } else { (a as f64 / b as f64 * 100.0).round() / 100.0 }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// Bytes as MiB with two decimals, for printing.
pub fn mib(bytes: u64) -> String {
    format!("{:.2} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Writes pretty JSON, creating the parent directory.
pub fn write_json(path: &Path, value: &Value) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(value)? + "\n";
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("wrote {}", path.display());
    Ok(())
}

/// The per-second rows of a run as JSON.
pub fn timeline_json(rows: &[Row]) -> Value {
    serde_json::to_value(rows).unwrap_or(Value::Null)
}

/// `<dir>/<stem>-<what>.svg` next to the JSON output `<dir>/<stem>.json`.
fn chart_path(json: &Path, what: &str) -> PathBuf {
    let stem = json.file_stem().map_or_else(|| "loadgen".into(), |s| s.to_string_lossy().into_owned());
    json.with_file_name(format!("{stem}-{what}.svg"))
}

/// Writes the throughput, latency and (when RSS was sampled) memory charts of a run next to its
/// JSON output; `bands` shade the phases of a schedule. Returns the files written.
pub fn write_charts(json: &Path, title: &str, rows: &[Row], bands: &[Band]) -> Result<Vec<PathBuf>> {
    save_charts(json, &charts(title, rows, bands))
}

/// The charts [`write_charts`] writes, named by what they show (`throughput`, `latency`,
/// `memory`), for a scenario that adds to one before saving them.
pub fn charts(title: &str, rows: &[Row], bands: &[Band]) -> Vec<(&'static str, Chart)> {
    // A row counts the second ending at `t`: drawn mid-second, so a phase's rates line up with
    // its band. RSS is sampled at the end of the second, and drawn there.
    let series = |name: &str, color: &'static str, f: &dyn Fn(&Row) -> Option<f64>| Series {
        name: name.to_owned(),
        color,
        points: rows.iter().filter_map(|r| Some((if name == "hub RSS" { r.t } else { r.t - 0.5 }, f(r)?))).collect(),
        dashed: matches!(name, "sent" | "offered (due)"),
    };
    let chart = |what: &str, y_label: &str, scale, series| Chart {
        title: format!("{title}: {what}"),
        x_label: "seconds since start".into(),
        y_label: y_label.into(),
        scale,
        series,
        bands: bands.to_vec(),
    };
    let mut charts = vec![
        (
            "throughput",
            chart(
                "messages per second",
                "messages / s",
                Scale::Linear,
                vec![
                    series("offered (due)", "#7f7f7f", &|r| Some(r.offered as f64)),
                    series("sent", "#1f77b4", &|r| Some(r.sent as f64)),
                    series("acked (200)", "#2ca02c", &|r| Some(r.acked as f64)),
                    series("replied", "#ff7f0e", &|r| Some(r.replied as f64)),
                    series("503 answers", "#d62728", &|r| Some(r.busy_503 as f64)),
                ],
            ),
        ),
        (
            "latency",
            chart(
                "latency of the second's replies and acks",
                "ms (log scale)",
                Scale::Log,
                vec![
                    series("e2e p50", "#9467bd", &|r| r.e2e_p50_ms),
                    series("e2e p99", "#d62728", &|r| r.e2e_p99_ms),
                    series("ack p99", "#2ca02c", &|r| r.ack_p99_ms),
                ],
            ),
        ),
    ];
    if rows.iter().any(|r| r.rss_mib.is_some()) {
        let rss = series("hub RSS", "#17becf", &|r| r.rss_mib);
        charts.push(("memory", chart("hub resident memory", "MiB", Scale::Linear, vec![rss])));
    }
    charts
}

/// Writes each chart as `<stem>-<what>.svg` next to the JSON output `<stem>.json`.
pub fn save_charts(json: &Path, charts: &[(&str, Chart)]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for (what, chart) in charts {
        let path = chart_path(json, what);
        std::fs::write(&path, chart.svg()).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    eprintln!("wrote {}", written.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "));
    Ok(written)
}
