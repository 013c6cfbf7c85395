//! The `snapshot` frame: where the account's queues and conversations stand now.

use super::feed::Availability;
use crate::app::AppState;
use crate::auth::{AgentAccount, Role};
use crate::routes::api::error::RestError;
use crate::routes::api::listing::agent_page;
use crate::routes::api::render::summary;
use serde_json::{Value, json};
use std::collections::HashSet;
use switchboard_actors::query::ConversationQuery;
use uuid::Uuid;

/// Conversations a snapshot lists at most (the most recently updated).
pub const SNAPSHOT_CONVERSATIONS: usize = 500;

/// The queues an account works in: its own, or every queue of the tenant for an admin.
pub fn queues_of(app: &AppState, who: &AgentAccount) -> Vec<String> {
    match who.role {
        Role::Agent => who.queues.iter().cloned().collect(),
        Role::Admin => {
            app.hub.policy(&who.tenant).map(|p| p.queues.iter().map(|q| q.name.clone()).collect()).unwrap_or_default()
        }
    }
}

/// Builds the frame.
pub async fn snapshot(
    app: &AppState,
    who: &AgentAccount,
    availability: Availability,
    last_id: Option<Uuid>,
) -> Result<String, RestError> {
    let mut queues = Vec::new();
    for name in queues_of(app, who) {
        let q = app.hub.queue_snapshot(&who.tenant, &name).await?;
        let waiting: Vec<Value> = q
            .waiting
            .iter()
            .enumerate()
            .map(|(i, (id, ms))| json!({ "conversation_id": id.as_str(), "position": i + 1, "waiting_ms": ms }))
            .collect();
        let agents: Vec<Value> = q
            .agents
            .iter()
            .map(|(id, online, capacity, active)| {
                json!({ "id": id.as_str(), "online": online, "capacity": capacity, "active": active })
            })
            .collect();
        queues.push(json!({ "name": q.queue, "waiting": waiting, "agents": agents }));
    }
    let mut filters = ConversationQuery::tenant(who.tenant.clone());
    filters.limit = SNAPSHOT_CONVERSATIONS;
    let mut found = Vec::new();
    match who.role {
        Role::Agent => found.extend(agent_page(app, who, filters).await?.items),
        // An admin may see every conversation; the console shows the ones humans work on.
        Role::Admin => {
            for status in ["queued", "assigned"] {
                let q = ConversationQuery { status: Some(status.into()), ..filters.clone() };
                found.extend(app.hub.list_conversations(&q).await?.items);
            }
        }
    }
    let mut seen = HashSet::new();
    found.retain(|s| seen.insert(s.id.clone()));
    found.sort_by_key(|s| std::cmp::Reverse(s.updated_at));
    found.truncate(SNAPSHOT_CONVERSATIONS);
    Ok(json!({
        "type": "snapshot",
        "last_event_id": last_id,
        "availability": { "available": availability.available, "capacity": availability.capacity },
        "queues": queues,
        "conversations": found.iter().map(|s| summary(s)).collect::<Vec<_>>(),
    })
    .to_string())
}
