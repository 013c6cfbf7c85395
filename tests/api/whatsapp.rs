//! WhatsApp in and out: AI replies, handshake, dedup, receipts, the 24-hour window, fallbacks.

use crate::helpers::*;
use std::time::Duration;
use switchboard_actors::conversation::CommandError;
use switchboard_actors::domain::{AgentId, DeliveryState};
use switchboard_actors::event::Input;
use switchboard_actors::state::Status;
use switchboard_load_tests::fakes::openai::Mode;
use switchboard_load_tests::payloads;

const ADA: &str = "5511987654321";

#[actix_web::test]
async fn text_gets_an_ai_reply_at_the_graph_api_with_auth_and_shape() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    assert!(app.warnings.is_empty(), "every channel and the model are configured: {:?}", app.warnings);
    let res = app.wa_text(ADA, "wamid.IN-1", "Oi, qual o horário?").await;
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("x-trace-id").is_some(), "trace id echoed");
    let sent = app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    assert_eq!(sent.len(), 1);
    let req = &sent[0];
    assert_eq!(req.path, format!("/v21.0/{PNID}/messages"));
    assert_eq!(req.header("authorization"), Some(format!("Bearer {WA_TOKEN}").as_str()));
    assert_eq!(
        req.body,
        serde_json::json!({"messaging_product":"whatsapp","recipient_type":"individual","to":ADA,"type":"text","text":{"preview_url":false,"body":"echo: Oi, qual o horário?"}})
    );
    // The model saw the tenant's system prompt first and the customer's words.
    let llm = app.openai.requests();
    assert_eq!(llm[0].body["messages"][0]["role"], "system");
    assert_eq!(llm[0].body["messages"][1]["content"], "Oi, qual o horário?");
    assert_eq!(llm[0].header("authorization"), Some("Bearer sk-test"));
    let state = eventually(Duration::from_secs(2), || async {
        app.state_of(&app.wa_conversation(ADA))
            .await
            .filter(|s| s.outbound.iter().any(|o| o.provider_message_id.is_some()))
    })
    .await
    .expect("send recorded");
    assert_eq!(state.status, Status::Bot);
    assert_eq!(state.outbound[0].state, Some(DeliveryState::Sent));
    // The send's result went straight to the running conversation, not round the bus.
    let counters = app.hub.metrics().counters();
    let count = |name: &str| counters.iter().find(|(n, ..)| *n == name).map(|(.., v)| *v);
    assert_eq!((count("send_results_direct"), count("send_results_via_bus")), (Some(1), Some(0)));
}

