//! Changing a conversation: reply, transfer, assign, close, reopen, note. Each one goes through the
//! hub to the conversation actor like every webhook and tool call (same order, same ownership
//! epochs) and answers with the conversation as it is afterwards.

use super::caller::SignedIn;
use super::conversations::window_open;
use super::error::RestError;
use super::input::{AssignBody, DEFAULT_MESSAGES, EmptyBody, ReopenBody, TextBody, TransferBody, json_body};
use super::journal::visible;
use super::render::detail;
use crate::app::AppState;
use crate::auth::{AgentAccount, Role};
use crate::trace::TraceId;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::de::DeserializeOwned;
use switchboard_actors::domain::{AgentId, ConversationId};
use switchboard_actors::event::{Input, TransferTarget};
use switchboard_actors::state::ConversationState;

/// What every command handler receives, extracted in this order: the account first, so a request
/// without credentials gets 401 before anything else is looked at.
type Args = (SignedIn, web::Data<AppState>, web::Path<String>, TraceId, HttpRequest, web::Payload);

/// Reads the body, checks the caller may work on the conversation, builds the command from both
/// and runs it. The visibility check and the command are two steps: a conversation that moves to
/// another queue in between still gets the command, as if it had arrived a moment earlier.
async fn run<B: DeserializeOwned>(
    (who, app, id, trace, req, payload): Args,
    command: impl FnOnce(&AgentAccount, B) -> Result<Input, RestError>,
) -> Result<HttpResponse, RestError> {
    let body: B = json_body(&req, payload, app.body_limit).await?;
    let id = ConversationId::new(id.as_str());
    let after = perform(&app, &who, &id, |who| command(who, body), &trace.0).await?;
    let open = window_open(&app, &after, app.hub.clock().now_ms());
    Ok(HttpResponse::Ok().json(detail(&after, DEFAULT_MESSAGES as usize, open)))
}

/// Checks `who` may work on the conversation, builds the command and runs it; answers with the
/// conversation afterwards. Shared by the REST API and the console's WebSocket commands.
pub async fn perform(
    app: &AppState,
    who: &AgentAccount,
    id: &ConversationId,
    command: impl FnOnce(&AgentAccount) -> Result<Input, RestError>,
    trace_id: &str,
) -> Result<ConversationState, RestError> {
    let before = visible(&app.hub, who, id).await?;
    let input = command(who)?;
    app.hub.execute(who.tenant.clone(), id.clone(), input, trace_id).await?;
    Ok(app.hub.conversation(&who.tenant, id).await.unwrap_or(before))
}

fn required(what: &str, value: String) -> Result<String, RestError> {
    if value.trim().is_empty() {
        return Err(RestError::Unprocessable(format!("{what} must not be empty")));
    }
    Ok(value)
}

/// `POST …/reply`: an agent answers a conversation assigned to it; an admin may answer any open
/// one (as itself).
pub async fn reply(args: Args) -> Result<HttpResponse, RestError> {
    run(args, |who, b: TextBody| reply_input(who, b.text)).await
}

/// An agent's reply is its own; an admin writes as itself without owning the conversation.
pub fn reply_input(who: &AgentAccount, text: String) -> Result<Input, RestError> {
    let body = required("text", text)?;
    Ok(match who.role {
        Role::Agent => Input::AgentReply { agent: who.id.clone(), body },
        Role::Admin => Input::Send { author: who.author(), body },
    })
}

/// `POST …/transfer`: to a queue's waiting list or straight to an agent.
pub async fn transfer(args: Args) -> Result<HttpResponse, RestError> {
    run(args, |_, b: TransferBody| transfer_input(b.queue, b.agent)).await
}

/// A transfer names exactly one of a queue and an agent.
pub fn transfer_input(queue: Option<String>, agent: Option<String>) -> Result<Input, RestError> {
    let target = match (queue, agent) {
        (Some(queue), None) => TransferTarget::Queue(required("queue", queue)?),
        (None, Some(agent)) => TransferTarget::Agent(AgentId::new(required("agent", agent)?)),
        _ => return Err(RestError::bad_request("give exactly one of queue and agent")),
    };
    Ok(Input::Transfer { target })
}

/// `POST …/assign`: gives the conversation to an agent online in its queue with room.
pub async fn assign(args: Args) -> Result<HttpResponse, RestError> {
    run(args, |_, b: AssignBody| {
        Ok(Input::Transfer { target: TransferTarget::Agent(AgentId::new(required("agent", b.agent)?)) })
    })
    .await
}

/// `POST …/close`.
pub async fn close(args: Args) -> Result<HttpResponse, RestError> {
    run(args, |who, _: EmptyBody| Ok(Input::Close { by: who.author() })).await
}

/// `POST …/reopen`: a new ticket, waiting in a queue.
pub async fn reopen(args: Args) -> Result<HttpResponse, RestError> {
    run(args, |_, b: ReopenBody| {
        let queue = b.queue.map(|q| required("queue", q)).transpose()?;
        Ok(Input::Reopen { queue })
    })
    .await
}

/// `POST …/notes`: an internal note, never sent to the customer nor shown to the AI.
pub async fn note(args: Args) -> Result<HttpResponse, RestError> {
    run(args, |who, b: TextBody| note_input(who, b.text)).await
}

/// An internal note by `who`.
pub fn note_input(who: &AgentAccount, text: String) -> Result<Input, RestError> {
    Ok(Input::Note { author: who.author(), body: required("text", text)? })
}
