//! The tool registry, called as MCP and chat commands call it: every tool's success, bad
//! arguments, not found, another tenant's conversation, quotas, idempotent repeats and audit.

use crate::helpers::*;
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::domain::AgentId;
use switchboard_actors::state::Status;
use switchboard_adapters::tools::{Caller, ToolError, ToolOutcome, Tools};
use switchboard_load_tests::fakes::openai::Mode;

const MARIA: &str = "5511955501001";
const JOAO: &str = "5511955501002";

/// A hub whose new conversations wait in `vendas`, with Maria's and João's conversations.
async fn app_with_two_conversations(overrides: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("TENANTS__DEMO__ENTRY", "vendas")];
    all.extend_from_slice(overrides);
    let app = spawn_app_with(Some("second_tenant.toml"), &all).await;
    for (phone, wamid) in [(MARIA, "wamid.T1"), (JOAO, "wamid.T2")] {
        assert_eq!(app.wa_text(phone, wamid, "Quero trocar meu pedido").await.status(), 200);
        let id = app.wa_conversation(phone);
        eventually(Duration::from_secs(5), || async { app.state_of(&id).await.filter(|s| s.ticket == 1) })
            .await
            .expect("conversation opened");
    }
    app
}

fn bot(app: &TestApp) -> Arc<Caller> {
    app.state.callers.bot(BOT_TOKEN).expect("demo bot configured")
}

async fn call(app: &TestApp, name: &str, args: Value) -> Result<ToolOutcome, ToolError> {
    app.state.tools.call(&bot(app), name, args, "tools-test").await
}

async fn ok(app: &TestApp, name: &str, args: Value) -> ToolOutcome {
    let outcome = call(app, name, args).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(!outcome.is_error, "{name} refused: {}", outcome.text);
    outcome
}

async fn refused(app: &TestApp, name: &str, args: Value) -> String {
    let outcome = call(app, name, args).await.unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(outcome.is_error, "{name} should refuse, got {}", outcome.text);
    outcome.text
}

#[test]
fn every_tool_is_listed_with_a_closed_object_schema() {
    let names: Vec<&str> = Tools::specs().iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            "list_conversations",
            "get_conversation",
            "send_message",
            "transfer_conversation",
            "assign_conversation",
            "close_conversation",
            "reopen_conversation",
            "add_note",
            "search_contacts",
            "queue_stats",
            "agent_status",
            "summarize_conversation",
            "handoff_to_ai"
        ]
    );
    for spec in Tools::specs() {
        assert_eq!(spec.input_schema["type"], "object", "{}", spec.name);
        assert_eq!(spec.input_schema["additionalProperties"], false, "{}: unknown fields are refused", spec.name);
        assert!(!spec.description.is_empty());
    }
    let send = &Tools::specs()[2].input_schema;
    assert_eq!(send["required"], json!(["conversation_id", "text"]));
    assert_eq!(send["properties"]["text"]["type"], "string");
}

