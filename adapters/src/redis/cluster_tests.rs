//! The Redis backend on a real 3-master Redis Cluster: every script and command must stay within
//! one slot (Redis answers `CROSSSLOT` otherwise), blocking reads must not stall the shared
//! connections, and pub/sub must cross nodes.

use super::*;
use std::sync::Arc;
use switchboard_actors::conversation::CommandError;
use switchboard_actors::domain::{AgentId, ConversationId, TenantId};
use switchboard_actors::event::{Envelope, Event, Input};
use switchboard_actors::partition::partition_of;
use switchboard_actors::ports::{Bus, Claim, ConversationStore, Dedup, Placement, StoreError, Verdicts};
use switchboard_actors::query::ConversationQuery;
use switchboard_actors::state::ConversationState;
use switchboard_load_tests::redis_cluster::RedisCluster;
use tokio::time::timeout;

const PARTITIONS: u32 = 8;
const SOON: Duration = Duration::from_secs(5);

async fn start() -> (RedisCluster, Pool, Keys) {
    let cluster = RedisCluster::start().expect("a redis cluster starts");
    let settings = RedisSettings {
        url: cluster.url(),
        cluster: true,
        prefix: cluster.prefix().into(),
        partitions: PARTITIONS,
        pool_size: 4,
    };
    let pool = connect(&settings, SOON).await.expect("the cluster answers");
    let keys = Keys::new(cluster.prefix());
    (cluster, pool, keys)
}

fn env(n: u64) -> Envelope<Input> {
    let body = Input::AgentReply { agent: AgentId::new("a"), body: n.to_string() };
    Envelope::new(TenantId::new("t"), ConversationId::new(format!("c{n}")), "trace", n, body)
}

/// Reads partition `p` until `n` deliveries arrived: their `occurred_at` and ids.
async fn take(bus: &RedisBus, p: u32, n: usize) -> (Vec<u64>, Vec<String>) {
    let (mut seen, mut ids) = (Vec::new(), Vec::new());
    while seen.len() < n {
        let batch = timeout(SOON, bus.next_batch(p, 32)).await.expect("entries arrive").unwrap();
        seen.extend(batch.iter().map(|d| d.envelope.occurred_at));
        ids.extend(batch.into_iter().map(|d| d.id));
    }
    (seen, ids)
}

#[tokio::test]
async fn cluster_urls_are_nodes_of_one_cluster() {
    let (cluster, pool, _) = start().await;
    assert!(pool.is_cluster());
    // Every master answers through the one client, whichever seed it was given.
    let mut masters = Vec::new();
    for port in cluster.ports() {
        let reply = pool.on_node(&format!("127.0.0.1:{port}"), &redis::cmd("ROLE")).await.unwrap();
        masters.push(matches!(reply, redis::Value::Array(ref v) if v.first() == Some(&redis::Value::BulkString(b"master".to_vec()))));
    }
    assert_eq!(masters, vec![true; 3], "three masters");
}

#[tokio::test]
async fn a_config_of_the_wrong_kind_is_a_clear_start_up_error() {
    let cluster = RedisCluster::start().expect("a redis cluster starts");
    let one_node = cluster_seeds(&cluster.url())[0].to_owned();
    let settings =
        RedisSettings { url: one_node, cluster: false, prefix: "sb:".into(), partitions: PARTITIONS, pool_size: 1 };
    let refused = connect(&settings, SOON).await.err().expect("a cluster node is not a single server");
    assert!(refused.to_string().contains("set backend.redis.cluster = true"), "{refused}");

    let server = switchboard_load_tests::redis_server::RedisServer::start().unwrap();
    let settings = RedisSettings { url: server.url().into(), cluster: true, ..settings };
    let refused = connect(&settings, SOON).await.err().expect("a single server is not a cluster");
    assert!(refused.to_string().contains("set backend.redis.cluster = false"), "{refused}");
}

#[tokio::test]
async fn the_bus_keeps_order_per_partition_across_nodes_and_forgets_acked_entries() {
    let (_cluster, pool, keys) = start().await;
    let bus = RedisBus::new(pool.clone(), keys.clone(), PARTITIONS, "node-a".into(), StreamSettings::default());
    for n in 0..80 {
        bus.publish((n % u64::from(PARTITIONS)) as u32, env(n), false).await.unwrap();
    }
    for p in 0..PARTITIONS {
        let (seen, ids) = take(&bus, p, 10).await;
        let expected: Vec<u64> = (0..80).filter(|n| n % u64::from(PARTITIONS) == u64::from(p)).collect();
        assert_eq!(seen, expected, "partition {p} in order, nothing of the others");
        bus.ack(p, &ids[..5]).await.unwrap();
    }
    // The same node restarted: what it had not acknowledged comes again, acked entries never.
    drop(bus);
    let again = RedisBus::new(pool.clone(), keys, PARTITIONS, "node-a".into(), StreamSettings::default());
    for p in 0..PARTITIONS {
        let (seen, ids) = take(&again, p, 5).await;
        let expected: Vec<u64> = (0..80).filter(|n| n % u64::from(PARTITIONS) == u64::from(p)).skip(5).collect();
        assert_eq!(seen, expected, "partition {p}: the five unacked ones");
        again.ack(p, &ids).await.unwrap();
    }
}

