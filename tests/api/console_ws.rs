//! The agent console over a real WebSocket (`/ws/console`): authentication before the upgrade,
//! the snapshot, live pushes only for what the account works on, the accept race, a reply that
//! reaches the customer, refusals with reasons, and a reconnect with `since` that misses and
//! repeats nothing.

use crate::helpers::*;
use crate::ws_client::{Ws, open, refused_status};
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_actors::domain::ConversationId;
use switchboard_actors::state::Status;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BRUNO_TOKEN: &str = "bruno-agent-token";
const MARIA: &str = "5511966601001";
const JOAO: &str = "5511966601002";

/// Customers' new tickets wait in `vendas`, where agents accept them (see fixtures/console.toml).
async fn console_app() -> TestApp {
    spawn_app_with(Some("console.toml"), &[("TENANTS__DEMO__ENTRY", "vendas")]).await
}

async fn customer_waits(app: &TestApp, phone: &str, wamid: &str) -> ConversationId {
    assert_eq!(app.wa_text(phone, wamid, "Quero comprar um tênis").await.status(), 200);
    let id = app.wa_conversation(phone);
    eventually(Duration::from_secs(5), || async {
        app.state_of(&id).await.filter(|s| matches!(s.status, Status::Queued { .. }))
    })
    .await
    .expect("the conversation waits in vendas");
    id
}

/// Connects with `token`, checks `hello`, and returns the connection and the snapshot.
async fn sign_in(app: &TestApp, token: &str) -> (Ws, Value) {
    let mut ws = open(&app.url, &format!("/ws/console?token={token}")).await.expect("console connects");
    let hello = ws.next().await;
    assert_eq!((hello["type"].as_str(), hello["resumed"].as_bool()), (Some("hello"), Some(false)), "{hello}");
    let snapshot = ws.next().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    (ws, snapshot)
}

fn events_about<'a>(frames: &'a [Value], id: &ConversationId) -> Vec<&'a Value> {
    frames.iter().filter(|f| f["type"] == "event" && f["event"]["conversation_id"] == id.as_str()).collect()
}

#[actix_web::test]
async fn a_missing_or_wrong_token_is_refused_before_the_upgrade() {
    let app = console_app().await;
    assert_eq!(refused_status(&app.url, "/ws/console").await, 401);
    assert_eq!(refused_status(&app.url, "/ws/console?token=nope").await, 401);
    assert_eq!(refused_status(&app.url, &format!("/ws/console?token={ANA_TOKEN}&since=yesterday")).await, 400);
    // The same token over the header works (programs can set it).
    let mut request = format!("{}/ws/console", app.url.replacen("http", "ws", 1)).into_client_request().unwrap();
    request.headers_mut().insert("Authorization", format!("Bearer {ANA_TOKEN}").parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.expect("bearer header accepted");
    use futures_util::StreamExt;
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));
}

