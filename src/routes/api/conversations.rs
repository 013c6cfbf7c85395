//! Reading one conversation: its current state, its messages, its journal and its state at a
//! past sequence.

use super::caller::SignedIn;
use super::error::RestError;
use super::input::{
    ConversationQuery, DEFAULT_MESSAGES, DEFAULT_PAGE, EventsQuery, MAX_MESSAGES, MAX_PAGE, MessagesQuery, StateQuery,
    page_size,
};
use super::journal::{self, event, message_page, replay, visible};
use super::render::detail;
use crate::app::AppState;
use actix_web::{HttpResponse, web};
use serde_json::json;
use switchboard_actors::domain::ConversationId;
use switchboard_actors::state::ConversationState;

/// Whether WhatsApp's customer-service window allows a free-form reply at `now_ms`.
pub fn window_open(app: &AppState, s: &ConversationState, now_ms: u64) -> bool {
    let window = app.hub.policy(&s.tenant).map_or(0, |p| p.service_window.as_millis() as u64);
    s.service_window_open(now_ms, window)
}

/// `GET /api/conversations/{id}`.
pub async fn get(
    who: SignedIn,
    app: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<ConversationQuery>,
) -> Result<HttpResponse, RestError> {
    let messages = match query.messages {
        Some(0) => 0,
        n => page_size(n, DEFAULT_MESSAGES, MAX_MESSAGES)?,
    };
    let state = visible(&app.hub, &who, &ConversationId::new(id.as_str())).await?;
    let open = window_open(&app, &state, app.hub.clock().now_ms());
    Ok(HttpResponse::Ok().json(detail(&state, messages, open)))
}

/// `GET /api/conversations/{id}/messages`.
pub async fn messages(
    who: SignedIn,
    app: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<MessagesQuery>,
) -> Result<HttpResponse, RestError> {
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    let (_, run) = journal::read(&app.hub, &who, &ConversationId::new(id.as_str()), 1).await?;
    Ok(HttpResponse::Ok().json(message_page(&run, query.before_seq, limit)))
}

/// `GET /api/conversations/{id}/events`.
pub async fn events(
    who: SignedIn,
    app: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, RestError> {
    let limit = page_size(query.limit, DEFAULT_PAGE, MAX_PAGE)?;
    if query.from == Some(0) {
        return Err(RestError::bad_request("from must be at least 1 (sequences start at 1)"));
    }
    let id = ConversationId::new(id.as_str());
    let (state, run) = journal::read(&app.hub, &who, &id, query.from.unwrap_or(1)).await?;
    if let Some(from) = query.from
        && from < run.first_seq
        && from <= state.seq
    {
        return Err(RestError::Gone(format!(
            "events before sequence {} of {id} are no longer kept; read from {}",
            run.first_seq, run.first_seq
        )));
    }
    let page: Vec<_> = run.numbered().take(limit).map(|(seq, env)| event(seq, env)).collect();
    let next_from = run.first_seq.max(query.from.unwrap_or(1)) + page.len() as u64;
    Ok(HttpResponse::Ok().json(json!({
        "events": page,
        "next_from": next_from,
        "has_more": next_from <= state.seq,
        "last_seq": state.seq,
    })))
}

/// `GET /api/conversations/{id}/state`.
pub async fn state_at(
    who: SignedIn,
    app: web::Data<AppState>,
    id: web::Path<String>,
    query: web::Query<StateQuery>,
) -> Result<HttpResponse, RestError> {
    let at_seq = query.at_seq;
    if at_seq == 0 {
        return Err(RestError::bad_request("at_seq must be at least 1 (sequences start at 1)"));
    }
    let id = ConversationId::new(id.as_str());
    let (current, run) = journal::read(&app.hub, &who, &id, 1).await?;
    if at_seq > current.seq {
        return Err(RestError::Unprocessable(format!(
            "{id} is at sequence {}; {at_seq} is not reached yet",
            current.seq
        )));
    }
    let window = app.hub.policy(&who.tenant).map_or(1, |p| p.history_window);
    let state = match replay(&current, &run, at_seq, window) {
        Some(state) => state,
        None if at_seq == current.seq => current,
        None => {
            return Err(RestError::Gone(format!(
                "the journal of {id} now starts at sequence {}: the state at {at_seq} can no longer be rebuilt",
                run.first_seq
            )));
        }
    };
    // The window as it stood then: at the time of the event that made this state.
    let then = run.numbered().find(|(seq, _)| *seq == at_seq).map_or(state.updated_at, |(_, e)| e.occurred_at);
    let open = window_open(&app, &state, then);
    Ok(HttpResponse::Ok().json(detail(&state, state.history.len(), open)))
}
