//! `demo`: the whole hub on one machine with no accounts. Starts loopback stand-ins for the
//! WhatsApp Graph API, the Telegram Bot API and an OpenAI-compatible model, runs the real
//! `switchboard` binary (embedded backend, demo tenant) against them, plays two customers through
//! its real webhooks and prints the conversation as it happens. Then it keeps running, printing
//! every message the hub sends, until Ctrl-C.

use anyhow::{Context, Result};
use std::time::Duration;
use switchboard_load_tests::fakes::RecordedRequest;
use switchboard_load_tests::fakes::openai::{FakeOpenAi, Mode};
use switchboard_load_tests::fakes::telegram::FakeTelegram;
use switchboard_load_tests::fakes::whatsapp::FakeGraph;
use switchboard_load_tests::loadgen::default_repo_root;
use switchboard_load_tests::loadgen::hub::{HubProcess, HubSpec};
use switchboard_load_tests::payloads;

const PNID: &str = "200000000000002";
const WA_TOKEN: &str = "demo-access-token";
const WA_SECRET: &str = "demo-app-secret";
const TG_TOKEN: &str = "123456:DEMO";
/// Bearer token of the demo tenant's MCP bot.
const MCP_TOKEN: &str = "demo-mcp-token";
/// Telegram user id of the demo tenant's manager (staff: may send /commands).
const MANAGER: i64 = 4200;
const TG_SECRET: &str = "demo-secret";
const ANA: &str = "5511987654321";
const BRUNO: i64 = 4242;

struct Demo {
    graph: FakeGraph,
    telegram: FakeTelegram,
    /// Kept alive as long as the hub uses it.
    _model: FakeOpenAi,
    hub: HubProcess,
    http: reqwest::Client,
    shown_wa: usize,
    shown_tg: usize,
}

impl Demo {
    async fn start() -> Result<Demo> {
        let graph = FakeGraph::start(WA_TOKEN).await.context("starting the WhatsApp stand-in")?;
        let telegram = FakeTelegram::start(TG_TOKEN).await.context("starting the Telegram stand-in")?;
        let openai = FakeOpenAi::start().await.context("starting the model stand-in")?;
        openai.set_mode(Mode::Echo { delay: Duration::from_millis(300) });
        let root = default_repo_root();
        let env = [
            ("WHATSAPP_ACCESS_TOKEN", WA_TOKEN.to_owned()),
            ("WHATSAPP_APP_SECRET", WA_SECRET.to_owned()),
            ("WHATSAPP_VERIFY_TOKEN", "demo-verify".to_owned()),
            ("WHATSAPP_PHONE_NUMBER_ID", PNID.to_owned()),
            ("WHATSAPP_GRAPH_URL", graph.base_url()),
            ("TELEGRAM_BOT_TOKEN", TG_TOKEN.to_owned()),
            ("TELEGRAM_SECRET_TOKEN", TG_SECRET.to_owned()),
            ("TELEGRAM_API_URL", telegram.base_url()),
            ("OPENAI_API_KEY", "demo".to_owned()),
            ("OPENAI_BASE_URL", openai.base_url()),
            ("OPENAI_MODEL", "demo-echo".to_owned()),
            ("SWITCHBOARD_DEMO_BOT_TOKEN", MCP_TOKEN.to_owned()),
            ("DEMO_STAFF_TELEGRAM_ID", MANAGER.to_string()),
            ("DEMO_AGENT_ANA_TOKEN", "demo-ana-token".to_owned()),
            ("DEMO_ADMIN_TOKEN", "demo-admin-token".to_owned()),
            ("RUST_LOG", "info,rmcp=warn".to_owned()),
        ];
        let spec = HubSpec {
            bin: root.join("target/release/switchboard"),
            workdir: root.clone(),
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            log: root.join("load-tests/results/hub-demo.log"),
            port: Some(demo_port()),
        };
        let _ = std::fs::remove_file(&spec.log); // the hub appends; this run starts a new log
        let mut hub = HubProcess::spawn(&spec)?;
        hub.wait_healthy(Duration::from_secs(30)).await?;
        println!("Switchboard demo: hub at {} (embedded backend, demo tenant)", hub.base_url());
        println!("  stand-ins on loopback: WhatsApp Graph API {}", graph.base_url());
        println!("                         Telegram Bot API   {}", telegram.base_url());
        println!("                         model (echoes)     {}", openai.base_url());
        println!("  hub log: {}", hub.log_path().display());
        let http = reqwest::Client::builder().no_proxy().build()?;
        Ok(Demo { graph, telegram, _model: openai, hub, http, shown_wa: 0, shown_tg: 0 })
    }

