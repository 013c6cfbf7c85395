//! FakeOpenAi with the real async-openai client, plus error and stream shapes over reqwest.

use std::time::Duration;

use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionRequestAssistantMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, CreateChatCompletionRequestArgs, FinishReason,
};
use futures_util::StreamExt;
use serde_json::{Value, json};
use switchboard_load_tests::fakes::openai::{FakeOpenAi, Mode};

use super::{WAIT, post};

fn client(fake: &FakeOpenAi) -> Client<OpenAIConfig> {
    let config = OpenAIConfig::new().with_api_base(fake.base_url()).with_api_key("test-key");
    Client::with_config(config)
}

fn url(fake: &FakeOpenAi) -> String {
    format!("{}/chat/completions", fake.base_url())
}

#[actix_web::test]
async fn async_openai_parses_an_echo_of_the_unanswered_user_messages() {
    let fake = FakeOpenAi::start().await.unwrap();
    let request = CreateChatCompletionRequestArgs::default()
        .model("test-model")
        .messages([
            ChatCompletionRequestSystemMessage::from("You route messages.").into(),
            ChatCompletionRequestUserMessage::from("old question").into(),
            ChatCompletionRequestAssistantMessage::from("old answer").into(),
            ChatCompletionRequestUserMessage::from("first").into(),
            ChatCompletionRequestUserMessage::from("second").into(),
        ])
        .build()
        .unwrap();
    let response = client(&fake).chat().create(request).await.unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.message.content.as_deref(), Some("echo: first\nsecond"));
    assert_eq!(choice.finish_reason, Some(FinishReason::Stop));
    let usage = response.usage.unwrap();
    assert_eq!(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
    assert_eq!(response.model, "test-model");

    let recorded = fake.wait_for_requests(1, WAIT).await;
    assert_eq!(recorded[0].path, "/v1/chat/completions");
    assert_eq!(recorded[0].header("authorization"), Some("Bearer test-key"));
    assert_eq!(recorded[0].body["messages"].as_array().unwrap().len(), 5);
}

#[actix_web::test]
async fn async_openai_parses_a_tool_call() {
    let fake = FakeOpenAi::start().await.unwrap();
    let arguments = json!({"channel":"telegram","chat_id":"4242","text":"The build is green"});
    fake.set_mode(Mode::ToolCall {
        name: "send_message".to_owned(),
        arguments: arguments.clone(),
        delay: Duration::ZERO,
    });
    let request = CreateChatCompletionRequestArgs::default()
        .model("test-model")
        .messages([ChatCompletionRequestUserMessage::from("Tell Ada").into()])
        .build()
        .unwrap();
    let response = client(&fake).chat().create(request).await.unwrap();
    let choice = &response.choices[0];
    assert_eq!(choice.finish_reason, Some(FinishReason::ToolCalls));
    assert_eq!(choice.message.content, None);
    let calls = choice.message.tool_calls.as_ref().unwrap();
    let ChatCompletionMessageToolCalls::Function(call) = &calls[0] else {
        panic!("expected a function tool call, got {calls:?}");
    };
    assert!(call.id.starts_with("call_"));
    assert_eq!(call.function.name, "send_message");
    let parsed: Value = serde_json::from_str(&call.function.arguments).unwrap();
    assert_eq!(parsed, arguments);
}

#[actix_web::test]
async fn raw_shapes_for_fixed_parts_and_errors() {
    let fake = FakeOpenAi::start().await.unwrap();
    // Array-of-parts content is echoed too.
    let parts = json!({"model":"m","messages":[{"role":"user","content":[
        {"type":"text","text":"a"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"b"}]}]});
    let (status, body) = post(&url(&fake), Some("k"), &parts).await;
    assert_eq!(status, 200);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["message"]["content"], "echo: a\nb");

    fake.set_mode(Mode::Fixed { text: "fixed".to_owned(), delay: Duration::ZERO });
    let hello = json!({"model":"m","messages":[{"role":"user","content":"hi"}]});
    let (_, body) = post(&url(&fake), Some("k"), &hello).await;
    assert_eq!(body["choices"][0]["message"]["content"], "fixed");

    let (status, body) = post(&url(&fake), None, &hello).await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["type"], "invalid_request_error");

    fake.set_mode(Mode::Down);
    let (status, body) = post(&url(&fake), Some("k"), &hello).await;
    let overloaded =
        json!({"error":{"message":"The server is overloaded","type":"server_error","param":null,"code":null}});
    assert_eq!((status, body), (503, overloaded));

    fake.set_mode(Mode::Unauthorized);
    let (status, body) = post(&url(&fake), Some("k"), &hello).await;
    assert_eq!((status, body["error"]["code"].clone()), (401, json!("invalid_api_key")));
    assert!(body["error"]["param"].is_null());

    let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 401, 503, 401]);
}

