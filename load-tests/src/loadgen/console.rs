//! `loadgen console-fanout`: N console sessions on `/ws/console` (one agent of `vendas`, as many
//! open consoles as sessions) while customers start new conversations on WhatsApp at a fixed
//! rate; every new conversation waits in `vendas`, so every session must receive its
//! `conversation.queued` event. Reports how long each delivery took from the customer's webhook
//! (and from the event's own timestamp), and how long until the last session had it.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;

use super::report::{hist_json, hist_line, write_json};
use super::rig::{APP_SECRET, PHONE_NUMBER_ID, Rig, RigArgs, run_name};
use crate::payloads::{wa_sign, wa_text};

const TOKEN: &str = "loadgen-agent-token";
/// Customers' numbers: `FIRST_PHONE + i`.
const FIRST_PHONE: u64 = 5_511_930_000_000;

/// Options of `loadgen console-fanout`.
#[derive(clap::Args, Clone, Debug)]
pub struct ConsoleArgs {
    /// Console sessions connected at once.
    #[arg(long, default_value_t = 1000)]
    pub sessions: usize,
    /// New conversations (queue events) during the run.
    #[arg(long, default_value_t = 200)]
    pub customers: usize,
    /// New conversations per second.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// JSON output [default: <repo>/load-tests/results/console-fanout.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fakes and hub.
    #[command(flatten)]
    pub rig: RigArgs,
}

/// What every session shares with the sender.
struct Board {
    t0: Instant,
    /// When customer i's webhook was sent (ns after t0, 0 = not yet).
    sent_ns: Vec<AtomicU64>,
    /// Slowest delivery of customer i's event so far (µs), and how many sessions got it.
    slowest_us: Vec<AtomicU64>,
    delivered: Vec<AtomicU64>,
}

fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// Runs the scenario; `Ok(false)` if any delivery is missing.
pub async fn run(args: &ConsoleArgs) -> Result<bool> {
    if args.sessions == 0 || args.customers == 0 || args.rate <= 0.0 {
        bail!("--sessions, --customers and --rate must be positive");
    }
    let env = [("DEMO_AGENT_ANA_TOKEN", TOKEN.to_owned()), ("SWITCHBOARD__TENANTS__DEMO__ENTRY", "vendas".to_owned())];
    let rig = Rig::start(&args.rig, run_name("console-fanout", args.out.as_deref()), &env).await?;
    let result = measure(&rig, args).await;
    rig.stop().await;
    let (clean, report) = result?;
    let out = args.out.clone().unwrap_or_else(|| args.rig.results_path("console-fanout.json"));
    write_json(&out, &report)?;
    Ok(clean)
}

type Session = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn sign_in(url: &str) -> Result<Session> {
    let (mut ws, _) = connect_async(url).await.context("console connect")?;
    // hello, then the snapshot
    for expected in ["hello", "snapshot"] {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next()).await.context("no frame")?;
        let text = frame.context("closed")??.into_text()?;
        if !text.as_str().contains(&format!("\"type\":\"{expected}\"")) {
            bail!("expected {expected}, got {}", text.as_str());
        }
    }
    Ok(ws)
}

