//! In-process fakes of the external HTTP APIs the hub talks to.
//!
//! Every fake is a small actix-web server bound to `127.0.0.1:0` and records what it receives so
//! tests can assert on it. The shared pieces live here:
//!
//! * [`RecordedRequest`] — one request as a fake saw it (path, headers, JSON body, status).
//! * [`Recorder`] — a cheap, cloneable request log with async `wait_for`.
//! * `RunningServer` (crate-private) — runs an actix-web server on its own thread so a fake works
//!   the same under `#[actix_web::test]` and under a plain `#[tokio::main]` runtime.
//!
//! Modules: [`whatsapp`] (Graph API), [`telegram`] (Bot API), [`openai`] (chat completions).

pub mod openai;
pub mod telegram;
pub mod whatsapp;

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpRequest, HttpServer, web};
use tokio::sync::Notify;

/// One HTTP request received by a fake, with the status the fake answered.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    /// Request path, e.g. `/v21.0/200000000000002/messages`.
    pub path: String,
    /// All headers, names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON; a non-JSON body is kept as a JSON string of its (lossy) text,
    /// an empty body is `Null`.
    pub body: serde_json::Value,
    /// When the fake received it.
    pub at: Instant,
    /// HTTP status the fake answered with.
    pub status: u16,
}

impl RecordedRequest {
    /// Builds a record from an actix request and its raw body.
    pub(crate) fn from_http(req: &HttpRequest, body: serde_json::Value, status: u16) -> Self {
        let headers = req
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_ascii_lowercase(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
            .collect();
        RecordedRequest { path: req.path().to_owned(), headers, body, at: Instant::now(), status }
    }

    /// First value of a header, looked up case-insensitively.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    /// True when the fake answered 2xx.
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Parses a request body the way every fake records it (see [`RecordedRequest::body`]).
pub(crate) fn parse_body(req: &HttpRequest, bytes: &[u8]) -> serde_json::Value {
    if bytes.is_empty() {
        return serde_json::Value::Null;
    }
    let content_type = req.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if let Some(fields) = parse_multipart(content_type, bytes) {
        return fields;
    }
    serde_json::from_slice(bytes)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into_owned()))
}

/// `multipart/form-data` as a JSON object of field name to (lossy) text value. teloxide sends
/// `setWebhook` (and uploads) this way; Telegram itself reads every field as a string.
fn parse_multipart(content_type: &str, bytes: &[u8]) -> Option<serde_json::Value> {
    let rest = content_type.strip_prefix("multipart/form-data")?;
    let boundary = rest.split(';').find_map(|p| p.trim().strip_prefix("boundary="))?.trim_matches('"');
    let text = String::from_utf8_lossy(bytes);
    let mut fields = serde_json::Map::new();
    for part in text.split(&format!("--{boundary}")) {
        let Some((head, value)) = part.split_once("\r\n\r\n") else {
            continue;
        };
        let name = head
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name="))
            .and_then(|n| n.trim_start_matches('"').split(['"', '\r', '\n']).next());
        if let Some(name) = name {
            let value = value.strip_suffix("\r\n").unwrap_or(value);
            fields.insert(name.to_owned(), value.into());
        }
    }
    Some(serde_json::Value::Object(fields))
}

/// A free port on loopback: where every fake listens unless told otherwise.
pub(crate) fn loopback_any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

/// Current Unix time in seconds (what Telegram `date` and OpenAI `created` carry).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

#[derive(Default)]
struct RecorderInner {
    items: Mutex<Vec<RecordedRequest>>,
    /// Counts every `record` call, stored or not, so a load run can skip storage.
    seen: AtomicU64,
    disabled: AtomicBool,
    notify: Notify,
}

/// Shared, cloneable log of requests; clones see the same log.
#[derive(Clone, Default)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

impl Recorder {
    /// An empty, enabled recorder.
    pub fn new() -> Self {
        Self::default()
    }

