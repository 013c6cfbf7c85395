//! `/mcp` on the wire: bearer authentication, the handshake revision (2025-06-18: initialize,
//! session, ping, DELETE) and the newest one (2026-07-28: discover, no session), JSON-RPC errors
//! and the quota error, with a raw HTTP client.

use crate::helpers::*;
use serde_json::{Value, json};
use std::time::Duration;

const NEWEST: &str = "2026-07-28";

struct Mcp<'a> {
    app: &'a TestApp,
    token: Option<&'a str>,
    session: Option<String>,
}

struct Answer {
    status: u16,
    session: Option<String>,
    message: Value,
}

impl<'a> Mcp<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self { app, token: Some(BOT_TOKEN), session: None }
    }

    fn request(&self, method: reqwest::Method) -> reqwest::RequestBuilder {
        let mut req = self
            .app
            .http
            .request(method, format!("{}/mcp", self.app.url))
            .header("accept", "application/json, text/event-stream")
            .header("content-type", "application/json");
        if let Some(token) = self.token {
            req = req.bearer_auth(token);
        }
        if let Some(session) = &self.session {
            req = req.header("mcp-session-id", session).header("mcp-protocol-version", "2025-06-18");
        }
        req
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Answer {
        let resp = req.send().await.expect("hub reachable");
        let status = resp.status().as_u16();
        let session = resp.headers().get("mcp-session-id").map(|v| v.to_str().unwrap().to_owned());
        let body = tokio::time::timeout(Duration::from_secs(5), resp.text()).await.expect("body ends").unwrap();
        Answer { status, session, message: message_of(&body) }
    }

    /// A handshake-era request (or notification when `id` is `None`).
    async fn post(&self, id: Option<u64>, method: &str, params: Value) -> Answer {
        let mut body = json!({ "jsonrpc": "2.0", "method": method, "params": params });
        if let Some(id) = id {
            body["id"] = json!(id);
        }
        self.send(self.request(reqwest::Method::POST).body(body.to_string())).await
    }

    /// A 2026-07-28 request: the version and capabilities ride in `_meta`, and in headers.
    async fn post_newest(&self, id: u64, method: &str, mut params: Value, name: Option<&str>) -> Answer {
        params["_meta"] = json!({
            "io.modelcontextprotocol/protocolVersion": NEWEST,
            "io.modelcontextprotocol/clientCapabilities": {},
        });
        let body = json!({ "jsonrpc": "2.0", "id": id, "method": method, "params": params });
        let mut req = self
            .request(reqwest::Method::POST)
            .header("mcp-protocol-version", NEWEST)
            .header("mcp-method", method)
            .body(body.to_string());
        if let Some(name) = name {
            req = req.header("mcp-name", name);
        }
        self.send(req).await
    }
}

/// The JSON-RPC message of a JSON or SSE body (`Null` if there is none).
fn message_of(body: &str) -> Value {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        return v;
    }
    body.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find(|m| m.get("id").is_some())
        .unwrap_or(Value::Null)
}

#[actix_web::test]
async fn requests_without_a_known_bearer_token_get_401() {
    let app = spawn_app(&[]).await;
    for token in [None, Some("not-a-token")] {
        let mcp = Mcp { token, ..Mcp::new(&app) };
        let answer = mcp.post_newest(1, "tools/list", json!({}), None).await;
        assert_eq!(answer.status, 401);
        assert_eq!(answer.message["error"]["code"], -32001, "{}", answer.message);
    }
}

