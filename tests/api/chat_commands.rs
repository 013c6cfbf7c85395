//! Staff chat commands end to end through the fake Telegram Bot API: a staff `/close` closes the
//! conversation and answers in the chat; the same text from a customer is a customer message.

use crate::helpers::*;
use std::time::Duration;
use switchboard_actors::state::Status;
use switchboard_load_tests::payloads;

const CUSTOMER_PHONE: &str = "5511955502001";
const CUSTOMER_CHAT: i64 = 4243;

fn texts_to(app: &TestApp, chat: i64) -> Vec<String> {
    let sent = app.telegram.sent();
    sent.iter()
        .filter(|r| r.body["chat_id"] == chat)
        .map(|r| r.body["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn answer_to_staff(app: &TestApp, count: usize) -> Vec<String> {
    eventually(Duration::from_secs(5), || async {
        let texts = texts_to(app, STAFF_TG_ID);
        (texts.len() >= count).then_some(texts)
    })
    .await
    .unwrap_or_else(|| panic!("staff got {count} answers: {:?}", texts_to(app, STAFF_TG_ID)))
}

#[actix_web::test]
async fn staff_close_command_closes_and_answers_a_customer_writing_it_is_routed() {
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "vendas")]).await;
    assert_eq!(app.wa_text(CUSTOMER_PHONE, "wamid.CC1", "Preciso de ajuda").await.status(), 200);
    let conv = app.wa_conversation(CUSTOMER_PHONE);
    eventually(Duration::from_secs(5), || async { app.state_of(&conv).await.filter(|s| s.ticket == 1) })
        .await
        .expect("conversation opened");

    let command = payloads::tg_text(900001, STAFF_TG_ID, &format!("/close {CUSTOMER_PHONE}"));
    let resp = app.post_tg(&command).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap()["status"], "command");
    assert_eq!(app.state_of(&conv).await.unwrap().status, Status::Closed);
    let answers = answer_to_staff(&app, 1).await;
    assert!(answers[0].starts_with("Closed:") && answers[0].contains(CUSTOMER_PHONE), "{answers:?}");
    let staff_conv = app.tg_conversation(STAFF_TG_ID);
    assert!(app.state_of(&staff_conv).await.is_none(), "a command opens no conversation");

    // Telegram redelivers the update: the command does not run (nor answer) twice.
    let again = app.post_tg(&command).await;
    assert_eq!(again.json::<serde_json::Value>().await.unwrap()["status"], "duplicate");

    // A customer sending the same text is just a customer.
    let same_text = payloads::tg_text(900002, CUSTOMER_CHAT, &format!("/close {CUSTOMER_PHONE}"));
    assert_eq!(app.post_tg(&same_text).await.json::<serde_json::Value>().await.unwrap()["status"], "ok");
    let customer = app.tg_conversation(CUSTOMER_CHAT);
    let state = eventually(Duration::from_secs(5), || async { app.state_of(&customer).await })
        .await
        .expect("the customer's message opened a conversation");
    assert_eq!(&*state.history[0].text, format!("/close {CUSTOMER_PHONE}"));
    assert!(matches!(state.status, Status::Queued { .. }), "{:?}", state.status);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(texts_to(&app, STAFF_TG_ID).len(), 1, "one answer to staff in all");
    let trail = app.state.tools.audit_trail("demo", 10).await.unwrap();
    assert_eq!(trail.len(), 1, "{trail:?}");
    assert_eq!((trail[0].caller.as_str(), trail[0].tool.as_str()), ("staff:gerente", "close_conversation"));
}

#[actix_web::test]
async fn staff_get_usage_lines_help_and_queue_answers() {
    let app = spawn_app(&[]).await;
    app.agent_online("vendas", "ana", 2).await;
    for (i, text) in ["/assign 123", "/help", "/queues", "/frobnicate", "/show 5511000000000"].iter().enumerate() {
        assert_eq!(app.post_tg(&payloads::tg_text(910000 + i as u64, STAFF_TG_ID, text)).await.status(), 200);
    }
    let answers = answer_to_staff(&app, 5).await;
    let find = |needle: &str| answers.iter().any(|a| a.contains(needle));
    assert!(find("Usage: /assign <id> <agent>"), "{answers:?}");
    assert!(find("/transfer <id> <queue>"), "help lists the commands: {answers:?}");
    assert!(find("vendas: 0 waiting (oldest 0s), 1 agent(s) online: ana"), "{answers:?}");
    assert!(find("Unknown command /frobnicate"), "{answers:?}");
    assert!(find("Error: conversation 5511000000000 not found"), "{answers:?}");
}
