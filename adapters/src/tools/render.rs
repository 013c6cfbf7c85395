//! How tool results look: a JSON object for programs and a few lines of text for people (the
//! same text answers staff in their chat).

use serde_json::{Value, json};
use switchboard_actors::domain::Author;
use switchboard_actors::state::{ConversationState, Status};

pub(super) fn author(a: &Author) -> String {
    match a {
        Author::Customer => "customer".into(),
        Author::Bot => "bot".into(),
        Author::System => "system".into(),
        Author::Agent(id) => format!("agent:{id}"),
        Author::Integration(id) => id.clone(),
    }
}

fn agent_of(status: &Status) -> Option<&str> {
    match status {
        Status::Assigned { agent, .. } => Some(agent.as_str()),
        _ => None,
    }
}

/// The summary of a conversation used in lists.
pub(super) fn summary(s: &ConversationState) -> Value {
    let last = s.history.back().map(|e| json!({ "author": author(&e.author), "text": &*e.text }));
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

/// One line about a conversation.
pub(super) fn line(s: &ConversationState) -> String {
    let mut out = format!("{} · {}", s.id, s.status.name());
    if let Some(q) = s.status.queue() {
        out.push_str(&format!(" in {q}"));
    }
    if let Some(a) = agent_of(&s.status) {
        out.push_str(&format!(" with {a}"));
    }
    if let Some(c) = &s.contact {
        match &c.name {
            Some(name) => out.push_str(&format!(" · {name} ({})", c.key)),
            None => out.push_str(&format!(" · {}", c.key)),
        }
    }
    out
}

/// A conversation with its recent messages and notes.
pub(super) fn detail(s: &ConversationState, messages: usize, window_open: bool) -> Value {
    let mut v = summary(s);
    let skip = s.history.len().saturating_sub(messages);
    v["messages"] = s
        .history
        .iter()
        .skip(skip)
        .map(|e| json!({ "author": author(&e.author), "text": &*e.text, "seq": e.seq }))
        .collect();
    v["notes"] =
        s.notes.iter().map(|n| json!({ "author": author(&n.author), "text": n.text, "at_ms": n.at })).collect();
    v["service_window_open"] = json!(window_open);
    v["deliveries"] = s
        .outbound
        .iter()
        .map(|r| json!({ "local_id": r.local_id, "state": r.state.as_ref().map(|d| format!("{d:?}").to_lowercase()) }))
        .collect();
    v
}

/// A conversation as a short transcript.
pub(super) fn transcript(s: &ConversationState, messages: usize, window_open: bool) -> String {
    let mut out = line(s);
    if !window_open {
        out.push_str("\n(WhatsApp 24-hour window closed: only templates can be sent)");
    }
    let skip = s.history.len().saturating_sub(messages);
    for e in s.history.iter().skip(skip) {
        out.push_str(&format!("\n{}: {}", author(&e.author), e.text));
    }
    for n in &s.notes {
        out.push_str(&format!("\n[note by {}] {}", author(&n.author), n.text));
    }
    out
}