#[actix_web::test]
async fn reading_tools_list_get_search_and_report_queues() {
    let app = app_with_two_conversations(&[]).await;
    app.agent_online("vendas", "ana", 1).await;
    let maria = app.wa_conversation(MARIA);
    // Ana took one of the two; the other still waits.
    eventually(Duration::from_secs(5), || async {
        app.state_of(&maria).await.filter(|s| matches!(s.status, Status::Assigned { .. }))
    })
    .await
    .expect("the first to wait goes to ana");
    let taken = ok(&app, "list_conversations", json!({ "status": "assigned" })).await;
    assert_eq!(taken.data["total"], 1);
    assert_eq!(taken.data["conversations"][0]["agent"], "ana");

    let all = ok(&app, "list_conversations", json!({})).await;
    assert_eq!(all.data["total"], 2);
    let page = ok(&app, "list_conversations", json!({ "limit": 1 })).await;
    assert_eq!(page.data["conversations"].as_array().unwrap().len(), 1);
    assert_eq!(page.data["next_offset"], 1, "a second page exists");
    let by_agent = ok(&app, "list_conversations", json!({ "agent": "ana" })).await;
    assert_eq!(by_agent.data["total"], 1);
    let by_queue = ok(&app, "list_conversations", json!({ "queue": "suporte" })).await;
    assert_eq!(by_queue.data["total"], 0);

    let got = ok(&app, "get_conversation", json!({ "conversation_id": maria.as_str() })).await;
    assert_eq!(got.data["contact"]["key"], MARIA);
    assert_eq!(got.data["messages"][0]["text"], "Quero trocar meu pedido");
    assert_eq!(got.data["service_window_open"], true);
    let by_phone = ok(&app, "get_conversation", json!({ "conversation_id": MARIA })).await;
    assert_eq!(by_phone.data["id"], maria.as_str(), "a phone number finds its conversation");

    let found = ok(&app, "search_contacts", json!({ "query": "55119555010" })).await;
    assert_eq!(found.data["contacts"].as_array().unwrap().len(), 2);
    let one = ok(&app, "search_contacts", json!({ "query": JOAO })).await;
    assert_eq!(one.data["contacts"][0]["key"], JOAO);

    let stats = ok(&app, "queue_stats", json!({})).await;
    let queues = stats.data["queues"].as_array().unwrap();
    assert_eq!(queues.len(), 2);
    assert_eq!(queues[0]["queue"], "vendas");
    assert_eq!(queues[0]["waiting"], 1, "joão still waits");
    assert_eq!(queues[0]["agents_online"], 1);
    let agents = ok(&app, "agent_status", json!({ "agent": "ana" })).await;
    assert_eq!(agents.data["agents"][0]["queues"][0]["active"], 1);
    assert!(agents.text.contains("ana: vendas online 1/1"), "{}", agents.text);

    // Bad arguments: a protocol error, nothing runs.
    for (tool, args) in [
        ("list_conversations", json!({ "limit": "ten" })),
        ("list_conversations", json!({ "status": "sleeping" })),
        ("get_conversation", json!({})),
        ("queue_stats", json!({ "queue": "vendas", "extra": 1 })),
    ] {
        let err = call(&app, tool, args.clone()).await.expect_err("bad arguments");
        assert!(matches!(err, ToolError::InvalidArguments { .. }), "{tool} {args}: {err}");
    }
    assert!(matches!(call(&app, "no_such_tool", json!({})).await, Err(ToolError::UnknownTool(_))));
    // Not found, in words a model can act on.
    let text = refused(&app, "get_conversation", json!({ "conversation_id": "demo:whatsapp.main:000" })).await;
    assert!(text.contains("not found"), "{text}");
    assert!(refused(&app, "queue_stats", json!({ "queue": "nope" })).await.contains("unknown queue"));
    assert!(refused(&app, "agent_status", json!({ "agent": "zeca" })).await.contains("not known"));
    assert!(refused(&app, "search_contacts", json!({ "query": " x " })).await.contains("at least 2"));
}

#[actix_web::test]
async fn another_tenants_bot_sees_nothing_of_this_tenant() {
    let app = app_with_two_conversations(&[]).await;
    let outra = app.state.callers.bot(OUTRA_BOT_TOKEN).expect("outra bot");
    let maria = app.wa_conversation(MARIA);
    for (tool, args) in [
        ("get_conversation", json!({ "conversation_id": maria.as_str() })),
        ("get_conversation", json!({ "conversation_id": MARIA })),
        ("send_message", json!({ "conversation_id": maria.as_str(), "text": "intruso" })),
        ("close_conversation", json!({ "conversation_id": maria.as_str() })),
    ] {
        let out = app.state.tools.call(&outra, tool, args, "t").await.unwrap();
        assert!(out.is_error && out.text.contains("not found"), "{tool}: {}", out.text);
    }
    let list = app.state.tools.call(&outra, "list_conversations", json!({}), "t").await.unwrap();
    assert_eq!(list.data["total"], 0);
    assert!(!app.wa_texts_to(MARIA).iter().any(|t| t == "intruso"), "nothing was sent");
    assert!(app.state_of(&maria).await.unwrap().status != Status::Closed);
}

