//! Once a second while a run goes: sample the hub's RSS into the run's trace and print a status
//! line on stderr. On a terminal the line overwrites itself (`\r`); in a log each second gets
//! its own line.

use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::MissedTickBehavior;

use super::engine::Shared;
use super::hub::MemProbe;

/// Samples and prints until aborted; `total` is the number of messages when known.
pub(crate) async fn run(sh: Arc<Shared>, label: &'static str, total: Option<usize>, probe: MemProbe) {
    let tty = std::io::stderr().is_terminal();
    // Ticks on whole seconds after t0, so a sample belongs to the timeline row ending then.
    let mut tick = tokio::time::interval_at((sh.t0 + Duration::from_secs(1)).into(), Duration::from_secs(1));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let rss = probe.rss_bytes().await;
        let t = sh.t0.elapsed().as_secs_f64();
        if let Some(bytes) = rss {
            sh.rss.lock().unwrap_or_else(|p| p.into_inner()).push((t, bytes));
        }
        let line = status_line(&sh, label, total, t, rss);
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
}

/// Ends an overwritten status line, so what follows starts on a line of its own.
pub(crate) fn finish() {
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
}

fn status_line(sh: &Shared, label: &str, total: Option<usize>, t: f64, rss: Option<u64>) -> String {
    let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let (sent, acked, replied, failed) = (get(&sh.sent), get(&sh.acked_count), get(&sh.replied), get(&sh.failed));
    let total = total.map_or_else(String::new, |n| format!("/{n}"));
    // Posted but not yet acknowledged (nor given up on); acknowledged but not yet answered:
    // losses are only known at the end, these are what may still become one.
    let in_flight = sent.saturating_sub(acked + failed);
    let awaiting = acked.saturating_sub(replied);
    let rss = rss.map_or_else(|| "-".to_owned(), |b| format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0)));
    format!(
        "[{label} {t:>5.0}s] sent {sent}{total}  acked {acked}  replied {replied}  in flight {in_flight}  \
         awaiting reply {awaiting}  503s {}  failed {failed}  hub rss {rss}",
        get(&sh.busy),
    )
}
