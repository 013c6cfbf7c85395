//! Telegram: triage menu with an inline keyboard, an option leads to a queue, an online agent
//! with capacity gets the conversation.

use crate::helpers::*;
use std::time::Duration;
use switchboard_actors::domain::AgentId;
use switchboard_actors::state::Status;
use switchboard_load_tests::payloads;

const CHAT: i64 = 4242;

#[actix_web::test]
async fn text_then_menu_option_queues_and_assigns_to_an_agent_with_capacity() {
    let app = spawn_app(&[]).await;
    app.agent_online("vendas", "ana", 0).await; // online but no room
    app.agent_online("vendas", "bia", 2).await;
    assert_eq!(app.post_tg(&payloads::tg_text(100001, CHAT, "oi")).await.status(), 200);
    let menu = app.telegram.wait_for_sent(1, Duration::from_secs(5)).await;
    assert_eq!(menu[0].body["chat_id"], CHAT);
    assert!(menu[0].body["text"].as_str().unwrap().contains("1. Vendas"), "{}", menu[0].body);
    let keyboard = &menu[0].body["reply_markup"]["inline_keyboard"];
    assert_eq!(keyboard[0][0]["callback_data"], "1");
    assert_eq!(keyboard[2][0]["text"], "Assistente virtual");
    let conv = app.tg_conversation(CHAT);
    assert!(matches!(app.state_of(&conv).await.unwrap().status, Status::Triage { .. }));

    // The customer taps "Vendas".
    assert_eq!(app.post_tg(&payloads::tg_callback(100002, CHAT, "1")).await.status(), 200);
    let state = eventually(Duration::from_secs(5), || async {
        app.state_of(&conv).await.filter(|s| matches!(s.status, Status::Assigned { .. }))
    })
    .await
    .expect("assigned");
    assert_eq!(state.status, Status::Assigned { queue: "vendas".into(), agent: AgentId::new("bia") });
    let sent = app.telegram.wait_for_sent(3, Duration::from_secs(3)).await;
    let texts: Vec<&str> = sent.iter().map(|r| r.body["text"].as_str().unwrap_or_default()).collect();
    assert!(texts[1].contains("fila de vendas, posição 1"), "{texts:?}");
    assert!(texts[2].contains("bia"), "{texts:?}");
    assert_eq!(app.telegram.calls("answerCallbackQuery").len(), 1, "spinner stopped");
    let journal = app.hub.journal(&conv, 1).await.unwrap();
    let kinds: Vec<String> =
        journal.iter().map(|e| serde_json::to_value(e).unwrap()["type"].as_str().unwrap().to_owned()).collect();
    assert!(kinds.contains(&"routing.handoff.requested".to_owned()), "{kinds:?}");
    assert!(journal.iter().all(|e| !e.trace_id.is_empty()), "every event carries a trace id");
}

#[actix_web::test]
async fn invalid_menu_answers_repeat_the_menu_then_go_to_the_default_queue() {
    let app = spawn_app(&[("TENANTS__DEMO__TRIAGE__MAX_INVALID", "2")]).await;
    app.post_tg(&payloads::tg_text(200001, CHAT, "oi")).await;
    app.telegram.wait_for_sent(1, Duration::from_secs(5)).await;
    app.post_tg(&payloads::tg_text(200002, CHAT, "banana")).await;
    let sent = app.telegram.wait_for_sent(2, Duration::from_secs(5)).await;
    let repeat = sent[1].body["text"].as_str().unwrap();
    assert!(repeat.starts_with("Desculpe, não entendi") && repeat.contains("2. Suporte"), "{repeat}");
    app.post_tg(&payloads::tg_text(200003, CHAT, "laranja")).await;
    let conv = app.tg_conversation(CHAT);
    let state = eventually(Duration::from_secs(5), || async {
        app.state_of(&conv).await.filter(|s| matches!(s.status, Status::Queued { .. }))
    })
    .await;
    assert_eq!(state.unwrap().status, Status::Queued { queue: "suporte".into() });
}

#[actix_web::test]
async fn duplicate_update_id_is_handled_once() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    let body = payloads::tg_text(300001, CHAT, "olá");
    let (a, b) = tokio::join!(app.post_tg(&body), app.post_tg(&body));
    // Both copies are acknowledged, or the one racing the first copy's publish is asked to retry.
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert!(statuses == [200, 200] || statuses == [200, 503], "{statuses:?}");
    assert_eq!(app.post_tg(&body).await.status(), 200, "Telegram's later redelivery is acknowledged");
    app.telegram.wait_for_sent(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(app.telegram.sent().len(), 1);
    assert_eq!(app.telegram.sent()[0].body["text"], "echo: olá");
}

#[actix_web::test]
async fn flood_control_retry_after_is_honoured_and_the_reply_arrives_once() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    app.telegram.flood_next(1, 1);
    let started = std::time::Instant::now();
    app.post_tg(&payloads::tg_text(400001, CHAT, "oi")).await;
    let sent = app.telegram.wait_for_sent(1, Duration::from_secs(5)).await;
    assert_eq!(sent.len(), 1);
    assert!(started.elapsed() >= Duration::from_secs(1), "waited retry_after before resending");
    assert_eq!(app.telegram.calls("sendMessage").len(), 2, "one refused attempt, one delivered");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.telegram.sent().len(), 1);
}