async fn measure(rig: &Rig, args: &ConsoleArgs) -> Result<(bool, Value)> {
    let ws_url = format!("{}/ws/console?token={TOKEN}", rig.hub.base_url().replacen("http://", "ws://", 1));
    let connecting = Instant::now();
    let mut sessions = Vec::with_capacity(args.sessions);
    // A few at a time: the hub builds a snapshot for each.
    for chunk in (0..args.sessions).collect::<Vec<_>>().chunks(50) {
        let opened = futures_util::future::join_all(chunk.iter().map(|_| sign_in(&ws_url))).await;
        for s in opened {
            sessions.push(s?);
        }
    }
    eprintln!("{} console sessions connected in {} ms", sessions.len(), connecting.elapsed().as_millis());

    let n = args.customers;
    let board = Arc::new(Board {
        t0: Instant::now(),
        sent_ns: (0..n).map(|_| AtomicU64::new(0)).collect(),
        slowest_us: (0..n).map(|_| AtomicU64::new(0)).collect(),
        delivered: (0..n).map(|_| AtomicU64::new(0)).collect(),
    });
    let deadline = Instant::now() + Duration::from_secs_f64(n as f64 / args.rate) + Duration::from_secs(30);
    let mut readers = Vec::with_capacity(sessions.len());
    for ws in sessions {
        let board = board.clone();
        readers.push(tokio::spawn(read_session(ws, board, n, deadline)));
    }

    let http = reqwest::Client::builder().no_proxy().build()?;
    let webhook = format!("{}/webhooks/whatsapp", rig.hub.base_url());
    let interval = Duration::from_secs_f64(1.0 / args.rate);
    let mut failed_webhooks = 0;
    for i in 0..n {
        let at = board.t0 + interval * i as u32;
        tokio::time::sleep_until(at.into()).await;
        let from = (FIRST_PHONE + i as u64).to_string();
        let body = wa_text(PHONE_NUMBER_ID, &from, &format!("wamid.fanout.{i}"), "Quero falar com vendas");
        let signature = wa_sign(APP_SECRET, body.as_bytes());
        board.sent_ns[i].store(board.t0.elapsed().as_nanos().max(1) as u64, Ordering::Relaxed);
        let ok = http
            .post(&webhook)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", signature)
            .body(body)
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        failed_webhooks += u64::from(!ok);
    }

    let mut per_delivery = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut since_event = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    for reader in readers {
        let (a, b) = reader.await??;
        per_delivery.add(&a)?;
        since_event.add(&b)?;
    }
    let mut to_all = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut complete = 0;
    for i in 0..n {
        if board.delivered[i].load(Ordering::Relaxed) == args.sessions as u64 {
            complete += 1;
            to_all.saturating_record(board.slowest_us[i].load(Ordering::Relaxed).max(1));
        }
    }
    let expected = (n * args.sessions) as u64;
    let missing = expected - per_delivery.len();
    println!("console-fanout: {} sessions, {n} new conversations at {}/s", args.sessions, args.rate);
    println!(
        "deliveries   {} of {expected} ({missing} missing); webhooks failed: {failed_webhooks}",
        per_delivery.len()
    );
    println!("{}", hist_line("webhook -> each session", &per_delivery));
    println!("{}", hist_line("webhook -> last session", &to_all));
    println!("{}", hist_line("event stamp -> each session (1 ms grain)", &since_event));
    let report = json!({
        "scenario": "console-fanout",
        "sessions": args.sessions,
        "customers": n,
        "rate_per_second": args.rate,
        "deliveries_expected": expected,
        "deliveries": per_delivery.len(),
        "events_reaching_every_session": complete,
        "webhooks_failed": failed_webhooks,
        "latency_webhook_to_each_session_us": hist_json(&per_delivery),
        "latency_webhook_to_last_session_us": hist_json(&to_all),
        "latency_event_to_each_session_us": hist_json(&since_event),
    });
    Ok((missing == 0 && failed_webhooks == 0, report))
}

/// Reads one session until every customer's event arrived or the deadline; returns its
/// delivery latencies in µs, from the webhook and from the event's own (millisecond) stamp.
async fn read_session(
    mut ws: Session,
    board: Arc<Board>,
    customers: usize,
    deadline: Instant,
) -> Result<(Histogram<u64>, Histogram<u64>)> {
    let mut from_webhook = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut from_event = Histogram::<u64>::new_with_bounds(1, 600_000_000, 3)?;
    let mut seen = 0;
    while seen < customers {
        let Ok(Some(frame)) = tokio::time::timeout_at(deadline.into(), ws.next()).await else { break };
        let Message::Text(text) = frame? else { continue };
        // Cheap filter first: most frames are other events of the same conversations.
        if !text.as_str().contains("\"conversation.queued\"") {
            continue;
        }
        let now = board.t0.elapsed().as_nanos() as u64;
        let wall = wall_ms();
        let v: Value = serde_json::from_str(text.as_str())?;
        let Some(phone) = v["event"]["conversation_id"].as_str().and_then(|c| c.rsplit(':').next()) else { continue };
        let Some(i) = phone.parse::<u64>().ok().and_then(|p| p.checked_sub(FIRST_PHONE)).map(|i| i as usize) else {
            continue;
        };
        if i >= customers {
            continue;
        }
        let sent = board.sent_ns[i].load(Ordering::Relaxed);
        let us = (now.saturating_sub(sent) / 1000).max(1);
        from_webhook.saturating_record(us);
        // The event carries a millisecond wall-clock stamp: this one is only as fine as that.
        from_event
            .saturating_record((wall.saturating_sub(v["event"]["occurred_at"].as_u64().unwrap_or(wall)) * 1000).max(1));
        board.slowest_us[i].fetch_max(us, Ordering::Relaxed);
        board.delivered[i].fetch_add(1, Ordering::Relaxed);
        seen += 1;
    }
    let _ = ws.close(None).await;
    Ok((from_webhook, from_event))
}
