//! Order and ownership: rapid messages keep their order and are answered together; a reply
//! computed before a handoff is dropped; many slow conversations do not slow the webhooks.

use crate::helpers::*;
use std::time::{Duration, Instant};
use switchboard_actors::event::{Input, TransferTarget};
use switchboard_actors::state::Status;
use switchboard_load_tests::fakes::openai::Mode;
use switchboard_load_tests::payloads;

#[actix_web::test]
async fn rapid_messages_keep_order_and_wait_for_the_next_turn() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    app.openai.set_mode(Mode::Echo { delay: Duration::from_millis(400) });
    let from = "5511911112222";
    for (i, text) in ["primeira", "segunda", "terceira"].iter().enumerate() {
        assert_eq!(app.wa_text(from, &format!("wamid.R-{i}"), text).await.status(), 200);
    }
    app.graph.wait_for_sent(2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Turn 1 answered the first message; the two that arrived while the model was thinking
    // were answered together in turn 2 — no reply per fragment.
    assert_eq!(app.wa_texts_to(from), vec!["echo: primeira".to_owned(), "echo: segunda\nterceira".to_owned()]);
    let history: Vec<String> =
        app.state_of(&app.wa_conversation(from)).await.unwrap().history.iter().map(|e| e.text.to_string()).collect();
    assert_eq!(history, vec!["primeira", "segunda", "terceira", "echo: primeira", "echo: segunda\nterceira"]);
    // The second turn showed the model its first answer before the two pending messages.
    let turn2 = &app.openai.requests()[1].body["messages"];
    let contents: Vec<&str> = turn2.as_array().unwrap()[1..].iter().map(|m| m["content"].as_str().unwrap()).collect();
    assert_eq!(contents, vec!["primeira", "echo: primeira", "segunda", "terceira"]);
}

#[actix_web::test]
async fn handoff_while_the_ai_is_thinking_drops_the_stale_reply() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    app.openai.set_mode(Mode::Echo { delay: Duration::from_millis(800) });
    let from = "5511933334444";
    app.wa_text(from, "wamid.H-1", "quero falar com alguém").await;
    app.openai.wait_for_requests(1, Duration::from_secs(3)).await;
    let conv = app.wa_conversation(from);
    let moved = app.command(&conv, Input::Transfer { target: TransferTarget::Queue("vendas".into()) }).await;
    assert!(moved.is_ok(), "{moved:?}");
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let texts = app.wa_texts_to(from);
    assert!(!texts.iter().any(|t| t.starts_with("echo:")), "the bot must not talk over the handoff: {texts:?}");
    assert!(texts.iter().any(|t| t.contains("fila de vendas")), "{texts:?}");
    assert_eq!(app.state_of(&conv).await.unwrap().status, Status::Queued { queue: "vendas".into() });
    assert_eq!(app.hub.metrics().stale_ai_replies_dropped.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[actix_web::test]
async fn a_thousand_conversations_against_a_slow_model_are_all_answered_once() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai"), ("TENANTS__DEMO__AI__TIMEOUT_MS", "10000")]).await;
    app.openai.set_mode(Mode::Echo { delay: Duration::from_secs(2) });
    let started = Instant::now();
    let mut slowest_ack = Duration::ZERO;
    let posts = (0..1000).map(|i| {
        let app = &app;
        async move {
            let from = format!("55119{:08}", i);
            let t = Instant::now();
            let res = app.post_wa(&payloads::wa_text(PNID, &from, &format!("wamid.K-{i}"), &format!("msg {i}"))).await;
            (res.status(), t.elapsed())
        }
    });
    for (status, took) in futures_util::future::join_all(posts).await {
        assert_eq!(status, 200);
        slowest_ack = slowest_ack.max(took);
    }
    // Acks do not wait for the model: every webhook was acknowledged before any answer could exist.
    assert!(slowest_ack < Duration::from_secs(2), "an ack waited for the model: {slowest_ack:?}");
    let sent = app.graph.wait_for_sent(1000, Duration::from_secs(30)).await;
    assert_eq!(sent.len(), 1000, "all answered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut bodies: Vec<String> =
        app.graph.sent().iter().map(|r| r.body["text"]["body"].as_str().unwrap().to_owned()).collect();
    assert_eq!(bodies.len(), 1000, "no second reply arrived later");
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 1000, "each conversation got its own answer, once");
    assert!(app.openai.max_in_flight() > 100, "model calls overlap instead of queueing behind each other");
    assert!(started.elapsed() < Duration::from_secs(30));
}
