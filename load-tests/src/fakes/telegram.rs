//! `FakeTelegram`: a fake Telegram Bot API for teloxide.
//!
//! Serves `POST /bot{token}/{method}` (method names case-insensitive, as on the real API:
//! teloxide sends `SendMessage`) with `{"ok":true,"result":...}` answers shaped as teloxide-core
//! 0.13 parses them (PROTOCOLS.md 2.3-2.4, `tg.json`). It never answers 5xx, because teloxide
//! sleeps 10 s before reading a 5xx body; flood (429) and blocked (403) are programmable.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Value, json};

use std::net::SocketAddr;

use super::whatsapp::OnSend;
use super::{RecordedRequest, Recorder, RunningServer, loopback_any, parse_body, unix_now};

/// User id of the fake bot (`from.id` of every message it sends).
pub const BOT_ID: i64 = 777000;
/// Username of the fake bot.
pub const BOT_USERNAME: &str = "hub_bot";

const UNAUTHORIZED_BODY: &str = r#"{"ok":false,"error_code":401,"description":"Unauthorized"}"#;
const NOT_FOUND_BODY: &str = r#"{"ok":false,"error_code":404,"description":"Not Found: method not found"}"#;
const BLOCKED_BODY: &str = r#"{"ok":false,"error_code":403,"description":"Forbidden: bot was blocked by the user"}"#;
const TRUE_BODY: &str = r#"{"ok":true,"result":true}"#;

/// A programmed `sendMessage` failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TgFailure {
    Flood(u32),
    Blocked,
}

/// Status, body and optional `Retry-After` seconds of one answer.
type Answer = (u16, String, Option<u32>);

struct TgState {
    token: String,
    recorder: Recorder,
    failures: Mutex<VecDeque<TgFailure>>,
    message_id: AtomicI64,
    /// Sees every successful `sendMessage` (chat id as text, body), for the load generator.
    on_send: RwLock<Option<OnSend>>,
}

fn bad_request(description: &str) -> Answer {
    let body = json!({"ok": false, "error_code": 400, "description": description});
    (400, body.to_string(), None)
}

/// The bot as `getMe` returns it, with every field teloxide-core 0.13 `Me` requires.
fn me_json() -> Value {
    json!({
        "id": BOT_ID, "is_bot": true, "first_name": "HubBot", "username": BOT_USERNAME,
        "can_join_groups": true, "can_read_all_group_messages": false,
        "supports_inline_queries": false, "can_connect_to_business": false,
        "has_main_web_app": false
    })
}

impl TgState {
    fn answer(&self, token: &str, method: &str, body: &Value) -> Answer {
        if token != self.token {
            return (401, UNAUTHORIZED_BODY.to_owned(), None);
        }
        match method.to_ascii_lowercase().as_str() {
            "sendmessage" => self.send_message(body),
            "answercallbackquery" | "setwebhook" | "deletewebhook" | "sendchataction" => {
                (200, TRUE_BODY.to_owned(), None)
            }
            "getme" => (200, json!({"ok": true, "result": me_json()}).to_string(), None),
            _ => (404, NOT_FOUND_BODY.to_owned(), None),
        }
    }

    fn send_message(&self, body: &Value) -> Answer {
        // chat_id may be an integer or a numeric string; "@channel" names are not supported.
        let chat_id = match body.get("chat_id") {
            Some(Value::Number(n)) => n.as_i64(),
            Some(Value::String(s)) => s.parse::<i64>().ok(),
            _ => None,
        };
        let Some(chat_id) = chat_id else {
            return bad_request("Bad Request: chat not found");
        };
        let text = body.get("text").and_then(Value::as_str).unwrap_or("");
        if text.is_empty() {
            return bad_request("Bad Request: message text is empty");
        }
        let failure = self.failures.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        match failure {
            Some(TgFailure::Flood(secs)) => {
                let body = format!(
                    r#"{{"ok":false,"error_code":429,"description":"Too Many Requests: retry after {secs}","parameters":{{"retry_after":{secs}}}}}"#
                );
                return (429, body, Some(secs));
            }
            Some(TgFailure::Blocked) => return (403, BLOCKED_BODY.to_owned(), None),
            None => {}
        }
        let message_id = self.message_id.fetch_add(1, Ordering::Relaxed) + 1;
        let chat = if chat_id < 0 {
            json!({"id": chat_id, "title": "Fake Group", "type": "supergroup"})
        } else {
            json!({"id": chat_id, "type": "private", "first_name": "Ada"})
        };
        let from = json!({"id": BOT_ID, "is_bot": true, "first_name": "HubBot", "username": BOT_USERNAME});
        let mut message = json!({
            "message_id": message_id, "from": from, "chat": chat,
            "date": unix_now(), "text": text
        });
        // Telegram echoes an inline keyboard back in the sent Message; other markups are not.
        if let Some(markup) = body.get("reply_markup").filter(|m| m.get("inline_keyboard").is_some()) {
            message["reply_markup"] = markup.clone();
        }
        (200, json!({"ok": true, "result": message}).to_string(), None)
    }
}

