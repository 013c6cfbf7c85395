//! `FakeGraph`: a fake WhatsApp Cloud (Graph) API send endpoint.
//!
//! Serves `POST /{version}/{phone_number_id}/messages` with the real response and error shapes
//! (PROTOCOLS.md 1.4-1.5, `wa_out.json`): 200 with a fresh `wamid.FAKE-<n>`, `{"success":true}` for
//! read receipts, 401/code 190 on a bad token, and programmable throttling/server/permanent
//! failures. Built to take load-generator traffic: recording can be switched off and an
//! `on_send` hook sees every accepted send instead.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::Value;

use std::net::SocketAddr;

use super::{RecordedRequest, Recorder, RunningServer, loopback_any, parse_body};

/// Process-wide counter so wamids stay unique across several fakes in one test binary.
static WAMID_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Hook called for every accepted (200) send with the recipient (`to`/`recipient`) and the body.
pub type OnSend = Arc<dyn Fn(&str, &Value) + Send + Sync>;

/// A failure the fake can be told to answer instead of a 200.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 400, code 130429: throughput limit of the business number.
    Throughput,
    /// HTTP 400, code 131056: (business, consumer) pair rate limit.
    PairRate,
    /// HTTP 500, code 131000: unknown server error.
    ServerError,
    /// HTTP 400, code 131026: message undeliverable (permanent).
    Permanent,
}

impl Failure {
    /// HTTP status and exact Graph error body for this failure.
    pub fn response(self) -> (u16, &'static str) {
        match self {
            // The two rate-limit bodies are byte-for-byte those of wa_out.json.
            Failure::Throughput => (
                400,
                r#"{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because there were too many messages sent from this phone number in a short period of time"},"fbtrace_id":"AFakeTrace2"}}"#,
            ),
            Failure::PairRate => (
                400,
                r#"{"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."},"fbtrace_id":"AFakeTrace1"}}"#,
            ),
            Failure::ServerError => (
                500,
                r#"{"error":{"message":"(#131000) Something went wrong","type":"OAuthException","code":131000,"error_data":{"messaging_product":"whatsapp","details":"Something went wrong"},"fbtrace_id":"AFakeTrace3"}}"#,
            ),
            Failure::Permanent => (
                400,
                r#"{"error":{"message":"(#131026) Message undeliverable","type":"OAuthException","code":131026,"error_data":{"messaging_product":"whatsapp","details":"Message undeliverable"},"fbtrace_id":"AFakeTrace4"}}"#,
            ),
        }
    }
}

/// Body of the 401 for a missing or wrong access token (code 190).
pub const UNAUTHORIZED_BODY: &str = r#"{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"AFakeTrace0"}}"#;

/// Body of the 400 for a send without `messaging_product`/`to` (code 100).
pub const INVALID_PARAMETER_BODY: &str = r#"{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100,"error_data":{"messaging_product":"whatsapp","details":"Invalid parameter"},"fbtrace_id":"AFakeTrace5"}}"#;

/// True for a mark-as-read body (`{"messaging_product":"whatsapp","status":"read",...}`).
pub fn is_read_receipt(body: &Value) -> bool {
    body.get("status").and_then(Value::as_str) == Some("read")
}

/// True for a recorded request that the fake accepted as a message send (not a read receipt).
fn is_accepted_send(r: &RecordedRequest) -> bool {
    r.status == 200 && r.path.ends_with("/messages") && !is_read_receipt(&r.body)
}

struct GraphState {
    bearer: String,
    recorder: Recorder,
    failures: Mutex<VecDeque<Failure>>,
    delay_micros: AtomicU64,
    sent: AtomicU64,
    on_send: RwLock<Option<OnSend>>,
}

impl GraphState {
    /// Decides the answer; for an accepted send also returns the recipient for the hook.
    fn answer(&self, req: &HttpRequest, body: &Value) -> (u16, String, Option<String>) {
        let auth = req.headers().get("authorization").map(|v| v.as_bytes());
        if auth != Some(self.bearer.as_bytes()) {
            return (401, UNAUTHORIZED_BODY.to_owned(), None);
        }
        if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
            return (400, INVALID_PARAMETER_BODY.to_owned(), None);
        }
        // Read receipts never consume programmed failures: tests program failures for replies.
        if is_read_receipt(body) {
            return (200, r#"{"success":true}"#.to_owned(), None);
        }
        // BSUID sends use "recipient" instead of "to" (PROTOCOLS.md 1.1).
        let Some(to) = ["to", "recipient"].iter().find_map(|k| body.get(*k).and_then(Value::as_str)) else {
            return (400, INVALID_PARAMETER_BODY.to_owned(), None);
        };
        let failure = self.failures.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
        if let Some(failure) = failure {
            let (status, body) = failure.response();
            return (status, body.to_owned(), None);
        }
        let n = WAMID_COUNTER.fetch_add(1, Ordering::Relaxed) + 1;
        self.sent.fetch_add(1, Ordering::Relaxed);
        let to_json = Value::from(to).to_string();
        let resp = format!(
            r#"{{"messaging_product":"whatsapp","contacts":[{{"input":{to_json},"wa_id":{to_json}}}],"messages":[{{"id":"wamid.FAKE-{n}"}}]}}"#
        );
        (200, resp, Some(to.to_owned()))
    }
}

