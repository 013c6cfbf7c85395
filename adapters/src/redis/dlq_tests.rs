//! Dead letters and the stream bound against a throwaway redis-server: what counts as a failed
//! delivery (a crash does, an outage does not), the partition flowing on, replay, and `Full`.

use super::*;
use crate::redis::{RedisBus, StreamSettings, test_pool};
use std::time::Duration;
use switchboard_actors::domain::{AgentId, ConversationId, TenantId};
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::ports::{Bus, BusError};
use switchboard_load_tests::redis_server::RedisServer;
use tokio::time::timeout;

const SOON: Duration = Duration::from_secs(5);
const P: u32 = 1;

async fn start() -> (RedisServer, Pool) {
    let server = RedisServer::start().unwrap();
    let pool = test_pool(&server).await;
    (server, pool)
}

/// Node `node-a` (a second bus with the same name is that node after a crash and restart).
fn node(pool: &Pool, server: &RedisServer, dlq_after: u64, max_len: u64) -> RedisBus {
    let settings = StreamSettings { dlq_after, max_len, trim_every: 1000, ..StreamSettings::default() };
    RedisBus::new(pool.clone(), Keys::new(server.prefix()), 4, "node-a".into(), settings)
}

fn letters(pool: &Pool, server: &RedisServer) -> DeadLetters {
    DeadLetters::new(pool.clone(), Keys::new(server.prefix()), 4, 100)
}

fn env(n: u64) -> Envelope<Input> {
    let body = Input::AgentReply { agent: AgentId::new("a"), body: n.to_string() };
    Envelope::new(TenantId::new("t"), ConversationId::new(format!("c{n}")), "trace", n, body)
}

/// The next batch's `occurred_at`s and ids.
async fn batch(bus: &RedisBus) -> (Vec<u64>, Vec<String>) {
    let batch = timeout(SOON, bus.next_batch(P, 32)).await.expect("entries arrive").unwrap();
    (batch.iter().map(|d| d.envelope.occurred_at).collect(), batch.into_iter().map(|d| d.id).collect())
}

async fn cmd<T: redis::FromRedisValue>(pool: &Pool, cmd: &mut redis::Cmd) -> T {
    cmd.query_async(&mut pool.get().await.unwrap()).await.unwrap()
}

/// The payload of stream entry `id`, as stored.
async fn stored(pool: &Pool, server: &RedisServer, id: &str) -> String {
    let key = Keys::new(server.prefix()).stream(P);
    let reply: redis::streams::StreamRangeReply = cmd(pool, redis::cmd("XRANGE").arg(&key).arg(id).arg(id)).await;
    reply.ids[0].get("e").unwrap()
}

#[tokio::test]
async fn an_entry_that_keeps_crashing_its_node_is_dead_lettered_and_the_partition_moves_on() {
    let (server, pool) = start().await;
    let first = node(&pool, &server, 2, 100);
    for n in 0..3 {
        first.publish(P, env(n), false).await.unwrap();
    }
    let (seen, ids) = batch(&first).await;
    assert_eq!(seen, vec![0, 1, 2]);
    let payload = stored(&pool, &server, &ids[0]).await;
    drop(first); // crashed while handling the batch: nothing acknowledged

    // Back after the crash: the batch failed once, so its entries come one by one; entry 0
    // (the culprit) comes first and the node crashes again.
    let second = node(&pool, &server, 2, 100);
    assert_eq!(batch(&second).await.0, vec![0], "a suspect is handed over alone");
    drop(second);

    // Two failed deliveries: entry 0 goes to the dead letters, the others follow in order.
    let third = node(&pool, &server, 2, 100);
    let (seen, ids1) = batch(&third).await;
    assert_eq!(seen, vec![1], "entry 1 failed once (in the first batch), so it comes alone too");
    third.ack(P, &ids1).await.unwrap();
    let (seen, ids2) = batch(&third).await;
    assert_eq!(seen, vec![2]);
    third.ack(P, &ids2).await.unwrap();
    third.publish(P, env(3), false).await.unwrap();
    third.publish(P, env(4), false).await.unwrap();
    assert_eq!(batch(&third).await.0, vec![3, 4], "new entries come in batches again");
    assert_eq!(third.dead_lettered().load(Ordering::Relaxed), 1);

    let all = letters(&pool, &server).list().await.unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let dead = &all[0];
    assert_eq!((dead.partition, dead.original_id.as_str(), dead.deliveries), (P, ids[0].as_str(), 2));
    assert_eq!(dead.payload, payload, "the payload, verbatim");
    assert_eq!(dead.reason, "not handled after 2 deliveries");
    let now = now_ms();
    assert!(dead.time_ms <= now && dead.time_ms + 60_000 > now, "moved just now: {}", dead.time_ms);
    assert_eq!(letters(&pool, &server).count().await.unwrap(), 1);
}

