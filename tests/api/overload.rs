//! Backpressure: past the bus's bound a webhook gets 503 with `Retry-After` (the provider
//! retries) instead of the hub queueing without limit; once the burst passes, every message
//! that was finally accepted is answered exactly once.

use crate::helpers::*;
use futures_util::future::join_all;
use std::time::Duration;
use switchboard_load_tests::payloads;

#[actix_web::test]
async fn a_burst_past_the_bound_is_pushed_back_and_then_fully_answered() {
    if std::env::var("SWITCHBOARD_TEST_BACKEND").is_ok_and(|b| b == "redis") {
        // The Redis pass covers its own bound (stream max length) in dlq.rs.
        return;
    }
    // One partition holding one event, taken one at a time: a burst of 500 concurrent webhooks
    // cannot all fit. A generous model timeout: a slow turn on a loaded machine must not turn
    // an echo into the fallback text.
    let app = spawn_app(&[
        ("TENANTS__DEMO__ENTRY", "ai"),
        ("TENANTS__DEMO__AI__TIMEOUT_MS", "60000"),
        ("BACKEND__PARTITIONS", "1"),
        ("BACKEND__PARTITION_CAPACITY", "1"),
        ("BACKEND__BATCH", "1"),
        ("TENANTS__DEMO__WHATSAPP__MAIN__RATE_PER_SECOND", "100000"),
    ])
    .await;
    let customers: Vec<String> = (0..500).map(|i| format!("55119{:08}", 60_000_000 + i)).collect();
    let first = |c: &String| {
        let body = payloads::wa_text(PNID, c, &format!("wamid.OV-{c}"), &format!("oi de {c}"));
        let app = &app;
        async move { app.post_wa(&body).await }
    };
    let answers = join_all(customers.iter().map(first)).await;
    let busy: Vec<usize> = (0..answers.len()).filter(|&i| answers[i].status() == 503).collect();
    assert!(!busy.is_empty(), "the burst went past the bound: some webhooks were pushed back");
    for i in &busy {
        assert_eq!(answers[*i].headers()["retry-after"], "1", "503s say when to retry");
    }
    for (i, a) in answers.iter().enumerate() {
        assert!(matches!(a.status().as_u16(), 200 | 503), "customer {i}: {}", a.status());
    }
    // The provider's retries: the same payloads again until each is accepted.
    let mut left = busy;
    for _ in 0..400 {
        if left.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut still = Vec::new();
        for i in left {
            let c = &customers[i];
            let body = payloads::wa_text(PNID, c, &format!("wamid.OV-{c}"), &format!("oi de {c}"));
            if app.post_wa(&body).await.status() != 200 {
                still.push(i);
            }
        }
        left = still;
    }
    assert!(left.is_empty(), "every retried webhook was accepted once the burst passed: {left:?}");
    app.graph.wait_for_sent(customers.len(), Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for c in &customers {
        let texts = app.wa_texts_to(c);
        assert_eq!(texts, vec![format!("echo: oi de {c}")], "{c} answered exactly once");
    }
    let health = app.http.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(health.status(), 200, "the hub is still ready after the burst");
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"switchboard_webhooks_total{channel="whatsapp",outcome="busy"}"#), "{metrics}");
}

#[actix_web::test]
async fn a_slow_provider_pushes_back_at_the_webhook_instead_of_queueing_replies() {
    // At most three replies in the outboxes; the Graph API takes two seconds per send.
    let app = spawn_app(&[("TENANTS__DEMO__ENTRY", "ai"), ("SERVER__MAX_QUEUED_REPLIES", "3")]).await;
    app.graph.set_delay(Duration::from_secs(2));
    let customers: Vec<String> = (0..4).map(|i| format!("55119{:08}", 61_000_000 + i)).collect();
    let post = |c: &String| {
        let body = payloads::wa_text(PNID, c, &format!("wamid.SP-{c}"), &format!("oi de {c}"));
        let app = &app;
        async move { app.post_wa(&body).await }
    };
    for c in &customers[..3] {
        assert_eq!(post(c).await.status(), 200);
    }
    let queued = || app.hub.metrics().series.replies_queued.get();
    eventually(Duration::from_secs(5), || async { (queued() == 3).then_some(()) })
        .await
        .expect("the three replies wait on the slow provider");
    let refused = post(&customers[3]).await;
    assert_eq!(refused.status(), 503, "a fourth customer is told to retry rather than queued");
    assert_eq!(refused.headers()["retry-after"], "1");
    // The provider catches up; the retry goes through and everyone is answered once.
    let accepted =
        eventually(Duration::from_secs(15), || async { (post(&customers[3]).await.status() == 200).then_some(()) });
    accepted.await.expect("the retry is accepted once the replies went out");
    app.graph.wait_for_sent(4, Duration::from_secs(15)).await;
    for c in &customers {
        assert_eq!(app.wa_texts_to(c), vec![format!("echo: oi de {c}")], "{c} answered exactly once");
    }
    let empty = eventually(Duration::from_secs(5), || async { (queued() == 0).then_some(()) }).await;
    assert!(empty.is_some(), "nothing left in the outboxes once the results are recorded: {}", queued());
}

#[test]
fn check_config_refuses_a_zero_reply_bound() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("check-config")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SWITCHBOARD__SERVER__MAX_QUEUED_REPLIES", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "an invalid config stops the hub before it starts");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.max_queued_replies: must be greater than 0"), "{err}");
}