#[actix_web::test]
async fn handshake_echoes_challenge_only_with_the_verify_token() {
    let app = spawn_app(&[]).await;
    let ok = app
        .http
        .get(format!(
            "{}/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token={WA_VERIFY}",
            app.url
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "1158201444");
    let bad = app
        .http
        .get(format!("{}/webhooks/whatsapp?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);
}

#[actix_web::test]
async fn duplicate_and_concurrent_duplicate_webhooks_give_exactly_one_reply() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    let body = payloads::wa_text(PNID, ADA, "wamid.DUP-1", "pedido 42");
    // Ten copies at once (Meta retrying while the first is in flight), then one late copy.
    // A copy that races the first one's publish is told to retry (503 + Retry-After): only a
    // copy whose event is known to be on the bus may be answered 200 as a duplicate.
    let posts: Vec<_> = (0..10).map(|_| app.post_wa(&body)).collect();
    let mut ok = 0;
    for res in futures_util::future::join_all(posts).await {
        match res.status().as_u16() {
            200 => ok += 1,
            503 => assert_eq!(res.headers().get("retry-after").unwrap(), "1"),
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(ok >= 1);
    assert_eq!(app.post_wa(&body).await.status(), 200, "a late copy is a plain duplicate");
    app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.wa_texts_to(ADA), vec!["echo: pedido 42".to_owned()]);
    assert_eq!(app.openai.requests().len(), 1, "one model call");
    let w = &app.state.webhooks;
    assert_eq!(w.get("whatsapp", "accepted"), 1);
    assert_eq!(w.get("whatsapp", "duplicate") + w.get("whatsapp", "busy"), 10);
}

#[actix_web::test]
async fn status_webhooks_move_delivery_state_forward_only() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    app.wa_text(ADA, "wamid.IN-S", "oi").await;
    app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    let conv = app.wa_conversation(ADA);
    eventually(Duration::from_secs(2), || async {
        app.state_of(&conv).await.filter(|s| s.outbound[0].provider_message_id.is_some())
    })
    .await
    .unwrap();
    let out_id = app.state_of(&conv).await.unwrap().outbound[0].provider_message_id.clone().unwrap();
    for status in ["read", "delivered"] {
        let res = app.post_wa(&payloads::wa_statuses(PNID, &out_id, status, ADA)).await;
        assert_eq!(res.status(), 200);
    }
    let state = eventually(Duration::from_secs(2), || async {
        app.state_of(&conv).await.filter(|s| s.outbound[0].state == Some(DeliveryState::Read))
    })
    .await;
    assert!(state.is_some(), "read wins over a late delivered");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.state_of(&conv).await.unwrap().outbound[0].state, Some(DeliveryState::Read));
}

#[actix_web::test]
async fn agent_reply_outside_the_24_hour_window_is_refused() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "vendas")]).await;
    app.agent_online("vendas", "ana", 3).await;
    app.wa_text(ADA, "wamid.W-1", "quero comprar").await;
    let conv = app.wa_conversation(ADA);
    eventually(Duration::from_secs(3), || async {
        app.state_of(&conv).await.filter(|s| matches!(s.status, Status::Assigned { .. }))
    })
    .await
    .expect("assigned to ana");
    let reply = |body: &str| Input::AgentReply { agent: AgentId::new("ana"), body: body.into() };
    assert_eq!(
        app.command(&conv, reply("Claro! Qual produto?")).await,
        Ok(switchboard_actors::conversation::Outcome::Applied)
    );
    app.clock.advance(Duration::from_secs(25 * 3600));
    assert_eq!(app.command(&conv, reply("Ainda está aí?")).await, Err(CommandError::WindowClosed));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let texts = app.wa_texts_to(ADA);
    assert!(texts.contains(&"Claro! Qual produto?".to_owned()), "{texts:?}");
    assert!(!texts.iter().any(|t| t == "Ainda está aí?"), "refused reply never sent");
    // Another agent cannot answer someone else's conversation.
    app.wa_text(ADA, "wamid.W-2", "sim").await;
    let other = Input::AgentReply { agent: AgentId::new("bia"), body: "oi".into() };
    assert_eq!(app.command(&conv, other).await, Err(CommandError::NotAssignedToYou));
}

#[actix_web::test]
async fn model_down_sends_fallback_and_hands_off_to_the_default_queue() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    app.openai.set_mode(Mode::Down);
    app.wa_text(ADA, "wamid.D-1", "oi").await;
    let conv = app.wa_conversation(ADA);
    let state = eventually(Duration::from_secs(5), || async {
        app.state_of(&conv).await.filter(|s| matches!(s.status, Status::Queued { .. }))
    })
    .await
    .expect("handed off");
    assert_eq!(state.status, Status::Queued { queue: "suporte".into() });
    app.graph.wait_for_sent(2, Duration::from_secs(3)).await;
    let texts = app.wa_texts_to(ADA);
    assert!(texts[0].starts_with("Nosso assistente está indisponível"), "{texts:?}");
    assert!(texts[1].contains("fila") || texts[1].contains("horário"), "queue or out-of-hours notice: {texts:?}");
}

#[actix_web::test]
async fn slow_model_times_out_into_fallback_and_handoff() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai"), ("TENANTS__DEMO__AI__TIMEOUT_MS", "300")]).await;
    app.openai.set_mode(Mode::Echo { delay: Duration::from_secs(3) });
    app.wa_text(ADA, "wamid.SLOW-1", "oi").await;
    let conv = app.wa_conversation(ADA);
    let state = eventually(Duration::from_secs(3), || async {
        app.state_of(&conv).await.filter(|s| matches!(s.status, Status::Queued { .. }))
    })
    .await;
    assert!(state.is_some(), "fallback handoff after the timeout");
    // Wait until the model would have answered: its late answer must never be sent.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let texts = app.wa_texts_to(ADA);
    assert!(texts[0].starts_with("Nosso assistente está indisponível"), "{texts:?}");
    assert!(!texts.iter().any(|t| t.starts_with("echo:")), "the late model answer is never sent: {texts:?}");
    assert_eq!(app.hub.metrics().llm_fallbacks.load(std::sync::atomic::Ordering::Relaxed), 1);
}