#[actix_web::test]
async fn the_snapshot_and_the_pushes_cover_what_the_agent_works_on_and_nothing_else() {
    let app = console_app().await;
    let maria = customer_waits(&app, MARIA, "wamid.CW1").await;

    let (mut ana, snapshot) = sign_in(&app, ANA_TOKEN).await;
    assert_eq!(snapshot["availability"], json!({ "available": false, "capacity": 5 }));
    let vendas = snapshot["queues"].as_array().unwrap().iter().find(|q| q["name"] == "vendas").expect("vendas");
    assert_eq!(vendas["waiting"][0]["conversation_id"], maria.as_str());
    assert_eq!(vendas["waiting"][0]["position"], 1);
    let listed = &snapshot["conversations"][0];
    assert_eq!((listed["id"].as_str(), listed["status"].as_str()), (Some(maria.as_str()), Some("queued")));
    assert_eq!(listed["contact"]["key"], MARIA);

    let (mut caio, caio_snapshot) = sign_in(&app, CAIO_TOKEN).await;
    assert_eq!(caio_snapshot["conversations"], json!([]), "caio works suporte only");
    assert_eq!(caio_snapshot["queues"].as_array().unwrap().len(), 1);

    // A new customer: ana sees the queue event live, with the conversation as it stands. (With
    // several nodes Maria's own event may come round the shared stream after the snapshot that
    // already shows it: a console applies it again, to the same effect.)
    let joao = customer_waits(&app, JOAO, "wamid.CW2").await;
    let (queued, _) = ana
        .until("joao queued", |f| {
            f["type"] == "event"
                && f["event"]["type"] == "conversation.queued"
                && f["event"]["conversation_id"] == joao.as_str()
        })
        .await;
    assert_eq!(queued["event"]["conversation_id"], joao.as_str());
    assert_eq!(queued["event"]["payload"], json!({ "queue": "vendas", "position": 2 }));
    assert_eq!(
        (queued["conversation"]["status"].as_str(), queued["id"].clone()),
        (Some("queued"), queued["event"]["event_id"].clone())
    );
    assert!(events_about(&caio.drain().await, &joao).is_empty(), "nothing of vendas reaches caio");

    // Transferred to suporte: caio now sees it, and ana gets the transfer so she can drop it.
    let (ack, _) =
        ana.command("t1", json!({ "type": "transfer", "conversation_id": joao.as_str(), "queue": "suporte" })).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["conversation"]["queue"], "suporte");
    let (moved, _) =
        caio.until("joao in suporte", |f| f["type"] == "event" && f["event"]["type"] == "conversation.queued").await;
    assert_eq!(moved["conversation"]["queue"], "suporte");
    // On Redis the transfer reaches ana's console through the tenant's shared stream, which may
    // be after an answer to a ping: wait for it rather than for a ping's round trip.
    let (transferred, _) = ana
        .until("joao's transfer", |f| {
            f["type"] == "event"
                && f["event"]["type"] == "conversation.transferred"
                && f["event"]["conversation_id"] == joao.as_str()
        })
        .await;
    assert_eq!(transferred["conversation"]["queue"], "suporte");
}

#[actix_web::test]
async fn two_agents_accepting_the_same_conversation_at_once_exactly_one_wins() {
    let app = console_app().await;
    let maria = customer_waits(&app, MARIA, "wamid.CW3").await;
    let (mut ana, _) = sign_in(&app, ANA_TOKEN).await;
    let (mut bruno, _) = sign_in(&app, BRUNO_TOKEN).await;

    let (not_yet, _) = ana.command("a0", json!({ "type": "accept", "conversation_id": maria.as_str() })).await;
    assert_eq!(
        (not_yet["type"].as_str(), not_yet["code"].as_str()),
        (Some("error"), Some("not_available")),
        "{not_yet}"
    );
    for ws in [&mut ana, &mut bruno] {
        let (ack, _) = ws.command("on", json!({ "type": "set_availability", "available": true, "capacity": 3 })).await;
        assert_eq!(ack["availability"], json!({ "available": true, "capacity": 3 }), "{ack}");
    }

    let accept = json!({ "type": "accept", "conversation_id": maria.as_str() });
    let ((a, _), (b, _)) = tokio::join!(ana.command("a1", accept.clone()), bruno.command("b1", accept));
    let answers = [("ana", &a), ("bruno", &b)];
    let winners: Vec<&str> = answers.iter().filter(|(_, r)| r["type"] == "ack").map(|(n, _)| *n).collect();
    let losers: Vec<&Value> = answers.iter().filter(|(_, r)| r["type"] == "error").map(|(_, r)| *r).collect();
    assert_eq!(winners.len(), 1, "exactly one wins: {a} / {b}");
    assert_eq!(losers.len(), 1);
    assert_eq!(losers[0]["code"], "already_taken");
    let state = app.state_of(&maria).await.unwrap();
    assert!(
        matches!(&state.status, Status::Assigned { agent, .. } if agent.as_str() == winners[0]),
        "{:?}",
        state.status
    );
    let winner_ack = if winners[0] == "ana" { &a } else { &b };
    assert_eq!(winner_ack["conversation"]["agent"], winners[0]);
}

