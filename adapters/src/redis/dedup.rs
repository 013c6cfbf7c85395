//! The two-step dedup gate on Redis (claim, then confirm or forget): one string per key, `p`
//! while its event is being published, `d` once it is on the bus; both expire by themselves.
//! Staff commands' client keys use it; provider messages use the one-step ingress script of the
//! bus instead (`RedisBus::publish_unique`), whose marks cost the same.
//!
//! Memory: a remembered id costs about 210 bytes. `MEMORY USAGE` reports 152 bytes for the
//! realistic mark `sb:dd:demo:wamid.HBgNNTUx…AA==` (an 89-byte key, value `d`, with a TTL;
//! Redis 7.0, jemalloc; `a_remembered_id_costs_a_bounded_number_of_bytes` checks the order of
//! magnitude), but that figure leaves out the key's entries in the keyspace and expiry hash
//! tables: 100 000 such marks grew `used_memory` by 21.3 MB, ~213 bytes each (measured by hand,
//! `SET … d PX 86400000` piped through `redis-cli --pipe` into an empty server). So a day of
//! 1 M provider messages keeps ~210 MB in the gate; shorter ids cost proportionally less.

use async_trait::async_trait;
use redis::Script;
use std::time::Duration;
use switchboard_actors::ports::{Claim, Dedup, DedupError};

use super::connection::Pool;
use super::shared::{Shared, SharedConn};
use super::{Keys, millis};

/// Deletes a mark only while it is pending, so a late `forget` never erases a confirmed one.
const FORGET: &str = r"
if redis.call('GET', KEYS[1]) == 'p' then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The dedup gate on Redis.
pub struct RedisDedup {
    conn: Shared,
    keys: Keys,
    pending_ttl: Duration,
    forget: Script,
}

impl RedisDedup {
    /// A gate whose pending claims block their key for at most `pending_ttl`.
    pub fn new(pool: Pool, keys: Keys, pending_ttl: Duration) -> Self {
        Self { conn: Shared::new(pool), keys, pending_ttl, forget: Script::new(FORGET) }
    }

    async fn conn(&self) -> Result<SharedConn, String> {
        self.conn.get().await
    }
}

/// Runs one gate operation within [`super::OP_TIMEOUT`].
async fn bounded<T>(op: impl Future<Output = Result<T, String>>) -> Result<T, DedupError> {
    super::bounded(op).await.map_err(DedupError::Unavailable)
}

