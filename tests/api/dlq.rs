//! Dead letters on a hub on Redis (each test its own redis-server, so the file runs the same in
//! both passes of `scripts/test.sh`): an event that crashed its node again and again is moved
//! aside, `switchboard dlq list` shows it and `switchboard dlq replay` gets it handled; the
//! memory backend and an unreachable Redis get clear errors; a full partition stream answers
//! webhooks 503 + Retry-After until there is room again.

use crate::helpers::*;
use crate::subprocess::{Finished, run};
use std::process::Command;
use std::time::Duration;
use switchboard_actors::domain::{ChannelKind, ChannelRef, ConversationId};
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::partition::partition_of;
use switchboard_adapters::redis::Keys;
use switchboard_adapters::whatsapp::inbound::WebhookKind;

const MARIA: &str = "5511977702001";
const CLI_TIMEOUT: Duration = Duration::from_secs(30);

/// A hub on `redis` as node `node-a`, with `extra` overrides.
async fn hub_on<'a>(redis: &'a RedisServer, extra: &[(&'a str, &'a str)]) -> TestApp {
    let mut overrides = vec![
        ("BACKEND__KIND", "redis"),
        ("BACKEND__REDIS__URL", redis.url()),
        ("BACKEND__REDIS__PREFIX", redis.prefix()),
        ("BACKEND__REDIS__NODE_ID", "node-a"),
    ];
    overrides.extend_from_slice(extra);
    spawn_app(&overrides).await
}

/// `switchboard dlq ARGS` on `redis`, as an operator would run it next to the hub.
async fn dlq(redis: &RedisServer, args: &[&str]) -> Finished {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
        .arg("dlq")
        .args(args)
        .env("SWITCHBOARD__BACKEND__KIND", "redis")
        .env("SWITCHBOARD__BACKEND__REDIS__URL", redis.url())
        .env("SWITCHBOARD__BACKEND__REDIS__PREFIX", redis.prefix());
    run(cmd, CLI_TIMEOUT).await
}

async fn conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(redis.url()).unwrap().get_multiplexed_async_connection().await.unwrap()
}

/// Maria's first message as the webhook route puts it on the bus: its conversation, partition
/// and the envelope's JSON.
fn marias_message() -> (ConversationId, u32, String) {
    let tenant = switchboard_actors::domain::TenantId::new("demo");
    let body = switchboard_load_tests::payloads::wa_text(PNID, MARIA, "wamid.DLQ1", "Quero comprar");
    let resolve = |_: &str| Some((tenant.clone(), ChannelRef::new(ChannelKind::WhatsApp, "main")));
    let item = switchboard_adapters::whatsapp::parse_webhook(body.as_bytes(), &resolve).unwrap().items.remove(0);
    let WebhookKind::Message(msg) = item.kind else { panic!("a message") };
    let id = ConversationId::for_contact(&tenant, &item.channel, &msg.contact.key);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let envelope = Envelope::new(tenant, id.clone(), "trace-dlq", now, Input::MessageReceived(msg));
    (id.clone(), partition_of(id.as_str(), 64), serde_json::to_string(&envelope).unwrap())
}

