//! `loadgen failover`: two `switchboard` nodes on one Redis (the product's lease settings), a
//! steady open-model stream of WhatsApp messages spread over both nodes' webhooks, and a
//! `kill -9` of node 0 in the middle. Reports the time from the kill to the first answer to a
//! message of one of node 0's partitions sent after the kill (only the new owner can answer
//! those), when the last message stranded by the kill was answered, and over the whole run:
//! lost, doubled and out-of-order replies, and reply latency. Like the other scenarios it
//! writes the per-second timeline into the JSON and charts it next to it (throughput, latency,
//! and the RSS of both nodes), the stretch from the kill to the takeover shaded.

mod timeline;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use reqwest::StatusCode;
use serde_json::json;

use self::timeline::{Delivery, RssSamples, Timeline, kill_band, sample_rss, trace};
use super::report::{hist_json, hist_line, write_json};
use crate::cluster::{Cluster, ClusterSpec, post_whatsapp_observed};

/// Options of `loadgen failover`.
#[derive(clap::Args, Clone, Debug)]
pub struct FailoverArgs {
    /// Conversations the messages are spread over.
    #[arg(long, default_value_t = 2000)]
    pub conversations: usize,
    /// Messages per second (open model: sent on schedule whatever the replies do).
    #[arg(long, default_value_t = 400.0)]
    pub rate: f64,
    /// Length of the run, in seconds.
    #[arg(long, default_value_t = 20)]
    pub secs: u64,
    /// When node 0 gets `kill -9`, in seconds after the start.
    #[arg(long, default_value_t = 8)]
    pub kill_at: u64,
    /// Lease TTL of the nodes (ms); the product's default is 3000.
    #[arg(long, default_value_t = 3000)]
    pub lease_ttl_ms: u64,
    /// Heartbeat of the nodes (ms); the product's default is 500.
    #[arg(long, default_value_t = 500)]
    pub heartbeat_ms: u64,
    /// Bus partitions (the product's default is 64).
    #[arg(long, default_value_t = 64)]
    pub partitions: u32,
    /// The `switchboard` binary [default: <repo>/target/release/switchboard].
    #[arg(long)]
    pub hub_bin: Option<PathBuf>,
    /// JSON output; charts go next to it as <stem>-throughput.svg, -latency.svg, -memory.svg,
    /// the nodes' logs into <stem>/ [default: <repo>/load-tests/results/failover.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

fn phone(c: usize) -> String {
    format!("5511950{c:06}")
}

/// Runs the scenario; `Ok(false)` when a reply was lost, doubled outside the kill's instant, or
/// out of order.
pub async fn run(args: &FailoverArgs) -> Result<bool> {
    if args.conversations == 0 || args.rate <= 0.0 || args.kill_at >= args.secs {
        bail!("--conversations and --rate must be positive, and --kill-at before the end (--secs)");
    }
    let root = super::default_repo_root();
    let out = args.out.clone().unwrap_or_else(|| root.join("load-tests/results/failover.json"));
    let spec = ClusterSpec {
        bin: args.hub_bin.clone().unwrap_or_else(|| root.join("target/release/switchboard")),
        workdir: root.clone(),
        // Beside the JSON, so a run written elsewhere leaves the default run's logs alone.
        log_dir: out.with_extension(""),
        nodes: 2,
        partitions: args.partitions,
        lease_ttl_ms: args.lease_ttl_ms,
        heartbeat_ms: args.heartbeat_ms,
        redis_args: Vec::new(),
        redis_cluster: false,
    };
    let mut cluster = Cluster::start(spec).await.context("starting two nodes on one redis")?;
    wait_for_shares(&cluster, args.partitions).await?;
    let urls: Arc<Vec<String>> = Arc::new(cluster.running().into_iter().filter_map(|i| cluster.url(i)).collect());
    let http = reqwest::Client::builder().pool_max_idle_per_host(256).timeout(Duration::from_secs(5)).build()?;
    let total = (args.rate * args.secs as f64) as usize;
    let t0 = Instant::now();
    let rss: Arc<Mutex<RssSamples>> = Arc::default();
    let sampler = tokio::spawn(sample_rss(t0, [cluster.mem_probe(0), cluster.mem_probe(1)], rss.clone()));
    let mut killed: Option<(Instant, Vec<u32>)> = None;
    let mut sends = tokio::task::JoinSet::new();
    eprintln!(
        "failover: {total} messages at {}/s over {} conversations; kill -9 of node 0 at {} s",
        args.rate, args.conversations, args.kill_at
    );
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / args.rate);
        tokio::time::sleep_until(due.into()).await;
        if killed.is_none() && t0.elapsed() >= Duration::from_secs(args.kill_at) {
            let owned = partitions_of(&cluster, "node-0", args.partitions)?;
            cluster.kill(0);
            killed = Some((Instant::now(), owned));
        }
        let (c, k) = (i % args.conversations, i / args.conversations);
        let (http, urls) = (http.clone(), urls.clone());
        sends.spawn(async move {
            let (sent, mut busy) = (Instant::now(), Vec::new());
            let acked = deliver(&http, &urls, i % urls.len(), c, k, &mut busy).await.then(Instant::now);
            Delivery { i, sent, acked, busy }
        });
    }
    let mut deliveries = Vec::with_capacity(total);
    while let Some(done) = sends.join_next().await {
        deliveries.extend(done.ok());
    }
    let Some((killed_at, node0)) = killed else { bail!("the run ended before the kill") };
    let accepted: HashMap<(usize, usize), Instant> = deliveries
        .iter()
        .filter_map(|d| Some(((d.i % args.conversations, d.i / args.conversations), d.acked?)))
        .collect();
    // Every accepted message answered, or 30 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut replies = replies(&cluster);
    while accepted.keys().any(|key| !replies.contains_key(key)) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        replies = self::replies(&cluster);
    }
    sampler.abort();
    let mut report = Report::build(args, &accepted, &replies, killed_at, &node0);
    report.print();
    let rss = std::mem::take(&mut *rss.lock().unwrap_or_else(|e| e.into_inner()));
    let timeline = Timeline::build(&trace(t0, args, &deliveries, &replies, &rss), &rss);
    let kill_secs = killed_at.saturating_duration_since(t0).as_secs_f64();
    report.json["killed_at_secs"] = json!((kill_secs * 1000.0).round() / 1000.0);
    report.json["timeline"] = timeline.json();
    write_json(&out, &report.json)?;
    // Short: the charts append what they show.
    let title = format!("failover: {} msg/s, kill -9 of node 0 at {} s", args.rate, args.kill_at);
    let end = timeline.rows.last().map_or(args.secs as f64, |r| r.t);
    timeline.save_charts(&out, &title, kill_band(kill_secs, report.first_reclaimed, end))?;
    Ok(report.clean)
}

