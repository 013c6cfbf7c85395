//! `loadgen mcp-tools`: tool calls per second through `/mcp`. C clients call one tool in a
//! closed loop for a fixed time, each call a stateless 2026-07-28 request (or, with
//! `--handshake`, inside an `initialize`d 2025-06-18 session per client).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::report::{hist_json, hist_line, write_json};
use super::rig::{Rig, RigArgs, run_name};

const TOKEN: &str = "loadgen-bot-token";
const NEWEST: &str = "2026-07-28";
const HANDSHAKE: &str = "2025-06-18";

/// Options of `loadgen mcp-tools`.
#[derive(clap::Args, Clone, Debug)]
pub struct McpArgs {
    /// Tool to call.
    #[arg(long, default_value = "queue_stats")]
    pub tool: String,
    /// Its arguments (JSON object).
    #[arg(long, default_value = "{}")]
    pub arguments: String,
    /// Clients calling at once.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Measured seconds (after one warm-up second).
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Use the handshake revision (one session per client) instead of the sessionless one.
    #[arg(long)]
    pub handshake: bool,
    /// JSON output [default: <repo>/load-tests/results/mcp-tools.json].
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Fakes and hub.
    #[command(flatten)]
    pub rig: RigArgs,
}

struct Client {
    http: reqwest::Client,
    url: String,
    /// Handshake revision (a session once initialised) rather than the sessionless one.
    handshake: bool,
    session: Option<String>,
}

impl Client {
    fn post(&self, body: &Value, method: &str, name: Option<&str>) -> reqwest::RequestBuilder {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(TOKEN)
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json")
            .body(body.to_string());
        if self.handshake {
            if let Some(id) = &self.session {
                req = req.header("mcp-session-id", id).header("mcp-protocol-version", HANDSHAKE);
            }
            return req;
        }
        req = req.header("mcp-protocol-version", NEWEST).header("mcp-method", method);
        if let Some(name) = name {
            req = req.header("mcp-name", name);
        }
        req
    }

    async fn initialize(&mut self) -> Result<()> {
        let body = json!({ "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": HANDSHAKE, "capabilities": {}, "clientInfo": { "name": "loadgen", "version": "0" } } });
        let resp = self.post(&body, "initialize", None).send().await?;
        let id = resp.headers().get("mcp-session-id").context("no Mcp-Session-Id")?.to_str()?.to_owned();
        resp.text().await?;
        self.session = Some(id);
        let done = json!({ "jsonrpc": "2.0", "method": "notifications/initialized" });
        self.post(&done, "notifications/initialized", None).send().await?.text().await?;
        Ok(())
    }

    /// One call; `Ok(true)` when the tool answered without error.
    async fn call(&self, id: u64, tool: &str, arguments: &Value) -> Result<bool> {
        let mut params = json!({ "name": tool, "arguments": arguments });
        if !self.handshake {
            params["_meta"] = json!({
                "io.modelcontextprotocol/protocolVersion": NEWEST,
                "io.modelcontextprotocol/clientCapabilities": {},
            });
        }
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": "tools/call", "params": params });
        let resp = self.post(&body, "tools/call", Some(tool)).send().await?;
        let ok = resp.status().is_success();
        let text = resp.text().await?;
        let message = serde_json::from_str::<Value>(&text).ok().or_else(|| {
            text.lines().filter_map(|l| l.strip_prefix("data:")).find_map(|d| serde_json::from_str(d.trim()).ok())
        });
        Ok(ok && message.is_some_and(|m: Value| m["result"]["isError"] == json!(false)))
    }
}

/// Runs the scenario; `Ok(false)` if any call failed.
pub async fn run(args: &McpArgs) -> Result<bool> {
    if args.concurrency == 0 || args.seconds == 0 {
        bail!("--concurrency and --seconds must be positive");
    }
    let arguments: Value = serde_json::from_str(&args.arguments).context("--arguments is not JSON")?;
    let env = [
        ("SWITCHBOARD_DEMO_BOT_TOKEN", TOKEN.to_owned()),
        ("SWITCHBOARD__TENANTS__DEMO__BOTS__ASSISTANT__PLAN", "unlimited".to_owned()),
        ("SWITCHBOARD__TENANTS__DEMO__BOTS__ASSISTANT__BURST_PER_SECOND", "1000000".to_owned()),
        ("SWITCHBOARD__TENANTS__DEMO__BOTS__ASSISTANT__BURST", "1000000".to_owned()),
        // The rig's own env asks for warn; rmcp logs every stateless request at info.
        ("RUST_LOG", "warn,rmcp=error".to_owned()),
    ];
    let rig = Rig::start(&args.rig, run_name("mcp-tools", args.out.as_deref()), &env).await?;
    let result = measure(&rig, args, Arc::new(arguments)).await;
    rig.stop().await;
    let (clean, report) = result?;
    let out = args.out.clone().unwrap_or_else(|| args.rig.results_path("mcp-tools.json"));
    write_json(&out, &report)?;
    Ok(clean)
}

async fn measure(rig: &Rig, args: &McpArgs, arguments: Arc<Value>) -> Result<(bool, Value)> {
    let url = format!("{}/mcp", rig.hub.base_url());
    let http = reqwest::Client::builder().no_proxy().pool_max_idle_per_host(args.concurrency).build()?;
    let warm_until = Instant::now() + Duration::from_secs(1);
    let end = warm_until + Duration::from_secs(args.seconds);
    let mut tasks = Vec::with_capacity(args.concurrency);
    for worker in 0..args.concurrency {
        let handshake = args.handshake;
        let mut client = Client { http: http.clone(), url: url.clone(), handshake, session: None };
        let (tool, arguments) = (args.tool.clone(), arguments.clone());
        tasks.push(tokio::spawn(async move {
            let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
            let mut failed = 0u64;
            if handshake {
                client.initialize().await?;
            }
            let mut id = (worker as u64) << 32;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                id += 1;
                let ok = client.call(id, &tool, &arguments).await.unwrap_or(false);
                if started >= warm_until {
                    if ok {
                        hist.saturating_record(started.elapsed().as_micros() as u64);
                    } else {
                        failed += 1;
                    }
                }
            }
            anyhow::Ok((hist, failed))
        }));
    }
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut failed = 0;
    for task in tasks {
        let (h, f) = task.await??;
        hist.add(&h)?;
        failed += f;
    }
    let rate = hist.len() as f64 / args.seconds as f64;
    let revision = if args.handshake { HANDSHAKE } else { NEWEST };
    println!("mcp-tools: {} via /mcp ({revision}), {} clients, {} s", args.tool, args.concurrency, args.seconds);
    println!("calls        {} ok, {failed} failed: {rate:.0} calls/s", hist.len());
    println!("{}", hist_line("latency", &hist));
    let report = json!({
        "scenario": "mcp-tools",
        "tool": args.tool,
        "revision": revision,
        "concurrency": args.concurrency,
        "seconds": args.seconds,
        "calls_ok": hist.len(),
        "calls_failed": failed,
        "calls_per_second": (rate * 10.0).round() / 10.0,
        "latency": hist_json(&hist),
    });
    Ok((failed == 0, report))
}
