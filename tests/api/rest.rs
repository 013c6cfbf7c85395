//! The REST API over real HTTP: every route, bearer authentication, tenants and queues that must
//! stay invisible, bad input that changes nothing, refused commands, and the journal (events,
//! messages, state at a past sequence, and what happens once old events are dropped).

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_actors::domain::{ChannelKind, ChannelRef, ConversationId, TenantId};
use switchboard_actors::state::Status;
use switchboard_load_tests::payloads;

const MARIA: &str = "5511955502001";
const JOAO: &str = "5511955502002";
const LIA: &str = "5511955502003";
const OUTRA_CUSTOMER: &str = "5511955502009";

/// A hub whose new conversations wait in `vendas`, with the accounts of `fixtures/rest.toml`.
async fn rest_app(overrides: &[(&str, &str)]) -> TestApp {
    let mut all = vec![("TENANTS__DEMO__ENTRY", "vendas")];
    all.extend_from_slice(overrides);
    spawn_app_with(Some("rest.toml"), &all).await
}

/// A customer writes on WhatsApp; returns the conversation once it waits in a queue and its
/// queue notice went out. The clock then moves on a second, so the next one is newer.
async fn customer_writes(app: &TestApp, phone: &str, wamid: &str) -> ConversationId {
    assert_eq!(app.wa_text(phone, wamid, "Quero trocar meu pedido").await.status(), 200);
    let id = app.wa_conversation(phone);
    eventually(Duration::from_secs(5), || async {
        let s = app.state_of(&id).await?;
        let sent = !s.outbound.is_empty() && s.outbound.iter().all(|r| r.provider_message_id.is_some());
        (matches!(s.status, Status::Queued { .. }) && sent).then_some(s)
    })
    .await
    .expect("the conversation waits in a queue");
    app.clock.advance(Duration::from_secs(1));
    id
}

/// One REST call: status and JSON body (every answer of `/api` is JSON).
async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = app.http.request(method, format!("{}/api{path}", app.url));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("hub reachable");
    let status = res.status();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {text}"));
    (status, json)
}

async fn get(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    call(app, Method::GET, path, Some(token), None).await
}

async fn post(app: &TestApp, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
    call(app, Method::POST, path, Some(token), Some(body)).await
}

fn conv(id: &ConversationId, rest: &str) -> String {
    format!("/conversations/{id}{rest}")
}

