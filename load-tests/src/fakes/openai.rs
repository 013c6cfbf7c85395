//! `FakeOpenAi`: a fake OpenAI-compatible `POST /v1/chat/completions`.
//!
//! Answers in the shapes async-openai 0.43 parses (PROTOCOLS.md 4.3-4.5, `oai.json`): a text
//! completion, a single tool call, or an error, chosen by a [`Mode`] that tests can change while
//! the fake runs. The default `Echo` mode repeats the customer messages a turn answered, so a test
//! can tell which messages were batched into which LLM turn. `"stream":true` requests get the same
//! answer as SSE chunks (PROTOCOLS.md 4.4).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, http::StatusCode, web};
use serde_json::{Value, json};

use std::net::SocketAddr;

use super::{RecordedRequest, Recorder, RunningServer, loopback_any, parse_body, unix_now};

/// How the fake answers completions.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Content `"echo: "` + the user messages after the last assistant message, joined by `\n`.
    Echo {
        /// Time to wait before answering.
        delay: Duration,
    },
    /// Always the same text.
    Fixed {
        /// The assistant content.
        text: String,
        /// Time to wait before answering.
        delay: Duration,
    },
    /// One tool call, `finish_reason:"tool_calls"`, content null.
    ToolCall {
        /// Function name.
        name: String,
        /// Arguments; sent as their JSON text (a `Value::String` is sent verbatim, so tests can
        /// send malformed arguments).
        arguments: Value,
        /// Time to wait before answering.
        delay: Duration,
    },
    /// HTTP 503 "The server is overloaded" (async-openai retries this 3 times).
    Down,
    /// HTTP 401 `invalid_api_key`.
    Unauthorized,
}

impl Default for Mode {
    fn default() -> Self {
        Mode::Echo { delay: Duration::ZERO }
    }
}

fn error_body(message: &str, kind: &str, code: Option<&str>) -> String {
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}}).to_string()
}

/// What a successful completion carries.
enum Reply {
    Text(String),
    Tool { name: String, arguments: String },
}

struct OaiState {
    recorder: Recorder,
    mode: Mutex<Mode>,
    counter: AtomicU64,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// Counts a request as in flight until dropped (also when the client disconnects mid-delay).
struct InFlight<'a>(&'a OaiState);

impl<'a> InFlight<'a> {
    fn enter(state: &'a OaiState) -> Self {
        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        state.max_in_flight.fetch_max(now, Ordering::SeqCst);
        InFlight(state)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Text of a message `content`: a string, or the `text` of its `{type:"text"}` parts.
fn content_text(content: &Value) -> String {
    match content {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

/// The user messages after the last assistant message, joined with `\n`.
fn echo_text(messages: &[Value]) -> String {
    let role = |m: &Value| m.get("role").and_then(Value::as_str).unwrap_or("").to_owned();
    let start = messages.iter().rposition(|m| role(m) == "assistant").map_or(0, |i| i + 1);
    let users: Vec<String> = messages[start..]
        .iter()
        .filter(|m| role(m) == "user")
        .map(|m| content_text(m.get("content").unwrap_or(&Value::Null)))
        .collect();
    format!("echo: {}", users.join("\n"))
}

/// Rough token count (words), only so `usage` has plausible, deterministic numbers.
fn words(text: &str) -> u64 {
    text.split_whitespace().count().max(1) as u64
}

impl OaiState {
    /// Decides status and reply (or error body) and the delay, without waiting.
    fn decide(&self, req: &HttpRequest, body: &Value) -> Result<(Reply, Duration), (u16, String)> {
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|key| !key.trim().is_empty());
        if !bearer {
            let msg = "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).";
            return Err((401, error_body(msg, "invalid_request_error", None)));
        }
        let mode = self.mode.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let (reply, delay) = match mode {
            Mode::Down => {
                let body = error_body("The server is overloaded", "server_error", None);
                return Err((503, body));
            }
            Mode::Unauthorized => {
                let msg = "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.";
                let body = error_body(msg, "invalid_request_error", Some("invalid_api_key"));
                return Err((401, body));
            }
            Mode::Echo { delay } => (None, delay),
            Mode::Fixed { text, delay } => (Some(Reply::Text(text)), delay),
            Mode::ToolCall { name, arguments, delay } => {
                let arguments = match arguments {
                    Value::String(s) => s,
                    other => other.to_string(),
                };
                (Some(Reply::Tool { name, arguments }), delay)
            }
        };
        let messages = match body.get("messages").and_then(Value::as_array) {
            Some(m) if body.get("model").is_some_and(Value::is_string) => m,
            _ => {
                let msg = "'model' and 'messages' are required properties";
                return Err((400, error_body(msg, "invalid_request_error", None)));
            }
        };
        let reply = reply.unwrap_or_else(|| Reply::Text(echo_text(messages)));
        Ok((reply, delay))
    }

    /// Completion JSON, or SSE text when the request asked for a stream.
    fn render(&self, body: &Value, reply: &Reply) -> (String, &'static str) {
        let n = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("chatcmpl-fake-{n}");
        let model = body.get("model").and_then(Value::as_str).unwrap_or("fake-model");
        let created = unix_now();
        let prompt: u64 = body
            .get("messages")
            .and_then(Value::as_array)
            .map_or(1, |ms| ms.iter().map(|m| words(&content_text(&m["content"]))).sum());
        let (message, finish, completion) = match reply {
            Reply::Text(text) => (json!({"role": "assistant", "content": text}), "stop", words(text)),
            Reply::Tool { name, arguments } => {
                let call = json!({"id": format!("call_{n}"), "type": "function",
                    "function": {"name": name, "arguments": arguments}});
                let msg = json!({"role": "assistant", "content": null, "tool_calls": [call]});
                (msg, "tool_calls", words(arguments))
            }
        };
        let usage = json!({"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion});
        if body.get("stream").and_then(Value::as_bool) != Some(true) {
            let resp = json!({"id": id, "object": "chat.completion", "created": created,
                "model": model, "choices": [{"index": 0, "message": message,
                "finish_reason": finish}], "usage": usage});
            return (resp.to_string(), "application/json");
        }
        let chunk = |choices: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": created,
                "model": model, "choices": choices})
        };
        let mut chunks = match reply {
            Reply::Text(text) => vec![
                json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
                json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}]),
            ],
            Reply::Tool { name, arguments } => vec![
                json!([{"index": 0, "delta": {"role": "assistant", "content": null, "tool_calls": [
                    {"index": 0, "id": format!("call_{n}"), "type": "function",
                     "function": {"name": name, "arguments": ""}}]}, "finish_reason": null}]),
                json!([{"index": 0, "delta": {"tool_calls": [
                    {"index": 0, "function": {"arguments": arguments}}]}, "finish_reason": null}]),
            ],
        }
        .into_iter()
        .map(chunk)
        .collect::<Vec<_>>();
        chunks.push(chunk(json!([{"index": 0, "delta": {}, "finish_reason": finish}])));
        if body.pointer("/stream_options/include_usage").and_then(Value::as_bool) == Some(true) {
            let mut last = chunk(json!([]));
            last["usage"] = usage;
            chunks.push(last);
        }
        let mut sse: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
        sse.push_str("data: [DONE]\n\n");
        (sse, "text/event-stream")
    }
}

