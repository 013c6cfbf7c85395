//! Lifecycle: passivation and rehydration, close and reopen as a new ticket.

use crate::helpers::*;
use std::sync::atomic::Ordering;
use std::time::Duration;
use switchboard_actors::domain::Author;
use switchboard_actors::event::Input;
use switchboard_actors::state::Status;

#[actix_web::test]
async fn idle_conversation_passivates_and_comes_back_with_its_state() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai"), ("TENANTS__DEMO__IDLE_TIMEOUT_SECS", "1")]).await;
    let from = "5511955556666";
    app.wa_text(from, "wamid.P-1", "primeira visita").await;
    app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    let gone =
        eventually(Duration::from_secs(5), || async { (app.hub.live_conversations().await == 0).then_some(()) }).await;
    assert!(gone.is_some(), "actor passivated");
    assert_eq!(app.hub.metrics().passivations.load(Ordering::Relaxed), 1);
    app.wa_text(from, "wamid.P-2", "voltei").await;
    app.graph.wait_for_sent(2, Duration::from_secs(5)).await;
    assert_eq!(app.hub.metrics().rehydrations.load(Ordering::Relaxed), 1);
    let state = app.state_of(&app.wa_conversation(from)).await.unwrap();
    let history: Vec<&str> = state.history.iter().map(|e| &*e.text).collect();
    assert_eq!(history, vec!["primeira visita", "echo: primeira visita", "voltei", "echo: voltei"]);
    assert_eq!(state.ticket, 1, "same ticket after rehydration");
    // The model saw the whole conversation, including what happened before passivation.
    let last = app.openai.requests().last().unwrap().body["messages"].clone();
    let contents: Vec<&str> = last.as_array().unwrap()[1..].iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, vec!["primeira visita", "echo: primeira visita", "voltei"]);
}

#[actix_web::test]
async fn a_message_after_close_opens_a_new_ticket() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    let from = "5511977778888";
    app.wa_text(from, "wamid.C-1", "oi").await;
    app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    let conv = app.wa_conversation(from);
    assert!(app.command(&conv, Input::Close { by: Author::System }).await.is_ok());
    assert_eq!(app.state_of(&conv).await.unwrap().status, Status::Closed);
    app.wa_text(from, "wamid.C-2", "oi de novo").await;
    app.graph.wait_for_sent(2, Duration::from_secs(5)).await;
    let state = app.state_of(&conv).await.unwrap();
    assert_eq!((state.ticket, state.status), (2, Status::Bot));
    assert_eq!(
        app.wa_texts_to(from).last().unwrap(),
        "echo: oi de novo",
        "the new ticket answers only its own message"
    );
}