#[actix_web::test]
async fn handshake_revision_initialize_session_tools_ping_and_delete() {
    let app = spawn_app(&[]).await;
    let mut mcp = Mcp::new(&app);
    let init =
        json!({ "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } });
    let answer = mcp.post(Some(1), "initialize", init).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.message["result"]["protocolVersion"], "2025-06-18", "{}", answer.message);
    assert_eq!(answer.message["result"]["serverInfo"]["name"], "switchboard");
    mcp.session = Some(answer.session.expect("a session id"));
    assert_eq!(mcp.post(None, "notifications/initialized", json!({})).await.status, 202);

    let tools = mcp.post(Some(2), "tools/list", json!({})).await.message;
    let names: Vec<&str> =
        tools["result"]["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names.len(), 13, "{names:?}");
    assert!(names.contains(&"queue_stats") && names.contains(&"handoff_to_ai"));

    let stats = mcp.post(Some(3), "tools/call", json!({ "name": "queue_stats", "arguments": {} })).await.message;
    assert_eq!(stats["result"]["isError"], false, "{stats}");
    assert_eq!(stats["result"]["structuredContent"]["queues"][1]["queue"], "suporte");
    assert!(stats["result"]["content"][0]["text"].as_str().unwrap().contains("vendas: 0 waiting"));

    let bad = json!({ "name": "get_conversation", "arguments": { "conversation_id": 5 } });
    assert_eq!(mcp.post(Some(4), "tools/call", bad).await.message["error"]["code"], -32602);
    let missing = json!({ "name": "get_conversation", "arguments": { "conversation_id": "demo:x:1" } });
    let refused = mcp.post(Some(5), "tools/call", missing).await.message;
    assert_eq!(refused["result"]["isError"], true, "{refused}");
    assert_eq!(mcp.post(Some(6), "ping", json!({})).await.message["result"], json!({}));

    let ended = mcp.send(mcp.request(reqwest::Method::DELETE)).await;
    assert!(matches!(ended.status, 200 | 202 | 204), "DELETE ends the session: {}", ended.status);
    assert_eq!(mcp.post(Some(7), "tools/list", json!({})).await.status, 404, "the session is gone");
}

#[actix_web::test]
async fn newest_revision_discover_and_call_without_a_session() {
    let app = spawn_app(&[]).await;
    let mcp = Mcp::new(&app);
    let discover = mcp.post_newest(1, "server/discover", json!({}), None).await;
    assert_eq!(discover.status, 200);
    assert!(discover.session.is_none(), "no session in the newest revision");
    let versions = discover.message["result"]["supportedVersions"].as_array().unwrap().clone();
    for v in [NEWEST, "2025-11-25", "2025-06-18"] {
        assert!(versions.contains(&json!(v)), "{v} in {versions:?}");
    }
    let call = json!({ "name": "list_conversations", "arguments": { "status": "queued" } });
    let listed = mcp.post_newest(2, "tools/call", call, Some("list_conversations")).await.message;
    assert_eq!(listed["result"]["structuredContent"]["total"], 0, "{listed}");
    assert_eq!(listed["result"]["resultType"], "complete");
    let unknown = json!({ "name": "launch_rockets", "arguments": {} });
    let answer = mcp.post_newest(3, "tools/call", unknown, Some("launch_rockets")).await;
    assert_eq!(answer.message["error"]["code"], -32602, "{}", answer.message);
}

#[actix_web::test]
async fn a_call_over_quota_is_a_jsonrpc_error_saying_which_limit() {
    let app = spawn_app(&[
        ("TENANTS__DEMO__BOTS__ASSISTANT__BURST_PER_SECOND", "1"),
        ("TENANTS__DEMO__BOTS__ASSISTANT__BURST", "1"),
    ])
    .await;
    let mcp = Mcp::new(&app);
    let call = || json!({ "name": "queue_stats", "arguments": {} });
    let first = mcp.post_newest(1, "tools/call", call(), Some("queue_stats")).await.message;
    assert_eq!(first["result"]["isError"], false, "{first}");
    let second = mcp.post_newest(2, "tools/call", call(), Some("queue_stats")).await.message;
    assert_eq!(second["error"]["code"], -32029, "{second}");
    assert_eq!(second["error"]["data"]["limit"], "burst");
    assert!(second["error"]["message"].as_str().unwrap().contains("retry in"), "{second}");
}

#[actix_web::test]
async fn a_foreign_host_header_is_refused() {
    let app = spawn_app(&[]).await;
    let mcp = Mcp::new(&app);
    let req = mcp.request(reqwest::Method::POST).header("host", "evil.example").body(
        json!({ "jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": { "name": "t", "version": "0" } } })
        .to_string(),
    );
    assert_eq!(mcp.send(req).await.status, 403);
}