#[tokio::test]
async fn a_blocked_read_stalls_no_other_command_and_a_new_owner_takes_over() {
    let (_cluster, pool, keys) = start().await;
    let long = StreamSettings { block: Duration::from_secs(30), ..StreamSettings::default() };
    let old = Arc::new(RedisBus::new(pool.clone(), keys.clone(), PARTITIONS, "node-a".into(), long.clone()));
    let waiting = tokio::spawn({
        let old = old.clone();
        async move { old.next_batch(0, 10).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Partition 0's read blocks on its node; commands to every node (partition 0's too) go on.
    let others = async {
        for p in 1..PARTITIONS {
            old.publish(p, env(u64::from(p)), false).await.unwrap();
            assert_eq!(old.next_batch(p, 10).await.unwrap()[0].envelope.occurred_at, u64::from(p));
        }
    };
    timeout(Duration::from_secs(2), others).await.expect("no partition waits for partition 0's read");
    // Handover: the old owner's abandoned read is ended on its node, the heir gets the entry.
    waiting.abort();
    old.quiesce(0).await.unwrap();
    let heir = RedisBus::new(pool.clone(), keys, PARTITIONS, "node-b".into(), StreamSettings::default());
    heir.adopt(0).await.unwrap();
    heir.publish(0, env(100), false).await.unwrap();
    assert_eq!(take(&heir, 0, 1).await.0, vec![100], "the new owner reads partition 0");
}

fn conversation(tenant: &str, id: &str) -> ConversationState {
    let mut state = ConversationState::new(ConversationId::new(id), TenantId::new(tenant));
    state.ticket = 1;
    state
}

async fn append(store: &RedisStore, state: &mut ConversationState, at: u64, event: Event) -> Result<(), StoreError> {
    state.apply(&event, at, 20);
    let envelope = Envelope::new(state.tenant.clone(), state.id.clone(), "trace", at, event);
    store.append(&Arc::new(state.clone()), &[envelope]).await
}

#[tokio::test]
async fn the_store_appends_under_a_lease_and_lists_across_slots() {
    let (_cluster, pool, keys) = start().await;
    let placement = RedisPlacement::start(pool.clone(), keys.clone(), "a".into(), PARTITIONS, LeaseSettings::default());
    let mut owned = placement.owned();
    timeout(SOON, owned.wait_for(|o| o.0.len() == PARTITIONS as usize)).await.expect("every lease").unwrap();
    let tokens = placement.clone();
    let store = RedisStore::new(pool.clone(), keys.clone(), PARTITIONS).fenced(Arc::new(move |p| tokens.token(p)));

    // Conversations in many partitions (so on every node), two tenants.
    let mut states: Vec<ConversationState> =
        (0..24).map(|i| conversation(if i % 3 == 0 { "acme" } else { "demo" }, &format!("c{i}"))).collect();
    for (i, state) in states.iter_mut().enumerate() {
        let queued = Event::Queued { queue: if i % 2 == 0 { "vendas" } else { "suporte" }.into(), position: 1 };
        append(&store, state, 10 + i as u64, queued).await.unwrap();
    }
    let spread: std::collections::BTreeSet<u32> =
        states.iter().map(|s| partition_of(s.id.as_str(), PARTITIONS)).collect();
    assert!(spread.len() > 3, "conversations in several partitions: {spread:?}");

    let first = &states[1];
    let loaded = store.load(&first.id).await.unwrap().expect("a snapshot");
    assert_eq!(*loaded, *first);
    assert_eq!(store.journal(&first.id, 1).await.unwrap().len(), 1);

    let mut query = ConversationQuery::tenant(TenantId::new("demo"));
    query.queue = Some("vendas".into());
    let page = store.list(&query).await.unwrap();
    let mut listed: Vec<String> = page.items.iter().map(|s| s.id.as_str().to_owned()).collect();
    listed.sort();
    let mut expected: Vec<String> = states
        .iter()
        .enumerate()
        .filter(|(i, s)| i % 2 == 0 && s.tenant.as_str() == "demo")
        .map(|(_, s)| s.id.as_str().to_owned())
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "the tenant's conversations of the queue, read from every node");

    // A stale token is refused.
    let stale = RedisStore::new(pool.clone(), keys, PARTITIONS).fenced(Arc::new(|_| Some("a:0".into())));
    let mut late = states[2].clone();
    let refused = append(&stale, &mut late, 99, Event::Queued { queue: "vendas".into(), position: 1 }).await;
    assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
    assert_eq!(store.journal(&late.id, 1).await.unwrap().len(), 1, "nothing written with the stale token");
    placement.abort();
}

#[tokio::test]
async fn the_dedup_gate_works_on_the_cluster() {
    let (_cluster, pool, keys) = start().await;
    let gate = RedisDedup::new(pool, keys, Duration::from_secs(30));
    for n in 0..20 {
        let key = format!("demo:wamid.{n}");
        let (a, b) = tokio::join!(gate.claim(&key), gate.claim(&key));
        let mut claims = [a.unwrap(), b.unwrap()];
        claims.sort_by_key(|c| *c != Claim::New);
        assert_eq!(claims, [Claim::New, Claim::Pending], "exactly one caller wins {key}");
        if n % 2 == 0 {
            gate.confirm(&key, Duration::from_secs(60)).await.unwrap();
            gate.forget(&key).await.unwrap();
            assert_eq!(gate.claim(&key).await.unwrap(), Claim::Done, "{key} confirmed stays done");
        } else {
            gate.forget(&key).await.unwrap();
            assert_eq!(gate.claim(&key).await.unwrap(), Claim::New, "{key} forgotten is new again");
        }
    }
}

#[tokio::test]
async fn a_verdict_reaches_subscribers_on_every_node() {
    let (cluster, pool, _) = start().await;
    // Node "a" three times over, each subscribed through another master: the publisher's command
    // goes to one node only, so at least two of them hear it through the cluster bus.
    let listeners: Vec<RedisVerdicts> = cluster
        .ports()
        .iter()
        .map(|port| {
            RedisVerdicts::start(pool.clone(), format!("redis://127.0.0.1:{port}"), cluster.prefix(), "a".into())
        })
        .collect();
    let sender = RedisVerdicts::start(pool.clone(), cluster.url(), cluster.prefix(), "b".into());
    let mut inboxes: Vec<_> = listeners.iter().map(|l| l.incoming().expect("its verdicts")).collect();
    let id = uuid::Uuid::new_v4();
    // The subscriptions start in the background: send until each has heard it.
    for (i, inbox) in inboxes.iter_mut().enumerate() {
        let received = timeout(SOON, async {
            loop {
                sender.send("a", &(id, Err(CommandError::Closed))).await;
                if let Ok(Some(verdict)) = timeout(Duration::from_millis(200), inbox.recv()).await {
                    return verdict;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("the subscriber on node {i} hears the verdict"));
        assert_eq!(received, (id, Err(CommandError::Closed)));
    }
}

#[tokio::test]
async fn console_feeds_and_presence_work_on_a_cluster() {
    let (_cluster, pool, keys) = start().await;
    // Tenants' feeds land in different slots; each follower reads its own on a plain connection.
    let feed = RedisFeedLog::new(pool.clone(), keys.clone(), 100);
    let mut demo = feed.follow("demo").await;
    let mut outra = feed.follow("outra").await;
    feed.append("demo", &["d1".into(), "d2".into()]).await.unwrap();
    feed.append("outra", &["o1".into()]).await.unwrap();
    // A read may wake between the two appends: gather until both came.
    let mut d = Vec::new();
    while d.len() < 2 {
        match timeout(SOON, demo.recv()).await.expect("demo's entries arrive") {
            Some(Followed::Entries(entries)) => d.extend(entries),
            other => panic!("expected entries, got {other:?}"),
        }
    }
    assert_eq!(d, ["d1", "d2"]);
    let o = timeout(SOON, outra.recv()).await.expect("outra's entries arrive");
    assert_eq!(o, Some(Followed::Entries(vec!["o1".into()])));

    let presence = RedisPresence::new(pool, keys);
    let ana = Present { queue: "vendas".into(), agent: "ana".into(), capacity: 2 };
    presence.sync("demo", "node-a", std::slice::from_ref(&ana), 5_000).await.unwrap();
    assert_eq!(presence.sync("demo", "node-b", &[], 5_000).await.unwrap(), vec![ana]);
}
