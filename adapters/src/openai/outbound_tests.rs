//! Tests of `outbound` against the load-tests crate's `FakeOpenAi`.

use super::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use switchboard_load_tests::fakes::openai::{FakeOpenAi, Mode};
use tokio::io::AsyncReadExt;

fn settings(base_url: String) -> OpenAiSettings {
    OpenAiSettings {
        base_url,
        max_completion_tokens: Some(256),
        temperature: Some(0.2),
        ..OpenAiSettings::new("test-key", "test-model")
    }
}

fn request() -> LlmRequest {
    LlmRequest {
        system_prompt: "You are the Acme assistant.".into(),
        history: vec![
            (Speaker::Customer, "hi".into()),
            (Speaker::Assistant, "Hello! How can I help?".into()),
            (Speaker::Customer, "my invoice is wrong".into()),
        ],
        queues: vec!["billing".into(), "support".into()],
        tools: true,
    }
}

async fn fake_and_client() -> (FakeOpenAi, OpenAiClient) {
    let fake = FakeOpenAi::start().await.expect("fake openai");
    // A trailing slash must not produce `/v1//chat/completions`.
    let client = OpenAiClient::new(&settings(format!("{}/", fake.base_url()))).expect("client");
    (fake, client)
}

fn tool_call(name: &str, arguments: Value) -> Mode {
    Mode::ToolCall { name: name.into(), arguments, delay: Duration::ZERO }
}

#[tokio::test]
async fn text_answer_is_a_reply_with_usage() {
    let (fake, client) = fake_and_client().await;
    fake.set_mode(Mode::Fixed { text: "Let me check that.".into(), delay: Duration::ZERO });
    let r = client.complete(request()).await.expect("answer");
    assert_eq!(r.action, LlmAction::Reply("Let me check that.".into()));
    assert!(r.prompt_tokens > 0 && r.completion_tokens > 0, "{r:?}");
}

#[tokio::test]
async fn request_has_prompt_history_and_tools() {
    let (fake, client) = fake_and_client().await;
    let r = client.complete(request()).await.expect("answer");
    // Echo mode repeats the customer turns after the last assistant turn.
    assert_eq!(r.action, LlmAction::Reply("echo: my invoice is wrong".into()));

    let recorded = fake.requests();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].header("authorization"), Some("Bearer test-key"));
    let body = &recorded[0].body;
    assert_eq!(body["model"], "test-model");
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "You are the Acme assistant."},
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": "my invoice is wrong"}
        ])
    );
    assert_eq!(body["tool_choice"], "auto");
    assert_eq!(body["max_completion_tokens"], 256);
    assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    let tools = body["tools"].as_array().expect("tools");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert_eq!(names, [HANDOFF_TOOL, CLOSE_TOOL]);
    assert!(tools.iter().all(|t| t["type"] == "function"));
    let handoff = &tools[0]["function"]["parameters"];
    assert_eq!(handoff["properties"]["queue"]["enum"], json!(["billing", "support"]));
    assert_eq!(handoff["properties"]["reason"], json!({"type": "string"}));
    assert_eq!(handoff["required"], json!(["reason"]));
    assert_eq!(tools[1]["function"]["parameters"]["properties"]["message"]["type"], "string");
}

#[tokio::test]
async fn handoff_tool_call_with_queue() {
    let (fake, client) = fake_and_client().await;
    fake.set_mode(tool_call(HANDOFF_TOOL, json!({"queue": "billing", "reason": "invoice dispute"})));
    let r = client.complete(request()).await.expect("answer");
    assert_eq!(
        r.action,
        LlmAction::Handoff { queue: Some("billing".into()), reason: "invoice dispute".into(), message: None }
    );
}

#[tokio::test]
async fn handoff_with_malformed_arguments_still_hands_off() {
    let (fake, client) = fake_and_client().await;
    fake.set_mode(tool_call(HANDOFF_TOOL, Value::String("{\"queue\": bill".into())));
    let r = client.complete(request()).await.expect("answer");
    assert_eq!(
        r.action,
        LlmAction::Handoff { queue: None, reason: inbound::DEFAULT_HANDOFF_REASON.into(), message: None }
    );
}

#[tokio::test]
async fn close_tool_call() {
    let (fake, client) = fake_and_client().await;
    fake.set_mode(tool_call(CLOSE_TOOL, json!({"message": "Glad I could help, bye!"})));
    let r = client.complete(request()).await.expect("answer");
    assert_eq!(r.action, LlmAction::Close { message: Some("Glad I could help, bye!".into()) });
}