#[actix_web::test]
async fn a_console_reply_reaches_whatsapp_and_refusals_say_why() {
    let app = console_app().await;
    let maria = customer_waits(&app, MARIA, "wamid.CW4").await;
    let (mut ana, _) = sign_in(&app, ANA_TOKEN).await;
    let (mut caio, _) = sign_in(&app, CAIO_TOKEN).await;

    let (hidden, _) = caio.command("c1", json!({ "type": "accept", "conversation_id": maria.as_str() })).await;
    assert_eq!(hidden["code"], "not_found", "vendas does not exist for caio: {hidden}");
    let (not_hers, _) =
        ana.command("r0", json!({ "type": "reply", "conversation_id": maria.as_str(), "text": "Oi" })).await;
    assert_eq!(not_hers["code"], "not_assigned", "{not_hers}");

    ana.command("on", json!({ "type": "set_availability", "available": true })).await;
    let (ack, _) = ana.command("a", json!({ "type": "accept", "conversation_id": maria.as_str() })).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let (empty, _) =
        ana.command("r1", json!({ "type": "reply", "conversation_id": maria.as_str(), "text": "  " })).await;
    assert_eq!(empty["type"], "error");
    let (sent, pushed) = ana
        .command(
            "r2",
            json!({ "type": "reply", "conversation_id": maria.as_str(), "text": "Olá Maria, qual numeração?" }),
        )
        .await;
    assert_eq!(sent["type"], "ack", "{sent}");
    eventually(Duration::from_secs(5), || async {
        app.wa_texts_to(MARIA).iter().any(|t| t == "Olá Maria, qual numeração?").then_some(())
    })
    .await
    .expect("the reply reaches the fake Graph API");
    // The console sees its own reply recorded and accepted by the provider (one tick).
    let mut frames = pushed;
    frames.extend(ana.drain().await);
    if !frames.iter().any(|f| f["event"]["type"] == "outbound.message.sent") {
        ana.until("sent tick", |f| f["event"]["type"] == "outbound.message.sent").await;
    }

    // WhatsApp's 24-hour window: a day later only templates may be sent.
    app.clock.advance(Duration::from_secs(25 * 3600));
    let (late, _) =
        ana.command("r3", json!({ "type": "reply", "conversation_id": maria.as_str(), "text": "Ainda aí?" })).await;
    assert_eq!(late["code"], "window_closed", "{late}");

    // Malformed frames get an error and leave the connection usable.
    ana.send_raw("{not json").await;
    let (refused, _) = ana.until("an error", |f| f["type"] == "error").await;
    assert_eq!(refused["code"], "bad_request");
    let (unknown, _) = ana.command("x", json!({ "type": "dance" })).await;
    assert_eq!(unknown["code"], "bad_request");
    let (closed, _) = ana.command("cl", json!({ "type": "close", "conversation_id": maria.as_str() })).await;
    assert_eq!(closed["conversation"]["status"], "closed", "{closed}");

    // An oversized message ends the connection, and nothing of it is applied.
    let before = app.state_of(&maria).await.unwrap().seq;
    let huge = json!({ "type": "note", "conversation_id": maria.as_str(), "text": "x".repeat(70 * 1024) });
    ana.send(huge).await;
    assert!(ana.ends().await, "the server closes the connection");
    assert_eq!(app.state_of(&maria).await.unwrap().seq, before);
}

