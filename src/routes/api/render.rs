//! How conversations look over REST. Authors are the domain's own form (`{"role":"agent","id":"ana"}`,
//! `{"role":"customer"}`), the same in conversations, messages and journal events.

use serde_json::{Value, json};
use switchboard_actors::state::{ConversationState, Status};

fn agent_of(status: &Status) -> Option<&str> {
    match status {
        Status::Assigned { agent, .. } => Some(agent.as_str()),
        _ => None,
    }
}

/// A conversation in a list.
pub fn summary(s: &ConversationState) -> Value {
    let last = s.history.back().map(|e| json!({ "author": e.author, "text": &*e.text, "seq": e.seq }));
    json!({
        "id": s.id.as_str(),
        "status": s.status.name(),
        "queue": s.status.queue(),
        "agent": agent_of(&s.status),
        "channel": s.reply_to.as_ref().map(|r| format!("{}.{}", r.channel.kind.as_str(), r.channel.name)),
        "contact": s.contact.as_ref().map(|c| json!({ "key": c.key, "name": c.name })),
        "ticket": s.ticket,
        "updated_at_ms": s.updated_at,
        "last_message": last,
    })
}

/// A conversation with its `messages` most recent messages, notes and delivery states.
/// `window_open`: whether WhatsApp's customer-service window allows free-form replies.
pub fn detail(s: &ConversationState, messages: usize, window_open: bool) -> Value {
    let mut v = summary(s);
    let skip = s.history.len().saturating_sub(messages);
    v["seq"] = json!(s.seq);
    v["epoch"] = json!(s.epoch);
    v["service_window_open"] = json!(window_open);
    v["messages"] =
        s.history.iter().skip(skip).map(|e| json!({ "author": e.author, "text": &*e.text, "seq": e.seq })).collect();
    v["notes"] = s.notes.iter().map(|n| json!({ "author": n.author, "text": n.text, "at_ms": n.at })).collect();
    v["deliveries"] = s
        .outbound
        .iter()
        .map(|r| json!({ "local_id": r.local_id, "provider_message_id": r.provider_message_id, "state": r.state }))
        .collect();
    v
}
