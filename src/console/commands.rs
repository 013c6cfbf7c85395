//! Console commands: one JSON frame in, exactly one `ack` or `error` frame out, echoing `ref`.
//! Conversation commands go through the same checks and the same hub path as the REST API.

use super::Console;
use super::feed::{Audience, Availability};
use super::snapshot::queues_of;
use crate::routes::api::commands::{note_input, perform, reply_input, transfer_input};
use crate::routes::api::error::RestError;
use crate::routes::api::journal::visible;
use crate::routes::api::render::summary;
use serde::Deserialize;
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_actors::conversation::CommandError;
use switchboard_actors::domain::{ChannelKind, ConversationId};
use switchboard_actors::event::Input;
use switchboard_actors::state::{ConversationState, Status};
use switchboard_adapters::webchat::WidgetPush;

/// Longest `ref` echoed back.
const MAX_REF: usize = 64;
/// Largest capacity an agent may set.
const MAX_CAPACITY: u32 = 100;

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Command {
    SetAvailability { available: bool, capacity: Option<u32> },
    Accept { conversation_id: String },
    Reply { conversation_id: String, text: String },
    Note { conversation_id: String, text: String },
    Transfer { conversation_id: String, queue: Option<String>, agent: Option<String> },
    Close { conversation_id: String },
    Typing { conversation_id: String, on: bool },
    Ping,
}

/// Why a command failed, as the `error` frame says it.
struct Refusal {
    code: &'static str,
    message: String,
}

impl From<RestError> for Refusal {
    fn from(e: RestError) -> Self {
        Self { code: e.code(), message: e.to_string() }
    }
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Self {
        Self { code: "bad_request", message: message.into() }
    }
}

/// Runs one frame from the console and returns the answer frame.
pub async fn answer(console: &Console, frame: &str) -> String {
    let mut value: Value = match serde_json::from_str(frame) {
        Ok(v) => v,
        Err(e) => return error(None, &Refusal::bad_request(format!("not JSON: {e}"))),
    };
    let reference = match value.as_object_mut().map(|o| o.remove("ref")) {
        None => return error(None, &Refusal::bad_request("a command is a JSON object")),
        Some(None | Some(Value::Null)) => None,
        Some(Some(Value::String(r))) if r.len() <= MAX_REF => Some(r),
        Some(Some(_)) => return error(None, &Refusal::bad_request("ref: a string of at most 64 characters")),
    };
    let command = match serde_json::from_value::<Command>(value) {
        Ok(c) => c,
        Err(e) => return error(reference.as_deref(), &Refusal::bad_request(e.to_string())),
    };
    if matches!(command, Command::Ping) {
        return json!({ "type": "pong", "ref": reference }).to_string();
    }
    match run(console, command).await {
        Ok(extra) => {
            let mut ack = json!({ "type": "ack", "ref": reference });
            if let (Some(ack), Value::Object(extra)) = (ack.as_object_mut(), extra) {
                ack.extend(extra);
            }
            ack.to_string()
        }
        Err(refusal) => error(reference.as_deref(), &refusal),
    }
}

fn error(reference: Option<&str>, refusal: &Refusal) -> String {
    json!({ "type": "error", "ref": reference, "code": refusal.code, "message": refusal.message }).to_string()
}

fn with_conversation(state: &ConversationState) -> Value {
    json!({ "conversation": summary(state) })
}

async fn run(console: &Console, command: Command) -> Result<Value, Refusal> {
    let (app, who) = (&console.app, &*console.who);
    let trace = uuid::Uuid::now_v7().to_string();
    let trace = trace.as_str();
    let changed = |input: Input, id: String| async move {
        let id = ConversationId::new(id);
        let after = perform(app, who, &id, |_| Ok(input), trace).await?;
        Ok::<_, Refusal>(with_conversation(&after))
    };
    match command {
        Command::Ping => Ok(Value::Null),
        Command::SetAvailability { available, capacity } => set_availability(console, available, capacity).await,
        Command::Accept { conversation_id } => accept(console, ConversationId::new(conversation_id), trace).await,
        Command::Reply { conversation_id, text } => changed(reply_input(who, text)?, conversation_id).await,
        Command::Note { conversation_id, text } => changed(note_input(who, text)?, conversation_id).await,
        Command::Transfer { conversation_id, queue, agent } => {
            changed(transfer_input(queue, agent)?, conversation_id).await
        }
        Command::Close { conversation_id } => changed(Input::Close { by: who.author() }, conversation_id).await,
        Command::Typing { conversation_id, on } => typing(console, ConversationId::new(conversation_id), on).await,
    }
}

