//! Graceful shutdown of the real binary (memory backend): on SIGTERM the hub stops accepting,
//! finishes the model turns and sends in flight, and exits 0; a deadline bounds the wait.

use std::time::{Duration, Instant};
use switchboard_load_tests::fakes::openai::{FakeOpenAi, Mode};
use switchboard_load_tests::fakes::whatsapp::FakeGraph;
use switchboard_load_tests::loadgen::hub::{HubProcess, HubSpec};
use switchboard_load_tests::loadgen::rig::{ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID, hub_env};
use switchboard_load_tests::payloads::{wa_sign, wa_text};

struct Node {
    hub: HubProcess,
    graph: FakeGraph,
    _openai: FakeOpenAi,
    http: reqwest::Client,
}

/// The release-like binary with the AI entry, a model that takes `think`, and `deadline_secs`.
async fn node(think: Duration, deadline_secs: u64, name: &str) -> Node {
    let graph = FakeGraph::start(ACCESS_TOKEN).await.expect("fake graph");
    let openai = FakeOpenAi::start().await.expect("fake openai");
    openai.set_mode(Mode::Echo { delay: think });
    // The load generator's hub environment (no Telegram fake here: that channel stays unused),
    // with what this test needs on top; a later entry wins.
    let mut env = hub_env(&graph.base_url(), &openai.base_url(), "http://127.0.0.1:9");
    for (key, value) in [
        ("RUST_LOG", "info".to_owned()),
        ("SWITCHBOARD__TENANTS__DEMO__AI__TIMEOUT_MS", "60000".to_owned()),
        ("SWITCHBOARD__SERVER__SHUTDOWN_TIMEOUT_SECS", deadline_secs.to_string()),
    ] {
        env.push((key.to_owned(), value));
    }
    let log = std::env::temp_dir().join(format!("switchboard-shutdown-{name}-{}.log", std::process::id()));
    let spec = HubSpec {
        bin: env!("CARGO_BIN_EXE_switchboard").into(),
        workdir: env!("CARGO_MANIFEST_DIR").into(),
        env,
        log,
        port: None,
    };
    let mut hub = HubProcess::spawn(&spec).expect("spawn switchboard");
    hub.wait_healthy(Duration::from_secs(30)).await.expect("hub healthy");
    Node { hub, graph, _openai: openai, http: reqwest::Client::new() }
}

impl Node {
    async fn post(&self, from: &str, wamid: &str, text: &str) -> reqwest::Result<reqwest::Response> {
        let body = wa_text(PHONE_NUMBER_ID, from, wamid, text);
        self.http
            .post(format!("{}/webhooks/whatsapp", self.hub.base_url()))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", wa_sign(APP_SECRET, body.as_bytes()))
            .timeout(Duration::from_secs(5))
            .body(body)
            .send()
            .await
    }

    fn replies(&self) -> Vec<String> {
        let mut texts: Vec<String> =
            self.graph.sent().iter().filter_map(|r| r.body["text"]["body"].as_str().map(str::to_owned)).collect();
        texts.sort();
        texts
    }
}

#[actix_web::test]
async fn sigterm_answers_every_accepted_message_then_exits_zero() {
    // A model slow enough that every turn is still running when the signal comes, even on a
    // loaded machine.
    let mut node = node(Duration::from_secs(3), 30, "drain").await;
    let mut expected = Vec::new();
    for i in 0..30 {
        let from = format!("55119{:08}", 70_000_000 + i);
        let res = node.post(&from, &format!("wamid.SD-{i}"), &format!("pedido {i}")).await.unwrap();
        assert_eq!(res.status(), 200, "accepted before the signal");
        expected.push(format!("echo: pedido {i}"));
    }
    expected.sort();
    assert!(node.replies().is_empty(), "the model is still thinking when the signal comes");
    let url = node.hub.base_url().to_owned();
    let log_path = node.hub.log_path().to_owned();
    let late = async {
        // Once the hub says it is stopping, its listener is closed: a provider gets a connection
        // error and retries later (at another node behind a load balancer).
        while !std::fs::read_to_string(&log_path).unwrap_or_default().contains("stopping") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let body = wa_text(PHONE_NUMBER_ID, "5511970009999", "wamid.SD-late", "ainda aí?");
        let res = reqwest::Client::new()
            .post(format!("{url}/webhooks/whatsapp"))
            .header("x-hub-signature-256", wa_sign(APP_SECRET, body.as_bytes()))
            .timeout(Duration::from_secs(5))
            .body(body)
            .send()
            .await;
        res.map(|r| r.status().as_u16())
    };
    let (code, late) = tokio::join!(node.hub.terminate(Duration::from_secs(30)), late);
    assert_eq!(code.unwrap(), Some(0), "a graceful stop exits 0");
    assert!(late.is_err(), "a webhook after SIGTERM is not accepted: {late:?}");
    assert_eq!(node.replies(), expected, "every accepted message was answered before the exit");
}

#[actix_web::test]
async fn the_shutdown_deadline_bounds_the_wait_for_a_stuck_model() {
    let mut node = node(Duration::from_secs(60), 2, "deadline").await;
    assert_eq!(node.post("5511970000001", "wamid.SD-stuck", "oi").await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let code = node.hub.terminate(Duration::from_secs(30)).await.unwrap();
    let took = started.elapsed();
    assert_eq!(code, Some(0), "the deadline passing is still a clean exit");
    assert!(took < Duration::from_secs(8), "exited {took:?} after SIGTERM with a 2 s deadline");
    let log = std::fs::read_to_string(node.hub.log_path()).unwrap();
    assert!(log.contains("at the shutdown deadline"), "the operator is told what was cut short:\n{log}");
}