    async fn whatsapp(&self, body: String) -> Result<u16> {
        let sig = payloads::wa_sign(WA_SECRET, body.as_bytes());
        let res = self
            .http
            .post(format!("{}/webhooks/whatsapp", self.hub.base_url()))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", sig)
            .body(body)
            .send()
            .await?;
        Ok(res.status().as_u16())
    }

    async fn telegram(&self, body: String) -> Result<u16> {
        let res = self
            .http
            .post(format!("{}/webhooks/telegram/demo", self.hub.base_url()))
            .header("content-type", "application/json")
            .header("x-telegram-bot-api-secret-token", TG_SECRET)
            .body(body)
            .send()
            .await?;
        Ok(res.status().as_u16())
    }

    /// Prints what the hub sent since last time; waits up to `wait` for at least `expect` new ones.
    async fn show_replies(&mut self, expect: usize, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let wa = self.graph.sent();
            let tg = self.telegram.sent();
            let new = wa.len() - self.shown_wa + tg.len() - self.shown_tg;
            if new >= expect || tokio::time::Instant::now() >= deadline {
                wa[self.shown_wa..].iter().for_each(print_whatsapp);
                tg[self.shown_tg..].iter().for_each(print_telegram);
                self.shown_wa = wa.len();
                self.shown_tg = tg.len();
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn print_whatsapp(req: &RecordedRequest) {
    let to = req.body["to"].as_str().unwrap_or("?");
    if let Some(text) = req.body["text"]["body"].as_str() {
        println!("  hub → {to} (WhatsApp): {}", text.replace('\n', "\n      "));
    } else {
        let body = req.body["interactive"]["body"]["text"].as_str().unwrap_or_default();
        let buttons: Vec<&str> = req.body["interactive"]["action"]["buttons"]
            .as_array()
            .map(|b| b.iter().filter_map(|b| b["reply"]["title"].as_str()).collect())
            .unwrap_or_default();
        println!("  hub → {to} (WhatsApp): {}", body.replace('\n', "\n      "));
        println!("      [buttons: {}]", buttons.join(" | "));
    }
}

fn print_telegram(req: &RecordedRequest) {
    let chat = &req.body["chat_id"];
    let text = req.body["text"].as_str().unwrap_or_default();
    println!("  hub → chat {chat} (Telegram): {}", text.replace('\n', "\n      "));
    if let Some(rows) = req.body["reply_markup"]["inline_keyboard"].as_array() {
        let keys: Vec<&str> = rows.iter().filter_map(|r| r[0]["text"].as_str()).collect();
        println!("      [keyboard: {}]", keys.join(" | "));
    }
}

async fn script(demo: &mut Demo) -> Result<()> {
    let step = Duration::from_secs(5);
    println!("\n── WhatsApp: Ana ({ANA}) writes; the demo tenant opens with its triage menu");
    println!("  Ana → hub: Oi! Vocês têm a camiseta azul em M?");
    demo.whatsapp(payloads::wa_text(PNID, ANA, "wamid.DEMO-1", "Oi! Vocês têm a camiseta azul em M?")).await?;
    demo.show_replies(1, step).await;
    println!("  Ana taps: Assistente virtual");
    demo.whatsapp(payloads::wa_interactive_button(PNID, ANA, "wamid.DEMO-2", "3", "Assistente virtual")).await?;
    demo.show_replies(1, step).await;
    println!("  Ana → hub: Tem a camiseta azul em M?");
    demo.whatsapp(payloads::wa_text(PNID, ANA, "wamid.DEMO-3", "Tem a camiseta azul em M?")).await?;
    demo.show_replies(1, step).await;
    println!("  (the stand-in model echoes; set OPENAI_API_KEY/OPENAI_BASE_URL for a real one)");
    println!("  Meta delivers the same webhook again…");
    let status = demo.whatsapp(payloads::wa_text(PNID, ANA, "wamid.DEMO-3", "Tem a camiseta azul em M?")).await?;
    demo.show_replies(1, Duration::from_secs(1)).await;
    println!("  …the hub answers {status} and sends nothing twice");

    println!("\n── Telegram: Bruno (chat {BRUNO}) wants a human in sales");
    println!("  Bruno → hub: Olá");
    demo.telegram(payloads::tg_text(900001, BRUNO, "Olá")).await?;
    demo.show_replies(1, step).await;
    println!("  Bruno taps: Vendas");
    demo.telegram(payloads::tg_callback(900002, BRUNO, "1")).await?;
    demo.show_replies(1, step).await;
    println!("  (Bruno now waits in the sales queue: open the console below and take him)");

    println!("\n── MCP: a bot calls queue_stats on POST /mcp (bearer token, revision 2026-07-28)");
    let call = serde_json::json!({ "jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {
        "name": "queue_stats", "arguments": {},
        "_meta": { "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {} } } });
    let answer = demo
        .http
        .post(format!("{}/mcp", demo.hub.base_url()))
        .bearer_auth(MCP_TOKEN)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", "2026-07-28")
        .header("mcp-method", "tools/call")
        .header("mcp-name", "queue_stats")
        .json(&call)
        .send()
        .await?
        .text()
        .await?;
    // rmcp answers with one server-sent event; its `data:` line is the JSON-RPC response.
    let answer: serde_json::Value = answer
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .chain(std::iter::once(answer.as_str()))
        .find_map(|d| serde_json::from_str(d.trim()).ok())
        .unwrap_or_default();
    let text = answer["result"]["content"][0]["text"].as_str().unwrap_or("(no answer)");
    println!("  {}", text.replace('\n', "\n  "));

    println!("\n── Staff: the manager (Telegram {MANAGER}) sends /list queued to the bot");
    demo.telegram(payloads::tg_text(900003, MANAGER, "/list queued")).await?;
    demo.show_replies(1, step).await;

    println!("\n── Bad input changes nothing:");
    let forged = demo
        .http
        .post(format!("{}/webhooks/whatsapp", demo.hub.base_url()))
        .header("x-hub-signature-256", "sha256=00")
        .body(payloads::wa_text(PNID, ANA, "wamid.FORGED", "forged"))
        .send()
        .await?;
    println!("  a webhook with a wrong signature → {}", forged.status());
    let metrics = demo.http.get(format!("{}/metrics", demo.hub.base_url())).send().await?.text().await?;
    println!("\n── A few lines of GET /metrics:");
    for line in metrics.lines().filter(|l| l.starts_with("switchboard_") && !l.ends_with(" 0")).take(12) {
        println!("  {line}");
    }
    Ok(())
}

/// The port a browser opens: `SWITCHBOARD_DEMO_PORT`, else 8080 when free, else any free one.
fn demo_port() -> u16 {
    let wanted = std::env::var("SWITCHBOARD_DEMO_PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(8080);
    match std::net::TcpListener::bind(("127.0.0.1", wanted)) {
        Ok(_) => wanted,
        Err(_) => std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map_or(wanted, |a| a.port()),
    }
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let mut demo = Demo::start().await?;
    script(&mut demo).await?;
    let url = demo.hub.base_url().to_owned();
    println!("\nThe hub keeps running at {url}. In a browser:");
    println!("  {url}/                    the landing page");
    println!("  {url}/widget?tenant=demo  chat as a customer of Loja Demo (web chat)");
    println!("  {url}/console             the agent console: sign in with demo-ana-token (agent ana,");
    println!("  {:w$}                     queues vendas and suporte) or demo-admin-token", "", w = url.len());
    println!("Or write to it as a Telegram customer, e.g.:");
    println!(
        "  curl -s {url}/webhooks/telegram/demo -H 'x-telegram-bot-api-secret-token: {TG_SECRET}' \\\n    -H 'content-type: application/json' -d '{}'",
        payloads::tg_text(900100, 777, "oi")
    );
    println!(
        "REST API: {url}/api/conversations with 'Authorization: Bearer demo-admin-token' (agent ana: demo-ana-token; document: {url}/api/openapi.json)."
    );
    println!("MCP clients: {url}/mcp with header 'Authorization: Bearer {MCP_TOKEN}' (see README, MCP).");
    println!("Replies appear below. Ctrl-C stops the hub and the stand-ins.\n");
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = demo.show_replies(1, Duration::from_millis(500)) => {}
        }
        demo.hub.ensure_running()?;
    }
    demo.hub.kill();
    println!("stopped");
    Ok(())
}
