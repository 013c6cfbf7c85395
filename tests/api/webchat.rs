//! The web-chat channel over a real WebSocket (`/ws/widget`): a customer's message goes through
//! triage and the queues like WhatsApp's, the answer comes back on the socket, an agent's reply
//! from the console reaches the customer, a reload gets the conversation back, a resent message
//! counts once, and bad connections are refused before the upgrade.

use crate::helpers::*;
use crate::ws_client::{Ws, open, refused_status};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_actors::domain::{ChannelKind, ChannelRef, ConversationId, TenantId};
use switchboard_actors::state::Status;

const VISITOR: &str = "3f6c2a1e-9b7d-4e25-a0c1-5d8e7f901234";

fn conversation(visitor: &str) -> ConversationId {
    ConversationId::for_contact(&TenantId::new("demo"), &ChannelRef::new(ChannelKind::WebChat, "site"), visitor)
}

async fn widget(app: &TestApp, visitor: &str) -> (Ws, Value) {
    let mut ws = open(&app.url, &format!("/ws/widget?tenant=demo&visitor={visitor}&name=Maria%20Souza")).await.unwrap();
    let welcome = ws.next().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome)
}

/// Sends a message and waits for its ack; returns the frames pushed meanwhile.
async fn say(ws: &mut Ws, client_id: &str, text: &str) -> Vec<Value> {
    ws.send(json!({ "type": "message", "client_id": client_id, "text": text })).await;
    let (ack, pushed) = ws.until("ack", |f| f["client_id"] == client_id).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    pushed
}

