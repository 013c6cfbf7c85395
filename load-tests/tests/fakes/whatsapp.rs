//! FakeGraph over reqwest, under actix and under plain multi-thread tokio.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use switchboard_load_tests::fakes::whatsapp::{Failure, FakeGraph, OnSend};

use super::{WAIT, post};

const TOKEN: &str = "wa-test-token";

/// `send_text_request` of wa_out.json.
fn send_text() -> Value {
    json!({"messaging_product":"whatsapp","recipient_type":"individual","to":"15551234567",
        "type":"text","text":{"preview_url":false,"body":"hello from the hub"}})
}

fn messages_url(fake: &FakeGraph) -> String {
    format!("{}/v21.0/200000000000002/messages", fake.base_url())
}

#[actix_web::test]
async fn graph_accepts_a_send_with_the_real_response_shape() {
    let fake = FakeGraph::start(TOKEN).await.unwrap();
    let (status, body) = post(&messages_url(&fake), Some(TOKEN), &send_text()).await;
    assert_eq!(status, 200);
    let wamid = body["messages"][0]["id"].as_str().unwrap().to_owned();
    assert!(wamid.starts_with("wamid.FAKE-"), "{wamid}");
    let expected = json!({"messaging_product":"whatsapp",
        "contacts":[{"input":"15551234567","wa_id":"15551234567"}],"messages":[{"id":wamid}]});
    assert_eq!(body, expected);

    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body, send_text());
    assert_eq!(sent[0].path, "/v21.0/200000000000002/messages");
    assert_eq!(sent[0].header("Authorization"), Some("Bearer wa-test-token"));
    assert_eq!(sent[0].header("content-type"), Some("application/json"));
    assert_eq!(fake.sent_count(), 1);

    // A second send gets a different wamid.
    let (_, again) = post(&messages_url(&fake), Some(TOKEN), &send_text()).await;
    assert_ne!(again["messages"][0]["id"], body["messages"][0]["id"]);
}

#[actix_web::test]
async fn graph_rejects_a_wrong_or_missing_token_with_code_190() {
    let fake = FakeGraph::start(TOKEN).await.unwrap();
    for token in [Some("nope"), None] {
        let (status, body) = post(&messages_url(&fake), token, &send_text()).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], 190);
        assert_eq!(body["error"]["type"], "OAuthException");
    }
    assert!(fake.sent().is_empty());
    let all = fake.requests();
    assert_eq!(all.iter().map(|r| r.status).collect::<Vec<_>>(), [401, 401]);
}

#[actix_web::test]
async fn graph_answers_read_receipts_without_counting_them_as_sends() {
    let fake = FakeGraph::start(TOKEN).await.unwrap();
    fake.fail_next(1, Failure::Throughput);
    let receipt = json!({"messaging_product":"whatsapp","status":"read","message_id":"wamid.TEST-IN-1"});
    let (status, body) = post(&messages_url(&fake), Some(TOKEN), &receipt).await;
    assert_eq!((status, body), (200, json!({"success": true})));
    assert!(fake.sent().is_empty());
    assert_eq!(fake.read_receipts().len(), 1);
    // The programmed failure is still there for the next real send.
    let (status, _) = post(&messages_url(&fake), Some(TOKEN), &send_text()).await;
    assert_eq!(status, 400);
}

#[actix_web::test]
async fn graph_programmed_failures_use_the_real_error_bodies() {
    let fake = FakeGraph::start(TOKEN).await.unwrap();
    let wa_out: Value = serde_json::from_str(
        r#"{"error_pair_rate_400": {"error":{"message":"(#131056) (Business Account, Consumer Account) pair rate limit hit","type":"OAuthException","code":131056,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time."},"fbtrace_id":"AFakeTrace1"}},
        "error_throughput_400": {"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because there were too many messages sent from this phone number in a short period of time"},"fbtrace_id":"AFakeTrace2"}}}"#,
    )
    .unwrap();
    fake.fail_next(2, Failure::Throughput);
    fake.fail_next(1, Failure::PairRate);
    fake.fail_next(1, Failure::ServerError);
    fake.fail_next(1, Failure::Permanent);
    let mut got = Vec::new();
    for _ in 0..6 {
        got.push(post(&messages_url(&fake), Some(TOKEN), &send_text()).await);
    }
    assert_eq!(got[0], (400, wa_out["error_throughput_400"].clone()));
    assert_eq!(got[1], (400, wa_out["error_throughput_400"].clone()));
    assert_eq!(got[2], (400, wa_out["error_pair_rate_400"].clone()));
    assert_eq!((got[3].0, &got[3].1["error"]["code"]), (500, &json!(131000)));
    assert_eq!((got[4].0, &got[4].1["error"]["code"]), (400, &json!(131026)));
    assert_eq!(got[4].1["error"]["message"], "(#131026) Message undeliverable");
    assert_eq!(got[5].0, 200);
    assert_eq!(fake.sent().len(), 1);
    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400, 400, 400, 500, 400, 200]);
}

