//! The sender: webhooks (signed WhatsApp or Telegram, see [`super::wire`]) round-robin over
//! conversations, paced one of three ways ([`Pace`]): open model (message `i` is due at a
//! fixed time after t0 by its schedule, latencies count from then, so a slow hub cannot hide
//! its queueing by slowing the sender), closed loop (K messages in flight, each until its reply
//! arrives or, with `close_on_reply` off, until its webhook is acknowledged), or chats (each
//! conversation waits for its reply and a think time before its next message).
//!
//! A conversation's messages go through a lane: message `i + C` is posted only after message `i`
//! was acknowledged (or given up on), as a provider delivers one user's messages. Without lanes
//! two concurrent posts for one user could be accepted in either order, and the order check
//! would blame the hub for the sender's race.
//!
//! While it runs, [`super::progress`] prints a status line and samples the hub's RSS every
//! second; every message's timestamps end up in the outcome's [`Trace`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use hdrhistogram::Histogram;
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::collect::{Collector, nanos, tg_hook, wa_hook};
pub use super::outcome::{LoadOutcome, LoadSpec, Pace};
use super::progress;
use super::rig::Rig;
use super::schedule::{Schedule, Think};
use super::timeline::{NONE, Trace};
use super::wire::{Post, Wire};

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
    /// Per message: intended start, ns since `t0` ([`NONE`] until known).
    pub(crate) intended_ns: Vec<AtomicU64>,
    /// Per message: first attempt, ns since `t0`.
    pub(crate) sent_ns: Vec<AtomicU64>,
    /// Per message: webhook answered 200, ns since `t0`.
    pub(crate) acked_ns: Vec<AtomicU64>,
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
    /// 503 answers per second since `t0`.
    pub(crate) busy_per_sec: Mutex<Vec<u64>>,
    /// Hub RSS samples (seconds since `t0`, bytes), taken by the progress task.
    pub(crate) rss: Mutex<Vec<(f64, u64)>>,
    pub(crate) error_samples: Mutex<Vec<String>>,
    /// Per message, in reply-closed loops and chats: woken by the collector at the first reply
    /// line.
    pub(crate) reply_waiters: Vec<Mutex<Option<oneshot::Sender<()>>>>,
}

impl Shared {
    fn new(m: usize, wait_reply: bool) -> Result<Shared> {
        let stamps = || (0..m).map(|_| AtomicU64::new(NONE)).collect();
        Ok(Shared {
            t0: Instant::now() + Duration::from_millis(20),
            intended_ns: stamps(),
            sent_ns: stamps(),
            acked_ns: stamps(),
            sent: AtomicU64::new(0),
            acked_count: AtomicU64::new(0),
            replied: AtomicU64::new(0),
            busy: AtomicU64::new(0),
            http_errors: AtomicU64::new(0),
            transport_errors: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_send_ns: AtomicU64::new(u64::MAX),
            last_ack_ns: AtomicU64::new(0),
            hists: Mutex::new(AckHists {
                ack: Histogram::new(3)?,
                service: Histogram::new(3)?,
                lag: Histogram::new(3)?,
            }),
            busy_per_sec: Mutex::new(Vec::new()),
            rss: Mutex::new(Vec::new()),
            error_samples: Mutex::new(Vec::new()),
            reply_waiters: if wait_reply { (0..m).map(|_| Mutex::new(None)).collect() } else { Vec::new() },
        })
    }

    /// Arms message `i`'s reply waiter (before it is posted, so the reply cannot be missed).
    fn reply_waiter(&self, i: usize) -> Option<oneshot::Receiver<()>> {
        self.reply_waiters.get(i).map(|slot| {
            let (tx, rx) = oneshot::channel();
            *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
            rx
        })
    }

    fn ns_since_t0(&self, at: Instant) -> u64 {
        nanos(at.saturating_duration_since(self.t0))
    }
}

