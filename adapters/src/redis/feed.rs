//! Each tenant's console feed shared by every node: one stream per tenant
//! (`<prefix>{t:<tenant>}:feed`). Every node appends what its own conversations record, and every
//! node follows the stream, so a console sees the conversations of all nodes, in one order that
//! is the same on every node. The entries are opaque to this module (the console's frames).
//!
//! The stream is capped (`MAXLEN ~`): it is a live feed, not a record; the journal is the record.

use super::connection::Pool;
use super::shared::Shared;
use super::{IO, Keys, OP_TIMEOUT, within};
use redis::aio::MultiplexedConnection;
use redis::streams::StreamReadReply;
use std::time::Duration;
use tokio::sync::mpsc;

/// The one field of an entry.
const FIELD: &str = "e";

/// How long a follower's read blocks before it reads again.
const BLOCK: Duration = Duration::from_secs(2);

/// Entries a follower takes per read.
const READ_COUNT: usize = 1000;

/// What a follower hands on.
#[derive(Debug, PartialEq, Eq)]
pub enum Followed {
    /// Entries, in stream order.
    Entries(Vec<String>),
    /// Some entries may have been missed (the follower's connection broke before it had read
    /// anything, or the stream was trimmed past it): whoever keeps state from them starts over.
    Gap,
}

/// The tenants' feed streams.
#[derive(Clone)]
pub struct RedisFeedLog {
    pool: Pool,
    conn: Shared,
    keys: Keys,
    max_len: usize,
}

impl RedisFeedLog {
    /// Streams of at most about `max_len` entries each.
    pub fn new(pool: Pool, keys: Keys, max_len: usize) -> Self {
        Self { conn: Shared::new(pool.clone()), pool, keys, max_len: max_len.max(1) }
    }

    /// Appends `entries` to the tenant's stream, in order, in one round trip.
    pub async fn append(&self, tenant: &str, entries: &[String]) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let key = self.keys.feed(tenant);
        let mut pipe = redis::pipe();
        for entry in entries {
            pipe.cmd("XADD").arg(&key).arg("MAXLEN").arg("~").arg(self.max_len).arg("*").arg(FIELD).arg(entry).ignore();
        }
        let mut conn = self.conn.get().await?;
        pipe.query_async::<()>(&mut conn).await.map_err(|e| e.to_string())
    }

    /// Follows the tenant's stream from now on (from its newest entry when this returns), until
    /// the receiver is dropped. A broken connection is re-made and the read goes on after the
    /// last entry seen.
    pub async fn follow(&self, tenant: &str) -> mpsc::Receiver<Followed> {
        let (tx, rx) = mpsc::channel(64);
        let key = self.keys.feed(tenant);
        let start = async {
            let mut conn = self.conn.get().await?;
            newest(&mut conn, &key).await
        };
        // When Redis fails now, the follower finds the end itself (and reports a gap).
        let last = start.await.ok();
        IO.spawn(follow(self.pool.clone(), key, last, tx));
        rx
    }
}

/// Reads `key` into `tx` after entry `last` (`None`: from the end as it is when first read).
async fn follow(pool: Pool, key: String, mut last: Option<String>, tx: mpsc::Sender<Followed>) {
    let mut conn: Option<MultiplexedConnection> = None;
    while !tx.is_closed() {
        let read = async {
            let mut c = match conn.take() {
                Some(c) => c,
                None => pool.blocking(&key).await?.0,
            };
            let start = match &last {
                Some(id) => id.clone(),
                None => newest(&mut c, &key).await?,
            };
            let mut cmd = redis::cmd("XREAD");
            cmd.arg("COUNT").arg(READ_COUNT).arg("BLOCK").arg(BLOCK.as_millis() as u64);
            cmd.arg("STREAMS").arg(&key).arg(&start);
            let reply: Option<StreamReadReply> = cmd.query_async(&mut c).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((c, start, reply))
        };
        match within(BLOCK + OP_TIMEOUT, read).await {
            Ok((c, start, reply)) => {
                conn = Some(c);
                let mut entries = Vec::new();
                let mut newest = start;
                for stream in reply.map(|r| r.keys).unwrap_or_default() {
                    for entry in stream.ids {
                        if let Some(text) = entry.get::<String>(FIELD) {
                            entries.push(text);
                        }
                        newest = entry.id;
                    }
                }
                last = Some(newest);
                if !entries.is_empty() && tx.send(Followed::Entries(entries)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                tracing::warn!(%key, error = %e, "console feed stream read failed; reading again");
                if last.is_none() && tx.send(Followed::Gap).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// The id of the stream's newest entry (`0-0` for an empty or missing stream): the first read
/// starts after it. Not `$`: a read re-made after an error must go on where it stopped.
async fn newest(conn: &mut impl redis::aio::ConnectionLike, key: &str) -> Result<String, String> {
    let reply: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
        .arg(key)
        .arg("+")
        .arg("-")
        .arg("COUNT")
        .arg(1)
        .query_async(conn)
        .await
        .map_err(|e| e.to_string())?;
    Ok(reply.ids.into_iter().next().map(|e| e.id).unwrap_or_else(|| "0-0".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::test_pool;
    use switchboard_load_tests::redis_server::RedisServer;

    async fn log(server: &RedisServer) -> RedisFeedLog {
        let pool = test_pool(server).await;
        RedisFeedLog::new(pool, Keys::new(server.prefix()), 100)
    }

    async fn next(rx: &mut mpsc::Receiver<Followed>) -> Vec<String> {
        match tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
            Ok(Some(Followed::Entries(e))) => e,
            other => panic!("expected entries, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_node_follows_what_any_node_appends_in_one_order() {
        let server = RedisServer::start().unwrap();
        let (a, b) = (log(&server).await, log(&server).await);
        a.append("demo", &["before".into()]).await.unwrap();
        let (mut on_a, mut on_b) = (a.follow("demo").await, b.follow("demo").await);
        let mut other = a.follow("other").await;
        a.append("demo", &["a1".into(), "a2".into()]).await.unwrap();
        b.append("demo", &["b1".into()]).await.unwrap();
        let mut seen_a = Vec::new();
        while seen_a.len() < 3 {
            seen_a.extend(next(&mut on_a).await);
        }
        let mut seen_b = Vec::new();
        while seen_b.len() < 3 {
            seen_b.extend(next(&mut on_b).await);
        }
        assert_eq!(seen_a, ["a1", "a2", "b1"], "from now on, nothing older");
        assert_eq!(seen_a, seen_b, "the same order on every node");
        assert!(
            tokio::time::timeout(Duration::from_millis(300), other.recv()).await.is_err(),
            "another tenant's stream saw nothing"
        );
    }

    #[tokio::test]
    async fn the_stream_is_capped() {
        let server = RedisServer::start().unwrap();
        let log = log(&server).await;
        let entries: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
        log.append("demo", &entries).await.unwrap();
        let mut conn = log.conn.get().await.unwrap();
        let len: usize = redis::cmd("XLEN").arg(log.keys.feed("demo")).query_async(&mut conn).await.unwrap();
        assert!(len < 300, "about 100 entries kept (whole radix nodes), not {len}");
    }
}