#[actix_web::test]
async fn delay_keeps_requests_in_flight() {
    let fake = FakeOpenAi::start().await.unwrap();
    fake.set_mode(Mode::Echo { delay: Duration::from_millis(300) });
    let (target, hello) = (url(&fake), json!({"model":"m","messages":[{"role":"user","content":"hi"}]}));
    let task = actix_web::rt::spawn(async move { post(&target, Some("k"), &hello).await });
    assert_eq!(fake.wait_for_requests(1, WAIT).await.len(), 1);
    assert_eq!(fake.in_flight(), 1);
    let (status, body) = task.await.unwrap();
    assert_eq!((status, body["choices"][0]["message"]["content"].clone()), (200, json!("echo: hi")));
    assert_eq!(fake.in_flight(), 0);
    assert_eq!(fake.max_in_flight(), 1);
}

#[actix_web::test]
async fn stream_requests_get_sse_chunks() {
    let fake = FakeOpenAi::start().await.unwrap();
    let body = json!({"model":"m","stream":true,"stream_options":{"include_usage":true},
        "messages":[{"role":"user","content":"hi"}]});
    let resp = reqwest::Client::new().post(url(&fake)).bearer_auth("k").json(&body).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let text = resp.text().await.unwrap();
    let events: Vec<&str> =
        text.split("\n\n").filter(|e| !e.is_empty()).map(|e| e.strip_prefix("data: ").unwrap()).collect();
    assert_eq!(events.last(), Some(&"[DONE]"));
    let chunks: Vec<Value> = events[..events.len() - 1].iter().map(|e| serde_json::from_str(e).unwrap()).collect();
    assert!(chunks.iter().all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[1]["choices"][0]["delta"]["content"], "echo: hi");
    assert_eq!(chunks[2]["choices"][0]["finish_reason"], "stop");
    assert_eq!(chunks[3]["choices"], json!([]));
    assert!(chunks[3]["usage"]["total_tokens"].is_u64());
}

#[actix_web::test]
async fn async_openai_parses_streamed_text_and_tool_calls() {
    let fake = FakeOpenAi::start().await.unwrap();
    let request = || {
        CreateChatCompletionRequestArgs::default()
            .model("test-model")
            .messages([ChatCompletionRequestUserMessage::from("hi").into()])
            .build()
            .unwrap()
    };
    let mut stream = client(&fake).chat().create_stream(request()).await.unwrap();
    let mut text = String::new();
    let mut finish = None;
    while let Some(chunk) = stream.next().await {
        for choice in chunk.unwrap().choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or(""));
            finish = finish.or(choice.finish_reason);
        }
    }
    assert_eq!((text.as_str(), finish), ("echo: hi", Some(FinishReason::Stop)));

    fake.set_mode(Mode::ToolCall {
        name: "send_message".to_owned(),
        arguments: json!({"text": "x"}),
        delay: Duration::ZERO,
    });
    let mut stream = client(&fake).chat().create_stream(request()).await.unwrap();
    let (mut name, mut arguments) = (String::new(), String::new());
    while let Some(chunk) = stream.next().await {
        for choice in chunk.unwrap().choices {
            for call in choice.delta.tool_calls.unwrap_or_default() {
                let function = call.function.unwrap();
                name.push_str(function.name.as_deref().unwrap_or(""));
                arguments.push_str(function.arguments.as_deref().unwrap_or(""));
            }
        }
    }
    assert_eq!(name, "send_message");
    assert_eq!(serde_json::from_str::<Value>(&arguments).unwrap(), json!({"text": "x"}));
    assert_eq!(fake.requests()[0].body["stream"], true);
}
