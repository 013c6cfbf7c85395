//! Histogram summaries, the printed report of a load run, and JSON output.

use std::path::Path;

use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::engine::LoadOutcome;

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
        "rate_per_sec": s.rate,
        "mode": if s.rate > 0.0 { "open" } else if s.wait_reply() { "closed_on_reply" } else { "closed_on_ack" },
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
    let mode = if s.rate > 0.0 {
        format!("open model, {} msg/s offered", s.rate)
    } else {
        let until = if s.wait_reply() { "reply" } else { "ack" };
        format!("closed loop, {} in flight until {until}", s.concurrency)
    };
    let mut out = format!("== {title}: {} messages over {} conversations, {mode}\n", s.messages, s.conversations);
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