#[tokio::test]
async fn server_error_is_unavailable_after_one_request() {
    let (fake, client) = fake_and_client().await;
    fake.set_mode(Mode::Down);
    let started = Instant::now();
    let err = client.complete(request()).await.expect_err("down");
    assert!(matches!(&err, LlmError::Unavailable(m) if m.contains("overloaded")), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
    // async-openai's default transport would have sent 4 (1 + 3 retries).
    assert_eq!(fake.requests().len(), 1);
}

#[tokio::test]
async fn bad_key_and_unreachable_server_are_unavailable() {
    let (fake, client) = fake_and_client().await;
    fake.set_mode(Mode::Unauthorized);
    let err = client.complete(request()).await.expect_err("unauthorized");
    assert!(matches!(&err, LlmError::Unavailable(m) if m.contains("401")), "{err:?}");

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let client = OpenAiClient::new(&settings(format!("http://127.0.0.1:{port}/v1"))).unwrap();
    let started = Instant::now();
    let err = client.complete(request()).await.expect_err("unreachable");
    let LlmError::Unavailable(why) = &err else { panic!("{err:?}") };
    assert!(why.to_lowercase().contains("refused"), "the cause is named: {why}");
    assert!(started.elapsed() < Duration::from_secs(3), "took {:?}", started.elapsed());
}

/// A front for `fake` that closes its first `drop_first` connections without answering (as a
/// crashed or overloaded server does) and passes later ones through; counts the connections.
async fn dropping_front(fake: &FakeOpenAi, drop_first: usize) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let upstream = fake.base_url().trim_start_matches("http://").split('/').next().unwrap().to_owned();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            if seen.fetch_add(1, Ordering::SeqCst) < drop_first {
                // Read the request first, so the client has sent it when the connection closes.
                let mut buf = vec![0u8; 64 * 1024];
                let _ = tokio::time::timeout(Duration::from_millis(200), inbound.read(&mut buf)).await;
                drop(inbound);
                continue;
            }
            let mut outbound = tokio::net::TcpStream::connect(&upstream).await.unwrap();
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let path = fake.base_url().splitn(4, '/').nth(3).unwrap_or_default().to_owned();
    (format!("http://{addr}/{path}"), connections)
}

#[tokio::test]
async fn a_call_whose_connection_closes_unanswered_is_sent_once_more() {
    let fake = FakeOpenAi::start().await.expect("fake openai");
    fake.set_mode(Mode::Fixed { text: "Olá! Como posso ajudar?".into(), delay: Duration::ZERO });
    let (url, connections) = dropping_front(&fake, 1).await;
    let client = OpenAiClient::new(&settings(url)).unwrap();
    let r = client.complete(request()).await.expect("answered on the second try");
    assert_eq!(r.action, LlmAction::Reply("Olá! Como posso ajudar?".into()));
    assert_eq!(connections.load(Ordering::SeqCst), 2);
    assert_eq!(fake.requests().len(), 1, "the model answered once");

    // Twice unanswered: the call fails after the second try, and no third is made.
    let (url, connections) = dropping_front(&fake, usize::MAX).await;
    let client = OpenAiClient::new(&settings(url)).unwrap();
    let err = client.complete(request()).await.expect_err("never answered");
    assert!(matches!(&err, LlmError::Unavailable(_)), "{err:?}");
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}

#[test]
fn no_queues_means_no_enum_and_no_prompt_means_no_system_message() {
    let client = OpenAiClient::new(&settings("http://127.0.0.1:1/v1".into())).unwrap();
    let req = LlmRequest {
        system_prompt: " ".into(),
        history: vec![(Speaker::Customer, "hi".into())],
        queues: vec![],
        tools: true,
    };
    let body = serde_json::to_value(client.build_request(&req)).unwrap();
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
    let queue = &body["tools"][0]["function"]["parameters"]["properties"]["queue"];
    assert_eq!(queue["type"], "string");
    assert!(queue.get("enum").is_none(), "{queue}");
}

#[test]
fn settings_are_validated_and_the_key_hidden() {
    for bad in ["", "api.openai.com/v1", "ftp://h/v1"] {
        assert!(matches!(OpenAiClient::new(&settings(bad.into())), Err(OpenAiError::InvalidConfig(_))), "{bad}");
    }
    let no_model = OpenAiSettings { model: " ".into(), ..settings("http://h/v1".into()) };
    assert!(matches!(OpenAiClient::new(&no_model), Err(OpenAiError::InvalidConfig(_))));
    let client = OpenAiClient::new(&settings("https://api.openai.com/v1/".into())).unwrap();
    let printed = format!("{client:?}");
    assert!(printed.contains("https://api.openai.com/v1\""), "{printed}");
    assert!(!printed.contains("test-key"), "{printed}");
}
