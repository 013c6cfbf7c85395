//! `POST /webhooks/telegram/{channel}`: checks the secret token, parses the `Update` and puts it
//! on the bus. Authenticated updates the hub does not handle still get 200, or Telegram would
//! redeliver them (and hold back that chat's later updates).

use super::body::{read_body, require_utf8};
use super::whatsapp::refuse;
use crate::app::AppState;
use crate::http_error::ApiError;
use crate::staff::StaffOutcome;
use crate::telemetry::{WebhookAccepted, rejecter};
use crate::trace::TraceId;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;
use switchboard_actors::domain::ConversationId;
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::hub::Ingested;
use switchboard_adapters::telegram::{parse_update, verify_secret};

const CHANNEL: &str = "telegram";

/// Receives one update.
pub async fn receive(
    req: HttpRequest,
    payload: web::Payload,
    path: web::Path<String>,
    state: web::Data<AppState>,
    trace: TraceId,
) -> Result<HttpResponse, ApiError> {
    let reject = rejecter(&state.webhooks, CHANNEL, &trace.0);
    let name = path.into_inner();
    let Some((tenant, channel, settings)) = state.channels.telegram.get(&name) else {
        return Err(reject("unknown_channel", ApiError::NotFound(format!("no telegram channel named {name:?}"))));
    };
    let header = req.headers().get("x-telegram-bot-api-secret-token").map(|v| v.as_bytes());
    if verify_secret(&settings.secret_token, header).is_err() {
        let reason = if header.is_none() { "missing_secret" } else { "bad_secret" };
        return Err(reject(reason, ApiError::Unauthorized("invalid X-Telegram-Bot-Api-Secret-Token".into())));
    }
    let body = read_body(&req, payload, state.body_limit).await.map_err(|e| reject("too_large", e))?;
    require_utf8(&body).map_err(|e| reject("invalid_utf8", e))?;
    let parsed = parse_update(settings, &body).map_err(|e| reject("malformed", ApiError::BadRequest(e.to_string())))?;
    let Some(update) = parsed else {
        WebhookAccepted { channel: CHANNEL, accepted: 0, duplicates: 0, ignored: 1, trace_id: &trace.0 }
            .emit(&state.webhooks);
        return Ok(HttpResponse::Ok().json(json!({ "status": "ignored" })));
    };
    let msg = update.message;
    let key = format!("{tenant}:tg.{name}:{}", msg.provider_id);
    let staff = state.staff.handle(tenant, channel, &msg, &key, &trace.0).await.map_err(|e| refuse(&reject, e))?;
    let (duplicate, status) = match staff {
        StaffOutcome::Handled => (false, "command"),
        StaffOutcome::Duplicate => (true, "duplicate"),
        StaffOutcome::NotStaff => {
            let conversation = ConversationId::for_contact(tenant, channel, &msg.contact.key);
            let envelope = Envelope::new(
                tenant.clone(),
                conversation,
                trace.0.clone(),
                state.hub.clock().now_ms(),
                Input::MessageReceived(msg),
            )
            .with_idempotency_key(key.clone());
            match state.hub.ingest(envelope, Some(key)).await.map_err(|e| refuse(&reject, e))? {
                Ingested::Duplicate => (true, "duplicate"),
                Ingested::Accepted => (false, "ok"),
            }
        }
    };
    WebhookAccepted {
        channel: CHANNEL,
        accepted: u64::from(!duplicate),
        duplicates: u64::from(duplicate),
        ignored: 0,
        trace_id: &trace.0,
    }
    .emit(&state.webhooks);
    Ok(HttpResponse::Ok().json(json!({ "status": status })))
}