async fn call(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    bytes: web::Bytes,
    state: web::Data<TgState>,
) -> HttpResponse {
    let (token, method) = path.into_inner();
    let body = parse_body(&req, &bytes);
    let (status, resp, retry_after) = state.answer(&token, &method, &body);
    if status == 200 && method.eq_ignore_ascii_case("sendMessage") {
        let hook = state.on_send.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(hook) = hook {
            let chat = body.get("chat_id").map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned));
            hook(chat.as_deref().unwrap_or(""), &body);
        }
    }
    state.recorder.record_with(|| RecordedRequest::from_http(&req, body, status));
    let mut builder = HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::OK));
    builder.content_type("application/json");
    if let Some(secs) = retry_after {
        builder.insert_header(("Retry-After", secs.to_string()));
    }
    builder.body(resp)
}

/// Unknown paths get the Bot API's 404 (recorded, to spot a wrong base URL).
async fn unknown(req: HttpRequest, bytes: web::Bytes, state: web::Data<TgState>) -> HttpResponse {
    let body = parse_body(&req, &bytes);
    state.recorder.record_with(|| RecordedRequest::from_http(&req, body, 404));
    HttpResponse::NotFound().content_type("application/json").body(NOT_FOUND_BODY)
}

/// Last path segment of a recorded call, i.e. the Bot API method.
fn method_of(r: &RecordedRequest) -> &str {
    r.path.rsplit('/').next().unwrap_or("")
}

fn is_sent(r: &RecordedRequest) -> bool {
    r.status == 200 && method_of(r).eq_ignore_ascii_case("sendMessage")
}

/// A running fake Bot API; stopped by [`FakeTelegram::stop`] or on drop.
pub struct FakeTelegram {
    state: Arc<TgState>,
    server: RunningServer,
}

impl FakeTelegram {
    /// Starts the fake with one worker, accepting only `token` in `/bot<token>/...`.
    pub async fn start(token: &str) -> std::io::Result<FakeTelegram> {
        Self::start_with_workers(token, 1).await
    }

    /// Starts the fake with `workers` actix workers.
    pub async fn start_with_workers(token: &str, workers: usize) -> std::io::Result<FakeTelegram> {
        Self::start_at(loopback_any(), token, workers).await
    }

    /// Starts the fake on `bind` (a fixed address a deployment can be pointed at).
    pub async fn start_at(bind: SocketAddr, token: &str, workers: usize) -> std::io::Result<FakeTelegram> {
        let state = Arc::new(TgState {
            token: token.to_owned(),
            recorder: Recorder::new(),
            failures: Mutex::new(VecDeque::new()),
            message_id: AtomicI64::new(0),
            on_send: RwLock::new(None),
        });
        let shared = state.clone();
        let server = RunningServer::start("telegram", bind, workers, move |cfg| {
            cfg.app_data(web::Data::from(shared.clone()))
                .route("/bot{token}/{method}", web::route().to(call))
                .default_service(web::to(unknown));
        })
        .await?;
        Ok(FakeTelegram { state, server })
    }

    /// `http://127.0.0.1:PORT`, for `Bot::set_api_url` / `TELOXIDE_API_URL`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// Answers the next `n` `sendMessage` calls with HTTP 429 and `retry_after_secs`.
    pub fn flood_next(&self, n: usize, retry_after_secs: u32) {
        self.push_failures(n, TgFailure::Flood(retry_after_secs));
    }

    /// Answers the next `n` `sendMessage` calls with 403 "bot was blocked by the user".
    pub fn block_next(&self, n: usize) {
        self.push_failures(n, TgFailure::Blocked);
    }

    fn push_failures(&self, n: usize, failure: TgFailure) {
        let mut queue = self.state.failures.lock().unwrap_or_else(|p| p.into_inner());
        queue.extend(std::iter::repeat_n(failure, n));
    }

    /// Installs (or removes) the hook called on every successful `sendMessage` with the chat id
    /// (as text) and the body.
    pub fn set_on_send(&self, hook: Option<OnSend>) {
        *self.state.on_send.write().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Stores requests (`true`, default) or only counts them (load runs).
    pub fn set_recording(&self, on: bool) {
        self.state.recorder.set_enabled(on);
    }

    /// Successful `sendMessage` calls.
    pub fn sent(&self) -> Vec<RecordedRequest> {
        self.state.recorder.filtered(is_sent)
    }

    /// Waits until `n` successful `sendMessage` calls are stored or `timeout` passes.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.state.recorder.wait_for_matching(n, timeout, is_sent).await
    }

    /// Every stored call of `method` (case-insensitive), whatever its outcome.
    pub fn calls(&self, method: &str) -> Vec<RecordedRequest> {
        self.state.recorder.filtered(|r| method_of(r).eq_ignore_ascii_case(method))
    }

    /// Every stored request.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.all()
    }

    /// The underlying request log.
    pub fn recorder(&self) -> &Recorder {
        &self.state.recorder
    }

    /// Stops the server, letting in-flight requests finish.
    pub async fn stop(&self) {
        self.server.stop().await;
    }
}