#[actix_web::test]
async fn reconnecting_with_since_resumes_without_missing_or_repeating_events() {
    let app = console_app().await;
    let (mut watcher, _) = sign_in(&app, ADMIN_TOKEN).await;
    let (mut ana, _) = sign_in(&app, ANA_TOKEN).await;
    let maria = customer_waits(&app, MARIA, "wamid.CW5").await;
    let (first, _) = ana.until("maria queued", |f| f["event"]["type"] == "conversation.queued").await;
    let mut seen_by_ana: Vec<Value> = vec![first.clone()];
    seen_by_ana.extend(ana.drain().await.into_iter().filter(|f| f["type"] == "event"));
    let last_id = seen_by_ana.last().unwrap()["id"].as_str().unwrap().to_owned();
    ana.close().await;

    // While ana is away: more from maria, a new customer, a note by the admin.
    assert_eq!(app.wa_text(MARIA, "wamid.CW6", "Tem no 39?").await.status(), 200);
    let joao = customer_waits(&app, JOAO, "wamid.CW7").await;
    let (noted, mut all) =
        watcher.command("n", json!({ "type": "note", "conversation_id": maria.as_str(), "text": "cliente VIP" })).await;
    assert_eq!(noted["type"], "ack", "{noted}");
    all.extend(watcher.drain().await);
    all.retain(|f| f["type"] == "event");
    // What ana may see after the last event she had: the watcher (an admin) sees everything.
    let hers = |all: &[Value]| -> Vec<String> {
        all.iter()
            .skip_while(|f| f["id"] != last_id.as_str())
            .skip(1)
            .filter(|f| f["conversation"]["queue"] == "vendas")
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let missed = hers(&all);
    assert!(missed.len() >= 4, "maria's message, joao's ticket and the note happened: {all:#?}");
    assert!(all.iter().any(|f| f["event"]["conversation_id"] == joao.as_str()));

    let mut back = open(&app.url, &format!("/ws/console?token={ANA_TOKEN}&since={last_id}")).await.unwrap();
    let hello = back.next().await;
    assert_eq!(hello["resumed"], true, "{hello}");
    let replayed: Vec<Value> = back.drain().await;
    let replayed_ids: Vec<String> =
        replayed.iter().map(|f| f["id"].as_str().expect("only events").to_owned()).collect();
    // Events still happening (a send confirmed late) may follow the replay live; the watcher
    // saw them too. Ana's sequence must be the watcher's, without a gap or a repeat.
    all.extend(watcher.drain().await.into_iter().filter(|f| f["type"] == "event"));
    let expected = hers(&all);
    assert!(replayed_ids.len() >= missed.len(), "everything missed is replayed: {replayed_ids:?} vs {missed:?}");
    assert_eq!(replayed_ids[..], expected[..replayed_ids.len()], "exactly the events after {last_id}, in order");

    // Live again: the next event comes once.
    assert_eq!(app.wa_text(MARIA, "wamid.CW8", "Alô?").await.status(), 200);
    let (live, _) = back.until("maria writes", |f| f["event"]["type"] == "inbox.message.received").await;
    assert!(!replayed_ids.iter().any(|id| live["id"] == id.as_str()), "a live event is not a repeat");

    // An id the node does not know: a fresh snapshot instead.
    let mut stale =
        open(&app.url, &format!("/ws/console?token={ANA_TOKEN}&since={}", uuid::Uuid::now_v7())).await.unwrap();
    assert_eq!(stale.next().await["resumed"], false);
    assert_eq!(stale.next().await["type"], "snapshot");
}

#[actix_web::test]
async fn availability_is_shared_with_colleagues_and_dropped_with_the_last_connection() {
    let app = console_app().await;
    let (mut ana, _) = sign_in(&app, ANA_TOKEN).await;
    let (mut bruno, _) = sign_in(&app, BRUNO_TOKEN).await;
    ana.command("on", json!({ "type": "set_availability", "available": true, "capacity": 2 })).await;
    let (presence, _) = bruno.until("ana's presence", |f| f["type"] == "presence").await;
    assert_eq!(presence, json!({ "type": "presence", "agent": "ana", "available": true, "capacity": 2 }));
    let (bad, _) = ana.command("cap", json!({ "type": "set_availability", "available": true, "capacity": 0 })).await;
    assert_eq!(bad["code"], "bad_request");

    let online = |app: &TestApp| {
        let (hub, tenant) = (app.hub.clone(), app.tenant());
        async move {
            let q = hub.queue_snapshot(&tenant, "vendas").await.unwrap();
            q.agents.iter().any(|(a, online, _, _)| a.as_str() == "ana" && *online)
        }
    };
    assert!(online(&app).await);
    let metrics = app.http.get(format!("{}/metrics", app.url)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("switchboard_console_sessions 2"), "{metrics}");
    ana.close().await;
    let (gone, _) = bruno.until("ana offline", |f| f["type"] == "presence").await;
    assert_eq!(gone["available"], false);
    assert!(!online(&app).await, "no console, no new conversations");
}