/// Asserts an error answer: status and `error.code`.
fn refused((status, body): (StatusCode, Value), want: u16, code: &str) -> String {
    assert_eq!(status.as_u16(), want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    body["error"]["message"].as_str().unwrap_or_default().to_owned()
}

fn ok((status, body): (StatusCode, Value)) -> Value {
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[actix_web::test]
async fn reads_list_filter_paginate_and_show_conversations() {
    let app = rest_app(&[]).await;
    let maria = customer_writes(&app, MARIA, "wamid.R1").await;
    customer_writes(&app, JOAO, "wamid.R2").await;
    customer_writes(&app, LIA, "wamid.R3").await;

    let me = ok(get(&app, "/me", ANA_TOKEN).await);
    assert_eq!(me, json!({ "tenant": "demo", "agent": "ana", "role": "agent", "queues": ["suporte", "vendas"] }));

    let all = ok(get(&app, "/conversations", ADMIN_TOKEN).await);
    assert_eq!(all["total"], 3);
    assert_eq!(all["conversations"][0]["contact"]["key"], LIA, "newest first");
    let first = ok(get(&app, "/conversations?limit=2", ADMIN_TOKEN).await);
    assert_eq!(first["conversations"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_offset"], 2);
    let last = ok(get(&app, "/conversations?limit=2&offset=2", ADMIN_TOKEN).await);
    assert_eq!(last["conversations"][0]["contact"]["key"], MARIA);
    assert_eq!(last["next_offset"], Value::Null);
    assert_eq!(ok(get(&app, "/conversations?status=queued&queue=vendas", ADMIN_TOKEN).await)["total"], 3);
    assert_eq!(ok(get(&app, "/conversations?status=closed", ADMIN_TOKEN).await)["total"], 0);
    assert_eq!(ok(get(&app, "/conversations?queue=suporte", ADMIN_TOKEN).await)["total"], 0);
    // An agent's listing pages over the union of its queues the same way.
    let ana = ok(get(&app, "/conversations?limit=1&offset=1", ANA_TOKEN).await);
    assert_eq!((ana["total"].clone(), ana["next_offset"].clone()), (json!(3), json!(2)));
    assert_eq!(ana["conversations"][0]["contact"]["key"], JOAO);

    let one = ok(get(&app, &conv(&maria, ""), ANA_TOKEN).await);
    assert_eq!(one["status"], "queued");
    assert_eq!(one["queue"], "vendas");
    assert_eq!(one["channel"], "whatsapp.main");
    assert_eq!(one["service_window_open"], true);
    assert_eq!(
        one["messages"][0],
        json!({ "author": { "role": "customer" }, "text": "Quero trocar meu pedido", "seq": 2 })
    );
    assert_eq!(one["messages"][1]["author"], json!({ "role": "system" }), "the queue notice");
    let short = ok(get(&app, &conv(&maria, "?messages=1"), ANA_TOKEN).await);
    assert_eq!(short["messages"].as_array().unwrap().len(), 1);
    // Ids hold ':' and '.', which may also arrive percent-encoded.
    let encoded = maria.as_str().replace(':', "%3A");
    assert_eq!(ok(get(&app, &format!("/conversations/{encoded}"), ANA_TOKEN).await)["id"], maria.as_str());
}

#[actix_web::test]
async fn agents_and_admins_work_a_conversation_through_every_command() {
    let app = rest_app(&[]).await;
    let maria = customer_writes(&app, MARIA, "wamid.W1").await;
    // Nobody is online in vendas yet: an assignment has no one to go to.
    let why =
        refused(post(&app, &conv(&maria, "/assign"), ADMIN_TOKEN, json!({ "agent": "ana" })).await, 409, "conflict");
    assert!(why.contains("offline or at capacity"), "{why}");

    app.agent_online("vendas", "ana", 2).await;
    eventually(Duration::from_secs(5), || async {
        app.state_of(&maria)
            .await
            .filter(|s| matches!(&s.status, Status::Assigned { agent, .. } if agent.as_str() == "ana"))
    })
    .await
    .expect("the queue gives maria to ana");

    let replied =
        ok(post(&app, &conv(&maria, "/reply"), ANA_TOKEN, json!({ "text": "Oi Maria, já vejo seu pedido" })).await);
    assert_eq!(replied["agent"], "ana");
    let last = replied["messages"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(
        last,
        json!({ "author": { "role": "agent", "id": "ana" }, "text": "Oi Maria, já vejo seu pedido", "seq": last["seq"] })
    );
    eventually(Duration::from_secs(5), || async {
        app.wa_texts_to(MARIA).contains(&"Oi Maria, já vejo seu pedido".to_owned()).then_some(())
    })
    .await
    .expect("the reply reaches the customer through the Graph API");

    let noted = ok(post(&app, &conv(&maria, "/notes"), ANA_TOKEN, json!({ "text": "cliente VIP" })).await);
    assert_eq!(noted["notes"][0]["author"], json!({ "role": "agent", "id": "ana" }));
    assert!(!app.wa_texts_to(MARIA).iter().any(|t| t.contains("VIP")), "notes never reach the customer");

    // Another agent of the queue gets it; ana may no longer reply, though she still sees it.
    app.agent_online("vendas", "bruno", 1).await;
    let assigned = ok(post(&app, &conv(&maria, "/assign"), ADMIN_TOKEN, json!({ "agent": "bruno" })).await);
    assert_eq!((assigned["status"].clone(), assigned["agent"].clone()), (json!("assigned"), json!("bruno")));
    refused(post(&app, &conv(&maria, "/reply"), ANA_TOKEN, json!({ "text": "oi" })).await, 409, "not_assigned");
    let back = ok(post(&app, &conv(&maria, "/transfer"), ANA_TOKEN, json!({ "agent": "ana" })).await);
    assert_eq!(back["agent"], "ana");

    let moved = ok(post(&app, &conv(&maria, "/transfer"), ANA_TOKEN, json!({ "queue": "suporte" })).await);
    assert_eq!((moved["status"].clone(), moved["queue"].clone()), (json!("queued"), json!("suporte")));
    app.agent_online("suporte", "ana", 1).await;
    eventually(Duration::from_secs(5), || async {
        app.state_of(&maria)
            .await
            .filter(|s| s.status.queue() == Some("suporte") && matches!(s.status, Status::Assigned { .. }))
    })
    .await
    .expect("ana takes it in suporte");

    let closed = ok(post(&app, &conv(&maria, "/close"), ANA_TOKEN, json!({})).await);
    assert_eq!(closed["status"], "closed");
    // Closed conversations belong to no queue: only an admin sees them and may reopen them.
    refused(get(&app, &conv(&maria, ""), ANA_TOKEN).await, 404, "not_found");
    refused(post(&app, &conv(&maria, "/reply"), ADMIN_TOKEN, json!({ "text": "oi" })).await, 409, "closed");
    let again = ok(call(&app, Method::POST, &conv(&maria, "/close"), Some(ADMIN_TOKEN), None).await);
    assert_eq!(again["status"], "closed", "closing twice changes nothing");
    let reopened = ok(post(&app, &conv(&maria, "/reopen"), ADMIN_TOKEN, json!({ "queue": "vendas" })).await);
    assert_eq!(reopened["ticket"], 2);
    refused(post(&app, &conv(&maria, "/reopen"), ADMIN_TOKEN, json!({})).await, 409, "conflict");
    let state = eventually(Duration::from_secs(5), || async {
        app.state_of(&maria).await.filter(|s| matches!(s.status, Status::Assigned { .. }))
    })
    .await
    .expect("the new ticket is assigned in vendas");
    let admin = ok(post(&app, &conv(&maria, "/reply"), ADMIN_TOKEN, json!({ "text": "Aqui é a gerência" })).await);
    assert_eq!(
        admin["last_message"]["author"],
        json!({ "role": "agent", "id": "admin" }),
        "an admin answers as itself"
    );
    assert!(admin["seq"].as_u64().unwrap() > state.seq);
}

#[actix_web::test]
async fn tokens_are_checked_before_anything_else() {
    let app = rest_app(&[]).await;
    let maria = customer_writes(&app, MARIA, "wamid.A1").await;
    for path in ["/conversations", "/me", conv(&maria, "").as_str()] {
        let res = app.http.get(format!("{}/api{path}", app.url)).send().await.unwrap();
        assert_eq!(res.status(), 401);
        assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="switchboard""#);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["error"], json!({ "code": "unauthorized", "message": "missing bearer token" }));
    }
    // A wrong token, an MCP bot's token, another scheme: all strangers here.
    for token in ["nope", BOT_TOKEN] {
        refused(get(&app, "/conversations", token).await, 401, "unauthorized");
    }
    let basic = app.http.get(format!("{}/api/me", app.url)).header("authorization", format!("Basic {ANA_TOKEN}"));
    assert_eq!(basic.send().await.unwrap().status(), 401);
    // No token and a bad query or body: the token is what is refused.
    let (status, _) = call(&app, Method::GET, "/conversations?limit=oops", None, None).await;
    assert_eq!(status, 401);
    let (status, _) = call(&app, Method::POST, &conv(&maria, "/close"), Some("nope"), Some(json!({ "x": 1 }))).await;
    assert_eq!(status, 401);
    assert!(matches!(app.state_of(&maria).await.unwrap().status, Status::Queued { .. }), "nothing changed");
    // The document is public; the scheme is case-insensitive.
    assert_eq!(app.http.get(format!("{}/api/openapi.json", app.url)).send().await.unwrap().status(), 200);
    let lower = app.http.get(format!("{}/api/me", app.url)).header("authorization", format!("bearer {ANA_TOKEN}"));
    assert_eq!(lower.send().await.unwrap().status(), 200);
}

#[actix_web::test]
async fn other_tenants_and_other_queues_do_not_exist_for_the_caller() {
    let app = rest_app(&[]).await;
    let maria = customer_writes(&app, MARIA, "wamid.T1").await;
    let body = payloads::wa_text(OUTRA_PNID, OUTRA_CUSTOMER, "wamid.T2", "olá");
    let sig = payloads::wa_sign(OUTRA_SECRET, body.as_bytes());
    assert_eq!(app.post_wa_raw(body.into_bytes(), Some(&sig)).await.status(), 200);
    let outra = ConversationId::for_contact(
        &TenantId::new("outra"),
        &ChannelRef::new(ChannelKind::WhatsApp, "main"),
        &switchboard_adapters::phone::contact_key(OUTRA_CUSTOMER),
    );
    eventually(Duration::from_secs(5), || async { app.hub.conversation(&TenantId::new("outra"), &outra).await })
        .await
        .expect("outra's conversation opened");

    // Another tenant's admin: demo's conversation is "not found", for reads and writes alike.
    let bia = ok(get(&app, "/conversations", OUTRA_ADMIN_TOKEN).await);
    assert_eq!(bia["total"], 1);
    assert_eq!(bia["conversations"][0]["id"], outra.as_str());
    let before = app.state_of(&maria).await.unwrap();
    for path in ["", "/messages", "/events", "/state?at_seq=1"] {
        refused(get(&app, &conv(&maria, path), OUTRA_ADMIN_TOKEN).await, 404, "not_found");
        refused(get(&app, &conv(&outra, path), ADMIN_TOKEN).await, 404, "not_found");
    }
    refused(post(&app, &conv(&maria, "/close"), OUTRA_ADMIN_TOKEN, json!({})).await, 404, "not_found");
    refused(post(&app, &conv(&outra, "/notes"), ADMIN_TOKEN, json!({ "text": "x" })).await, 404, "not_found");

    // caio works only in suporte: maria waits in vendas.
    assert_eq!(ok(get(&app, "/conversations", CAIO_TOKEN).await)["total"], 0);
    assert_eq!(ok(get(&app, "/conversations?queue=vendas", CAIO_TOKEN).await)["total"], 0);
    refused(get(&app, &conv(&maria, ""), CAIO_TOKEN).await, 404, "not_found");
    refused(post(&app, &conv(&maria, "/close"), CAIO_TOKEN, json!({})).await, 404, "not_found");
    refused(post(&app, &conv(&maria, "/transfer"), CAIO_TOKEN, json!({ "queue": "suporte" })).await, 404, "not_found");
    assert_eq!(app.state_of(&maria).await.unwrap(), before, "nothing changed");
    // Once it moves to suporte, it is his to work.
    ok(post(&app, &conv(&maria, "/transfer"), ADMIN_TOKEN, json!({ "queue": "suporte" })).await);
    assert_eq!(ok(get(&app, &conv(&maria, ""), CAIO_TOKEN).await)["queue"], "suporte");
    assert_eq!(ok(get(&app, "/conversations", CAIO_TOKEN).await)["total"], 1);
}

#[actix_web::test]
async fn bad_input_gets_a_clear_4xx_and_changes_nothing() {
    let app = rest_app(&[]).await;
    let maria = customer_writes(&app, MARIA, "wamid.B1").await;
    let before = app.state_of(&maria).await.unwrap();
    let raw = |path: &str, body: &'static str| {
        app.http
            .post(format!("{}/api{path}", app.url))
            .bearer_auth(ADMIN_TOKEN)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let res = raw(&conv(&maria, "/notes"), "{\"text\": ").await.unwrap();
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("invalid JSON body"), "{body}");
    assert_eq!(raw(&conv(&maria, "/close"), "[]").await.unwrap().status(), 400);
    for (path, body) in [
        ("/notes", json!({ "text": "x", "internal": true })),
        ("/notes", json!({ "body": "x" })),
        ("/reply", json!({ "text": 42 })),
        ("/transfer", json!({ "queue": "suporte", "agent": "ana" })),
        ("/transfer", json!({})),
        ("/close", json!({ "reason": "spam" })),
    ] {
        refused(post(&app, &conv(&maria, path), ADMIN_TOKEN, body).await, 400, "bad_request");
    }
    for (path, body) in [
        ("/notes", json!({ "text": "   " })),
        ("/transfer", json!({ "queue": "financeiro" })),
        ("/assign", json!({ "agent": "" })),
    ] {
        refused(post(&app, &conv(&maria, path), ADMIN_TOKEN, body).await, 422, "unprocessable");
    }
    for query in [
        "/conversations?limit=0",
        "/conversations?limit=201",
        "/conversations?limit=abc",
        "/conversations?status=sleeping",
        "/conversations?page=2",
        conv(&maria, "?messages=101").as_str(),
        conv(&maria, "/state").as_str(),
        conv(&maria, "/state?at_seq=0").as_str(),
        conv(&maria, "/events?from=0").as_str(),
        conv(&maria, "/messages?before_seq=-1").as_str(),
    ] {
        refused(get(&app, query, ADMIN_TOKEN).await, 400, "bad_request");
    }
    refused(get(&app, "/conversations?queue=financeiro", ADMIN_TOKEN).await, 422, "unprocessable");
    refused(get(&app, &conv(&ConversationId::new("demo:whatsapp.main:0"), ""), ADMIN_TOKEN).await, 404, "not_found");
    refused(get(&app, "/nothing/here", ADMIN_TOKEN).await, 404, "not_found");
    refused(call(&app, Method::DELETE, &conv(&maria, ""), Some(ADMIN_TOKEN), None).await, 405, "method_not_allowed");
    refused(call(&app, Method::GET, &conv(&maria, "/close"), Some(ADMIN_TOKEN), None).await, 405, "method_not_allowed");
    assert_eq!(app.state_of(&maria).await.unwrap(), before, "nothing changed");
}

#[actix_web::test]
async fn the_journal_gives_events_messages_and_the_state_at_any_sequence() {
    let app = rest_app(&[]).await;
    let maria = customer_writes(&app, MARIA, "wamid.J1").await;
    app.agent_online("vendas", "ana", 1).await;
    eventually(Duration::from_secs(5), || async {
        app.state_of(&maria).await.filter(|s| matches!(s.status, Status::Assigned { .. }))
    })
    .await
    .expect("assigned to ana");
    ok(post(&app, &conv(&maria, "/reply"), ANA_TOKEN, json!({ "text": "Pode mandar a foto?" })).await);
    let settled = eventually(Duration::from_secs(5), || async {
        let s = app.state_of(&maria).await?;
        s.outbound.iter().all(|r| r.provider_message_id.is_some()).then_some(s)
    })
    .await
    .expect("every message sent");

    let all = ok(get(&app, &conv(&maria, "/events?limit=200"), ANA_TOKEN).await);
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len() as u64, settled.seq);
    assert_eq!(all["last_seq"], settled.seq);
    assert_eq!(all["has_more"], false);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        &types[..4],
        ["conversation.opened", "inbox.message.received", "routing.handoff.requested", "conversation.queued"]
    );
    assert!(events.iter().enumerate().all(|(i, e)| e["seq"] == i as u64 + 1 && e["conversation_id"] == maria.as_str()));
    let page = ok(get(&app, &conv(&maria, "/events?from=2&limit=2"), ANA_TOKEN).await);
    assert_eq!(
        page["events"].as_array().unwrap().iter().map(|e| e["seq"].clone()).collect::<Vec<_>>(),
        [json!(2), json!(3)]
    );
    assert_eq!((page["next_from"].clone(), page["has_more"].clone()), (json!(4), json!(true)));

    let messages = ok(get(&app, &conv(&maria, "/messages"), ANA_TOKEN).await);
    let list = messages["messages"].as_array().unwrap();
    assert_eq!(list[0]["text"], "Quero trocar meu pedido");
    assert_eq!(list[0]["content"], json!({ "kind": "text", "body": "Quero trocar meu pedido" }));
    let reply = list.last().unwrap();
    assert_eq!(
        (reply["author"].clone(), reply["delivery"].clone()),
        (json!({ "role": "agent", "id": "ana" }), json!("sent"))
    );
    let older =
        ok(get(&app, &conv(&maria, &format!("/messages?limit=1&before_seq={}", reply["seq"])), ANA_TOKEN).await);
    assert_eq!(older["messages"].as_array().unwrap().len(), 1);
    assert_eq!(older["next_before_seq"], older["messages"][0]["seq"], "an older page exists");
    assert_eq!(older["oldest_kept_seq"], 1);

    // Every past state, rebuilt from the journal; the last one is the conversation as it is now.
    let queued_at = types.iter().position(|t| *t == "conversation.queued").unwrap() + 1;
    let then = ok(get(&app, &conv(&maria, &format!("/state?at_seq={queued_at}")), ANA_TOKEN).await);
    assert_eq!((then["status"].clone(), then["seq"].clone()), (json!("queued"), json!(queued_at)));
    assert_eq!(ok(get(&app, &conv(&maria, "/state?at_seq=1"), ANA_TOKEN).await)["messages"], json!([]));
    let now = ok(get(&app, &conv(&maria, &format!("/state?at_seq={}", settled.seq)), ANA_TOKEN).await);
    assert_eq!(now, ok(get(&app, &conv(&maria, "?messages=100"), ANA_TOKEN).await));
    let why = refused(
        get(&app, &conv(&maria, &format!("/state?at_seq={}", settled.seq + 1)), ANA_TOKEN).await,
        422,
        "unprocessable",
    );
    assert!(why.contains("not reached yet"), "{why}");
}

#[actix_web::test]
async fn dropped_journal_events_are_gone_not_guessed() {
    // The memory store drops whole chunks of 32 events while more than the limit would remain
    // (the Redis store keeps every event, so this is the memory backend's test on any run).
    let app = rest_app(&[("BACKEND__KIND", "memory"), ("BACKEND__MEMORY_JOURNAL_LIMIT", "4")]).await;
    let maria = customer_writes(&app, MARIA, "wamid.G1").await;
    for i in 0..40 {
        ok(post(&app, &conv(&maria, "/notes"), ADMIN_TOKEN, json!({ "text": format!("nota {i}") })).await);
    }
    let seq = app.state_of(&maria).await.unwrap().seq;
    let kept = ok(get(&app, &conv(&maria, "/events?limit=200"), ADMIN_TOKEN).await);
    let oldest = kept["events"][0]["seq"].as_u64().unwrap();
    assert!(oldest > 1, "the first chunk was dropped: {kept}");
    assert_eq!(oldest + kept["events"].as_array().unwrap().len() as u64 - 1, seq, "from the oldest kept to now");

    let why = refused(get(&app, &conv(&maria, "/state?at_seq=1"), ADMIN_TOKEN).await, 410, "gone");
    assert!(why.contains(&format!("starts at sequence {oldest}")), "{why}");
    refused(get(&app, &conv(&maria, &format!("/state?at_seq={oldest}")), ADMIN_TOKEN).await, 410, "gone");
    assert_eq!(ok(get(&app, &conv(&maria, &format!("/state?at_seq={seq}")), ADMIN_TOKEN).await)["seq"], seq);
    let why = refused(get(&app, &conv(&maria, "/events?from=1"), ADMIN_TOKEN).await, 410, "gone");
    assert!(why.contains(&format!("read from {oldest}")), "{why}");
    let from = ok(get(&app, &conv(&maria, &format!("/events?from={oldest}&limit=1")), ADMIN_TOKEN).await);
    assert_eq!(from["events"][0]["seq"], oldest);
    let messages = ok(get(&app, &conv(&maria, "/messages"), ADMIN_TOKEN).await);
    assert_eq!(messages["oldest_kept_seq"], oldest);
    assert_eq!(messages["messages"], json!([]), "only notes are kept, and notes are not messages");
}

#[test]
fn agent_accounts_are_validated_and_an_unset_token_disables_one() {
    let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    let bad = std::env::temp_dir().join(format!("sb-rest-agents-{}.toml", std::process::id()));
    std::fs::write(
        &bad,
        r#"
[tenants.demo.agents.rui]
token_env = "RUI_TOKEN"
token_sha256 = "00"
role = "boss"
queues = ["vendas", "financeiro"]
"#,
    )
    .unwrap();
    let errors = switchboard::config::load(Some(&base), Some(&bad), &Default::default()).unwrap_err().0;
    std::fs::remove_file(&bad).ok();
    for problem in [
        "tenants.demo.agents.rui: set exactly one of token_env and token_sha256",
        "tenants.demo.agents.rui.role: expected agent or admin",
        "tenants.demo.agents.rui.queues[1]: no queue named \"financeiro\"",
    ] {
        assert!(errors.iter().any(|e| e.contains(problem)), "{problem} missing from {errors:?}");
    }

    let settings = switchboard::config::load(Some(&base), None, &Default::default()).unwrap();
    let env = [("DEMO_AGENT_ANA_TOKEN".to_owned(), ANA_TOKEN.to_owned())].into();
    let (accounts, warnings) = switchboard::config::build_agents(&settings, &env);
    assert_eq!(warnings, ["tenant demo: agent admin disabled: set DEMO_ADMIN_TOKEN"]);
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts.find(ANA_TOKEN).unwrap().id.as_str(), "ana");
}