/// Sends `spec` into the rig's hub and waits for the replies (or the drain timeout).
/// Errors only when the hub dies; everything else is a figure of the outcome.
pub async fn run_load(rig: &mut Rig, spec: &LoadSpec) -> Result<LoadOutcome> {
    let (m, c) = (spec.messages, spec.conversations.max(1));
    if spec.number_base + c as u64 > 100_000_000 {
        bail!("too many conversations for 8-digit numbers");
    }
    let k = match spec.pace {
        Pace::Chats { .. } => c.min(1024),
        _ => spec.concurrency.max(1),
    };
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(k)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(10))
        .build()?;
    let wire = Arc::new(Wire::new(rig.hub.base_url(), spec.channel, spec.number_base, spec.prefix, m));
    let sh = Arc::new(Shared::new(m, spec.wait_reply())?);

    let (tx, rx) = mpsc::unbounded_channel();
    rig.graph.set_on_send(Some(wa_hook(tx.clone())));
    rig.telegram.set_on_send(Some(tg_hook(tx)));
    let collector = Collector::new(sh.clone(), spec.prefix, c, spec.number_base, spec.channel);
    let collector = tokio::spawn(collector.run(rx));
    let total = if matches!(spec.pace, Pace::Chats { .. }) { None } else { Some(m) };
    let probe = rig.hub.mem_probe();
    let progress = tokio::spawn(progress::run(sh.clone(), spec.label, total, probe.clone()));

    let ctx = Ctx { sh: sh.clone(), client, wire, drain: spec.drain_timeout, conversations: c };
    match &spec.pace {
        Pace::Open(schedule) => dispatch(rig, &ctx, m, k, Some(schedule)).await?,
        Pace::Closed { .. } => dispatch(rig, &ctx, m, k, None).await?,
        Pace::Chats { think, until } => chats(rig, &ctx, m, *think, *until).await?,
    }

    let last_ack = sh.t0 + Duration::from_nanos(sh.last_ack_ns.load(Ordering::Relaxed));
    let deadline = last_ack + spec.drain_timeout;
    while sh.replied.load(Ordering::Relaxed) < sh.acked_count.load(Ordering::Relaxed) && Instant::now() < deadline {
        rig.hub.ensure_running()?;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(spec.settle).await;
    // Removing the hooks drops the last senders, which ends the collector.
    rig.graph.set_on_send(None);
    rig.telegram.set_on_send(None);
    progress.abort();
    progress::finish();
    // The last partial second gets its sample too (the memory chart then reaches the end).
    if let Some(bytes) = probe.rss_bytes().await {
        sh.rss.lock().unwrap_or_else(|p| p.into_inner()).push((sh.t0.elapsed().as_secs_f64(), bytes));
    }
    let col = collector.await?;
    Ok(outcome(spec, &sh, col))
}

/// What every sending task needs.
struct Ctx {
    sh: Arc<Shared>,
    client: reqwest::Client,
    wire: Arc<Wire>,
    drain: Duration,
    conversations: usize,
}

