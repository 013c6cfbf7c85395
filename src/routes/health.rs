//! Liveness, readiness, metrics and a small index.

use crate::app::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// What this is.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "name": "switchboard",
        "version": env!("CARGO_PKG_VERSION"),
        "webhooks": ["/webhooks/whatsapp", "/webhooks/telegram/{channel}"],
        "pages": ["/console", "/widget"],
        "websockets": ["/ws/console", "/ws/widget"],
        "api": "/api/openapi.json",
        "health": ["/healthz", "/readyz", "/metrics"]
    }))
}

/// The process is alive.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

/// The hub can take traffic (memory backend: as soon as it is up).
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let live = state.hub.metrics().live_conversations.load(Ordering::Relaxed);
    let backend = state.probe.name();
    match state.probe.check().await {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready", "backend": backend, "live_conversations": live })),
        // Load balancers take the node out until the backend is back; webhooks meanwhile answer
        // 503 with Retry-After, so providers retry.
        Err(why) => HttpResponse::ServiceUnavailable()
            .insert_header(("Retry-After", "1"))
            .json(json!({ "status": "unavailable", "backend": backend, "error": why })),
    }
}

/// Prometheus text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut out = String::new();
    let hub = state.hub.metrics();
    for (name, value) in hub.counters() {
        let _ = writeln!(out, "# TYPE switchboard_{name}_total counter\nswitchboard_{name}_total {value}");
    }
    let live = hub.live_conversations.load(Ordering::Relaxed);
    let _ = writeln!(out, "# TYPE switchboard_live_conversations gauge\nswitchboard_live_conversations {live}");
    let _ = writeln!(out, "# TYPE switchboard_webhooks_total counter");
    for (channel, outcome, n) in state.webhooks.rows() {
        let _ = writeln!(out, "switchboard_webhooks_total{{channel=\"{channel}\",outcome=\"{outcome}\"}} {n}");
    }
    let unknown = state.webhooks.unknown_numbers.load(Ordering::Relaxed);
    let _ = writeln!(
        out,
        "# TYPE switchboard_webhook_unknown_numbers_total counter\nswitchboard_webhook_unknown_numbers_total {unknown}"
    );
    let _ = writeln!(out, "# TYPE switchboard_tool_calls_total counter");
    for (tool, result, n) in state.tools.call_counts() {
        let _ = writeln!(out, "switchboard_tool_calls_total{{tool=\"{tool}\",result=\"{result}\"}} {n}");
    }
    let consoles = state.console.open_sessions();
    let _ = writeln!(out, "# TYPE switchboard_console_sessions gauge\nswitchboard_console_sessions {consoles}");
    let sockets: usize = state.channels.webchat.values().map(|w| w.desk.open_sockets()).sum();
    let _ = writeln!(out, "# TYPE switchboard_webchat_sockets gauge\nswitchboard_webchat_sockets {sockets}");
    if let Some((moved, entries)) = state.probe.dead_letters().await {
        let _ =
            writeln!(out, "# TYPE switchboard_dead_lettered_total counter\nswitchboard_dead_lettered_total {moved}");
        // Left out, not reported as 0, while Redis does not answer.
        if let Some(entries) = entries {
            let _ = writeln!(out, "# TYPE switchboard_dlq_entries gauge\nswitchboard_dlq_entries {entries}");
        }
    }
    if let Some(owned) = state.probe.partitions_owned() {
        let _ = writeln!(out, "# TYPE switchboard_partitions_owned gauge\nswitchboard_partitions_owned {owned}");
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(out)
}