#[actix_web::test]
async fn changing_tools_act_through_the_conversation() {
    let app = app_with_two_conversations(&[]).await;
    let maria = app.wa_conversation(MARIA);
    let id = json!(maria.as_str());

    let sent = ok(&app, "send_message", json!({ "conversation_id": id, "text": "Olá Maria, já vejo isso." })).await;
    assert_eq!(sent.data["outcome"], "applied");
    eventually(Duration::from_secs(5), || async {
        app.wa_texts_to(MARIA).iter().any(|t| t == "Olá Maria, já vejo isso.").then_some(())
    })
    .await
    .expect("the customer got the message");

    ok(&app, "transfer_conversation", json!({ "conversation_id": id, "queue": "suporte" })).await;
    assert_eq!(app.state_of(&maria).await.unwrap().status, Status::Queued { queue: "suporte".into() });
    assert!(
        refused(&app, "transfer_conversation", json!({ "conversation_id": id, "queue": "x" }))
            .await
            .contains("unknown queue")
    );

    // Bia comes online in suporte and the queue gives her Maria; Caio then takes it over.
    app.agent_online("suporte", "bia", 1).await;
    eventually(Duration::from_secs(5), || async {
        app.state_of(&maria).await.filter(|s| matches!(s.status, Status::Assigned { .. }))
    })
    .await
    .expect("bia got maria");
    let offline = refused(&app, "assign_conversation", json!({ "conversation_id": id, "agent": "zeca" })).await;
    assert!(offline.contains("zeca"), "an agent not online is refused: {offline}");
    app.agent_online("suporte", "caio", 1).await;
    ok(&app, "assign_conversation", json!({ "conversation_id": id, "agent": "caio" })).await;
    assert_eq!(
        app.state_of(&maria).await.unwrap().status,
        Status::Assigned { queue: "suporte".into(), agent: AgentId::new("caio") }
    );

    ok(&app, "add_note", json!({ "conversation_id": id, "text": "Cliente VIP, prioridade." })).await;
    let state = app.state_of(&maria).await.unwrap();
    assert_eq!(state.notes.back().unwrap().text, "Cliente VIP, prioridade.");
    assert!(!app.wa_texts_to(MARIA).iter().any(|t| t.contains("VIP")), "a note never reaches the customer");

    ok(&app, "handoff_to_ai", json!({ "conversation_id": id })).await;
    assert_eq!(app.state_of(&maria).await.unwrap().status, Status::Bot);

    let closed = ok(&app, "close_conversation", json!({ "conversation_id": id })).await;
    assert_eq!(closed.data["conversation"]["status"], "closed");
    let again = ok(&app, "close_conversation", json!({ "conversation_id": id })).await;
    assert_eq!(again.data["outcome"], "duplicate", "closing twice changes nothing");
    assert!(refused(&app, "send_message", json!({ "conversation_id": id, "text": "oi?" })).await.contains("closed"));

    ok(&app, "reopen_conversation", json!({ "conversation_id": id, "queue": "vendas" })).await;
    let state = app.state_of(&maria).await.unwrap();
    assert_eq!((state.status.clone(), state.ticket), (Status::Queued { queue: "vendas".into() }, 2));
    assert!(refused(&app, "reopen_conversation", json!({ "conversation_id": id })).await.contains("not closed"));

    let journal = app.hub.journal(&maria, 1).await.unwrap();
    let kinds: Vec<String> =
        journal.iter().map(|e| serde_json::to_value(e).unwrap()["type"].as_str().unwrap().to_owned()).collect();
    assert!(kinds.contains(&"conversation.note.added".to_owned()), "{kinds:?}");
    let by_bot = journal.iter().any(|e| {
        serde_json::to_value(e).unwrap()["payload"]["author"] == json!({ "role": "integration", "id": "bot:assistant" })
    });
    assert!(by_bot, "the bot's actions are journaled under its name");
}