#[actix_web::test]
async fn triage_menu_goes_out_as_reply_buttons_and_a_button_reply_routes() {
    let app = spawn_app(&[]).await;
    app.wa_text(ADA, "wamid.T-1", "oi").await;
    let menu = app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    let interactive = &menu[0].body["interactive"];
    assert_eq!(menu[0].body["type"], "interactive");
    assert_eq!(interactive["type"], "button", "three options fit in reply buttons");
    let buttons = interactive["action"]["buttons"].as_array().unwrap();
    assert_eq!(buttons.len(), 3);
    assert_eq!(buttons[2]["reply"], serde_json::json!({"id":"3","title":"Assistente virtual"}));
    let tap = payloads::wa_interactive_button(PNID, ADA, "wamid.T-2", "3", "Assistente virtual");
    assert_eq!(app.post_wa(&tap).await.status(), 200);
    app.graph.wait_for_sent(2, Duration::from_secs(5)).await;
    assert_eq!(app.state_of(&app.wa_conversation(ADA)).await.unwrap().status, Status::Bot);
    app.wa_text(ADA, "wamid.T-3", "qual o prazo de entrega?").await;
    app.graph.wait_for_sent(3, Duration::from_secs(5)).await;
    assert_eq!(app.wa_texts_to(ADA).last().unwrap(), "echo: qual o prazo de entrega?");
}

#[actix_web::test]
async fn both_forms_of_a_brazilian_mobile_are_one_conversation() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    app.wa_text("551187654321", "wamid.N-1", "sem o nove").await;
    app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    app.wa_text("5511987654321", "wamid.N-2", "com o nove").await;
    app.graph.wait_for_sent(2, Duration::from_secs(5)).await;
    let state = app.state_of(&app.wa_conversation("5511987654321")).await.unwrap();
    assert_eq!(state.history.iter().filter(|e| e.author == switchboard_actors::domain::Author::Customer).count(), 2);
    assert_eq!(app.wa_conversation("551187654321"), app.wa_conversation("5511987654321"));
    let to: Vec<String> = app.graph.sent().iter().map(|r| r.body["to"].as_str().unwrap().to_owned()).collect();
    assert_eq!(to, vec!["551187654321", "5511987654321"], "replies go to the wa_id WhatsApp gave");
}

#[actix_web::test]
async fn graph_throttling_is_retried_and_permanent_errors_are_recorded() {
    use switchboard_load_tests::fakes::whatsapp::Failure;
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai")]).await;
    app.graph.fail_next(1, Failure::Throughput);
    app.wa_text(ADA, "wamid.F-1", "um").await;
    app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    assert_eq!(app.graph.requests().len(), 2, "one throttled attempt, then the send");
    assert_eq!(app.wa_texts_to(ADA), vec!["echo: um"]);
    app.graph.fail_next(1, Failure::Permanent);
    let other = "5511922223333";
    app.wa_text(other, "wamid.F-2", "dois").await;
    let conv = app.wa_conversation(other);
    let state = eventually(Duration::from_secs(5), || async {
        app.state_of(&conv).await.filter(|s| s.outbound.front().is_some_and(|o| o.state == Some(DeliveryState::Failed)))
    })
    .await;
    assert!(state.is_some(), "undeliverable message marked failed");
    let journal = app.hub.journal(&conv, 1).await.unwrap();
    let failed =
        journal.iter().map(|e| serde_json::to_value(e).unwrap()).find(|v| v["type"] == "outbound.message.failed");
    assert!(failed.unwrap()["payload"]["reason"].as_str().unwrap().contains("131026"));
    assert_eq!(app.graph.requests().len(), 3, "a permanent error is not retried");
}
