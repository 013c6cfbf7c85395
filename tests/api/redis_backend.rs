//! The hub on the Redis backend (a throwaway `redis-server` per test): the same webhook-to-reply
//! pipeline, state and dedup that outlive the node that wrote them, a clear refusal to start
//! when Redis is unreachable, and 503 + `Retry-After` (never a lost message) when Redis goes away.

use crate::helpers::*;
use std::process::Command;
use std::time::Duration;
use switchboard_actors::state::{ConversationState, Status};

const MARIA: &str = "5511977701001";

/// Overrides that put a test hub on `redis` as node `node`.
fn on_redis<'a>(redis: &'a RedisServer, node: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("BACKEND__KIND", "redis"),
        ("BACKEND__REDIS__URL", redis.url()),
        ("BACKEND__REDIS__PREFIX", redis.prefix()),
        ("BACKEND__REDIS__NODE_ID", node),
        ("TENANTS__DEMO__ENTRY", "vendas"),
    ]
}

#[actix_web::test]
async fn a_conversation_and_its_dedup_marks_outlive_the_node_that_wrote_them() {
    let redis = RedisServer::start().expect("redis-server");
    let first = spawn_app(&on_redis(&redis, "node-a")).await;
    assert_eq!(first.wa_text(MARIA, "wamid.R1", "Quero comprar").await.status(), 200);
    let id = first.wa_conversation(MARIA);
    let queued = eventually(Duration::from_secs(10), || async {
        let sent = |s: &switchboard_actors::state::ConversationState| {
            !s.outbound.is_empty() && s.outbound.iter().all(|r| r.provider_message_id.is_some())
        };
        first.state_of(&id).await.filter(|s| matches!(s.status, Status::Queued { .. }) && sent(s))
    })
    .await
    .expect("the conversation waits in vendas, its queue notice sent");
    assert!(first.wa_texts_to(MARIA).iter().any(|t| t.contains("vendas")), "the queue notice reached WhatsApp");
    // The first node leaves as on SIGTERM: its partitions are handed over, its leases deleted.
    first.state.probe.leave(Duration::from_secs(5)).await;
    first.hub.shutdown();

    // Another node on the same Redis: it knows the conversation, and Meta's redelivery of the
    // first message is recognised there too.
    let second = spawn_app(&on_redis(&redis, "node-b")).await;
    let listed = second
        .http
        .get(format!("{}/api/conversations/{}", second.url, id))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let body: serde_json::Value = listed.json().await.unwrap();
    assert_eq!((body["status"].as_str(), body["queue"].as_str()), (Some("queued"), Some("vendas")), "{body}");
    assert_eq!(body["seq"], queued.seq);
    let again = second.wa_text(MARIA, "wamid.R1", "Quero comprar").await;
    assert_eq!(again.status(), 200);
    assert_eq!(second.state_of(&id).await.unwrap().seq, queued.seq, "a redelivery changes nothing");

    // The conversation goes on where it was: an agent reply from the second node.
    second.agent_online("vendas", "ana", 5).await;
    let assigned = eventually(Duration::from_secs(10), || async {
        second.state_of(&id).await.filter(|s| matches!(s.status, Status::Assigned { .. }))
    })
    .await
    .expect("assigned on the second node");
    assert!(assigned.seq > queued.seq);
    let page = second
        .http
        .get(format!("{}/api/conversations?status=assigned", second.url))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap();
    assert_eq!(page["conversations"][0]["id"], id.as_str(), "listed from the Redis indexes: {page}");
}

#[actix_web::test]
async fn when_redis_goes_away_webhooks_get_503_and_readyz_fails() {
    let redis = RedisServer::start().expect("redis-server");
    let app = spawn_app(&on_redis(&redis, "node-a")).await;
    let ready = app.http.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.json::<serde_json::Value>().await.unwrap()["backend"], "redis");

    drop(redis);
    let refused = app.wa_text(MARIA, "wamid.R2", "Oi?").await;
    assert_eq!(refused.status(), 503, "the provider must retry, not think it delivered");
    assert!(refused.headers().contains_key("retry-after"));
    let down = app.http.get(format!("{}/readyz", app.url)).send().await.unwrap();
    assert_eq!(down.status(), 503);
    assert_eq!(down.json::<serde_json::Value>().await.unwrap()["status"], "unavailable");
}