#[actix_web::test]
async fn send_message_respects_the_whatsapp_window() {
    let app = app_with_two_conversations(&[]).await;
    app.clock.advance(Duration::from_secs(25 * 3600));
    let text = refused(&app, "send_message", json!({ "conversation_id": MARIA, "text": "Ainda aí?" })).await;
    assert!(text.contains("24-hour"), "{text}");
    let got = ok(&app, "get_conversation", json!({ "conversation_id": MARIA })).await;
    assert_eq!(got.data["service_window_open"], false);
}

#[actix_web::test]
async fn summarize_asks_the_tenants_model_without_tools() {
    let app = app_with_two_conversations(&[]).await;
    app.openai.set_mode(Mode::Fixed { text: "Maria quer trocar o pedido.".into(), delay: Duration::ZERO });
    let out = ok(&app, "summarize_conversation", json!({ "conversation_id": MARIA })).await;
    assert_eq!(out.data["summary"], "Maria quer trocar o pedido.");
    let request = app.openai.requests().last().unwrap().body.clone();
    assert!(request["tools"].is_null(), "a summary offers no tools: {request}");
    assert!(request["messages"].to_string().contains("Quero trocar meu pedido"));
    app.openai.set_mode(Mode::Down);
    let text = refused(&app, "summarize_conversation", json!({ "conversation_id": MARIA })).await;
    assert!(text.contains("could not summarise"), "{text}");
}

#[actix_web::test]
async fn a_repeat_with_the_same_idempotency_key_acts_once() {
    let app = app_with_two_conversations(&[]).await;
    let args = json!({ "conversation_id": JOAO, "text": "Seu pedido foi trocado.", "idempotency_key": "k-1" });
    let first = ok(&app, "send_message", args.clone()).await;
    let second = ok(&app, "send_message", args).await;
    assert_eq!(first, second, "the repeat returns the first result");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let copies = app.wa_texts_to(JOAO).iter().filter(|t| *t == "Seu pedido foi trocado.").count();
    assert_eq!(copies, 1, "sent once");
    let other = json!({ "conversation_id": JOAO, "text": "outra coisa", "idempotency_key": "k-1" });
    assert!(matches!(call(&app, "send_message", other).await, Err(ToolError::KeyReused(_))));
    let trail = app.state.tools.audit_trail("demo", 10).await.unwrap();
    let results: Vec<&str> = trail.iter().map(|r| r.result.as_str()).collect();
    assert_eq!(&results[results.len() - 3..], ["ok", "repeat", "rejected"], "{trail:?}");
    assert!(trail.iter().all(|r| r.caller == "bot:assistant" && r.args_digest.len() == 32));
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    for line in [
        r#"switchboard_tool_calls_total{tool="send_message",result="ok"} 1"#,
        r#"switchboard_tool_calls_total{tool="send_message",result="repeat"} 1"#,
        r#"switchboard_tool_calls_total{tool="send_message",result="rejected"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} in\n{metrics}");
    }
}

#[actix_web::test]
async fn the_daily_quota_stops_a_starter_bot_until_midnight_utc() {
    let app = spawn_app(&[
        ("TENANTS__DEMO__BOTS__ASSISTANT__PLAN", "starter"),
        ("TENANTS__DEMO__BOTS__ASSISTANT__BURST_PER_SECOND", "100000"),
        ("TENANTS__DEMO__BOTS__ASSISTANT__BURST", "100000"),
    ])
    .await;
    for _ in 0..200 {
        ok(&app, "queue_stats", json!({})).await;
    }
    let Err(ToolError::QuotaExceeded(q)) = call(&app, "queue_stats", json!({})).await else {
        panic!("call 201 must be over the starter quota");
    };
    assert_eq!((q.limit, q.plan, q.allowed), ("daily", "starter", 200));
    let now = app.hub.clock().now_ms();
    let midnight = (now / 86_400_000 + 1) * 86_400_000;
    assert_eq!(q.retry_after_ms, midnight - now);
    assert!(q.resets_at.ends_with("T00:00:00Z"), "{}", q.resets_at);
    app.clock.advance(Duration::from_millis(midnight - now));
    ok(&app, "queue_stats", json!({})).await;
}

