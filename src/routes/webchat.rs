//! `GET /ws/widget`: the web-chat channel's ingress and egress (protocol:
//! `docs/console-protocol.md`). A customer's messages enter the hub exactly like a WhatsApp
//! webhook's (dedup on the client's message id, then the bus), and the hub's messages to the
//! customer come back through the channel's outbound (`WebChatDesk`) to every open tab.

use crate::app::AppState;
use crate::config::WebChatEndpoint;
use crate::console::feed::Audience;
use crate::http_error::ApiError;
use crate::ws::{self, Heartbeat, Incoming};
use actix_web::{HttpRequest, HttpResponse, web};
use actix_ws::Session;
use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_actors::domain::{
    Author, ChannelKind, Contact, Content, ConversationId, InboundMessage, OutboundContent, ReplyAddress, TenantId,
};
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::hub::Ingested;
use switchboard_adapters::webchat::WidgetPush;

/// Largest frame a customer may send.
const MAX_FRAME: usize = 16 * 1024;
/// Longest message text.
const MAX_TEXT: usize = 4096;

#[derive(Deserialize)]
struct ConnectQuery {
    tenant: String,
    visitor: String,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
enum Frame {
    Message { client_id: String, text: String },
    Choice { client_id: String, id: String, title: String },
    Typing { on: bool },
}

/// A customer's chat: who, where, and which conversation.
struct Chat {
    app: web::Data<AppState>,
    tenant: TenantId,
    visitor: String,
    name: Option<String>,
    id: ConversationId,
}

fn valid_id(s: &str) -> bool {
    (8..=64).contains(&s.len()) && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Checks the query (400/404 before the upgrade), then serves the customer's socket.
pub async fn connect(req: HttpRequest, body: web::Payload, app: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let q = web::Query::<ConnectQuery>::from_query(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("query string: {e}")))?
        .into_inner();
    if !valid_id(&q.visitor) {
        return Err(ApiError::BadRequest("visitor: 8 to 64 characters of A-Z, a-z, 0-9, - and _".into()));
    }
    let name = q.name.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    if name.as_ref().is_some_and(|n| n.chars().count() > 80) {
        return Err(ApiError::BadRequest("name: at most 80 characters".into()));
    }
    let tenant = TenantId::new(&q.tenant);
    let web = app
        .channels
        .webchat
        .get(&tenant)
        .ok_or_else(|| ApiError::NotFound(format!("no web chat for tenant {}", q.tenant)))?;
    let id = ConversationId::for_contact(&tenant, &web.channel, &q.visitor);
    let (response, session, stream) = actix_ws::handle(&req, body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let chat = Chat { app: app.clone(), tenant, visitor: q.visitor, name, id };
    actix_web::rt::spawn(serve(chat, session, stream));
    Ok(response)
}

impl Chat {
    fn endpoint(&self) -> &WebChatEndpoint {
        // Checked before the upgrade; the channel index never changes at run time.
        &self.app.channels.webchat[&self.tenant]
    }

    async fn welcome(&self) -> String {
        let state = self.app.hub.conversation(&self.tenant, &self.id).await;
        let messages: Vec<Value> = state
            .iter()
            .flat_map(|s| s.history.iter())
            .map(|e| {
                let from = if e.author == Author::Customer { "customer" } else { "business" };
                json!({ "seq": e.seq, "from": from, "text": &*e.text })
            })
            .collect();
        json!({
            "type": "welcome",
            "conversation_id": self.id.as_str(),
            "title": self.endpoint().title,
            "messages": messages,
        })
        .to_string()
    }

    /// Hands a customer's message to the hub; the answer frame says whether it is safe there.
    async fn receive(&self, client_id: String, content: Content) -> String {
        let refuse = |code: &str, message: String| {
            json!({ "type": "error", "client_id": client_id, "code": code, "message": message }).to_string()
        };
        if !valid_id(&client_id) {
            return refuse("bad_request", "client_id: 8 to 64 characters of A-Z, a-z, 0-9, - and _".into());
        }
        let empty = match &content {
            Content::Text { body } => body.trim().is_empty() || body.chars().count() > MAX_TEXT,
            Content::Choice { id, .. } => id.is_empty(),
            _ => true,
        };
        if empty {
            return refuse("bad_request", format!("text: 1 to {MAX_TEXT} characters"));
        }
        let channel = self.endpoint().channel.clone();
        let now = self.app.hub.clock().now_ms();
        let provider_id = format!("web-{client_id}");
        let message = InboundMessage {
            provider_id: provider_id.clone(),
            contact: Contact { key: self.visitor.clone(), name: self.name.clone() },
            reply_to: ReplyAddress { channel, recipient: self.visitor.clone() },
            content,
            sent_at_ms: now,
            callback_query_id: None,
        };
        let key = format!("{}:{}:{}:{provider_id}", self.tenant, ChannelKind::WebChat.as_str(), self.visitor);
        let trace = uuid::Uuid::now_v7().to_string();
        let envelope = Envelope::new(self.tenant.clone(), self.id.clone(), trace, now, Input::MessageReceived(message))
            .with_idempotency_key(key.clone());
        match self.app.hub.ingest(envelope, Some(key)).await {
            Ok(Ingested::Accepted | Ingested::Duplicate) => {
                json!({ "type": "ack", "client_id": client_id }).to_string()
            }
            Err(e) => refuse("unavailable", format!("{e}; send it again")),
        }
    }

    /// Tells the consoles that may see the conversation that the customer is typing.
    async fn typing(&self, on: bool) {
        let Some(state) = self.app.hub.conversation(&self.tenant, &self.id).await else { return };
        let Some(feed) = self.app.console.tenant(&self.tenant) else { return };
        let frame = json!({ "type": "typing", "conversation_id": self.id.as_str(), "who": "customer", "on": on });
        feed.push_ephemeral(frame.to_string(), Audience::Statuses(vec![state.status.clone()]));
    }
}

fn push_frame(push: WidgetPush) -> String {
    match push {
        WidgetPush::Message { id, content } => {
            let mut frame = json!({ "type": "message", "id": id, "from": "business", "text": content.body() });
            if let OutboundContent::Menu { options, .. } = &content {
                frame["options"] = options.iter().map(|o| json!({ "id": o.id, "title": o.title })).collect();
            }
            frame.to_string()
        }
        WidgetPush::Typing { on } => json!({ "type": "typing", "on": on }).to_string(),
    }
}

async fn answer(chat: &Chat, text: &str) -> Option<String> {
    let frame = match serde_json::from_str::<Frame>(text) {
        Ok(frame) => frame,
        Err(e) => {
            return Some(json!({ "type": "error", "code": "bad_request", "message": e.to_string() }).to_string());
        }
    };
    match frame {
        Frame::Message { client_id, text } => Some(chat.receive(client_id, Content::Text { body: text }).await),
        Frame::Choice { client_id, id, title } => Some(chat.receive(client_id, Content::Choice { id, title }).await),
        Frame::Typing { on } => {
            chat.typing(on).await;
            None
        }
    }
}

async fn serve(chat: Chat, mut session: Session, stream: actix_ws::MessageStream) {
    let mut stream = ws::frames(stream, MAX_FRAME);
    // Registered before the welcome is read, so nothing sent in between is lost. A message sent
    // in that very instant may come twice (in the welcome and pushed); a missed one is worse.
    let (_guard, mut pushes) = chat.endpoint().desk.connect(&chat.visitor);
    let mut alive = session.text(chat.welcome().await).await.is_ok();
    let mut heartbeat = Heartbeat::standard();
    while alive {
        tokio::select! {
            frame = stream.recv() => match ws::incoming(frame, &mut session, &mut heartbeat).await {
                Incoming::Text(text) => {
                    if let Some(reply) = answer(&chat, &text).await {
                        alive = session.text(reply).await.is_ok();
                    }
                }
                Incoming::Binary | Incoming::Control => {}
                Incoming::Gone => break,
            },
            push = pushes.recv() => match push {
                Some(push) => alive = session.text(push_frame(push)).await.is_ok(),
                // The desk dropped this socket (its backlog was full): the page reconnects.
                None => break,
            },
            live = heartbeat.due() => {
                if !live {
                    break;
                }
                alive = session.ping(b"").await.is_ok();
            }
        }
    }
    let _ = session.close(None).await;
}