    fn items(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A panic while holding the lock cannot leave the Vec half-written, so poison is harmless.
        self.inner.items.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    /// Turns storage on or off; counting and waking waiters go on either way.
    pub fn set_enabled(&self, enabled: bool) {
        self.inner.disabled.store(!enabled, Ordering::Relaxed);
    }

    /// Whether requests are currently stored.
    pub fn is_enabled(&self) -> bool {
        !self.inner.disabled.load(Ordering::Relaxed)
    }

    /// Appends a request (if enabled) and wakes waiters.
    pub fn record(&self, req: RecordedRequest) {
        self.record_with(|| req);
    }

    /// Like [`Recorder::record`] but builds the request only when storage is on, so a load run
    /// with recording off skips copying headers and bodies.
    pub fn record_with(&self, make: impl FnOnce() -> RecordedRequest) {
        self.inner.seen.fetch_add(1, Ordering::Relaxed);
        if self.is_enabled() {
            let req = make();
            self.items().push(req);
        }
        self.inner.notify.notify_waiters();
    }

    /// Copies of every stored request, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.items().clone()
    }

    /// Stored requests matching `pred`, oldest first.
    pub fn filtered(&self, pred: impl Fn(&RecordedRequest) -> bool) -> Vec<RecordedRequest> {
        self.items().iter().filter(|r| pred(r)).cloned().collect()
    }

    /// Number of stored requests.
    pub fn count(&self) -> usize {
        self.items().len()
    }

    /// Number of `record` calls since creation, including unstored ones; `clear` keeps it.
    pub fn seen(&self) -> u64 {
        self.inner.seen.load(Ordering::Relaxed)
    }

    /// Forgets every stored request.
    pub fn clear(&self) {
        self.items().clear();
    }

    /// Waits until at least `n` requests are stored or `timeout` passes, then returns all stored
    /// requests (fewer than `n` on timeout: the caller asserts).
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.wait_for_matching(n, timeout, |_| true).await
    }

    /// Like [`Recorder::wait_for`] but counts and returns only requests matching `pred`.
    pub async fn wait_for_matching(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&RecordedRequest) -> bool,
    ) -> Vec<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before checking, so a record() between the check and the await
            // still wakes us (Notify::notify_waiters only wakes registered waiters).
            let mut notified = std::pin::pin!(self.inner.notify.notified());
            notified.as_mut().enable();
            if self.items().iter().filter(|r| pred(r)).count() >= n {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                break;
            }
        }
        self.filtered(pred)
    }
}

/// An actix-web server running on a dedicated thread with its own actix `System`.
///
/// Why a thread rather than spawning on the caller's runtime: a test's runtime is torn down
/// right after the test body, so a server task spawned there never processes the stop command
/// sent from `Drop`, leaking its accept and worker threads. On its own thread the server stops
/// cleanly whatever runtime (actix or plain tokio) the caller uses.
pub(crate) struct RunningServer {
    addr: SocketAddr,
    handle: ServerHandle,
}

impl RunningServer {
    /// Binds `bind` (`127.0.0.1:0` for a free loopback port) and serves the routes added by
    /// `configure` with `workers` workers.
    pub(crate) async fn start<C>(name: &str, bind: SocketAddr, workers: usize, configure: C) -> std::io::Result<Self>
    where
        C: Fn(&mut web::ServiceConfig) + Send + Clone + 'static,
    {
        let listener = TcpListener::bind(bind)?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::Builder::new().name(format!("fake-{name}")).spawn(move || {
            let system = actix_web::rt::System::new();
            system.block_on(async move {
                let server = HttpServer::new(move || App::new().configure(configure.clone()))
                    .workers(workers.max(1))
                    .disable_signals()
                    .shutdown_timeout(1)
                    .listen(listener);
                match server {
                    Ok(server) => {
                        let server = server.run();
                        let _ = tx.send(Ok(server.handle()));
                        let _ = server.await;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
                }
            });
        })?;
        let handle = rx.await.map_err(|_| std::io::Error::other("fake server thread died during start-up"))??;
        Ok(RunningServer { addr, handle })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, lets in-flight requests finish (at most 1 s), and waits for the stop.
    pub(crate) async fn stop(&self) {
        self.handle.stop(true).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        // ServerHandle::stop sends the command eagerly; the returned future only waits for the
        // acknowledgement, which Drop cannot await. A second stop after `stop()` is ignored.
        let ack = self.handle.stop(false);
        drop(ack);
    }
}