async fn messages(req: HttpRequest, bytes: web::Bytes, state: web::Data<GraphState>) -> HttpResponse {
    let at = Instant::now();
    let body = parse_body(&req, &bytes);
    let (status, resp, to) = state.answer(&req, &body);
    let delay = Duration::from_micros(state.delay_micros.load(Ordering::Relaxed));
    if !delay.is_zero() {
        actix_web::rt::time::sleep(delay).await;
    }
    if let Some(to) = to {
        let hook = state.on_send.read().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(hook) = hook {
            hook(&to, &body);
        }
    }
    // Recorded after the delay so "sent" means the client has (about) got its answer.
    state.recorder.record_with(|| {
        let mut r = RecordedRequest::from_http(&req, body, status);
        r.at = at;
        r
    });
    json_response(status, resp)
}

/// Anything else is recorded (to spot wrong URLs) and answered like Graph's unknown path.
async fn unknown(req: HttpRequest, bytes: web::Bytes, state: web::Data<GraphState>) -> HttpResponse {
    let body = parse_body(&req, &bytes);
    state.recorder.record_with(|| RecordedRequest::from_http(&req, body, 404));
    json_response(404, INVALID_PARAMETER_BODY.to_owned())
}

fn json_response(status: u16, body: String) -> HttpResponse {
    let status =
        actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR);
    HttpResponse::build(status).content_type("application/json").body(body)
}

/// A running fake Graph API; stopped by [`FakeGraph::stop`] or on drop.
pub struct FakeGraph {
    state: Arc<GraphState>,
    server: RunningServer,
}

impl FakeGraph {
    /// Starts the fake with one worker, accepting `Authorization: Bearer <access_token>`.
    pub async fn start(access_token: &str) -> std::io::Result<FakeGraph> {
        Self::start_with_workers(access_token, 1).await
    }

    /// Starts the fake with `workers` actix workers (more for load runs).
    pub async fn start_with_workers(access_token: &str, workers: usize) -> std::io::Result<FakeGraph> {
        Self::start_at(loopback_any(), access_token, workers).await
    }

    /// Starts the fake on `bind` (a fixed address a deployment can be pointed at).
    pub async fn start_at(bind: SocketAddr, access_token: &str, workers: usize) -> std::io::Result<FakeGraph> {
        let state = Arc::new(GraphState {
            bearer: format!("Bearer {access_token}"),
            recorder: Recorder::new(),
            failures: Mutex::new(VecDeque::new()),
            delay_micros: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            on_send: RwLock::new(None),
        });
        let shared = state.clone();
        let server = RunningServer::start("graph", bind, workers, move |cfg| {
            cfg.app_data(web::Data::from(shared.clone()))
                .route("/{version}/{phone_number_id}/messages", web::post().to(messages))
                .default_service(web::to(unknown));
        })
        .await?;
        Ok(FakeGraph { state, server })
    }

    /// `http://127.0.0.1:PORT`, to be followed by `/v21.0/<phone_number_id>/messages`.
    pub fn base_url(&self) -> String {
        self.server.url()
    }

    /// Answers the next `n` sends with `failure` (queued after already programmed failures).
    pub fn fail_next(&self, n: usize, failure: Failure) {
        let mut queue = self.state.failures.lock().unwrap_or_else(|p| p.into_inner());
        queue.extend(std::iter::repeat_n(failure, n));
    }

    /// Drops programmed failures not used yet.
    pub fn clear_failures(&self) {
        self.state.failures.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Delays every answer by `delay` (zero to answer at once).
    pub fn set_delay(&self, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.state.delay_micros.store(micros, Ordering::Relaxed);
    }

    /// Stores requests (`true`, default) or only counts them (load runs).
    pub fn set_recording(&self, on: bool) {
        self.state.recorder.set_enabled(on);
    }

    /// Installs (or removes) the hook called on every accepted send.
    pub fn set_on_send(&self, hook: Option<OnSend>) {
        *self.state.on_send.write().unwrap_or_else(|p| p.into_inner()) = hook;
    }

    /// Accepted (200) message sends, read receipts excluded.
    pub fn sent(&self) -> Vec<RecordedRequest> {
        self.state.recorder.filtered(is_accepted_send)
    }

    /// Waits until `n` accepted sends are stored or `timeout` passes; returns them.
    pub async fn wait_for_sent(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.state.recorder.wait_for_matching(n, timeout, is_accepted_send).await
    }

    /// Accepted read receipts.
    pub fn read_receipts(&self) -> Vec<RecordedRequest> {
        self.state.recorder.filtered(|r| r.status == 200 && is_read_receipt(&r.body))
    }

    /// Every stored request, failed ones included (see [`RecordedRequest::status`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorder.all()
    }

    /// Accepted sends since start, counted even when recording is off.
    pub fn sent_count(&self) -> u64 {
        self.state.sent.load(Ordering::Relaxed)
    }

    /// The underlying request log (for `clear`, `wait_for`, `seen`).
    pub fn recorder(&self) -> &Recorder {
        &self.state.recorder
    }

    /// Stops the server, letting in-flight requests finish.
    pub async fn stop(&self) {
        self.server.stop().await;
    }
}