#[tokio::test]
async fn an_unreadable_entry_is_dead_lettered_at_once() {
    let (server, pool) = start().await;
    let bus = node(&pool, &server, 5, 100);
    let key = Keys::new(server.prefix()).stream(P);
    let junk: String = cmd(&pool, redis::cmd("XADD").arg(&key).arg("*").arg("e").arg("{not json")).await;
    bus.publish(P, env(1), false).await.unwrap();
    let (seen, ids) = batch(&bus).await;
    assert_eq!(seen, vec![1], "the partition goes on with the next entry");
    bus.ack(P, &ids).await.unwrap();
    let pending: redis::streams::StreamPendingReply = cmd(&pool, redis::cmd("XPENDING").arg(&key).arg("hub")).await;
    assert_eq!(pending.count(), 0, "nothing is left pending");
    let all = letters(&pool, &server).list().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].original_id.as_str(), all[0].payload.as_str(), all[0].deliveries),
        (junk.as_str(), "{not json", 1)
    );
    assert!(all[0].reason.starts_with("unreadable: "), "{}", all[0].reason);
    assert_eq!(bus.dead_lettered().load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn an_outage_dead_letters_nothing() {
    let (server, pool) = start().await;
    // The strictest setting: one failed delivery would be enough.
    let bus = node(&pool, &server, 1, 100);
    bus.publish(P, env(0), false).await.unwrap();
    let (_, ids) = batch(&bus).await;
    // The store is down: the hub gives the entry back, again and again.
    for _ in 0..3 {
        bus.nack(P, &ids).await.unwrap();
        assert_eq!(batch(&bus).await.0, vec![0], "given back, delivered again");
    }
    bus.ack(P, &ids).await.unwrap();

    // A read is cut (a handover, a Redis timeout) after Redis served it: the hub never saw the
    // entry Redis counted as delivered. Simulated by serving it by hand to the same consumer.
    assert!(timeout(Duration::from_millis(300), bus.next_batch(P, 10)).await.is_err());
    bus.publish(P, env(1), false).await.unwrap();
    let key = Keys::new(server.prefix()).stream(P);
    let _: redis::Value =
        cmd(&pool, redis::cmd("XREADGROUP").arg(&["GROUP", "hub", "node-a", "STREAMS", &key, ">"])).await;
    let (seen, ids) = batch(&bus).await;
    assert_eq!(seen, vec![1], "delivered, not dead-lettered");
    bus.ack(P, &ids).await.unwrap();
    assert_eq!(letters(&pool, &server).count().await.unwrap(), 0);
    assert_eq!(bus.dead_lettered().load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_replayed_dead_letter_is_handled_and_an_unknown_id_changes_nothing() {
    let (server, pool) = start().await;
    let crashed = node(&pool, &server, 1, 100);
    crashed.publish(P, env(7), false).await.unwrap();
    batch(&crashed).await;
    drop(crashed);
    let bus = node(&pool, &server, 1, 100);
    bus.publish(P, env(8), false).await.unwrap();
    let (seen, ids) = batch(&bus).await;
    assert_eq!(seen, vec![8], "entry 7 failed once: dead-lettered");
    bus.ack(P, &ids).await.unwrap();

    let dlq = letters(&pool, &server);
    let dead = dlq.list().await.unwrap().remove(0);
    for unknown in ["1-1", "not-an-id", "0"] {
        assert!(matches!(dlq.replay(unknown, None).await, Err(DeadLetterError::NotFound(_))), "{unknown}");
    }
    let elsewhere = dlq.replay(&dead.id, Some(P + 1)).await;
    assert!(matches!(elsewhere, Err(DeadLetterError::NotFound(_))), "{elsewhere:?}");
    assert_eq!(dlq.count().await.unwrap(), 1, "nothing changed");

    let replayed = dlq.replay(&dead.id, None).await.unwrap();
    assert_eq!((replayed.partition, replayed.dead_letter.as_str()), (P, dead.id.as_str()));
    assert_eq!(dlq.count().await.unwrap(), 0, "removed from the dead letters");
    let (seen, ids) = batch(&bus).await;
    assert_eq!((seen, ids[0].as_str()), (vec![7], replayed.entry.as_str()), "handled again, as a new entry");
    assert_eq!(stored(&pool, &server, &ids[0]).await, dead.payload);
    let again = dlq.replay(&dead.id, None).await;
    assert!(matches!(again, Err(DeadLetterError::NotFound(_))), "only once: {again:?}");
}

#[tokio::test]
async fn a_full_stream_refuses_until_acknowledged_entries_are_trimmed() {
    let (server, pool) = start().await;
    let bus = std::sync::Arc::new(node(&pool, &server, 5, 3));
    for n in 0..3 {
        bus.publish(P, env(n), false).await.unwrap();
    }
    assert!(matches!(bus.publish(P, env(3), false).await, Err(BusError::Full { partition: P })));
    let (seen, ids) = batch(&bus).await;
    assert_eq!(seen, vec![0, 1, 2]);
    bus.ack(P, &ids[..2]).await.unwrap();
    // Two acknowledged entries make room (trimmed at the bound); the pending one stays.
    bus.publish(P, env(3), false).await.unwrap();
    bus.publish(P, env(4), false).await.unwrap();
    assert!(matches!(bus.publish(P, env(5), false).await, Err(BusError::Full { .. })), "2 pending, 3 and 4 new");

    // An internal event waits for room instead of failing.
    let waiting = tokio::spawn({
        let bus = bus.clone();
        async move { bus.publish(P, env(5), true).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "no room yet");
    bus.ack(P, &ids[2..]).await.unwrap();
    timeout(SOON, waiting).await.expect("room after the ack").unwrap().unwrap();
    let (seen, _) = batch(&bus).await;
    assert_eq!(seen, vec![3, 4, 5], "nothing unacknowledged was trimmed");
}
