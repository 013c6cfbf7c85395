//! What the measured part of a run cost per message answered: CPU time of the hub, of this
//! generator (with its fakes) and of Redis, and the commands Redis served. Unlike a rate, these
//! hardly depend on how fast the machine of the day is, so builds compare across sessions.
//! The hub's and the generator's CPU come from `/proc` (clock ticks of 1/100 s, as Linux
//! reports them to user space); Redis's from `INFO cpu` and `INFO commandstats` (read with
//! `redis-cli`), apart from its forked children's (AOF rewrites), counted once they have
//! finished. What cannot be read is left out.

use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::process::Command;

/// `/proc/<pid>/stat`'s CPU ticks per second on Linux.
const TICKS_PER_SEC: f64 = 100.0;

/// Counters read at one moment.
pub struct Sample {
    hub_cpu: Option<f64>,
    own_cpu: Option<f64>,
    redis_cpu: Option<f64>,
    /// Redis's finished children: rewriting the AOF forks a process that copies the whole dataset
    /// (so would an RDB save, which the rig's Redis does not make unless `--redis-config` asks).
    redis_children_cpu: Option<f64>,
    redis_calls: BTreeMap<String, u64>,
}

/// Reads the counters of the hub process `hub_pid` (0: not ours to read) and of the Redis at
/// `redis_url`.
fn sample(hub_pid: u32, redis_url: Option<&str>) -> Sample {
    let hub_cpu = (hub_pid != 0).then(|| process_cpu(&hub_pid.to_string())).flatten();
    let cpu = redis_url.and_then(|url| redis_info(url, "cpu"));
    let calls = redis_url.and_then(|url| redis_info(url, "commandstats"));
    Sample {
        hub_cpu,
        own_cpu: process_cpu("self"),
        redis_cpu: cpu.as_deref().and_then(|i| redis_cpu(i, "")),
        redis_children_cpu: cpu.as_deref().and_then(|i| redis_cpu(i, "_children")),
        redis_calls: calls.map(|i| commands(&i)).unwrap_or_default(),
    }
}

/// The counters at the start of a measured stretch, to divide by the messages answered in it.
pub struct Meter {
    hub_pid: u32,
    redis_url: Option<String>,
    before: Sample,
}

impl Meter {
    /// Samples now the hub process `hub_pid` and the Redis at `redis_url`.
    pub fn start(hub_pid: u32, redis_url: Option<String>) -> Self {
        let before = sample(hub_pid, redis_url.as_deref());
        Self { hub_pid, redis_url, before }
    }

    /// [`per_message`] from the start to now.
    pub fn finish(&self, messages: u64) -> (Value, String) {
        per_message(&self.before, &sample(self.hub_pid, self.redis_url.as_deref()), messages)
    }
}

/// Per message answered between `before` and `after`, as JSON, and one line to print.
fn per_message(before: &Sample, after: &Sample, messages: u64) -> (Value, String) {
    let n = messages.max(1) as f64;
    let micros = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| ((b - a) * 1e6 / n).round());
    let hub = micros(before.hub_cpu, after.hub_cpu);
    let own = micros(before.own_cpu, after.own_cpu);
    let redis = micros(before.redis_cpu, after.redis_cpu);
    let rewrites = micros(before.redis_children_cpu, after.redis_children_cpu);
    let mut calls = BTreeMap::new();
    for (name, count) in &after.redis_calls {
        let delta = count.saturating_sub(before.redis_calls.get(name).copied().unwrap_or(0));
        if delta > 0 {
            calls.insert(name.clone(), (delta as f64 / n * 100.0).round() / 100.0);
        }
    }
    // Summed from 0.0: an empty `sum()` of floats is -0.0.
    let total_calls = calls.values().fold(0.0, |sum, c| sum + c);
    let parts = [("hub CPU", hub), ("generator and fakes", own), ("redis CPU", redis)];
    let known: Vec<String> = parts.iter().filter_map(|(what, v)| v.map(|v| format!("{what} {v:.0} µs"))).collect();
    let mut line =
        format!("cost per message: {}", if known.is_empty() { "unknown".to_owned() } else { known.join(", ") });
    if let Some(us) = rewrites.filter(|us| *us > 0.0) {
        line.push_str(&format!(" (+ {us:.0} µs in forked children: AOF rewrites)"));
    }
    if !calls.is_empty() {
        let mut top: Vec<_> = calls.iter().collect();
        top.sort_by(|a, b| b.1.total_cmp(a.1));
        let top: Vec<String> = top.iter().take(4).map(|(k, v)| format!("{k} {v}")).collect();
        line.push_str(&format!("; redis calls {total_calls:.2} ({})", top.join(", ")));
    }
    let json = json!({
        "messages": messages,
        "hub_cpu_us": hub,
        "generator_cpu_us": own,
        "redis_cpu_us": redis,
        "redis_rewrite_cpu_us": rewrites,
        "redis_calls": calls,
        "redis_calls_total": (total_calls * 100.0).round() / 100.0,
    });
    (json, line)
}