#[test]
fn the_hub_refuses_to_start_when_redis_is_unreachable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SWITCHBOARD__BACKEND__KIND", "redis")
        .env("SWITCHBOARD__BACKEND__REDIS__URL", format!("redis://:hunter2@127.0.0.1:{port}"))
        .env("SWITCHBOARD__BACKEND__REDIS__CONNECT_TIMEOUT_MS", "500")
        .env("SWITCHBOARD__SERVER__BIND", "127.0.0.1:0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unreachable") && err.contains(&format!("127.0.0.1:{port}")), "{err}");
    assert!(!err.contains("hunter2"), "the password never reaches the logs: {err}");
}

/// A customer whose conversation runs on `node` (by the partition leases in Redis).
async fn customer_of(app: &TestApp, redis: &RedisServer, node: &str) -> String {
    customers_of(app, redis, node, 1).await.remove(0)
}

/// `count` customers whose conversations run on `node`.
async fn customers_of(app: &TestApp, redis: &RedisServer, node: &str, count: usize) -> Vec<String> {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys = switchboard_adapters::redis::Keys::new(redis.prefix());
    let mut found = Vec::new();
    for n in 0..1000 {
        let phone = format!("55119777{n:05}");
        let p = switchboard_actors::partition::partition_of(app.wa_conversation(&phone).as_str(), 64);
        let owner: Option<String> = redis::cmd("GET").arg(keys.lease(p)).query_async(&mut conn).await.unwrap();
        if owner.is_some_and(|o| o.starts_with(&format!("{node}:"))) {
            found.push(phone);
            if found.len() == count {
                return found;
            }
        }
    }
    panic!("fewer than {count} conversations run on {node}");
}

#[actix_web::test]
async fn a_command_at_a_node_that_does_not_run_the_conversation_gets_its_verdict_from_the_one_that_does() {
    let redis = RedisServer::start().expect("redis-server");
    let a = spawn_app(&on_redis(&redis, "node-a")).await;
    let b = spawn_app(&on_redis(&redis, "node-b")).await;
    let shared = eventually(Duration::from_secs(15), || async {
        let (on_a, on_b) = (a.state.probe.partitions_owned()?, b.state.probe.partitions_owned()?);
        (on_a > 0 && on_b > 0 && on_a + on_b == 64).then_some(())
    })
    .await;
    assert!(shared.is_some(), "the two nodes share the partitions");
    let phone = customer_of(&a, &redis, "node-b").await;
    let id = a.wa_conversation(&phone);
    assert_eq!(a.wa_text(&phone, "wamid.V1", "Oi, quero comprar").await.status(), 200);
    eventually(Duration::from_secs(10), || async {
        a.state_of(&id).await.filter(|s| matches!(s.status, Status::Queued { .. }))
    })
    .await
    .expect("node b queued it");

    // Node a takes the REST command; node b runs it and sends the verdict back.
    let started = std::time::Instant::now();
    let noted = a
        .http
        .post(format!("{}/api/conversations/{}/notes", a.url, id))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({ "text": "cliente VIP" }))
        .send()
        .await
        .unwrap();
    let status = noted.status();
    let body: serde_json::Value = noted.json().await.unwrap_or_default();
    assert_eq!(status, 200, "{body}");
    assert!(started.elapsed() < Duration::from_secs(5), "answered, not timed out: {:?}", started.elapsed());
    let journal = a.hub.journal(&id, 1).await.unwrap();
    assert!(
        journal.iter().any(
            |e| matches!(&e.body, switchboard_actors::event::Event::NoteAdded { body, .. } if body == "cliente VIP")
        ),
        "the note is in the journal"
    );
    // A refusal comes back the same way.
    let refused = a
        .command(
            &id,
            switchboard_actors::event::Input::AgentReply {
                agent: switchboard_actors::domain::AgentId::new("ana"),
                body: "Olá".into(),
            },
        )
        .await;
    assert_eq!(refused, Err(switchboard_actors::conversation::CommandError::NotAssignedToYou));
}

