//! The sender: signed WhatsApp webhooks, round-robin over conversations, in open-model rate mode
//! (message `i` is due at `t0 + i/R`, latencies count from then, so a slow hub cannot hide its
//! queueing by slowing the sender) or closed-loop (`rate == 0`, K messages in flight, each
//! until its reply arrives or, with `close_on_reply` off, until its webhook is acknowledged).
//!
//! A conversation's messages go through a lane: message `i + C` is posted only after message `i`
//! was acknowledged (or given up on), as a provider delivers one user's messages. Without lanes
//! two concurrent posts for one user could be accepted in either order, and the order check
//! would blame the hub for the sender's race.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::collect::{Collector, hook, nanos};
use super::customer_number;
pub use super::outcome::{LoadOutcome, LoadSpec};
use super::rig::{APP_SECRET, PHONE_NUMBER_ID, Rig};
use crate::payloads::{wa_sign, wa_text};

/// Attempts per message (503s and transport errors) before giving up.
const MAX_ATTEMPTS: u32 = 30;
/// Longest 503 back-off honoured, whatever Retry-After says.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(5);

/// Ack-side histograms, µs.
pub(crate) struct AckHists {
    /// Intended start → 200 (queueing, lanes and retries included).
    pub(crate) ack: Histogram<u64>,
    /// Request sent → 200, of the successful attempt only.
    pub(crate) service: Histogram<u64>,
    /// Intended start → first attempt: the sender's own lateness (timer granularity, lanes,
    /// a full pool). Large values mean the generator, not the hub, is the limit.
    pub(crate) lag: Histogram<u64>,
}

/// State shared by the dispatcher, the request tasks, the collector and the progress line.
pub(crate) struct Shared {
    pub(crate) t0: Instant,
    /// Per message: intended start, ns since `t0`.
    pub(crate) intended_ns: Vec<AtomicU64>,
    pub(crate) acked: Vec<AtomicBool>,
    pub(crate) sent: AtomicU64,
    pub(crate) acked_count: AtomicU64,
    pub(crate) replied: AtomicU64,
    pub(crate) busy: AtomicU64,
    pub(crate) http_errors: AtomicU64,
    pub(crate) transport_errors: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) first_send_ns: AtomicU64,
    pub(crate) last_ack_ns: AtomicU64,
    pub(crate) hists: Mutex<AckHists>,
    pub(crate) error_samples: Mutex<Vec<String>>,
    /// Per message, in reply-closed loops: woken by the collector at the first reply line.
    pub(crate) reply_waiters: Vec<Mutex<Option<oneshot::Sender<()>>>>,
}