#[actix_web::test]
async fn graph_delay_slows_answers_down() {
    let fake = FakeGraph::start(TOKEN).await.unwrap();
    fake.set_delay(Duration::from_millis(200));
    let started = Instant::now();
    let (status, _) = post(&messages_url(&fake), Some(TOKEN), &send_text()).await;
    assert_eq!(status, 200);
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[actix_web::test]
async fn graph_wait_for_sent_sees_sends_from_another_task() {
    let fake = FakeGraph::start(TOKEN).await.unwrap();
    let url = messages_url(&fake);
    actix_web::rt::spawn(async move {
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        for _ in 0..3 {
            post(&url, Some(TOKEN), &send_text()).await;
        }
    });
    let sent = fake.wait_for_sent(3, WAIT).await;
    assert_eq!(sent.len(), 3);
    // A timeout returns what there is instead of hanging.
    let started = Instant::now();
    assert_eq!(fake.wait_for_sent(4, Duration::from_millis(100)).await.len(), 3);
    assert!(started.elapsed() < Duration::from_secs(2));
    fake.recorder().clear();
    assert!(fake.sent().is_empty());
}

/// The load generator's setting: multi-thread tokio, several workers, no recording, a hook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_runs_under_plain_tokio_with_recording_off_and_a_hook() {
    let fake = FakeGraph::start_with_workers(TOKEN, 2).await.unwrap();
    fake.set_recording(false);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let hook: OnSend = Arc::new(move |to: &str, body: &Value| {
        let text = body["text"]["body"].as_str().unwrap_or("").to_owned();
        sink.lock().unwrap().push((to.to_owned(), text));
    });
    fake.set_on_send(Some(hook));
    let client = reqwest::Client::new();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (client, url) = (client.clone(), messages_url(&fake));
        tasks.push(tokio::spawn(async move {
            let body = json!({"messaging_product":"whatsapp","to":format!("1555000{i:04}"),
                "type":"text","text":{"body":format!("m{i}")}});
            client.post(url).bearer_auth(TOKEN).json(&body).send().await.unwrap().status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(fake.sent_count(), 50);
    assert_eq!(fake.recorder().seen(), 50);
    assert!(fake.requests().is_empty());
    let mut seen = seen.lock().unwrap().clone();
    seen.sort();
    assert_eq!(seen.len(), 50);
    assert_eq!(seen[7], ("15550000007".to_owned(), "m7".to_owned()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graph_stop_and_drop_close_the_port() {
    let fake = FakeGraph::start(TOKEN).await.unwrap();
    let url = messages_url(&fake);
    fake.stop().await;
    assert!(reqwest::Client::new().post(&url).send().await.is_err());

    let fake = FakeGraph::start(TOKEN).await.unwrap();
    let url = messages_url(&fake);
    drop(fake);
    // Drop only sends the stop command; give the server thread a moment to act on it.
    let deadline = Instant::now() + WAIT;
    while reqwest::Client::new().post(&url).send().await.is_ok() {
        assert!(Instant::now() < deadline, "server still answering after drop");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix_web::test]
async fn graph_records_unknown_paths_as_404() {
    let fake = FakeGraph::start(TOKEN).await.unwrap();
    let url = format!("{}/v21.0/200000000000002/media", fake.base_url());
    let (status, body) = post(&url, Some(TOKEN), &json!({})).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["type"], "OAuthException");
    assert_eq!(fake.requests()[0].status, 404);
    assert!(fake.sent().is_empty());
}
