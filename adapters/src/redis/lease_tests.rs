use super::*;
use crate::redis::{RedisSettings, connect};
use std::sync::Weak;
use switchboard_load_tests::redis_server::RedisServer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

const PARTITIONS: u32 = 8;
const FAST: LeaseSettings = LeaseSettings { ttl: Duration::from_millis(300), heartbeat: Duration::from_millis(100) };
const SOON: Duration = Duration::from_secs(5);

async fn start() -> (RedisServer, Pool) {
    let server = RedisServer::start().unwrap();
    let pool = connect_to(&server, server.url()).await;
    (server, pool)
}

/// A pool on `server`, reached at `url`.
async fn connect_to(server: &RedisServer, url: &str) -> Pool {
    let settings = RedisSettings {
        url: url.into(),
        cluster: false,
        prefix: server.prefix().into(),
        partitions: PARTITIONS,
        pool_size: 8,
    };
    connect(&settings, SOON).await.expect("redis is up")
}

/// A TCP proxy to `upstream` (`host:port`) that hands every reply on `delay` after it came: a
/// Redis that answers late, as it does to a busy node. Only latency: replies do not queue.
async fn slow_proxy(upstream: String, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else { continue };
            let ((mut from_client, mut to_client), (mut from_server, mut to_server)) =
                (client.into_split(), server.into_split());
            tokio::spawn(async move { tokio::io::copy(&mut from_client, &mut to_server).await });
            let (replies, mut due) = tokio::sync::mpsc::unbounded_channel();
            tokio::spawn(async move {
                let mut buffer = vec![0; 64 * 1024];
                while let Ok(n @ 1..) = from_server.read(&mut buffer).await {
                    if replies.send((Instant::now() + delay, buffer[..n].to_vec())).is_err() {
                        return;
                    }
                }
            });
            tokio::spawn(async move {
                while let Some((at, reply)) = due.recv().await {
                    tokio::time::sleep_until(at).await;
                    if to_client.write_all(&reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    format!("redis://127.0.0.1:{port}")
}

fn node(server: &RedisServer, pool: &Pool, name: &str, settings: LeaseSettings) -> Arc<RedisPlacement> {
    RedisPlacement::start(pool.clone(), Keys::new(server.prefix()), name.into(), PARTITIONS, settings)
}

/// Stands in for the hub: releases every partition as soon as it leaves `owned()`.
fn hub(placement: &Arc<RedisPlacement>) {
    let (weak, mut owned): (Weak<RedisPlacement>, _) = (Arc::downgrade(placement), placement.owned());
    tokio::spawn(async move {
        let mut before = Ownership::default();
        loop {
            let now = owned.borrow_and_update().clone();
            let Some(placement) = weak.upgrade() else { return };
            before.0.keys().filter(|p| !now.owns(**p)).for_each(|p| placement.released(*p));
            drop(placement);
            before = now;
            if owned.changed().await.is_err() {
                return;
            }
        }
    });
}

/// Waits (at most `within`) until `placement` owns what `test` accepts.
async fn until(placement: &RedisPlacement, within: Duration, test: impl Fn(&Ownership) -> bool) -> Ownership {
    let mut owned = placement.owned();
    let waited = timeout(within, owned.wait_for(|o| test(o))).await;
    let owned = waited.unwrap_or_else(|_| panic!("still owns {:?} after {within:?}", placement.owned().borrow().0));
    owned.expect("the lease loop is running").clone()
}

async fn lease_of(server: &RedisServer, pool: &Pool, p: u32) -> Option<String> {
    let mut conn = pool.get().await.unwrap();
    redis::cmd("GET").arg(Keys::new(server.prefix()).lease(p)).query_async(&mut conn).await.unwrap()
}

#[tokio::test]
async fn a_node_alone_acquires_every_partition_with_its_fencing_token() {
    let (server, pool) = start().await;
    let a = node(&server, &pool, "a", FAST);
    let owned = until(&a, SOON, |o| o.0.len() == PARTITIONS as usize).await;
    for (p, epoch) in owned.0 {
        assert!(epoch >= 1, "partition {p} has epoch {epoch}");
        let token = a.token(p).expect("an owned partition has a token");
        assert_eq!(token, format!("a:{epoch}"));
        assert_eq!(lease_of(&server, &pool, p).await, Some(token), "the lease in redis is the token");
    }
    assert_eq!(a.stats(), LeaseStats { acquired: 8, lost: 0, released: 0, taken_over: 0 }, "first owner of all");
    tokio::time::sleep(FAST.ttl * 2).await;
    assert_eq!(a.owned().borrow().0.len(), 8, "renewed leases outlive their ttl");
}

#[tokio::test]
async fn a_joining_node_takes_its_share_only_once_the_first_released_it() {
    let (server, pool) = start().await;
    let a = node(&server, &pool, "a", FAST);
    let before = until(&a, SOON, |o| o.0.len() == 8).await;
    let b = node(&server, &pool, "b", FAST);
    let kept = until(&a, SOON, |o| o.0.len() == 4).await;
    let handed: Vec<u32> = (0..PARTITIONS).filter(|p| !kept.owns(*p)).collect();
    assert_eq!(handed, vec![4, 5, 6, 7], "the highest partitions are given up");

    // The hub has not stopped them yet: longer than a ttl, they stay a's.
    tokio::time::sleep(FAST.ttl * 2).await;
    assert!(b.owned().borrow().0.is_empty(), "b cannot start what a still runs");
    for &p in &handed {
        assert_eq!(a.token(p), Some(format!("a:{}", before.0[&p])), "a still writes partition {p}");
        assert_eq!(lease_of(&server, &pool, p).await, a.token(p));
    }

    for &p in &handed {
        a.released(p);
    }
    let taken = until(&b, SOON, |o| o.0.len() == 4).await;
    assert_eq!(taken.0.keys().copied().collect::<Vec<_>>(), handed);
    for (p, epoch) in taken.0 {
        assert!(epoch > before.0[&p], "partition {p}: epoch {epoch} after {}", before.0[&p]);
        assert_eq!(a.token(p), None);
        assert_eq!(lease_of(&server, &pool, p).await, Some(format!("b:{epoch}")));
    }
    assert_eq!(a.owned().borrow().0, kept.0, "a keeps its half");
    assert_eq!(a.stats(), LeaseStats { acquired: 8, lost: 0, released: 4, taken_over: 0 });
    assert_eq!(b.stats().taken_over, 4, "b took over the four partitions a had run");
}

/// Two nodes with four partitions each.
async fn pair(server: &RedisServer, pool: &Pool, a: LeaseSettings) -> (Arc<RedisPlacement>, Arc<RedisPlacement>) {
    let (a, b) = (node(server, pool, "a", a), node(server, pool, "b", FAST));
    hub(&a);
    hub(&b);
    until(&a, SOON, |o| o.0.len() == 4).await;
    until(&b, SOON, |o| o.0.len() == 4).await;
    (a, b)
}

#[tokio::test]
async fn a_crashed_node_loses_its_partitions_after_a_ttl() {
    let (server, pool) = start().await;
    let (a, b) = pair(&server, &pool, FAST).await;
    let before = a.owned().borrow().clone();
    a.abort();
    let after = until(&b, FAST.ttl + 10 * FAST.heartbeat, |o| o.0.len() == 8).await;
    for (p, epoch) in before.0 {
        assert!(after.0[&p] > epoch, "partition {p}: epoch {} after {epoch}", after.0[&p]);
    }
}

#[tokio::test]
async fn a_graceful_shutdown_hands_partitions_over_at_once() {
    let (server, pool) = start().await;
    // A long ttl: the handover must not wait for leases to expire.
    let slow = LeaseSettings { ttl: Duration::from_secs(3), heartbeat: Duration::from_millis(100) };
    let (a, b) = pair(&server, &pool, slow.clone()).await;
    let leaving: Vec<u32> = a.owned().borrow().0.keys().copied().collect();
    // Whether `a` handed some over when `b` joined depends on who beat first.
    let released = a.stats().released;
    timeout(SOON, a.shutdown(SOON)).await.expect("the hub released everything: no waiting for the deadline");
    assert!(a.owned().borrow().0.is_empty());
    for &p in &leaving {
        assert_eq!(lease_of(&server, &pool, p).await, None, "the lease of {p} is deleted");
    }
    assert_eq!(a.stats().released, released + 4);
    let mut conn = pool.get().await.unwrap();
    let nodes: Vec<String> = redis::cmd("ZRANGE")
        .arg(Keys::new(server.prefix()).nodes())
        .arg(0)
        .arg(-1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(nodes, vec!["b".to_owned()], "a left the node set");
    until(&b, slow.ttl / 3, |o| o.0.len() == 8).await;
}

#[tokio::test]
async fn a_lease_taken_behind_our_back_is_lost_at_the_next_heartbeat() {
    let (server, pool) = start().await;
    let a = node(&server, &pool, "a", FAST);
    until(&a, SOON, |o| o.0.len() == 8).await;
    let mut conn = pool.get().await.unwrap();
    redis::cmd("SET")
        .arg(Keys::new(server.prefix()).lease(3))
        .arg("intruder:99")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    until(&a, FAST.heartbeat * 5, |o| !o.owns(3)).await;
    assert_eq!(a.token(3), None);
    assert_eq!(a.stats().lost, 1);
    tokio::time::sleep(FAST.heartbeat * 3).await;
    assert!(!a.owned().borrow().owns(3), "a lease someone else holds is never taken");
    assert_eq!(lease_of(&server, &pool, 3).await.as_deref(), Some("intruder:99"));
    assert_eq!(a.owned().borrow().0.len(), 7);
}

#[tokio::test]
async fn leases_unconfirmed_for_a_ttl_are_given_up_when_redis_is_gone() {
    let (server, pool) = start().await;
    let a = node(&server, &pool, "a", FAST);
    until(&a, SOON, |o| o.0.len() == 8).await;
    drop(server);
    until(&a, FAST.ttl + 2 * super::super::OP_TIMEOUT, |o| o.0.is_empty()).await;
    assert_eq!(a.token(0), None, "the store must not be written with a lease that may be someone else's");
    assert_eq!(a.stats().lost, 8);
}

#[tokio::test]
async fn a_node_keeps_its_leases_when_every_redis_reply_comes_late() {
    // 150 ms a round trip: taken or renewed one after another, the 8 leases took longer than
    // their ttl, so they lapsed in Redis (free for any node to take) while this node ran them.
    let server = RedisServer::start().unwrap();
    let upstream = server.url().trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let slow = connect_to(&server, &slow_proxy(upstream, Duration::from_millis(150)).await).await;
    let settings = LeaseSettings { ttl: Duration::from_secs(1), heartbeat: Duration::from_millis(100) };
    let a = node(&server, &slow, "a", settings.clone());
    until(&a, SOON, |o| o.0.len() == 8).await;
    let direct = connect_to(&server, server.url()).await;
    for _ in 0..12 {
        tokio::time::sleep(settings.ttl / 4).await;
        for p in 0..PARTITIONS {
            let held = a.token(p).unwrap_or_else(|| panic!("a gave up partition {p}"));
            assert_eq!(lease_of(&server, &direct, p).await, Some(held), "the lease of {p} in redis is a's");
        }
    }
    assert_eq!(a.stats(), LeaseStats { acquired: 8, lost: 0, released: 0, taken_over: 0 }, "no lease ever lapsed");
}