/// Sends `spec` into the rig's hub and waits for the replies (or the drain timeout).
/// Errors only when the hub dies; everything else is a figure of the outcome.
pub async fn run_load(rig: &mut Rig, spec: &LoadSpec) -> Result<LoadOutcome> {
    let (m, c) = (spec.messages, spec.conversations.max(1));
    if spec.number_base + c as u64 > 100_000_000 {
        bail!("too many conversations for 8-digit numbers");
    }
    let k = spec.concurrency.max(1);
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(k)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let url: Arc<str> = format!("{}/webhooks/whatsapp", rig.hub.base_url()).into();
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
    let sh = Arc::new(Shared {
        t0: Instant::now() + Duration::from_millis(20),
        intended_ns: (0..m).map(|_| AtomicU64::new(0)).collect(),
        acked: (0..m).map(|_| AtomicBool::new(false)).collect(),
        sent: AtomicU64::new(0),
        acked_count: AtomicU64::new(0),
        replied: AtomicU64::new(0),
        busy: AtomicU64::new(0),
        http_errors: AtomicU64::new(0),
        transport_errors: AtomicU64::new(0),
        failed: AtomicU64::new(0),
        first_send_ns: AtomicU64::new(u64::MAX),
        last_ack_ns: AtomicU64::new(0),
        hists: Mutex::new(AckHists { ack: Histogram::new(3)?, service: Histogram::new(3)?, lag: Histogram::new(3)? }),
        error_samples: Mutex::new(Vec::new()),
        reply_waiters: if spec.wait_reply() { (0..m).map(|_| Mutex::new(None)).collect() } else { Vec::new() },
    });

    let (tx, rx) = mpsc::unbounded_channel();
    rig.graph.set_on_send(Some(hook(tx)));
    let collector = Collector::new(sh.clone(), spec.prefix, c, spec.number_base);
    let collector = tokio::spawn(collector.run(rx));
    let progress = tokio::spawn(progress(sh.clone(), spec.label, m));

    let permits = Arc::new(Semaphore::new(k));
    let mut lanes: Vec<Option<oneshot::Receiver<()>>> = (0..c).map(|_| None).collect();
    let mut ticks = if spec.rate > 0.0 { Some(ticker(sh.t0, spec.rate, m)?) } else { None };
    // Nothing may be sent before t0: every latency is measured from it.
    tokio::time::sleep_until(sh.t0.into()).await;
    for i in 0..m {
        if let Some(ticks) = ticks.as_mut() {
            if ticks.recv().await.is_none() {
                bail!("the ticker thread stopped");
            }
            sh.intended_ns[i].store(nanos(due(i, spec.rate)), Ordering::Relaxed);
        }
        let permit = permits.clone().acquire_owned().await?;
        if spec.rate <= 0.0 {
            let now = nanos(Instant::now().saturating_duration_since(sh.t0));
            sh.intended_ns[i].store(now, Ordering::Relaxed);
        }
        if i % 1024 == 0 {
            // A dead hub would otherwise cost every remaining message its full retry budget.
            rig.hub.ensure_running()?;
        }
        let (done_tx, done_rx) = oneshot::channel();
        let prev = lanes[i % c].replace(done_rx);
        let from = customer_number(spec.number_base + (i % c) as u64);
        let wamid = format!("wamid.LG-{nonce}-{}{i}", spec.prefix);
        let body = wa_text(PHONE_NUMBER_ID, &from, &wamid, &format!("{}{i}", spec.prefix));
        let replied = sh.reply_waiters.get(i).map(|slot| {
            let (tx, rx) = oneshot::channel();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
            rx
        });
        let (sh, client, url, drain) = (sh.clone(), client.clone(), url.clone(), spec.drain_timeout);
        tokio::spawn(async move {
            if let Some(prev) = prev {
                let _ = prev.await;
            }
            let acked = deliver(&sh, &client, &url, i, body).await;
            // The lane opens at the ack, so the conversation's next message can arrive while
            // the AI is busy, as it would from a real user.
            drop(done_tx);
            if let (true, Some(replied)) = (acked, replied) {
                let _ = tokio::time::timeout(drain, replied).await;
            }
            drop(permit);
        });
    }
    // All permits back = every request task has finished.
    let _all = permits.acquire_many(k as u32).await?;

    let last_ack = sh.t0 + Duration::from_nanos(sh.last_ack_ns.load(Ordering::Relaxed));
    let deadline = last_ack + spec.drain_timeout;
    let failed = || sh.failed.load(Ordering::Relaxed);
    while sh.replied.load(Ordering::Relaxed) + failed() < m as u64 && Instant::now() < deadline {
        rig.hub.ensure_running()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(spec.settle).await;
    // Removing the hook drops the last sender, which ends the collector.
    rig.graph.set_on_send(None);
    progress.abort();
    let col = collector.await?;

    let lost: Vec<usize> =
        (0..m).filter(|&i| sh.acked[i].load(Ordering::Relaxed) && col.replied_at[i] == u64::MAX).collect();
    let first = sh.first_send_ns.load(Ordering::Relaxed).min(u64::MAX - 1);
    let span = |last: u64| Duration::from_nanos(last.saturating_sub(first));
    let mut samples = sh.error_samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    samples.extend(col.samples.iter().cloned());
    let hists = sh.hists.lock().unwrap_or_else(|p| p.into_inner());
    Ok(LoadOutcome {
        spec: spec.clone(),
        ack: hists.ack.clone(),
        ack_service: hists.service.clone(),
        send_lag: hists.lag.clone(),
        e2e: col.e2e.clone(),
        sent: sh.sent.load(Ordering::Relaxed),
        acked: sh.acked_count.load(Ordering::Relaxed),
        replied: sh.replied.load(Ordering::Relaxed),
        busy_503: sh.busy.load(Ordering::Relaxed),
        http_errors: sh.http_errors.load(Ordering::Relaxed),
        transport_errors: sh.transport_errors.load(Ordering::Relaxed),
        failed: failed(),
        lost: lost.len() as u64,
        duplicated: col.duplicated,
        out_of_order: col.out_of_order,
        unexpected: col.unexpected,
        misrouted: col.misrouted,
        foreign: col.foreign,
        reply_sends: col.reply_sends,
        max_batch: col.max_batch,
        ack_span: span(sh.last_ack_ns.load(Ordering::Relaxed)),
        reply_span: span(col.last_reply_ns),
        lost_samples: lost.into_iter().take(10).collect(),
        samples,
    })
}

/// When message `i` is due, after t0.
fn due(i: usize, rate: f64) -> Duration {
    Duration::from_secs_f64(i as f64 / rate)
}

/// Yields message indices at their due times from a thread of its own. Tokio timers round up
/// to the next millisecond, which would add up to 1-2 ms of sender lateness to every latency;
/// a thread sleep overshoots by tens of µs, and waking the dispatcher through a channel is
/// immediate. Stops when the receiver is dropped.
fn ticker(t0: Instant, rate: f64, m: usize) -> Result<mpsc::UnboundedReceiver<usize>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new().name("loadgen-ticker".into()).spawn(move || {
        for i in 0..m {
            let at = t0 + due(i, rate);
            let now = Instant::now();
            if at > now {
                #[expect(clippy::disallowed_methods, reason = "a dedicated pacing thread, not an actor or handler")]
                std::thread::sleep(at - now);
            }
            if tx.send(i).is_err() {
                return;
            }
        }
    })?;
    Ok(rx)
}