#[async_trait]
impl Dedup for RedisDedup {
    async fn claim(&self, key: &str) -> Result<Claim, DedupError> {
        let key = self.keys.dedup(key);
        bounded(async {
            let mut conn = self.conn().await?;
            // Two rounds: the mark may expire (or be forgotten) between SET NX and GET.
            for _ in 0..2 {
                let set: Option<String> = redis::cmd("SET")
                    .arg(&key)
                    .arg("p")
                    .arg("NX")
                    .arg("PX")
                    .arg(millis(self.pending_ttl))
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| e.to_string())?;
                if set.is_some() {
                    return Ok(Claim::New);
                }
                let mark: Option<String> =
                    redis::cmd("GET").arg(&key).query_async(&mut conn).await.map_err(|e| e.to_string())?;
                match mark.as_deref() {
                    Some("d") => return Ok(Claim::Done),
                    Some(_) => return Ok(Claim::Pending),
                    None => continue,
                }
            }
            // The key keeps flickering: someone else is at it, let the provider retry.
            Ok(Claim::Pending)
        })
        .await
    }

    async fn confirm(&self, key: &str, ttl: Duration) -> Result<(), DedupError> {
        let key = self.keys.dedup(key);
        bounded(async {
            let mut conn = self.conn().await?;
            redis::cmd("SET")
                .arg(&key)
                .arg("d")
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    async fn forget(&self, key: &str) -> Result<(), DedupError> {
        let key = self.keys.dedup(key);
        bounded(async {
            let mut conn = self.conn().await?;
            self.forget.key(&key).invoke_async::<i64>(&mut conn).await.map(drop).map_err(|e| e.to_string())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::{RedisSettings, connect};
    use switchboard_load_tests::redis_server::RedisServer;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    async fn gate(server: &RedisServer, pending_ttl: Duration) -> (RedisDedup, Pool) {
        let settings = RedisSettings {
            url: server.url().to_owned(),
            cluster: false,
            prefix: server.prefix().to_owned(),
            partitions: 4,
            pool_size: 4,
        };
        let pool = connect(&settings, Duration::from_secs(5)).await.expect("redis is up");
        (RedisDedup::new(pool.clone(), Keys::new(server.prefix()), pending_ttl), pool)
    }

    #[tokio::test]
    async fn a_key_is_new_then_pending_then_done() {
        let server = RedisServer::start().unwrap();
        let (d, _) = gate(&server, Duration::from_secs(30)).await;
        let (a, b) = tokio::join!(d.claim("wamid.1"), d.claim("wamid.1"));
        let mut claims = [a.unwrap(), b.unwrap()];
        claims.sort_by_key(|c| *c != Claim::New);
        assert_eq!(claims, [Claim::New, Claim::Pending], "exactly one concurrent caller wins");
        d.confirm("wamid.1", DAY).await.unwrap();
        assert_eq!(d.claim("wamid.1").await.unwrap(), Claim::Done);
        assert_eq!(d.claim("wamid.2").await.unwrap(), Claim::New, "other keys are unaffected");
    }

    #[tokio::test]
    async fn an_abandoned_claim_expires_after_the_pending_ttl() {
        let server = RedisServer::start().unwrap();
        let (d, _) = gate(&server, Duration::from_millis(200)).await;
        assert_eq!(d.claim("k").await.unwrap(), Claim::New);
        assert_eq!(d.claim("k").await.unwrap(), Claim::Pending);
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(d.claim("k").await.unwrap(), Claim::New, "the holder died: the retry passes");
    }

    #[tokio::test]
    async fn forget_frees_a_pending_key_but_never_a_confirmed_one() {
        let server = RedisServer::start().unwrap();
        let (d, _) = gate(&server, Duration::from_secs(30)).await;
        assert_eq!(d.claim("k").await.unwrap(), Claim::New);
        d.forget("k").await.unwrap();
        assert_eq!(d.claim("k").await.unwrap(), Claim::New, "a failed publish lets the retry through");
        d.confirm("k", DAY).await.unwrap();
        d.forget("k").await.unwrap();
        assert_eq!(d.claim("k").await.unwrap(), Claim::Done, "a late forget keeps the confirmed mark");
        d.forget("never-claimed").await.unwrap();
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_reported_within_bounded_time() {
        let server = RedisServer::start().unwrap();
        let (d, _) = gate(&server, Duration::from_secs(30)).await;
        assert_eq!(d.claim("k").await.unwrap(), Claim::New);
        drop(server);
        let started = tokio::time::Instant::now();
        let outcome = d.claim("k2").await;
        assert!(matches!(outcome, Err(DedupError::Unavailable(_))), "{outcome:?}");
        assert!(matches!(d.confirm("k", DAY).await, Err(DedupError::Unavailable(_))));
        assert!(matches!(d.forget("k").await, Err(DedupError::Unavailable(_))));
        assert!(started.elapsed() <= 3 * super::super::OP_TIMEOUT + Duration::from_millis(500));
    }

    #[tokio::test]
    async fn a_remembered_id_costs_a_bounded_number_of_bytes() {
        let server = RedisServer::start().unwrap();
        let (d, pool) = gate(&server, Duration::from_secs(30)).await;
        let id = "wamid.HBgNNTUxMTk4NzY1NDMyMRUCABIYIDNBMjk0RjE2QjFGQjE2QjFGQjE2QjFGQjE2QjFGAA==";
        let demo = format!("demo:{id}");
        assert_eq!(d.claim(&demo).await.unwrap(), Claim::New);
        d.confirm(&demo, DAY).await.unwrap();
        let mut conn = pool.get().await.unwrap();
        let bytes: u64 = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(Keys::new(server.prefix()).dedup(&demo))
            .query_async(&mut conn)
            .await
            .unwrap();
        // The module doc's figure is 152 bytes with the `sb:` prefix; the test prefix is longer.
        assert!((120..=256).contains(&bytes), "MEMORY USAGE = {bytes} bytes");
    }
}
