//! `GET /conversations`: a tenant's conversations, filtered and paginated, newest first. An admin
//! lists the store's page as is. An agent sees the union of its queues' conversations and those
//! assigned to it; the store filters one queue at a time, so that union is gathered per queue
//! and merged. Those sets hold only open tickets (queued or assigned), so they stay small.

use super::caller::SignedIn;
use super::error::RestError;
use super::input::{DEFAULT_PAGE, ListQuery, MAX_PAGE, page_size};
use super::render::summary;
use crate::app::AppState;
use crate::auth::{AgentAccount, Role};
use actix_web::{HttpResponse, web};
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use switchboard_actors::domain::AgentId;
use switchboard_actors::query::{ConversationPage, ConversationQuery};
use switchboard_actors::state::ConversationState;

/// Every match of `query`, page after page.
async fn all_matches(app: &AppState, mut query: ConversationQuery) -> Result<Vec<Arc<ConversationState>>, RestError> {
    query.limit = MAX_PAGE as usize;
    query.offset = 0;
    let mut items = Vec::new();
    loop {
        let page = app.hub.list_conversations(&query).await?;
        let got = page.items.len();
        items.extend(page.items);
        query.offset += got;
        if got == 0 || query.offset >= page.total {
            return Ok(items);
        }
    }
}

/// What an agent may list: the filters applied to each of its queues, plus its own assignments.
/// The conversations an agent works on that match `filters` (its queues' and its own).
pub async fn agent_page(
    app: &AppState,
    who: &AgentAccount,
    filters: ConversationQuery,
) -> Result<ConversationPage, RestError> {
    let mut found: Vec<Arc<ConversationState>> = Vec::new();
    for queue in &who.queues {
        if filters.queue.as_ref().is_none_or(|q| q == queue) {
            found.extend(all_matches(app, ConversationQuery { queue: Some(queue.clone()), ..filters.clone() }).await?);
        }
    }
    if filters.agent.as_ref().is_none_or(|a| *a == who.id) {
        let own = ConversationQuery { agent: Some(who.id.clone()), ..filters.clone() };
        found.extend(all_matches(app, own).await?);
    }
    // A conversation assigned to the agent through one of its queues was found twice; pages may
    // also overlap when something changes between two reads.
    let mut seen = HashSet::new();
    found.retain(|s| who.may_work_on(s) && seen.insert(s.id.clone()));
    Ok(filters.page(found))
}

/// `GET /api/conversations`.
pub async fn list(
    who: SignedIn,
    app: web::Data<AppState>,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, RestError> {
    let q = query.into_inner();
    if let Some(queue) = &q.queue {
        let known = app.hub.policy(&who.tenant).is_some_and(|p| p.queue(queue).is_some());
        if !known {
            return Err(RestError::Unprocessable(format!("unknown queue {queue}")));
        }
    }
    let mut filters = ConversationQuery::tenant(who.tenant.clone());
    filters.status = q.status.map(|s| s.as_str().to_owned());
    filters.queue = q.queue;
    filters.agent = q.agent.map(AgentId::new);
    filters.limit = page_size(q.limit, DEFAULT_PAGE, MAX_PAGE)?;
    filters.offset = q.offset.unwrap_or(0) as usize;
    let page = match who.role {
        Role::Admin => app.hub.list_conversations(&filters).await?,
        Role::Agent => agent_page(&app, &who, filters.clone()).await?,
    };
    let next = filters.offset + page.items.len();
    Ok(HttpResponse::Ok().json(json!({
        "total": page.total,
        "offset": filters.offset,
        "limit": filters.limit,
        "next_offset": (next < page.total).then_some(next),
        "conversations": page.items.iter().map(|s| summary(s)).collect::<Vec<_>>(),
    })))
}