/// Posts message `i` until it is acknowledged (true) or its attempts run out.
async fn deliver(sh: &Shared, client: &reqwest::Client, url: &str, i: usize, body: String) -> bool {
    let signature = wa_sign(APP_SECRET, body.as_bytes());
    let intended = sh.t0 + Duration::from_nanos(sh.intended_ns[i].load(Ordering::Relaxed));
    sh.sent.fetch_add(1, Ordering::Relaxed);
    for attempt in 0..MAX_ATTEMPTS {
        let start = Instant::now();
        if attempt == 0 {
            let since_t0 = nanos(start.saturating_duration_since(sh.t0));
            sh.first_send_ns.fetch_min(since_t0, Ordering::Relaxed);
            let lag = micros(start.saturating_duration_since(intended));
            let _ = sh.hists.lock().unwrap_or_else(|p| p.into_inner()).lag.record(lag);
        }
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        let wait = match res {
            Ok(r) if r.status() == reqwest::StatusCode::OK => {
                let now = Instant::now();
                sh.acked[i].store(true, Ordering::Relaxed);
                sh.acked_count.fetch_add(1, Ordering::Relaxed);
                let at = nanos(now.saturating_duration_since(sh.t0));
                sh.last_ack_ns.fetch_max(at, Ordering::Relaxed);
                let mut h = sh.hists.lock().unwrap_or_else(|p| p.into_inner());
                let _ = h.ack.record(micros(now.saturating_duration_since(intended)));
                let _ = h.service.record(micros(now - start));
                return true;
            }
            Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                sh.busy.fetch_add(1, Ordering::Relaxed);
                let secs = r
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
                    .unwrap_or(1);
                jitter(Duration::from_secs(secs).min(MAX_RETRY_AFTER), i, attempt)
            }
            Ok(r) => {
                // 4xx/5xx other than 503: retrying the same bytes cannot help.
                sh.http_errors.fetch_add(1, Ordering::Relaxed);
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                sample_error(sh, format!("message {i}: HTTP {status}: {text}"));
                break;
            }
            Err(e) => {
                sh.transport_errors.fetch_add(1, Ordering::Relaxed);
                sample_error(sh, format!("message {i}: {e}"));
                Duration::from_millis(100)
            }
        };
        tokio::time::sleep(wait).await;
    }
    sh.failed.fetch_add(1, Ordering::Relaxed);
    false
}

fn sample_error(sh: &Shared, what: String) {
    let mut samples = sh.error_samples.lock().unwrap_or_else(|p| p.into_inner());
    if samples.len() < 5 {
        samples.push(what);
    }
}

/// ±20 % spread, so messages refused together do not all come back in the same millisecond.
fn jitter(d: Duration, i: usize, attempt: u32) -> Duration {
    let h = (i as u64 ^ (u64::from(attempt) << 40)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54;
    d.mul_f64(0.8 + 0.4 * h as f64 / 1024.0)
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// One status line per second on stderr until aborted.
async fn progress(sh: Arc<Shared>, label: &'static str, total: usize) {
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        eprintln!(
            "[{label} {:>4}s] sent {}/{total} acked {} replied {} 503s {} failed {}",
            start.elapsed().as_secs(),
            get(&sh.sent),
            get(&sh.acked_count),
            get(&sh.replied),
            get(&sh.busy),
            get(&sh.failed),
        );
    }
}
