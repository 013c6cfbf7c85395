//! FakeTelegram with the real teloxide client, plus raw shapes over reqwest.

use std::time::{Duration, Instant};

use serde_json::json;
use switchboard_load_tests::fakes::telegram::FakeTelegram;
use teloxide::prelude::*;
use teloxide::types::CallbackQueryId;
use teloxide::{ApiError, RequestError};

use super::{WAIT, post};

const TOKEN: &str = "123456:TEST-token_x";

fn bot(fake: &FakeTelegram) -> Bot {
    Bot::new(TOKEN).set_api_url(fake.base_url().parse().unwrap())
}

#[actix_web::test]
async fn teloxide_send_message_parses_and_is_recorded() {
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let message = bot(&fake).send_message(ChatId(4242), "hi").await.unwrap();
    assert_eq!(message.chat.id, ChatId(4242));
    assert_eq!(message.text(), Some("hi"));
    assert_eq!(message.from.as_ref().map(|u| u.id.0), Some(777000));

    let sent = fake.wait_for_sent(1, WAIT).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body, json!({"chat_id": 4242, "text": "hi"}));
    assert_eq!(sent[0].path, format!("/bot{TOKEN}/SendMessage"));

    // Message ids increase.
    let second = bot(&fake).send_message(ChatId(4242), "again").await.unwrap();
    assert!(second.id.0 > message.id.0);
}

#[actix_web::test]
async fn teloxide_sees_flood_as_retry_after_and_block_as_bot_blocked() {
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    fake.flood_next(1, 3);
    fake.block_next(1);
    let started = Instant::now();
    match bot(&fake).send_message(ChatId(4242), "hi").await {
        Err(RequestError::RetryAfter(secs)) => assert_eq!(secs.seconds(), 3),
        other => panic!("expected RetryAfter, got {other:?}"),
    }
    match bot(&fake).send_message(ChatId(4242), "hi").await {
        Err(RequestError::Api(ApiError::BotBlocked)) => {}
        other => panic!("expected BotBlocked, got {other:?}"),
    }
    // No 5xx anywhere, so teloxide never slept its 10 s.
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(bot(&fake).send_message(ChatId(4242), "hi").await.is_ok());
    assert_eq!(fake.sent().len(), 1);
    let statuses: Vec<u16> = fake.calls("sendMessage").iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 403, 200]);
}

#[actix_web::test]
async fn teloxide_get_me_and_small_methods() {
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let bot = bot(&fake);
    let me = bot.get_me().await.unwrap();
    assert_eq!(me.username(), "hub_bot");
    assert!(me.is_bot);
    bot.answer_callback_query(CallbackQueryId("cbq-1".to_owned())).await.unwrap();
    bot.delete_webhook().await.unwrap();
    bot.set_webhook("https://hub.example/tg".parse().unwrap()).await.unwrap();
    assert_eq!(fake.calls("answerCallbackQuery").len(), 1);
    // teloxide sends setWebhook as multipart/form-data; the fake records its text fields.
    assert_eq!(fake.calls("setwebhook")[0].body["url"], "https://hub.example/tg");
}

#[actix_web::test]
async fn dropping_the_fake_under_actix_stops_its_server() {
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let url = format!("{}/bot{TOKEN}/getMe", fake.base_url());
    assert!(reqwest::Client::new().post(&url).send().await.is_ok());
    drop(fake);
    let deadline = Instant::now() + WAIT;
    while reqwest::Client::new().post(&url).send().await.is_ok() {
        assert!(Instant::now() < deadline, "server still answering after drop");
        actix_web::rt::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn raw_answers_match_the_bot_api_shapes() {
    let fake = FakeTelegram::start(TOKEN).await.unwrap();
    let url = |method: &str| format!("{}/bot{TOKEN}/{method}", fake.base_url());

    // tg.json send_message_request / send_message_ok, with our message_id and date.
    let request = json!({"chat_id":4242,"text":"hello from the hub","reply_markup":{"inline_keyboard":[[{"text":"Yes","callback_data":"confirm_yes"},{"text":"No","callback_data":"confirm_no"}]]}});
    let (status, body) = post(&url("sendMessage"), None, &request).await;
    assert_eq!(status, 200);
    let mut expected = json!({"ok":true,"result":{"message_id":1,"from":{"id":777000,"is_bot":true,"first_name":"HubBot","username":"hub_bot"},"chat":{"id":4242,"first_name":"Ada","type":"private"},"date":body["result"]["date"],"text":"hello from the hub"}});
    expected["result"]["reply_markup"] = request["reply_markup"].clone();
    assert_eq!(body, expected);
    assert!(body["result"]["date"].as_u64().unwrap() > 1_700_000_000);

    fake.flood_next(1, 3);
    let resp =
        reqwest::Client::new().post(url("sendMessage")).json(&json!({"chat_id":4242,"text":"x"})).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 429);
    assert_eq!(resp.headers()["retry-after"], "3");
    let err_429 = json!({"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}});
    assert_eq!(resp.json::<serde_json::Value>().await.unwrap(), err_429);

    let (status, body) = post(&url("answerCallbackQuery"), None, &json!({"callback_query_id":"1"})).await;
    assert_eq!((status, body), (200, json!({"ok":true,"result":true})));
    let (status, body) = post(&url("noSuchMethod"), None, &json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["description"], "Not Found: method not found");

    let wrong = format!("{}/botWRONG/sendMessage", fake.base_url());
    let (status, body) = post(&wrong, None, &json!({"chat_id":1,"text":"x"})).await;
    assert_eq!((status, body), (401, json!({"ok":false,"error_code":401,"description":"Unauthorized"})));

    let (status, body) = post(&url("sendMessage"), None, &json!({"chat_id":4242})).await;
    assert_eq!((status, body["ok"].clone()), (400, json!(false)));
    assert_eq!(fake.sent().len(), 1);
}