/// Waits until both nodes hold their share (the second one joined).
async fn wait_for_shares(cluster: &Cluster, partitions: u32) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut owned = Vec::new();
        for i in cluster.running() {
            owned.push(cluster.metrics(i).await?.get("switchboard_partitions_owned").copied().unwrap_or(0.0) as u32);
        }
        if owned.iter().sum::<u32>() == partitions && !owned.contains(&0) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("partitions not shared between the nodes: {owned:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The partitions whose lease `node` holds, read from Redis with `redis-cli`.
fn partitions_of(cluster: &Cluster, node: &str, partitions: u32) -> Result<Vec<u32>> {
    let mut cmd = Command::new("redis-cli");
    cmd.args(["-u", &cluster.redis.url(), "MGET"]);
    for p in 0..partitions {
        cmd.arg(format!("{}{{{p}}}:lease", cluster.redis.prefix()));
    }
    let out = cmd.output().context("running redis-cli")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let owned: Vec<u32> = text
        .lines()
        .enumerate()
        .filter(|(_, owner)| owner.split(':').next() == Some(node))
        .map(|(p, _)| p as u32)
        .collect();
    if owned.is_empty() {
        bail!("no lease of {node} found in redis ({})", text.trim());
    }
    Ok(owned)
}

/// Posts message (c, k), starting with node `first`; notes when a node answered 503 in `busy`.
async fn deliver(
    http: &reqwest::Client,
    urls: &[String],
    first: usize,
    c: usize,
    k: usize,
    busy: &mut Vec<Instant>,
) -> bool {
    let note = |status| {
        if status == Some(StatusCode::SERVICE_UNAVAILABLE) {
            busy.push(Instant::now());
        }
    };
    post_whatsapp_observed(http, urls, first, &phone(c), &format!("wamid.f{c}.k{k}"), &format!("m{c}-{k}"), note).await
}

/// Arrival times of every reply line, per message.
type Replies = HashMap<(usize, usize), Vec<Instant>>;

fn replies(cluster: &Cluster) -> Replies {
    let mut out = Replies::new();
    for request in cluster.graph.sent() {
        let body = request.body.pointer("/text/body").and_then(|v| v.as_str()).unwrap_or_default();
        let Some(echo) = body.strip_prefix("echo: ") else { continue };
        for line in echo.lines() {
            let parsed = line.strip_prefix('m').and_then(|l| l.split_once('-'));
            if let Some((c, k)) = parsed.and_then(|(c, k)| Some((c.parse().ok()?, k.parse().ok()?))) {
                out.entry((c, k)).or_default().push(request.at);
            }
        }
    }
    out
}

struct Report {
    json: serde_json::Value,
    lines: Vec<String>,
    clean: bool,
    /// From the kill to the first answer the new owner gave (the end of the charts' band).
    first_reclaimed: Option<Duration>,
}

impl Report {
    fn build(
        args: &FailoverArgs,
        accepted: &HashMap<(usize, usize), Instant>,
        replies: &Replies,
        killed_at: Instant,
        node0: &[u32],
    ) -> Report {
        let of_node0 = |c: usize| {
            let id = format!("demo:whatsapp.main:{}", phone(c));
            node0.contains(&partition_of(&id, args.partitions))
        };
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        let mut latency = Histogram::<u64>::new(3).expect("histogram");
        let (mut lost, mut doubled, mut doubled_at_kill) = (Vec::new(), Vec::new(), 0usize);
        let mut first_reclaimed: Option<Duration> = None;
        let mut last_stranded: Option<Duration> = None;
        let mut stranded = 0usize;
        for (&(c, k), &sent) in accepted {
            let Some(arrivals) = replies.get(&(c, k)) else {
                lost.push(format!("m{c}-{k}"));
                continue;
            };
            let first = *arrivals.iter().min().expect("non-empty");
            latency.record(first.saturating_duration_since(sent).as_micros() as u64).ok();
            if arrivals.len() > 1 {
                // A reply the provider took in the instant before the kill: its result never
                // reached Redis, so the new owner sends it again (see README, "Crash").
                let in_flight =
                    first + Duration::from_secs(1) >= killed_at && first <= killed_at + Duration::from_millis(200);
                if in_flight {
                    doubled_at_kill += 1;
                } else {
                    doubled.push(format!("m{c}-{k}"));
                }
            }
            if !of_node0(c) {
                continue;
            }
            if sent > killed_at {
                let after = first.saturating_duration_since(killed_at);
                first_reclaimed = Some(first_reclaimed.map_or(after, |f| f.min(after)));
            } else if first > killed_at {
                stranded += 1;
                let after = first.saturating_duration_since(killed_at);
                last_stranded = Some(last_stranded.map_or(after, |l| l.max(after)));
            }
        }
        let disordered = out_of_order(replies);
        lost.sort();
        doubled.sort();
        let clean = lost.is_empty() && doubled.is_empty() && disordered == 0;
        let json = json!({
            "scenario": "failover",
            "nodes": 2,
            "conversations": args.conversations,
            "rate_per_sec": args.rate,
            "secs": args.secs,
            "kill_at_secs": args.kill_at,
            "lease_ttl_ms": args.lease_ttl_ms,
            "heartbeat_ms": args.heartbeat_ms,
            "partitions": args.partitions,
            "node0_partitions": node0.len(),
            "accepted": accepted.len(),
            "answered": accepted.len() - lost.len(),
            "lost": lost.len(),
            "lost_sample": lost.iter().take(10).collect::<Vec<_>>(),
            "doubled_outside_kill_instant": doubled.len(),
            "doubled_sample": doubled.iter().take(10).collect::<Vec<_>>(),
            "doubled_in_flight_at_kill": doubled_at_kill,
            "out_of_order_conversations": disordered,
            "first_reclaimed_answer_ms": first_reclaimed.map(ms),
            "stranded_at_kill": stranded,
            "last_stranded_answer_ms": last_stranded.map(ms),
            "reply_latency": hist_json(&latency),
        });
        let opt = |d: Option<Duration>| d.map_or("none".to_owned(), |d| format!("{:.0} ms", ms(d)));
        let lines = vec![
            format!(
                "accepted {}  answered {}  lost {}  doubled {} (+{} in flight at the kill)  out of order {}",
                accepted.len(),
                accepted.len() - lost.len(),
                lost.len(),
                doubled.len(),
                doubled_at_kill,
                disordered
            ),
            format!("node 0 held {} of {} partitions", node0.len(), args.partitions),
            format!(
                "kill -9 -> first answer to a message of node 0's partitions sent after it: {}",
                opt(first_reclaimed)
            ),
            format!("kill -9 -> last of the {stranded} messages stranded by the kill answered: {}", opt(last_stranded)),
            hist_line("reply", &latency),
            format!("failover verdict: {}", if clean { "CLEAN" } else { "ANOMALIES" }),
        ];
        Report { json, lines, clean, first_reclaimed }
    }

    fn print(&self) {
        for line in &self.lines {
            println!("{line}");
        }
    }
}

/// Conversations whose replies arrived out of order (by first arrival of each line).
fn out_of_order(replies: &Replies) -> usize {
    let mut by_conversation: BTreeMap<usize, Vec<(Instant, usize)>> = BTreeMap::new();
    for (&(c, k), arrivals) in replies {
        if let Some(first) = arrivals.iter().min() {
            by_conversation.entry(c).or_default().push((*first, k));
        }
    }
    let mut disordered = 0;
    for lines in by_conversation.values_mut() {
        lines.sort();
        if lines.windows(2).any(|w| w[0].1 > w[1].1) {
            disordered += 1;
        }
    }
    disordered
}

/// The hub's partitioning (FNV-1a; `switchboard_actors::partition`), repeated here: the load
/// generator does not link the hub.
fn partition_of(conversation_id: &str, partitions: u32) -> u32 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in conversation_id.as_bytes() {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % u64::from(partitions.max(1))) as u32
}
