//! Bad input gets a clear 4xx with a JSON error, changes nothing, and is counted.

use crate::helpers::*;
use std::time::Duration;
use switchboard_load_tests::payloads;

const FROM: &str = "5511900001111";

async fn assert_error(res: reqwest::Response, status: u16, code: &str) {
    assert_eq!(res.status().as_u16(), status);
    let body: serde_json::Value = res.json().await.expect("json error body");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
}

async fn assert_nothing_stored(app: &TestApp) {
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(app.state_of(&app.wa_conversation(FROM)).await.is_none(), "nothing stored");
    assert!(app.graph.sent().is_empty() && app.telegram.sent().is_empty(), "nothing sent");
    assert_eq!(app.hub.metrics().inputs_handled.load(std::sync::atomic::Ordering::Relaxed), 0);
}

#[actix_web::test]
async fn whatsapp_signature_json_utf8_and_size_are_checked() {
    let app = spawn_app(&[("SERVER__BODY_LIMIT_BYTES", "4096")]).await;
    let body = payloads::wa_text(PNID, FROM, "wamid.BAD-1", "oi");
    assert_error(app.post_wa_raw(body.clone().into_bytes(), None).await, 401, "unauthorized").await;
    let wrong = payloads::wa_sign("not-the-secret", body.as_bytes());
    assert_error(app.post_wa_raw(body.clone().into_bytes(), Some(&wrong)).await, 401, "unauthorized").await;
    // Valid signature over a tampered body fails too.
    let sig = payloads::wa_sign(WA_SECRET, body.as_bytes());
    assert_error(app.post_wa_raw(body.replace("oi", "xx").into_bytes(), Some(&sig)).await, 401, "unauthorized").await;
    assert_error(app.post_wa("{not json").await, 400, "bad_request").await;
    assert_error(app.post_wa(r#"{"object":"whatsapp_business_account","entry":"nope"}"#).await, 400, "bad_request")
        .await;
    let invalid_utf8 = b"{\"object\":\"\xff\xfe\"}".to_vec();
    let sig = payloads::wa_sign(WA_SECRET, &invalid_utf8);
    assert_error(app.post_wa_raw(invalid_utf8, Some(&sig)).await, 400, "bad_request").await;
    let big = format!("{{\"object\":\"whatsapp_business_account\",\"pad\":\"{}\"}}", "x".repeat(5000));
    assert_error(app.post_wa(&big).await, 413, "payload_too_large").await;
    assert_nothing_stored(&app).await;
    let w = &app.state.webhooks;
    assert_eq!((w.get("whatsapp", "missing_signature"), w.get("whatsapp", "bad_signature")), (1, 2));
    assert_eq!(
        (w.get("whatsapp", "malformed"), w.get("whatsapp", "invalid_utf8"), w.get("whatsapp", "too_large")),
        (2, 1, 1)
    );
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains("switchboard_webhooks_total{channel=\"whatsapp\",outcome=\"bad_signature\"} 2"),
        "{metrics}"
    );
}

#[actix_web::test]
async fn unknown_whatsapp_number_is_acknowledged_counted_and_dropped() {
    let app = spawn_app(&[]).await;
    let res = app.post_wa(&payloads::wa_text("999999999", FROM, "wamid.U-1", "oi")).await;
    assert_eq!(res.status(), 200, "Meta must not retry it");
    assert_eq!(app.state.webhooks.unknown_numbers.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_nothing_stored(&app).await;
}

#[actix_web::test]
async fn telegram_secret_channel_and_json_are_checked() {
    let app = spawn_app(&[]).await;
    let body = payloads::tg_text(1, 4242, "oi");
    let post = |path: &str, secret: Option<&str>, body: String| {
        let mut req = app.http.post(format!("{}{path}", app.url)).header("content-type", "application/json").body(body);
        if let Some(s) = secret {
            req = req.header("x-telegram-bot-api-secret-token", s);
        }
        req.send()
    };
    assert_error(post("/webhooks/telegram/demo", None, body.clone()).await.unwrap(), 401, "unauthorized").await;
    assert_error(post("/webhooks/telegram/demo", Some("wrong"), body.clone()).await.unwrap(), 401, "unauthorized")
        .await;
    assert_error(post("/webhooks/telegram/nope", Some(TG_SECRET), body.clone()).await.unwrap(), 404, "not_found").await;
    assert_error(
        post("/webhooks/telegram/demo", Some(TG_SECRET), "{\"update_id\":".into()).await.unwrap(),
        400,
        "bad_request",
    )
    .await;
    // Authenticated but of a kind the hub does not handle: 200, or Telegram would redeliver.
    let poll = r#"{"update_id":7,"poll":{"id":"1","question":"?","options":[],"total_voter_count":0,"is_closed":false,"is_anonymous":true,"type":"regular","allows_multiple_answers":false}}"#;
    assert_eq!(post("/webhooks/telegram/demo", Some(TG_SECRET), poll.into()).await.unwrap().status(), 200);
    assert!(app.state_of(&app.tg_conversation(4242)).await.is_none());
    assert_nothing_stored(&app).await;
}

#[actix_web::test]
async fn one_tenants_app_cannot_post_into_another_tenants_number() {
    let app = spawn_app_with(Some("second_tenant.toml"), &[]).await;
    // Signed with tenant "outra"'s app secret, but naming tenant "demo"'s number.
    let body = payloads::wa_text(PNID, FROM, "wamid.X-1", "oi");
    let sig = payloads::wa_sign(OUTRA_SECRET, body.as_bytes());
    assert_error(app.post_wa_raw(body.into_bytes(), Some(&sig)).await, 401, "unauthorized").await;
    assert_eq!(app.state.webhooks.get("whatsapp", "foreign_signature"), 1);
    assert_nothing_stored(&app).await;
    // Its own number, its own signature: accepted and answered by its own AI.
    let own = payloads::wa_text(OUTRA_PNID, FROM, "wamid.X-2", "olá");
    let sig = payloads::wa_sign(OUTRA_SECRET, own.as_bytes());
    assert_eq!(app.post_wa_raw(own.into_bytes(), Some(&sig)).await.status(), 200);
    let sent = app.graph.wait_for_sent(1, Duration::from_secs(5)).await;
    assert_eq!(sent[0].path, format!("/v21.0/{OUTRA_PNID}/messages"));
    // The same customer number is a different conversation in each tenant.
    assert!(app.state_of(&app.wa_conversation(FROM)).await.is_none(), "nothing in tenant demo");
}

#[actix_web::test]
async fn unknown_paths_wrong_methods_and_bad_handshakes_get_json_errors() {
    let app = spawn_app(&[]).await;
    let get = |path: &str| app.http.get(format!("{}{path}", app.url)).send();
    assert_error(get("/nope").await.unwrap(), 404, "not_found").await;
    assert_error(
        app.http.delete(format!("{}/webhooks/whatsapp", app.url)).send().await.unwrap(),
        405,
        "method_not_allowed",
    )
    .await;
    assert_error(get("/webhooks/telegram/demo").await.unwrap(), 405, "method_not_allowed").await;
    assert_error(get("/webhooks/whatsapp?hub.mode=subscribe").await.unwrap(), 400, "bad_request").await;
    assert_error(
        get(&format!("/webhooks/whatsapp?hub.mode=unsubscribe&hub.challenge=1&hub.verify_token={WA_VERIFY}"))
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
}

#[actix_web::test]
async fn telegram_oversized_and_invalid_utf8_bodies_are_refused() {
    let app = spawn_app(&[("SERVER__BODY_LIMIT_BYTES", "2048")]).await;
    let post = |body: Vec<u8>| {
        app.http
            .post(format!("{}/webhooks/telegram/demo", app.url))
            .header("x-telegram-bot-api-secret-token", TG_SECRET)
            .body(body)
            .send()
    };
    assert_error(post(vec![b'x'; 4096]).await.unwrap(), 413, "payload_too_large").await;
    assert_error(post(b"{\"update_id\":1,\"message\":\"\xc3\x28\"}".to_vec()).await.unwrap(), 400, "bad_request").await;
    assert_nothing_stored(&app).await;
}