async fn completions(req: HttpRequest, bytes: web::Bytes, state: web::Data<OaiState>) -> HttpResponse {
    let _in_flight = InFlight::enter(&state);
    let body = parse_body(&req, &bytes);
    let decision = state.decide(&req, &body);
    let status = decision.as_ref().map_or_else(|(s, _)| *s, |_| 200);
    // Recorded on arrival so a test can see a request while its answer is still delayed; the
    // copy of the body only when recording is on (a load run turns it off).
    state.recorder.record_with(|| RecordedRequest::from_http(&req, body.clone(), status));
    match decision {
        Ok((reply, delay)) => {
            if !delay.is_zero() {
                actix_web::rt::time::sleep(delay).await;
            }
            let (text, content_type) = state.render(&body, &reply);
            HttpResponse::Ok().content_type(content_type).body(text)
        }
        Err((status, text)) => HttpResponse::build(StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST))
            .content_type("application/json")
            .body(text),
    }
}

async fn unknown(req: HttpRequest, bytes: web::Bytes, state: web::Data<OaiState>) -> HttpResponse {
    let body = parse_body(&req, &bytes);
    let msg = format!("Invalid URL ({} {})", req.method(), req.path());
    state.recorder.record(RecordedRequest::from_http(&req, body, 404));
    HttpResponse::NotFound().content_type("application/json").body(error_body(&msg, "invalid_request_error", None))
}

/// A running fake OpenAI endpoint; stopped by [`FakeOpenAi::stop`] or on drop.
pub struct FakeOpenAi {
    state: Arc<OaiState>,
    server: RunningServer,
}

impl FakeOpenAi {
    /// Starts the fake with one worker in `Mode::Echo` without delay.
    pub async fn start() -> std::io::Result<FakeOpenAi> {
        Self::start_with_workers(1).await
    }

    /// Starts the fake with `workers` actix workers.
    pub async fn start_with_workers(workers: usize) -> std::io::Result<FakeOpenAi> {
        Self::start_at(loopback_any(), workers).await
    }

    /// Starts the fake on `bind` (a fixed address a deployment can be pointed at).
    pub async fn start_at(bind: SocketAddr, workers: usize) -> std::io::Result<FakeOpenAi> {
        let state = Arc::new(OaiState {
            recorder: Recorder::new(),
            mode: Mutex::new(Mode::default()),
            counter: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let shared = state.clone();
        let server = RunningServer::start("openai", bind, workers, move |cfg| {
            cfg.app_data(web::Data::from(shared.clone()))
                .route("/v1/chat/completions", web::post().to(completions))
                .default_service(web::to(unknown));
        })
        .await?;
        Ok(FakeOpenAi { state, server })
    }

    /// `http://127.0.0.1:PORT/v1`, what `OpenAIConfig::with_api_base` wants.
    pub fn base_url(&self) -> String {
        format!("{}/v1", self.server.url())
    }

    /// Changes how the following requests are answered.
    pub fn set_mode(&self, mode: Mode) {
        *self.state.mode.lock().unwrap_or_else(|p| p.into_inner()) = mode;
    }

    /// The current mode.
    pub fn mode(&self) -> Mode {
        self.state.mode.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Every stored request (bodies as sent), whatever was answered.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.all()
    }

    /// Waits until `n` requests are stored or `timeout` passes; returns them all.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.state.recorder.wait_for(n, timeout).await
    }

    /// Requests being answered right now (useful with a delay).
    pub fn in_flight(&self) -> usize {
        self.state.in_flight.load(Ordering::SeqCst)
    }

    /// Highest number of requests in flight at once since start.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
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
