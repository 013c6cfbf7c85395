//! `GET /webhooks/whatsapp` (subscription handshake) and `POST /webhooks/whatsapp`
//! (signed notifications). A POST is answered 200 only once every item is on the bus.

use super::body::{read_body, require_utf8};
use crate::app::AppState;
use crate::http_error::ApiError;
use crate::staff::StaffOutcome;
use crate::telemetry::{WebhookAccepted, rejecter};
use crate::trace::TraceId;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use std::sync::atomic::Ordering;
use switchboard_actors::domain::{ConversationId, TenantId};
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::hub::{IngestError, Ingested};
use switchboard_adapters::phone::contact_key;
use switchboard_adapters::whatsapp::inbound::WebhookKind;
use switchboard_adapters::whatsapp::{WhatsAppError, parse_webhook, verify_handshake, verify_signature};

const CHANNEL: &str = "whatsapp";

/// Query of the subscription handshake.
#[derive(Deserialize)]
pub struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Echoes `hub.challenge` when `hub.verify_token` matches a configured number's token.
pub async fn handshake(state: web::Data<AppState>, query: web::Query<Handshake>) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    tracing::info!(mode = q.mode.as_deref().unwrap_or(""), "whatsapp webhook handshake");
    if q.mode.as_deref() != Some("subscribe") || q.challenge.is_none() || q.verify_token.is_none() {
        return Err(ApiError::BadRequest("expected hub.mode=subscribe, hub.challenge and hub.verify_token".into()));
    }
    let challenge = state
        .channels
        .whatsapp
        .values()
        .find_map(|e| {
            verify_handshake(&e.settings.verify_token, q.verify_token.as_deref(), q.challenge.as_deref()).ok()
        })
        .ok_or_else(|| ApiError::Forbidden("verify token mismatch".into()))?;
    Ok(HttpResponse::Ok().content_type("text/plain").body(challenge))
}

/// Receives notifications: verify, parse, dedup, publish, then 200.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
    trace: TraceId,
) -> Result<HttpResponse, ApiError> {
    let reject = rejecter(&state.webhooks, CHANNEL, &trace.0);
    if state.channels.whatsapp.is_empty() {
        return Err(reject("not_configured", ApiError::NotFound("no whatsapp channel is configured".into())));
    }
    let body = read_body(&req, payload, state.body_limit).await.map_err(|e| reject("too_large", e))?;
    let signature = req.headers().get("x-hub-signature-256").map(|v| v.as_bytes());
    // Numbers may belong to different Meta apps: find which app secrets signed this body. Each
    // item is then accepted only for a number whose own app signed it (below), so one tenant's
    // app cannot post messages into another tenant's number.
    let mut signed_by: Vec<&str> = Vec::new();
    for e in state.channels.whatsapp.values() {
        let secret = e.settings.app_secret.as_str();
        if !signed_by.contains(&secret) && verify_signature(secret, signature, &body).is_ok() {
            signed_by.push(secret);
        }
    }
    if signed_by.is_empty() {
        let (reason, err) = match signature {
            None => ("missing_signature", WhatsAppError::MissingSignature),
            Some(_) => ("bad_signature", WhatsAppError::BadSignature),
        };
        return Err(reject(reason, ApiError::Unauthorized(err.to_string())));
    }
    require_utf8(&body).map_err(|e| reject("invalid_utf8", e))?;
    let resolve = |pnid: &str| state.channels.whatsapp.get(pnid).map(|e| (e.tenant.clone(), e.channel.clone()));
    let parsed =
        parse_webhook(&body, &resolve).map_err(|e| reject("malformed", ApiError::BadRequest(e.to_string())))?;
    let foreign = parsed.items.iter().any(|item| {
        let endpoint = state.channels.whatsapp.values().find(|e| e.tenant == item.tenant && e.channel == item.channel);
        endpoint.is_none_or(|e| !signed_by.contains(&e.settings.app_secret.as_str()))
    });
    if foreign {
        return Err(reject(
            "foreign_signature",
            ApiError::Unauthorized("the body is not signed by the app of the number it names".into()),
        ));
    }
    if parsed.senderless > 0 {
        tracing::warn!(count = parsed.senderless, trace_id = %trace.0, "whatsapp messages without a sender ignored");
    }
    for pnid in &parsed.unknown_numbers {
        state.webhooks.unknown_numbers.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(phone_number_id = %pnid, trace_id = %trace.0, "webhook for unknown whatsapp number ignored");
    }
    let (mut accepted, mut duplicates) = (0u64, 0u64);
    let now = state.hub.clock().now_ms();
    for item in parsed.items {
        let (conversation, input, key) = match item.kind {
            WebhookKind::Message(msg) => {
                let key = dedup_key(&item.tenant, &msg.provider_id);
                match state.staff.handle(&item.tenant, &item.channel, &msg, &key, &trace.0).await {
                    Ok(StaffOutcome::NotStaff) => {}
                    Ok(StaffOutcome::Handled) => {
                        accepted += 1;
                        continue;
                    }
                    Ok(StaffOutcome::Duplicate) => {
                        duplicates += 1;
                        continue;
                    }
                    Err(e) => return Err(refuse(&reject, e)),
                }
                let id = ConversationId::for_contact(&item.tenant, &item.channel, &msg.contact.key);
                (id, Input::MessageReceived(msg), key)
            }
            WebhookKind::Status(update) => {
                let id = ConversationId::for_contact(&item.tenant, &item.channel, &contact_key(&update.recipient));
                let key = dedup_key(&item.tenant, &format!("{}:{:?}", update.provider_message_id, update.state));
                (id, Input::StatusReceived(update), key)
            }
        };
        let envelope =
            Envelope::new(item.tenant, conversation, trace.0.clone(), now, input).with_idempotency_key(key.clone());
        match state.hub.ingest(envelope, Some(key)).await {
            Ok(Ingested::Accepted) => accepted += 1,
            Ok(Ingested::Duplicate) => duplicates += 1,
            Err(e) => return Err(refuse(&reject, e)),
        }
    }
    let ignored = (parsed.unknown_numbers.len() + parsed.senderless) as u64;
    WebhookAccepted { channel: CHANNEL, accepted, duplicates, ignored, trace_id: &trace.0 }.emit(&state.webhooks);
    Ok(HttpResponse::Ok()
        .json(json!({ "status": "ok", "accepted": accepted, "duplicates": duplicates, "ignored": ignored })))
}

/// A webhook the hub cannot take now: 503 with Retry-After, so the provider retries.
pub(super) fn refuse(reject: &impl Fn(&'static str, ApiError) -> ApiError, e: IngestError) -> ApiError {
    match e {
        IngestError::Busy => reject("busy", ApiError::Busy),
        IngestError::Unavailable(why) => reject("unavailable", ApiError::Unavailable(why)),
    }
}

fn dedup_key(tenant: &TenantId, provider_id: &str) -> String {
    format!("{tenant}:wa:{provider_id}")
}