/// The value of metric `name` on `/metrics`, if it is there.
async fn metric(app: &TestApp, name: &str) -> Option<u64> {
    let text = app.http.get(format!("{}/metrics", app.url)).send().await.ok()?.text().await.ok()?;
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[actix_web::test]
async fn an_event_that_kept_crashing_its_node_is_listed_and_replayed_with_the_cli() {
    let redis = RedisServer::start().expect("redis-server");
    // Before the hub starts, Maria's message was delivered three times to node-a, which died
    // each time before acknowledging it (as far as Redis can tell: three unacknowledged reads).
    let (id, p, payload) = marias_message();
    let key = Keys::new(redis.prefix()).stream(p);
    let mut c = conn(&redis).await;
    let _: () = redis::cmd("XGROUP").arg(&["CREATE", &key, "hub", "0", "MKSTREAM"]).query_async(&mut c).await.unwrap();
    let original: String =
        redis::cmd("XADD").arg(&key).arg("*").arg("e").arg(&payload).query_async(&mut c).await.unwrap();
    for from in [">", "0", "0"] {
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg(&["GROUP", "hub", "node-a", "STREAMS", &key, from])
            .query_async(&mut c)
            .await
            .unwrap();
    }

    let app = hub_on(&redis, &[("BACKEND__REDIS__DLQ_AFTER", "2")]).await;
    let moved = eventually(Duration::from_secs(10), || async {
        (metric(&app, "switchboard_dead_lettered_total").await == Some(1)).then_some(())
    })
    .await;
    assert!(moved.is_some(), "the node moved the event aside instead of crashing on it again");
    assert_eq!(metric(&app, "switchboard_dlq_entries").await, Some(1));
    assert!(app.state_of(&id).await.is_none(), "not handled");

    let listed = dlq(&redis, &["list"]).await;
    assert!(listed.success, "{}", listed.describe());
    assert!(listed.stdout.contains("not handled after 3 deliveries"), "{}", listed.stdout);
    assert!(listed.stdout.contains("inbox.message.received"), "a payload preview: {}", listed.stdout);
    let json = dlq(&redis, &["list", "--json"]).await;
    assert!(json.success, "{}", json.describe());
    let letters: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let letter = &letters.as_array().expect("an array")[0];
    assert_eq!(letters.as_array().unwrap().len(), 1, "{letters}");
    assert_eq!(
        (&letter["partition"], letter["original_id"].as_str(), &letter["deliveries"], letter["payload"].as_str()),
        (&serde_json::json!(p), Some(original.as_str()), &serde_json::json!(3), Some(payload.as_str())),
        "{letter}"
    );
    let dead_id = letter["id"].as_str().unwrap().to_owned();
    assert!(listed.stdout.contains(&dead_id));

    let unknown = dlq(&redis, &["replay", "1-1"]).await;
    assert!(!unknown.success, "{}", unknown.describe());
    assert!(unknown.stderr.contains("no dead letter with id 1-1"), "{}", unknown.stderr);
    assert_eq!(metric(&app, "switchboard_dlq_entries").await, Some(1), "nothing changed");

    let replayed = dlq(&redis, &["replay", &dead_id]).await;
    assert!(replayed.success, "{}", replayed.describe());
    assert!(replayed.stdout.contains(&format!("put back on partition {p}")), "{}", replayed.stdout);
    let handled = eventually(Duration::from_secs(10), || async { app.state_of(&id).await }).await;
    let state = handled.expect("the replayed message is handled");
    assert!(state.has_handled("wamid.DLQ1"), "its conversation has Maria's message");
    assert_eq!(metric(&app, "switchboard_dlq_entries").await, Some(0));
    let empty = dlq(&redis, &["list"]).await;
    assert!(empty.success && empty.stdout.contains("no dead letters"), "{}", empty.describe());
}

/// A message whose conversation cannot be loaded (its snapshot is garbage) fails every time
/// without any crash while Redis answers: it is counted like a crash and moved aside, and its
/// partition flows on.
#[actix_web::test]
async fn a_message_that_fails_every_time_while_redis_answers_is_moved_aside_and_its_partition_flows_on() {
    let redis = RedisServer::start().expect("redis-server");
    let app = hub_on(&redis, &[("BACKEND__REDIS__DLQ_AFTER", "2")]).await;
    let maria = app.wa_conversation(MARIA);
    let p = partition_of(maria.as_str(), 64);
    let keys = Keys::new(redis.prefix());
    let mut c = conn(&redis).await;
    let _: () =
        redis::cmd("SET").arg(keys.snapshot(p, maria.as_str())).arg("{not json").query_async(&mut c).await.unwrap();
    let neighbour = (0..10_000)
        .map(|n| format!("55119888{n:05}"))
        .find(|phone| partition_of(app.wa_conversation(phone).as_str(), 64) == p)
        .expect("a customer in Maria's partition");

    assert_eq!(app.wa_text(MARIA, "wamid.POISON1", "Oi").await.status(), 200, "accepted: it is on the bus");
    // Behind it: read only once the failing message is out of the way.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.wa_text(&neighbour, "wamid.NEXT1", "Oi").await.status(), 200);
    let answered = eventually(Duration::from_secs(20), || async {
        app.graph.sent().iter().any(|r| r.body["to"] == neighbour.as_str()).then_some(())
    })
    .await;
    assert!(answered.is_some(), "the message behind the failing one was answered");
    assert_eq!(metric(&app, "switchboard_dead_lettered_total").await, Some(1), "moved aside first");
    let json = dlq(&redis, &["list", "--json"]).await;
    assert!(json.success, "{}", json.describe());
    let letters: serde_json::Value = serde_json::from_str(&json.stdout).expect("JSON");
    let letters = letters.as_array().expect("an array");
    assert_eq!(letters.len(), 1, "{letters:?}");
    assert!(letters[0]["payload"].as_str().unwrap().contains("wamid.POISON1"), "{}", letters[0]);
    assert!(!app.graph.sent().iter().any(|r| r.body["to"] == MARIA), "Maria's message was not handled");
}

#[actix_web::test]
async fn the_cli_says_clearly_when_there_is_no_redis_to_ask() {
    for args in [&["dlq", "list"][..], &["dlq", "replay", "1-1"]] {
        let mut memory = Command::new(env!("CARGO_BIN_EXE_switchboard"));
        memory.current_dir(env!("CARGO_MANIFEST_DIR")).args(args).env("SWITCHBOARD__BACKEND__KIND", "memory");
        let out = run(memory, CLI_TIMEOUT).await;
        assert!(out.status.ends_with("exit status: 2"), "{}", out.describe());
        assert!(out.stderr.contains("the dead-letter stream needs backend = redis"), "{}", out.stderr);
    }

    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut down = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    down.current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["dlq", "replay", "1-1"])
        .env("SWITCHBOARD__BACKEND__KIND", "redis")
        .env("SWITCHBOARD__BACKEND__REDIS__URL", format!("redis://127.0.0.1:{port}"))
        .env("SWITCHBOARD__BACKEND__REDIS__CONNECT_TIMEOUT_MS", "500");
    let out = run(down, CLI_TIMEOUT).await;
    assert!(out.status.ends_with("exit status: 1"), "{}", out.describe());
    assert!(out.stderr.contains("unreachable"), "{}", out.stderr);
}

