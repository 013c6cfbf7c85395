//! Liveness, readiness, metrics and a small index.

use crate::app::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;
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
            .insert_header(crate::http_error::retry_after())
            .json(json!({ "status": "unavailable", "backend": backend, "error": why })),
    }
}

/// Prometheus (OpenMetrics) text exposition.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let body = crate::metrics::render(&state).await;
    HttpResponse::Ok().content_type(crate::metrics::CONTENT_TYPE).body(body)
}
