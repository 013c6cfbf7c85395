//! Reading a conversation's journal with sequence numbers, and what is derived from it: the
//! message history (customer and outbound messages with their delivery state) and the state at
//! a past sequence (replayed with `ConversationState::apply`, the same code the actor runs).
//!
//! Journal entries do not carry their sequence: it is known from the conversation's current
//! sequence and the number of entries up to it. The store keeps only the most recent events of a
//! conversation, so older sequences may be gone; that is always said, never papered over.

use super::error::RestError;
use crate::auth::AgentAccount;
use serde_json::{Value, json};
use std::collections::HashMap;
use switchboard_actors::domain::{Author, ConversationId, DeliveryState};
use switchboard_actors::event::{Envelope, Event};
use switchboard_actors::hub::Hub;
use switchboard_actors::state::ConversationState;

/// Attempts at a consistent read before giving up on a conversation that keeps changing.
const READ_ATTEMPTS: usize = 3;

/// The current state of a conversation the caller may see, or 404 (whether it does not exist,
/// belongs to another tenant or lies outside the caller's queues).
pub async fn visible(hub: &Hub, who: &AgentAccount, id: &ConversationId) -> Result<ConversationState, RestError> {
    hub.conversation(&who.tenant, id)
        .await
        .filter(|s| who.may_work_on(s))
        .ok_or_else(|| RestError::not_found(format!("conversation {id} not found")))
}

/// Journal entries with known sequences: `events[i]` has sequence `first_seq + i`.
pub struct JournalRun {
    /// Sequence of the first entry (one past the last if there are none).
    pub first_seq: u64,
    /// The entries, oldest first.
    pub events: Vec<Envelope<Event>>,
}

impl JournalRun {
    /// Entries with their sequences.
    pub fn numbered(&self) -> impl Iterator<Item = (u64, &Envelope<Event>)> {
        (self.first_seq..).zip(self.events.iter())
    }
}

/// The conversation (checked visible) and its kept journal from sequence `from`. The state is
/// read before and after the journal: the same sequence both times means the journal read in
/// between ends exactly at it (the actor persists before it answers anything else).
pub async fn read(
    hub: &Hub,
    who: &AgentAccount,
    id: &ConversationId,
    from: u64,
) -> Result<(ConversationState, JournalRun), RestError> {
    for _ in 0..READ_ATTEMPTS {
        let before = visible(hub, who, id).await?;
        // A store that cannot answer is a 503 (retry), never an empty (trimmed-looking) journal.
        let events = hub
            .journal(id, from)
            .await
            .map_err(|e| RestError::Api(crate::http_error::ApiError::Unavailable(e.to_string())))?;
        let after = visible(hub, who, id).await?;
        if before.seq == after.seq {
            let first_seq = (after.seq + 1).saturating_sub(events.len() as u64);
            return Ok((after, JournalRun { first_seq, events }));
        }
    }
    Err(RestError::Api(crate::http_error::ApiError::Unavailable(format!(
        "conversation {id} kept changing while its journal was read"
    ))))
}

/// One customer or outbound message taken from the journal.
fn message(seq: u64, env: &Envelope<Event>, deliveries: &HashMap<u64, DeliveryState>) -> Option<Value> {
    match &env.body {
        Event::MessageReceived(msg) => Some(json!({
            "seq": seq,
            "at_ms": env.occurred_at,
            "author": Author::Customer,
            "text": msg.content.as_text(),
            "content": msg.content,
            "provider_message_id": msg.provider_id,
        })),
        Event::OutboundQueued { local_id, author, content } => Some(json!({
            "seq": seq,
            "at_ms": env.occurred_at,
            "author": author,
            "text": content.body(),
            "content": content,
            "local_id": local_id,
            "delivery": deliveries.get(local_id),
        })),
        _ => None,
    }
}

/// Where each outbound message got to, by local id (a later receipt never moves one back).
fn delivery_states(run: &JournalRun) -> HashMap<u64, DeliveryState> {
    let mut by_provider_id: HashMap<&str, u64> = HashMap::new();
    let mut states: HashMap<u64, DeliveryState> = HashMap::new();
    fn advance(states: &mut HashMap<u64, DeliveryState>, local_id: u64, state: DeliveryState) {
        if states.get(&local_id).is_none_or(|s| state.rank() > s.rank()) {
            states.insert(local_id, state);
        }
    }
    for env in &run.events {
        match &env.body {
            Event::OutboundSent { local_id, provider_message_id } => {
                by_provider_id.insert(provider_message_id, *local_id);
                advance(&mut states, *local_id, DeliveryState::Sent);
            }
            Event::StatusReceived(update) => {
                if let Some(local_id) = by_provider_id.get(update.provider_message_id.as_str()) {
                    advance(&mut states, *local_id, update.state.clone());
                }
            }
            Event::OutboundFailed { local_id, .. } => advance(&mut states, *local_id, DeliveryState::Failed),
            _ => {}
        }
    }
    states
}

/// A page of messages: the `limit` most recent before `before_seq`, oldest first.
pub fn message_page(run: &JournalRun, before_seq: Option<u64>, limit: usize) -> Value {
    let deliveries = delivery_states(run);
    let older: Vec<Value> = run
        .numbered()
        .filter(|(seq, _)| before_seq.is_none_or(|b| *seq < b))
        .filter_map(|(seq, env)| message(seq, env, &deliveries))
        .collect();
    let page = &older[older.len().saturating_sub(limit)..];
    let more = older.len() > page.len();
    json!({
        "messages": page,
        "next_before_seq": if more { page.first().map(|m| m["seq"].clone()) } else { None },
        "oldest_kept_seq": run.first_seq,
    })
}

/// A journal entry as the API shows it: the envelope plus its sequence.
pub fn event(seq: u64, env: &Envelope<Event>) -> Value {
    let mut v = serde_json::to_value(env).unwrap_or_else(|_| json!({}));
    v["seq"] = json!(seq);
    v
}

/// The state after the event at `at_seq`, replayed from the start of the journal. `None` when the
/// journal no longer starts at sequence 1 (the events needed were dropped).
pub fn replay(current: &ConversationState, run: &JournalRun, at_seq: u64, window: usize) -> Option<ConversationState> {
    if run.first_seq != 1 {
        return None;
    }
    let mut state = ConversationState::new(current.id.clone(), current.tenant.clone());
    for (_, env) in run.numbered().take_while(|(seq, _)| *seq <= at_seq) {
        state.apply(&env.body, env.occurred_at, window);
    }
    Some(state)
}