#[actix_web::test]
async fn a_console_on_any_node_sees_the_conversations_every_node_runs_in_one_order() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = two_nodes(&redis, None).await;
    let mut on_a = console_of(&a).await;
    let mut on_b = console_of(&b).await;

    // One customer's conversation runs on each node; each writes to the node that does not run it.
    let (ran_by_b, ran_by_a) = (customer_of(&a, &redis, "node-b").await, customer_of(&a, &redis, "node-a").await);
    assert_eq!(a.wa_text(&ran_by_b, "wamid.C1", "Quero comprar").await.status(), 200);
    assert_eq!(b.wa_text(&ran_by_a, "wamid.C2", "Quero trocar").await.status(), 200);
    let ids = [a.wa_conversation(&ran_by_b), a.wa_conversation(&ran_by_a)];
    let queued = |frames: &[serde_json::Value], id: &str| {
        frames
            .iter()
            .any(|f| f["type"] == "event" && f["conversation"]["id"] == id && f["conversation"]["status"] == "queued")
    };
    let mut seen_a = Vec::new();
    let mut seen_b = Vec::new();
    for (console, seen) in [(&mut on_a, &mut seen_a), (&mut on_b, &mut seen_b)] {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ids.iter().all(|id| queued(seen, id.as_str())) {
            assert!(std::time::Instant::now() < deadline, "a console missed another node's conversation: {seen:#?}");
            if let Some(frame) = console.try_next(Duration::from_millis(200)).await {
                seen.push(frame);
            }
        }
    }
    let event_ids = |frames: &[serde_json::Value]| {
        frames
            .iter()
            .filter(|f| f["type"] == "event" && ids.iter().any(|id| f["conversation"]["id"] == id.as_str()))
            .map(|f| f["id"].as_str().unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    // Each console may have read a little past the other; compare what both have.
    let (ev_a, ev_b) = (event_ids(&seen_a), event_ids(&seen_b));
    let common = ev_a.len().min(ev_b.len());
    assert!(common >= 2, "{ev_a:?} / {ev_b:?}");
    assert_eq!(ev_a[..common], ev_b[..common], "both nodes' consoles see the same events in the same order");
}

/// Nodes relay console frames only while a console of the tenant is open somewhere: with none
/// open, the conversations' steps put nothing on the tenant's shared stream. The first console,
/// at one node, still sees what the other node runs, as a pushed event or (when that node's
/// relay started after the step) in the fresh snapshot its start causes.
#[actix_web::test]
async fn frames_are_relayed_only_while_a_console_watches_and_a_first_console_misses_nothing() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = two_nodes(&redis, None).await;
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let feed_key = switchboard_adapters::redis::Keys::new(redis.prefix()).feed("demo");
    let of_a = customers_of(&a, &redis, "node-a", 2).await;
    let (ran_by_a, later, ran_by_b) = (&of_a[0], &of_a[1], customer_of(&a, &redis, "node-b").await);
    assert_eq!(b.wa_text(ran_by_a, "wamid.W1", "Quero comprar").await.status(), 200);
    assert_eq!(a.wa_text(&ran_by_b, "wamid.W2", "Quero trocar").await.status(), 200);
    let answered = eventually(Duration::from_secs(10), || async {
        (a.graph.sent().len() + b.graph.sent().len() >= 2).then_some(())
    })
    .await;
    assert!(answered.is_some(), "both customers got the triage menu");
    let relayed: u64 = redis::cmd("XLEN").arg(&feed_key).query_async(&mut conn).await.unwrap();
    assert_eq!(relayed, 0, "no console open: nothing relayed");

    // A console opens at node b only; node a runs the next conversation.
    let mut on_b = console_of(&b).await;
    let id = a.wa_conversation(later);
    assert_eq!(b.wa_text(later, "wamid.W3", "Oi").await.status(), 200);
    let shows = |frame: &serde_json::Value| match frame["type"].as_str() {
        Some("event") => frame["conversation"]["id"] == id.as_str(),
        Some("snapshot") => {
            frame["conversations"].as_array().is_some_and(|all| all.iter().any(|c| c["id"] == id.as_str()))
        }
        _ => false,
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut seen = Vec::new();
    while !seen.iter().any(shows) {
        assert!(std::time::Instant::now() < deadline, "the console never learnt of the new conversation: {seen:#?}");
        if let Some(frame) = on_b.try_next(Duration::from_millis(200)).await {
            seen.push(frame);
        }
    }
    let relayed: u64 = redis::cmd("XLEN").arg(&feed_key).query_async(&mut conn).await.unwrap();
    assert!(relayed > 0, "with a console open, the nodes relay");
}

/// Two nodes on one Redis, each running its fair half of the partitions (`fixture` over the
/// default config), so that a conversation stays where it runs for the rest of the test.
async fn two_nodes(redis: &RedisServer, fixture: Option<&str>) -> (TestApp, TestApp) {
    let a = spawn_app_with(fixture, &on_redis(redis, "node-a")).await;
    let b = spawn_app_with(fixture, &on_redis(redis, "node-b")).await;
    let halves = eventually(Duration::from_secs(20), || async {
        let (on_a, on_b) = (a.state.probe.partitions_owned()?, b.state.probe.partitions_owned()?);
        (on_a == 32 && on_b == 32).then_some(())
    })
    .await;
    assert!(halves.is_some(), "the two nodes share the partitions half and half");
    (a, b)
}

/// Ana's console at `app`, available for three conversations.
async fn ana_available_at(app: &TestApp) -> crate::ws_client::Ws {
    ana_available_for(app, 3).await
}

/// Ana's console at `app`, available for `capacity` conversations.
async fn ana_available_for(app: &TestApp, capacity: u32) -> crate::ws_client::Ws {
    let mut ana = crate::ws_client::open(&app.url, &format!("/ws/console?token={ANA_TOKEN}")).await.expect("console");
    ana.until("snapshot", |f| f["type"] == "snapshot").await;
    let availability = serde_json::json!({ "type": "set_availability", "available": true, "capacity": capacity });
    let (ack, _) = ana.command("on", availability).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    ana
}

#[actix_web::test]
async fn a_queue_offers_its_conversations_to_agents_signed_on_at_another_node() {
    let redis = RedisServer::start().expect("redis-server");
    // vendas assigns by itself (round robin).
    let (a, b) = two_nodes(&redis, None).await;
    let _ana = ana_available_at(&b).await;
    // The conversation waits in the vendas queue of node a, which runs it.
    let phone = customer_of(&a, &redis, "node-a").await;
    assert_eq!(a.wa_text(&phone, "wamid.Q1", "Quero comprar").await.status(), 200);
    let id = a.wa_conversation(&phone);
    let assigned = eventually(Duration::from_secs(10), || async {
        a.state_of(&id).await.filter(|s| matches!(&s.status, Status::Assigned { agent, .. } if agent.as_str() == "ana"))
    })
    .await;
    assert!(
        assigned.is_some(),
        "node a's queue gave the conversation to ana, online at node b: {:?}",
        a.state_of(&id).await
    );
}

/// An agent's capacity counts the conversations every node's queue gave her: with room for
/// one, and one from node a's queue, node b's queue keeps its conversation waiting until she
/// closes the first.
#[actix_web::test]
async fn an_agents_capacity_counts_what_every_nodes_queue_gave_her() {
    let redis = RedisServer::start().expect("redis-server");
    let (a, b) = two_nodes(&redis, None).await;
    let mut ana = ana_available_for(&b, 1).await;
    let is_anas =
        |s: &ConversationState| matches!(&s.status, Status::Assigned { agent, .. } if agent.as_str() == "ana");
    let first = customer_of(&a, &redis, "node-a").await;
    assert_eq!(a.wa_text(&first, "wamid.K1", "Quero comprar").await.status(), 200);
    let first = a.wa_conversation(&first);
    let assigned = eventually(Duration::from_secs(10), || async { a.state_of(&first).await.filter(is_anas) }).await;
    assert!(assigned.is_some(), "node a's queue gave ana the first conversation");
    // Node a reports its load and node b learns it at their next syncs (every second).
    tokio::time::sleep(Duration::from_millis(2500)).await;

    let second = customer_of(&b, &redis, "node-b").await;
    assert_eq!(b.wa_text(&second, "wamid.K2", "Quero comprar").await.status(), 200);
    let second = b.wa_conversation(&second);
    let queued = eventually(Duration::from_secs(10), || async {
        b.state_of(&second).await.filter(|s| matches!(s.status, Status::Queued { .. }))
    })
    .await;
    assert!(queued.is_some(), "the second conversation waits in node b's queue");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let still = b.state_of(&second).await.expect("the second conversation");
    assert!(matches!(still.status, Status::Queued { .. }), "ana is at capacity at node a: {:?}", still.status);

    let (ack, _) =
        ana.command("close", serde_json::json!({ "type": "close", "conversation_id": first.as_str() })).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    let moved_on = eventually(Duration::from_secs(10), || async { b.state_of(&second).await.filter(is_anas) }).await;
    assert!(moved_on.is_some(), "with the first closed, node b's queue gives her the second");
}

#[actix_web::test]
async fn an_agent_at_one_node_accepts_a_conversation_waiting_at_another() {
    let redis = RedisServer::start().expect("redis-server");
    // vendas assigns nothing by itself: agents accept.
    let (a, b) = two_nodes(&redis, Some("console.toml")).await;
    let mut ana = ana_available_at(&b).await;
    let phone = customer_of(&a, &redis, "node-a").await;
    assert_eq!(a.wa_text(&phone, "wamid.Q2", "Quero comprar").await.status(), 200);
    let id = a.wa_conversation(&phone);
    let queued = eventually(Duration::from_secs(10), || async {
        a.state_of(&id).await.filter(|s| matches!(s.status, Status::Queued { .. }))
    })
    .await;
    assert!(queued.is_some(), "the conversation waits at node a");
    // Node a learns of ana within a presence round; until then the queue may say she is away.
    let mut answer = serde_json::Value::Null;
    for attempt in 0..20 {
        let accept = serde_json::json!({ "type": "accept", "conversation_id": id.as_str() });
        (answer, _) = ana.command(&format!("accept-{attempt}"), accept).await;
        if answer["type"] == "ack" || answer["code"] != "not_available" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(answer["type"], "ack", "{answer}");
    assert_eq!(answer["conversation"]["status"], "assigned", "{answer}");
    let state = a.state_of(&id).await.expect("state");
    assert!(matches!(&state.status, Status::Assigned { agent, .. } if agent.as_str() == "ana"), "{:?}", state.status);
    // A second accept of the same conversation is refused the way a console expects.
    let (again, _) =
        ana.command("again", serde_json::json!({ "type": "accept", "conversation_id": id.as_str() })).await;
    assert_eq!(again["code"], "already_taken", "{again}");
}

/// An admin console connected to `app`, past its hello and snapshot.
async fn console_of(app: &TestApp) -> crate::ws_client::Ws {
    let mut ws = crate::ws_client::open(&app.url, &format!("/ws/console?token={ADMIN_TOKEN}")).await.expect("console");
    let hello = ws.next().await;
    assert_eq!(hello["type"], "hello", "{hello}");
    let snapshot = ws.next().await;
    assert_eq!(snapshot["type"], "snapshot", "{snapshot}");
    ws
}

/// The tools' quota and idempotency records live in Redis: two nodes count against one daily
/// quota, and a repeat of a call reaching the other node gets the first call's result.
#[actix_web::test]
async fn two_nodes_share_a_tool_quota_and_idempotent_results() {
    use switchboard_actors::ports::Clock as _;
    use switchboard_adapters::tools::ToolError;
    let redis = RedisServer::start().expect("redis-server");
    let starter = [
        ("TENANTS__DEMO__BOTS__ASSISTANT__PLAN", "starter"),
        ("TENANTS__DEMO__BOTS__ASSISTANT__BURST_PER_SECOND", "100000"),
        ("TENANTS__DEMO__BOTS__ASSISTANT__BURST", "100000"),
    ];
    let a = spawn_app(&[on_redis(&redis, "node-a"), starter.to_vec()].concat()).await;
    let b = spawn_app(&[on_redis(&redis, "node-b"), starter.to_vec()].concat()).await;
    // One day on both nodes' clocks, even if the test starts at midnight.
    let (now_a, now_b) = (a.clock.now_ms(), b.clock.now_ms());
    a.clock.advance(Duration::from_millis(now_b.saturating_sub(now_a)));
    b.clock.advance(Duration::from_millis(now_a.saturating_sub(now_b)));
    let shared = eventually(Duration::from_secs(15), || async {
        let (on_a, on_b) = (a.state.probe.partitions_owned()?, b.state.probe.partitions_owned()?);
        (on_a > 0 && on_b > 0 && on_a + on_b == 64).then_some(())
    })
    .await;
    assert!(shared.is_some(), "the two nodes share the partitions");
    let bot = |app: &TestApp| app.state.callers.bot(BOT_TOKEN).expect("demo bot configured");
    let (bot_a, bot_b) = (bot(&a), bot(&b));

    // An idempotent call on node a, repeated on node b: one note, the first result.
    assert_eq!(a.wa_text(MARIA, "wamid.L1", "Quero comprar").await.status(), 200);
    let id = a.wa_conversation(MARIA);
    eventually(Duration::from_secs(10), || async { a.state_of(&id).await.filter(|s| s.ticket == 1) })
        .await
        .expect("conversation opened");
    let note = serde_json::json!({ "conversation_id": id.as_str(), "text": "cliente VIP", "idempotency_key": "n-1" });
    let first = a.state.tools.call(&bot_a, "add_note", note.clone(), "t").await.expect("the note on node a");
    assert!(!first.is_error, "{}", first.text);
    let again = b.state.tools.call(&bot_b, "add_note", note, "t").await.expect("the repeat on node b");
    assert_eq!(again, first, "the repeat on the other node answers with the first result");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(a.state_of(&id).await.unwrap().notes.len(), 1, "the repeat added no second note");

    // The starter plan allows 200 calls a day: the note and 199 more, spread over both nodes.
    for n in 0..199 {
        let (app, caller) = if n % 2 == 0 { (&a, &bot_a) } else { (&b, &bot_b) };
        let out = app.state.tools.call(caller, "queue_stats", serde_json::json!({}), "t").await;
        assert!(out.is_ok(), "call {} of 200 is within the quota: {out:?}", n + 2);
    }
    for (node, app, caller) in [("a", &a, &bot_a), ("b", &b, &bot_b)] {
        let over = app.state.tools.call(caller, "queue_stats", serde_json::json!({}), "t").await;
        let Err(ToolError::QuotaExceeded(q)) = over else {
            panic!("node {node}: the call over the shared quota is refused, got {over:?}");
        };
        assert_eq!((q.limit, q.allowed), ("daily", 200), "node {node}");
    }
    // Both nodes read one audit trail.
    let trail = b.state.tools.audit_trail("demo", 1000).await.unwrap();
    assert_eq!(trail.iter().filter(|r| r.result == "ok").count(), 200, "every call that ran, from either node");
}
