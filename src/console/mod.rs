//! The agent console's WebSocket, `GET /ws/console` (protocol: `docs/console-protocol.md`).
//!
//! - `feed`: per-tenant ring of recent events and fan-out to sessions (resume with `since=`).
//! - `snapshot`: the account's queues and conversations on connect.
//! - `commands`: availability, accept, reply, note, transfer, close, typing; one answer each.
//!
//! One task per connection reads the client's frames and the tenant's pushes. Commands run one
//! at a time per connection, so answers come in the order of the commands and a client cannot
//! pile up work; pushes wait in the feed's bounded backlog meanwhile.

mod commands;
pub mod feed;
pub mod presence;
mod relay;
mod snapshot;

use self::feed::{Audience, Push, TenantFeed};
use crate::app::AppState;
use crate::auth::AgentAccount;
use crate::routes::api::caller::bearer_token;
use crate::routes::api::error::RestError;
use crate::ws::{self, HEARTBEAT_SECS, Heartbeat, Incoming};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::Session;
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

pub use self::commands::presence_frame;
pub use self::feed::{AcrossNodes, ConsoleFeeds};

/// Largest frame a console may send.
const MAX_FRAME: usize = 64 * 1024;

/// One console connection's context.
pub struct Console {
    /// The hub and its wiring.
    pub app: web::Data<AppState>,
    /// Who is connected.
    pub who: Arc<AgentAccount>,
    /// The tenant's pushes.
    pub feed: Arc<TenantFeed>,
}

#[derive(Deserialize)]
struct ConnectQuery {
    token: Option<String>,
    since: Option<String>,
}

/// `GET /ws/console`: authenticates (401 before the upgrade), then serves the connection.
pub async fn connect(
    req: HttpRequest,
    body: web::Payload,
    app: web::Data<AppState>,
) -> Result<HttpResponse, RestError> {
    let query = web::Query::<ConnectQuery>::from_query(req.query_string())
        .map_err(|e| RestError::bad_request(format!("query string: {e}")))?;
    let token = bearer_token(&req).map(str::to_owned).or_else(|| query.token.clone().filter(|t| !t.is_empty()));
    let who = match token {
        None => return Err(RestError::Unauthorized("missing token")),
        Some(token) => app.agents.find(&token).ok_or(RestError::Unauthorized("unknown token"))?,
    };
    let since = match query.since.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(Uuid::parse_str(s).map_err(|_| RestError::bad_request("since: an event id (UUID)"))?),
    };
    let feed = app.console.tenant(&who.tenant).ok_or_else(|| RestError::not_found("tenant not found"))?;
    let (response, session, stream) =
        actix_ws::handle(&req, body).map_err(|e| RestError::bad_request(e.to_string()))?;
    tracing::info!(tenant = %who.tenant, agent = %who.id, resume = since.is_some(), "console connected");
    actix_web::rt::spawn(serve(Console { app, who, feed }, since, session, stream));
    Ok(response)
}

/// Whether `who` may see a frame for `audience`.
fn may_see(who: &AgentAccount, audience: &Audience) -> bool {
    match audience {
        Audience::Everyone => true,
        Audience::Statuses(statuses) => statuses.iter().any(|s| who.may_work_on_status(s)),
    }
}

async fn send_snapshot(console: &Console, session: &mut Session, last_id: Option<Uuid>) -> Result<(), ()> {
    let who = &console.who;
    let availability = console.app.console.availability(&who.tenant, who.id.as_str());
    let frame = match snapshot::snapshot(&console.app, who, availability, last_id).await {
        Ok(frame) => frame,
        Err(e) => json!({ "type": "error", "ref": null, "code": e.code(), "message": e.to_string() }).to_string(),
    };
    session.text(frame).await.map_err(|_| ())
}

async fn serve(console: Console, since: Option<Uuid>, mut session: Session, stream: actix_ws::MessageStream) {
    let mut stream = ws::frames(stream, MAX_FRAME);
    let who = console.who.clone();
    console.feed.ready().await;
    let attached = console.feed.attach(since);
    console.app.console.session_opened(&who.tenant, who.id.as_str());
    let mut rx = attached.rx;
    let hello = json!({
        "type": "hello",
        "agent": { "id": who.id.as_str(), "role": who.role.name(), "queues": who.queues },
        "heartbeat_secs": HEARTBEAT_SECS,
        "resumed": attached.replay.is_some(),
    });
    let mut alive = session.text(hello.to_string()).await.is_ok();
    if alive {
        alive = match attached.replay {
            Some(events) => {
                let mut ok = true;
                for e in events.iter().filter(|e| may_see(&who, &e.audience)) {
                    ok = ok && session.text(e.frame.clone()).await.is_ok();
                }
                ok
            }
            None => send_snapshot(&console, &mut session, attached.last_id).await.is_ok(),
        };
    }
    let mut heartbeat = Heartbeat::standard();
    while alive {
        tokio::select! {
            frame = stream.recv() => match ws::incoming(frame, &mut session, &mut heartbeat).await {
                Incoming::Text(text) => {
                    let answer = commands::answer(&console, &text).await;
                    alive = session.text(answer).await.is_ok();
                }
                Incoming::Binary => {
                    let refusal = json!({ "type": "error", "ref": null, "code": "bad_request", "message": "send JSON text frames" });
                    alive = session.text(refusal.to_string()).await.is_ok();
                }
                Incoming::Control => {}
                Incoming::Gone => break,
            },
            push = rx.recv() => match push {
                Ok(Push::Event(e)) if may_see(&who, &e.audience) => alive = session.text(e.frame.clone()).await.is_ok(),
                Ok(Push::Ephemeral { frame, audience }) if may_see(&who, &audience) => {
                    alive = session.text(frame.to_string()).await.is_ok();
                }
                Ok(Push::Event(_) | Push::Ephemeral { .. }) => {}
                Ok(Push::Resync) | Err(RecvError::Lagged(_)) => {
                    tracing::warn!(agent = %who.id, "console fell behind; sending a fresh snapshot");
                    let again = console.feed.attach(None);
                    rx = again.rx;
                    alive = session.text(json!({ "type": "resync" }).to_string()).await.is_ok()
                        && send_snapshot(&console, &mut session, again.last_id).await.is_ok();
                }
                Err(RecvError::Closed) => break,
            },
            live = heartbeat.due() => {
                if !live {
                    tracing::info!(agent = %who.id, "console stopped answering pings; closing");
                    break;
                }
                alive = session.ping(b"").await.is_ok();
            }
        }
    }
    signed_off(&console).await;
    let _ = session.close(None).await;
}

/// The connection is gone: when it was the agent's last one, the agent stops taking
/// conversations (those already assigned stay) and the other consoles are told.
async fn signed_off(console: &Console) {
    let (app, who) = (&console.app, &console.who);
    tracing::info!(tenant = %who.tenant, agent = %who.id, "console disconnected");
    let Some(availability) = app.console.session_closed(&who.tenant, who.id.as_str()) else { return };
    for queue in snapshot::queues_of(app, who) {
        let _ = app.console.presence.set(&who.tenant, &queue, who.id.clone(), false, availability.capacity).await;
    }
    console.feed.push_ephemeral(presence_frame(who.id.as_str(), availability), Audience::Everyone);
}