#[actix_web::test]
async fn the_burst_rate_refuses_calls_beyond_the_burst() {
    let app = spawn_app(&[
        ("TENANTS__DEMO__BOTS__ASSISTANT__BURST_PER_SECOND", "1"),
        ("TENANTS__DEMO__BOTS__ASSISTANT__BURST", "3"),
    ])
    .await;
    for _ in 0..3 {
        ok(&app, "queue_stats", json!({})).await;
    }
    let Err(ToolError::QuotaExceeded(q)) = call(&app, "queue_stats", json!({})).await else {
        panic!("the fourth call at once exceeds the burst");
    };
    assert_eq!((q.limit, q.allowed), ("burst", 3));
    assert!(q.retry_after_ms > 0 && q.retry_after_ms <= 1000, "{q:?}");
}

/// Arguments that name `conversation` and are otherwise valid, for every tool that takes one.
fn conversation_calls(conversation: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("get_conversation", json!({ "conversation_id": conversation })),
        ("send_message", json!({ "conversation_id": conversation, "text": "oi" })),
        ("transfer_conversation", json!({ "conversation_id": conversation, "queue": "suporte" })),
        ("assign_conversation", json!({ "conversation_id": conversation, "agent": "ana" })),
        ("close_conversation", json!({ "conversation_id": conversation })),
        ("reopen_conversation", json!({ "conversation_id": conversation })),
        ("add_note", json!({ "conversation_id": conversation, "text": "nota" })),
        ("summarize_conversation", json!({ "conversation_id": conversation })),
        ("handoff_to_ai", json!({ "conversation_id": conversation })),
    ]
}

#[actix_web::test]
async fn every_tool_refuses_bad_arguments_and_missing_or_foreign_conversations() {
    let app = app_with_two_conversations(&[]).await;
    for spec in Tools::specs() {
        let err = call(&app, spec.name, json!({ "no_such_argument": 1 })).await.expect_err(spec.name);
        assert!(matches!(err, ToolError::InvalidArguments { .. }), "{}: {err}", spec.name);
    }
    let outra = app.state.callers.bot(OUTRA_BOT_TOKEN).expect("outra bot");
    let maria = app.wa_conversation(MARIA);
    for (tool, args) in conversation_calls("demo:whatsapp.main:5511000000000") {
        assert!(refused(&app, tool, args).await.contains("not found"), "{tool}: a missing conversation");
    }
    for (tool, args) in conversation_calls(maria.as_str()) {
        let out = app.state.tools.call(&outra, tool, args, "t").await.unwrap();
        assert!(out.is_error && out.text.contains("not found"), "{tool} across tenants: {}", out.text);
    }
    let state = app.state_of(&maria).await.unwrap();
    assert!(state.notes.is_empty() && state.status == Status::Queued { queue: "vendas".into() }, "unchanged");
}

#[actix_web::test]
async fn every_changing_tool_repeated_with_its_key_acts_once() {
    let app = app_with_two_conversations(&[]).await;
    app.agent_online("suporte", "ana", 0).await;
    let maria = app.wa_conversation(MARIA);
    let calls = [
        ("send_message", json!({ "text": "um aviso" })),
        ("add_note", json!({ "text": "uma nota" })),
        ("transfer_conversation", json!({ "queue": "suporte" })),
        ("handoff_to_ai", json!({})),
        ("close_conversation", json!({})),
        ("reopen_conversation", json!({ "queue": "vendas" })),
    ];
    for (i, (tool, mut args)) in calls.into_iter().enumerate() {
        args["conversation_id"] = json!(maria.as_str());
        args["idempotency_key"] = json!(format!("key-{i}"));
        let first = ok(&app, tool, args.clone()).await;
        // Let the outbox report its sends first: they are the first call's doing.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seq = app.state_of(&maria).await.unwrap().seq;
        let again = call(&app, tool, args).await.unwrap();
        assert_eq!(first, again, "{tool}: the repeat answers like the first call");
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(app.state_of(&maria).await.unwrap().seq, seq, "{tool}: the repeat changed nothing");
    }
    let state = app.state_of(&maria).await.unwrap();
    assert_eq!((state.ticket, state.notes.len()), (2, 1), "one close, one reopen, one note");
}