/// utime + stime of `/proc/<pid>/stat`, in seconds.
fn process_cpu(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: count fields after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_SEC)
}

fn redis_info(url: &str, section: &str) -> Option<String> {
    let out = Command::new("redis-cli").args(["-u", url, "INFO", section]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `used_cpu_sys<suffix> + used_cpu_user<suffix>` of `INFO cpu` (suffix `_children`: its
/// finished children's).
fn redis_cpu(info: &str, suffix: &str) -> Option<f64> {
    let field = |name: String| {
        info.lines().find_map(|l| l.trim().strip_prefix(name.as_str())?.strip_prefix(':')?.parse::<f64>().ok())
    };
    Some(field(format!("used_cpu_sys{suffix}"))? + field(format!("used_cpu_user{suffix}"))?)
}

/// Calls per command of `INFO commandstats` (`cmdstat_evalsha:calls=12,usec=…`).
fn commands(info: &str) -> BTreeMap<String, u64> {
    info.lines()
        .filter_map(|l| {
            let (name, rest) = l.trim().strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = rest.strip_prefix("calls=")?.split(',').next()?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CPU: &str = "# CPU\r\nused_cpu_sys:0.5\r\nused_cpu_user:0.5\r\nused_cpu_sys_children:0.125\r\nused_cpu_user_children:0.125\r\n";

    #[test]
    fn reads_redis_info_and_divides_by_the_messages() {
        let before = Sample {
            hub_cpu: Some(1.0),
            own_cpu: None,
            redis_cpu: redis_cpu(CPU, ""),
            redis_children_cpu: redis_cpu(CPU, "_children"),
            redis_calls: commands("# Commandstats\r\ncmdstat_evalsha:calls=100,usec=9,usec_per_call=0.09\r\n"),
        };
        let after = Sample {
            hub_cpu: Some(3.0),
            own_cpu: None,
            redis_cpu: Some(2.0),
            redis_children_cpu: Some(0.75),
            redis_calls: commands("cmdstat_evalsha:calls=1100,usec=99\r\ncmdstat_xadd:calls=500,usec=1\r\n"),
        };
        let (json, line) = per_message(&before, &after, 1000);
        assert_eq!(json["hub_cpu_us"], 2000.0);
        assert_eq!(json["redis_cpu_us"], 1000.0);
        assert_eq!(json["redis_rewrite_cpu_us"], 500.0);
        assert!(line.contains("redis CPU 1000 µs (+ 500 µs in forked children: AOF rewrites)"), "{line}");
        assert_eq!(json["generator_cpu_us"], Value::Null, "unknown stays unknown");
        assert_eq!(json["redis_calls"]["evalsha"], 1.0);
        assert_eq!(json["redis_calls_total"], 1.5);
        assert!(line.contains("redis calls 1.50 (evalsha 1, xadd 0.5)"), "{line}");
    }

    #[test]
    fn without_redis_the_line_names_only_what_was_read() {
        let sample = |cpu| Sample {
            hub_cpu: Some(cpu),
            own_cpu: Some(cpu),
            redis_cpu: None,
            redis_children_cpu: None,
            redis_calls: BTreeMap::new(),
        };
        let (json, line) = per_message(&sample(1.0), &sample(1.5), 500);
        assert_eq!(line, "cost per message: hub CPU 1000 µs, generator and fakes 1000 µs");
        assert_eq!(json["redis_calls_total"], 0.0);
        assert!(json["redis_calls_total"].as_f64().is_some_and(f64::is_sign_positive), "no -0");
    }

    #[test]
    fn reads_a_process_cpu_time_whatever_its_name() {
        assert!(process_cpu("self").is_some_and(|s| s >= 0.0));
        assert_eq!(process_cpu("0"), None);
    }
}