#[actix_web::test]
async fn a_full_partition_stream_answers_503_with_retry_after_until_there_is_room() {
    let redis = RedisServer::start().expect("redis-server");
    let (_, p, _) = marias_message();
    // Another node holds Maria's partition and is not reading it: its stream only grows.
    let lease = Keys::new(redis.prefix()).lease(p);
    let mut c = conn(&redis).await;
    let _: () = redis::cmd("SET").arg(&lease).arg("ghost:1").arg("PX").arg(120_000).query_async(&mut c).await.unwrap();
    let app = hub_on(&redis, &[("BACKEND__REDIS__STREAM_MAX_LEN", "2")]).await;
    assert_eq!(app.wa_text(MARIA, "wamid.F1", "um").await.status(), 200);
    assert_eq!(app.wa_text(MARIA, "wamid.F2", "dois").await.status(), 200);
    let full = app.wa_text(MARIA, "wamid.F3", "três").await;
    assert_eq!(full.status(), 503, "the provider must retry later");
    assert!(full.headers().contains_key("retry-after"));

    // The ghost is gone: this node takes the partition, works the stream off and has room again.
    let _: () = redis::cmd("DEL").arg(&lease).query_async(&mut c).await.unwrap();
    let accepted = eventually(Duration::from_secs(15), || async {
        (app.wa_text(MARIA, "wamid.F3", "três").await.status() == 200).then_some(())
    })
    .await;
    assert!(accepted.is_some(), "the provider's retry is accepted once there is room");
    let id = app.wa_conversation(MARIA);
    let all_three = eventually(Duration::from_secs(10), || async {
        let state = app.state_of(&id).await?;
        ["wamid.F1", "wamid.F2", "wamid.F3"].iter().all(|w| state.has_handled(w)).then_some(())
    })
    .await;
    assert!(all_three.is_some(), "all three messages handled");
}

#[test]
fn check_config_refuses_a_zero_dead_letter_threshold_or_stream_bound() {
    let out = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("check-config")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SWITCHBOARD__BACKEND__KIND", "redis")
        .env("SWITCHBOARD__BACKEND__REDIS__DLQ_AFTER", "0")
        .env("SWITCHBOARD__BACKEND__REDIS__STREAM_MAX_LEN", "0")
        .env("SWITCHBOARD__BACKEND__REDIS__SNAPSHOT_EVERY", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for path in ["backend.redis.dlq_after", "backend.redis.stream_max_len", "backend.redis.snapshot_every"] {
        assert!(err.contains(path), "missing {path} in:\n{err}");
    }
}