async fn set_availability(console: &Console, available: bool, capacity: Option<u32>) -> Result<Value, Refusal> {
    let (app, who) = (&console.app, &*console.who);
    let current = app.console.availability(&who.tenant, who.id.as_str());
    // Unset means the last one (the default until the agent sets one).
    let capacity = capacity.unwrap_or(current.capacity);
    if !(1..=MAX_CAPACITY).contains(&capacity) {
        return Err(Refusal::bad_request(format!("capacity: from 1 to {MAX_CAPACITY}")));
    }
    let queues = queues_of(app, who);
    if queues.is_empty() {
        return Err(Refusal { code: "unprocessable", message: "this account works in no queue".into() });
    }
    for queue in &queues {
        app.console
            .presence
            .set(&who.tenant, queue, who.id.clone(), available, capacity)
            .await
            .map_err(RestError::from)?;
    }
    let availability = Availability { available, capacity };
    app.console.set_availability(&who.tenant, who.id.as_str(), availability);
    console.feed.push_ephemeral(presence_frame(who.id.as_str(), availability), Audience::Everyone);
    Ok(json!({ "availability": { "available": available, "capacity": capacity } }))
}

/// The `presence` frame.
pub fn presence_frame(agent: &str, a: Availability) -> String {
    json!({ "type": "presence", "agent": agent, "available": a.available, "capacity": a.capacity }).to_string()
}

async fn accept(console: &Console, id: ConversationId, trace: &str) -> Result<Value, Refusal> {
    let (app, who) = (&console.app, &*console.who);
    let state = visible(&app.hub, who, &id).await?;
    if !matches!(&state.status, Status::Queued { .. }) {
        return Err(Refusal {
            code: "already_taken",
            message: format!("conversation is not waiting in a queue (it is {})", state.status.name()),
        });
    }
    // The conversation asks its queue, on whichever node runs it (that queue holds the waiting
    // list), so an agent signed on at any node can take any waiting conversation.
    let taken = app.hub.execute(who.tenant.clone(), id.clone(), Input::Accept { agent: who.id.clone() }, trace).await;
    match taken {
        Ok(_) => {}
        Err(CommandError::Conflict(why)) => return Err(Refusal { code: "already_taken", message: why }),
        Err(e) => return Err(RestError::from(e).into()),
    }
    // The queue has picked this agent; the conversation records it a moment later. Answer with
    // it assigned when that happens soon, as it does unless the hub is overloaded.
    let mut latest = state;
    for _ in 0..50 {
        if let Some(s) = app.hub.conversation(&who.tenant, &id).await {
            let mine = matches!(&s.status, Status::Assigned { agent, .. } if *agent == who.id);
            latest = s;
            if mine {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(with_conversation(&latest))
}

async fn typing(console: &Console, id: ConversationId, on: bool) -> Result<Value, Refusal> {
    let (app, who) = (&console.app, &*console.who);
    let state = visible(&app.hub, who, &id).await?;
    let frame =
        json!({ "type": "typing", "conversation_id": id.as_str(), "who": "agent", "agent": who.id.as_str(), "on": on });
    console.feed.push_ephemeral(frame.to_string(), Audience::Statuses(vec![state.status.clone()]));
    if let Some(to) = state.reply_to.as_ref().filter(|r| r.channel.kind == ChannelKind::WebChat)
        && let Some(web) = app.channels.webchat.get(&who.tenant)
    {
        web.desk.push(&to.recipient, &WidgetPush::Typing { on });
    }
    Ok(Value::Null)
}