#[actix_web::test]
async fn a_web_customer_goes_through_triage_to_an_agent_and_gets_the_reply() {
    let app = spawn_app_with(Some("console.toml"), &[]).await;
    let (mut customer, welcome) = widget(&app, VISITOR).await;
    assert_eq!(welcome["title"], "Loja Demo");
    assert_eq!(welcome["conversation_id"], conversation(VISITOR).as_str());
    assert_eq!(welcome["messages"], json!([]));

    say(&mut customer, "msg-00000001", "Oi, quero comprar um tênis").await;
    let (menu, _) = customer.until("triage menu", |f| f["type"] == "message" && f["options"].is_array()).await;
    assert_eq!(menu["from"], "business");
    let vendas =
        menu["options"].as_array().unwrap().iter().find(|o| o["title"] == "Vendas").expect("a Vendas button").clone();
    customer
        .send(json!({ "type": "choice", "client_id": "msg-00000002", "id": vendas["id"], "title": "Vendas" }))
        .await;
    let (notice, _) = customer
        .until("queue notice", |f| f["type"] == "message" && f["text"].as_str().unwrap().contains("fila"))
        .await;
    assert!(notice["text"].as_str().unwrap().contains("vendas"), "{notice}");

    // The agent's console sees a web-chat conversation like any other.
    let mut ana = open(&app.url, &format!("/ws/console?token={ANA_TOKEN}")).await.unwrap();
    ana.next().await;
    let snapshot = ana.next().await;
    let listed = snapshot["conversations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == conversation(VISITOR).as_str())
        .cloned();
    let listed = listed.expect("the web customer waits in vendas");
    assert_eq!(
        (listed["channel"].as_str(), listed["contact"]["name"].as_str()),
        (Some("webchat.site"), Some("Maria Souza"))
    );

    // Customer typing reaches the console; agent typing reaches the customer.
    customer.send(json!({ "type": "typing", "on": true })).await;
    let (typing, _) = ana.until("customer typing", |f| f["type"] == "typing").await;
    assert_eq!((typing["who"].as_str(), typing["on"].as_bool()), (Some("customer"), Some(true)));
    ana.command("on", json!({ "type": "set_availability", "available": true })).await;
    let (accepted, _) =
        ana.command("a", json!({ "type": "accept", "conversation_id": conversation(VISITOR).as_str() })).await;
    assert_eq!(accepted["conversation"]["agent"], "ana", "{accepted}");
    ana.command("t", json!({ "type": "typing", "conversation_id": conversation(VISITOR).as_str(), "on": true })).await;
    customer.until("agent typing", |f| f["type"] == "typing" && f["on"] == true).await;
    let (sent, _) = ana
        .command("r", json!({ "type": "reply", "conversation_id": conversation(VISITOR).as_str(), "text": "Olá! Aqui é a Ana, posso ajudar?" }))
        .await;
    assert_eq!(sent["type"], "ack", "{sent}");
    customer
        .until("the agent's reply", |f| f["type"] == "message" && f["text"] == "Olá! Aqui é a Ana, posso ajudar?")
        .await;

    // A reload: the same visitor gets the whole conversation back.
    customer.close().await;
    let (_again, welcome) = widget(&app, VISITOR).await;
    let texts: Vec<&str> =
        welcome["messages"].as_array().unwrap().iter().map(|m| m["text"].as_str().unwrap()).collect();
    assert_eq!(texts.first(), Some(&"Oi, quero comprar um tênis"), "{texts:?}");
    assert_eq!(texts.last(), Some(&"Olá! Aqui é a Ana, posso ajudar?"), "{texts:?}");
    assert_eq!(welcome["messages"][0]["from"], "customer");
}

#[actix_web::test]
async fn a_resent_message_counts_once_and_every_tab_of_the_customer_gets_the_answers() {
    let app = spawn_app_with(Some("console.toml"), &[("TENANTS__DEMO__ENTRY", "vendas")]).await;
    let (mut tab1, _) = widget(&app, VISITOR).await;
    let (mut tab2, _) = widget(&app, VISITOR).await;
    let mut pushed = [say(&mut tab1, "msg-resent-1", "Oi").await, Vec::new()];
    // The page lost the ack (a reconnect) and sends the same message again.
    pushed[1] = say(&mut tab2, "msg-resent-1", "Oi").await;
    for (tab, pushed) in [&mut tab1, &mut tab2].into_iter().zip(&pushed) {
        if !pushed.iter().any(|f| f["type"] == "message") {
            tab.until("queue notice", |f| f["type"] == "message").await;
        }
    }
    let id = conversation(VISITOR);
    let state = eventually(Duration::from_secs(5), || async {
        app.state_of(&id).await.filter(|s| matches!(s.status, Status::Queued { .. }))
    })
    .await
    .unwrap();
    let from_customer =
        state.history.iter().filter(|e| e.author == switchboard_actors::domain::Author::Customer).count();
    assert_eq!(from_customer, 1, "the resend was recognised");

    // Bad frames are refused and the socket stays usable.
    let is_error = |f: &Value| f["type"] == "error";
    tab1.send_raw("hello").await;
    assert_eq!(tab1.until("an error", is_error).await.0["code"], "bad_request");
    tab1.send(json!({ "type": "message", "client_id": "short", "text": "x" })).await;
    assert_eq!(tab1.until("an error", is_error).await.0["code"], "bad_request");
    tab1.send(json!({ "type": "message", "client_id": "msg-empty-01", "text": "   " })).await;
    assert_eq!(tab1.until("an error", is_error).await.0["code"], "bad_request");
    say(&mut tab1, "msg-after-bad", "Ainda estou aqui").await;

    // A message over the widget's 16 KiB limit ends the connection and is not taken.
    let settled = eventually(Duration::from_secs(5), || async {
        app.state_of(&id).await.filter(|s| s.history.iter().any(|e| &*e.text == "Ainda estou aqui"))
    });
    let before = settled.await.expect("the last message was handled").seq;
    tab1.send(json!({ "type": "message", "client_id": "msg-too-big", "text": "x".repeat(20 * 1024) })).await;
    assert!(tab1.ends().await, "the server closes the connection");
    assert_eq!(app.state_of(&id).await.unwrap().seq, before);
}

#[actix_web::test]
async fn bad_widget_connections_are_refused_before_the_upgrade() {
    let app = spawn_app(&[]).await;
    assert_eq!(refused_status(&app.url, "/ws/widget").await, 400);
    assert_eq!(refused_status(&app.url, "/ws/widget?tenant=demo&visitor=short").await, 400);
    assert_eq!(
        refused_status(&app.url, &format!("/ws/widget?tenant=demo&visitor={VISITOR}&name={}", "x".repeat(81))).await,
        400
    );
    assert_eq!(refused_status(&app.url, &format!("/ws/widget?tenant=nobody&visitor={VISITOR}")).await, 404);
    assert!(app.state_of(&conversation(VISITOR)).await.is_none(), "nothing was created");
}