/// Open model (`schedule`) or closed loop: message `i` from conversation `i % C`, at most `k`
/// in flight, each conversation's messages through its lane. Returns when every request task
/// has finished.
async fn dispatch(rig: &mut Rig, ctx: &Ctx, m: usize, k: usize, schedule: Option<&Schedule>) -> Result<()> {
    let sh = &ctx.sh;
    let permits = Arc::new(Semaphore::new(k));
    let mut lanes: Vec<Option<oneshot::Receiver<()>>> = (0..ctx.conversations).map(|_| None).collect();
    let mut ticks = match schedule {
        Some(s) => Some(ticker(sh.t0, s.clone(), m)?),
        None => None,
    };
    // Nothing may be sent before t0: every latency is measured from it.
    tokio::time::sleep_until(sh.t0.into()).await;
    for i in 0..m {
        if let (Some(ticks), Some(schedule)) = (ticks.as_mut(), schedule) {
            if ticks.recv().await.is_none() {
                bail!("the ticker thread stopped");
            }
            sh.intended_ns[i].store(nanos(schedule.due(i)), Ordering::Relaxed);
        }
        let permit = permits.clone().acquire_owned().await?;
        if schedule.is_none() {
            sh.intended_ns[i].store(sh.ns_since_t0(Instant::now()), Ordering::Relaxed);
        }
        if i % 1024 == 0 {
            // A dead hub would otherwise cost every remaining message its full retry budget.
            rig.hub.ensure_running()?;
        }
        let conv = i % ctx.conversations;
        let (done_tx, done_rx) = oneshot::channel();
        let prev = lanes[conv].replace(done_rx);
        let post = ctx.wire.post(i, conv);
        let replied = sh.reply_waiter(i);
        let (sh, client, wire, drain) = (sh.clone(), ctx.client.clone(), ctx.wire.clone(), ctx.drain);
        tokio::spawn(async move {
            if let Some(prev) = prev {
                let _ = prev.await;
            }
            let acked = deliver(&sh, &client, &wire, i, post).await;
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
    Ok(())
}

/// Chats: one task per conversation, sending its messages `c`, `c + C`, ... one at a time:
/// post, wait for the reply (at most the drain timeout), think, post the next. Chats start
/// spread over the first think time, so they do not all speak in the first millisecond.
async fn chats(rig: &mut Rig, ctx: &Ctx, m: usize, think: Think, until: Option<Duration>) -> Result<()> {
    let c = ctx.conversations;
    let sh = &ctx.sh;
    tokio::time::sleep_until(sh.t0.into()).await;
    let end = until.map(|d| sh.t0 + d);
    let mut tasks = tokio::task::JoinSet::new();
    for conv in 0..c.min(m) {
        let (sh, client, wire, drain) = (sh.clone(), ctx.client.clone(), ctx.wire.clone(), ctx.drain);
        let start = think.mean().mul_f64(conv as f64 / c as f64);
        tasks.spawn(async move {
            tokio::time::sleep(start).await;
            for i in (conv..m).step_by(c) {
                if end.is_some_and(|end| Instant::now() >= end) {
                    break;
                }
                sh.intended_ns[i].store(sh.ns_since_t0(Instant::now()), Ordering::Relaxed);
                let replied = sh.reply_waiter(i);
                let post = wire.post(i, conv);
                if deliver(&sh, &client, &wire, i, post).await
                    && let Some(replied) = replied
                {
                    let _ = tokio::time::timeout(drain, replied).await;
                }
                // A customer who would speak again only after the end has finished.
                let pause = think.pause(i);
                if end.is_some_and(|end| Instant::now() + pause >= end) {
                    break;
                }
                tokio::time::sleep(pause).await;
            }
        });
    }
    let mut watch = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            next = tasks.join_next() => match next {
                Some(res) => res?,
                None => return Ok(()),
            },
            _ = watch.tick() => rig.hub.ensure_running()?,
        }
    }
}

/// The figures of a finished run.
fn outcome(spec: &LoadSpec, sh: &Shared, col: Collector) -> LoadOutcome {
    let load = |v: &[AtomicU64]| v.iter().map(|a| a.load(Ordering::Relaxed)).collect::<Vec<u64>>();
    let trace = Trace {
        intended_ns: load(&sh.intended_ns),
        sent_ns: load(&sh.sent_ns),
        acked_ns: load(&sh.acked_ns),
        replied_ns: col.replied_at.clone(),
        busy_per_sec: sh.busy_per_sec.lock().unwrap_or_else(|p| p.into_inner()).clone(),
        rss: sh.rss.lock().unwrap_or_else(|p| p.into_inner()).clone(),
    };
    let lost: Vec<usize> =
        (0..trace.acked_ns.len()).filter(|&i| trace.acked_ns[i] != NONE && trace.replied_ns[i] == NONE).collect();
    let first = sh.first_send_ns.load(Ordering::Relaxed).min(u64::MAX - 1);
    let span = |last: u64| Duration::from_nanos(last.saturating_sub(first));
    let mut samples = sh.error_samples.lock().unwrap_or_else(|p| p.into_inner()).clone();
    samples.extend(col.samples.iter().cloned());
    let hists = sh.hists.lock().unwrap_or_else(|p| p.into_inner());
    LoadOutcome {
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
        failed: sh.failed.load(Ordering::Relaxed),
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
        trace,
    }
}

/// Yields message indices at their due times from a thread of its own. Tokio timers round up
/// to the next millisecond, which would add up to 1-2 ms of sender lateness to every latency;
/// a thread sleep overshoots by tens of µs, and waking the dispatcher through a channel is
/// immediate. Stops when the receiver is dropped.
fn ticker(t0: Instant, schedule: Schedule, m: usize) -> Result<mpsc::UnboundedReceiver<usize>> {
    let (tx, rx) = mpsc::unbounded_channel();
    std::thread::Builder::new().name("loadgen-ticker".into()).spawn(move || {
        for i in 0..m {
            let at = t0 + schedule.due(i);
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
async fn deliver(sh: &Shared, client: &reqwest::Client, wire: &Wire, i: usize, post: Post) -> bool {
    let intended = match sh.intended_ns[i].load(Ordering::Relaxed) {
        NONE => Instant::now(), // every pace sets it first; never panic on a missed one
        ns => sh.t0 + Duration::from_nanos(ns),
    };
    sh.sent.fetch_add(1, Ordering::Relaxed);
    let url = wire.url(&post);
    for attempt in 0..MAX_ATTEMPTS {
        let start = Instant::now();
        if attempt == 0 {
            let since_t0 = sh.ns_since_t0(start);
            sh.sent_ns[i].store(since_t0, Ordering::Relaxed);
            sh.first_send_ns.fetch_min(since_t0, Ordering::Relaxed);
            let lag = micros(start.saturating_duration_since(intended));
            let _ = sh.hists.lock().unwrap_or_else(|p| p.into_inner()).lag.record(lag);
        }
        let res = client
            .post(url)
            .header("content-type", "application/json")
            .header(post.auth.0, &post.auth.1)
            .body(post.body.clone())
            .send()
            .await;
        let wait = match res {
            Ok(r) if r.status() == reqwest::StatusCode::OK => {
                let now = Instant::now();
                let at = sh.ns_since_t0(now);
                sh.acked_ns[i].store(at, Ordering::Relaxed);
                sh.acked_count.fetch_add(1, Ordering::Relaxed);
                sh.last_ack_ns.fetch_max(at, Ordering::Relaxed);
                let mut h = sh.hists.lock().unwrap_or_else(|p| p.into_inner());
                let _ = h.ack.record(micros(now.saturating_duration_since(intended)));
                let _ = h.service.record(micros(now - start));
                return true;
            }
            Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => {
                sh.busy.fetch_add(1, Ordering::Relaxed);
                let second = (sh.ns_since_t0(Instant::now()) / 1_000_000_000) as usize;
                let mut per_sec = sh.busy_per_sec.lock().unwrap_or_else(|p| p.into_inner());
                if per_sec.len() <= second {
                    per_sec.resize(second + 1, 0);
                }
                per_sec[second] += 1;
                drop(per_sec);
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
