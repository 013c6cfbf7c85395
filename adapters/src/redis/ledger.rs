//! The tools' ledger on Redis, shared by every node: a quota counted on one node counts on all,
//! and a repeated `idempotency_key` finds the first call's result whichever node it reaches.
//!
//! The tools name their keys `<kind>:<tenant>:…` (`quota:demo:bot:x:20424`,
//! `idem:demo:bot:x:send_message:k1`); the tenant becomes the hash tag, so a tenant's counters,
//! idempotency records and audit trail share one Redis Cluster slot.
//!
//! - counters: `INCR`, and `PEXPIRE` on the first increment, in one script (a counter never
//!   lives without its expiry);
//! - idempotency records: `p` while the call runs (expiring after [`PENDING_TTL`], so a caller that
//!   died does not block its key), then `d` + the stored result as JSON for the result's TTL;
//! - audit: a list per tenant, appended and trimmed to [`AUDIT_CAP`] in one `MULTI`.

use super::connection::Pool;
use async_trait::async_trait;
use redis::Script;
use std::time::Duration;

use super::Keys;
use super::shared::{Shared, SharedConn};
use crate::tools::ledger::{AUDIT_CAP, AuditRecord, LedgerError, Recall, StoredResult, ToolLedger};

/// How long a pending idempotency claim blocks its key if its holder vanished (as in memory).
const PENDING_TTL: Duration = Duration::from_secs(30);

/// Adds one; a new counter gets its expiry in the same step.
const INCREMENT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// Claims a free key (`p` with the pending TTL) and answers `new`, or returns what it holds.
const RECALL: &str = r"
local v = redis.call('GET', KEYS[1])
if v then
  return v
end
redis.call('SET', KEYS[1], 'p', 'PX', ARGV[1])
return 'new'
";

/// Frees a key only while it is pending: a late `abandon` never erases a stored result.
const ABANDON: &str = r"
if redis.call('GET', KEYS[1]) == 'p' then
  return redis.call('DEL', KEYS[1])
end
return 0
";

/// The ledger on Redis.
pub struct RedisLedger {
    conn: Shared,
    keys: Keys,
    increment: Script,
    recall: Script,
    abandon: Script,
}

impl RedisLedger {
    /// A ledger on `pool`, its keys named by `keys`.
    pub fn new(pool: Pool, keys: Keys) -> Self {
        Self {
            conn: Shared::new(pool),
            keys,
            increment: Script::new(INCREMENT),
            recall: Script::new(RECALL),
            abandon: Script::new(ABANDON),
        }
    }

    async fn conn(&self) -> Result<SharedConn, String> {
        self.conn.get().await
    }

    /// The Redis key of a ledger key, tagged with its tenant (the second `:` segment).
    fn key(&self, key: &str) -> String {
        let tenant = key.split(':').nth(1).unwrap_or_default();
        self.keys.ledger(tenant, key)
    }
}

/// `PX` wants whole milliseconds, at least one.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Runs one ledger operation within [`super::OP_TIMEOUT`].
async fn bounded<T>(op: impl Future<Output = Result<T, String>>) -> Result<T, LedgerError> {
    super::bounded(op).await.map_err(LedgerError)
}

#[async_trait]
impl ToolLedger for RedisLedger {
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, LedgerError> {
        let key = self.key(key);
        bounded(async {
            let mut conn = self.conn().await?;
            self.increment.key(&key).arg(millis(ttl)).invoke_async(&mut conn).await.map_err(|e| e.to_string())
        })
        .await
    }

    async fn recall(&self, key: &str) -> Result<Recall, LedgerError> {
        let key = self.key(key);
        let held: String = bounded(async {
            let mut conn = self.conn().await?;
            self.recall.key(&key).arg(millis(PENDING_TTL)).invoke_async(&mut conn).await.map_err(|e| e.to_string())
        })
        .await?;
        match held.as_str() {
            "new" => Ok(Recall::New),
            "p" => Ok(Recall::Pending),
            done => {
                let json =
                    done.strip_prefix('d').ok_or_else(|| LedgerError(format!("{key} holds no ledger record")))?;
                let stored = serde_json::from_str(json)
                    .map_err(|e| LedgerError(format!("{key} holds an unreadable result: {e}")))?;
                Ok(Recall::Done(stored))
            }
        }
    }

    async fn complete(&self, key: &str, result: &StoredResult, ttl: Duration) -> Result<(), LedgerError> {
        let key = self.key(key);
        let json = serde_json::to_string(result).map_err(|e| LedgerError(e.to_string()))?;
        bounded(async {
            let mut conn = self.conn().await?;
            redis::cmd("SET")
                .arg(&key)
                .arg(format!("d{json}"))
                .arg("PX")
                .arg(millis(ttl))
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    async fn abandon(&self, key: &str) -> Result<(), LedgerError> {
        let key = self.key(key);
        bounded(async {
            let mut conn = self.conn().await?;
            self.abandon.key(&key).invoke_async::<i64>(&mut conn).await.map(drop).map_err(|e| e.to_string())
        })
        .await
    }

    async fn audit(&self, record: AuditRecord) -> Result<(), LedgerError> {
        let key = self.keys.audit(&record.tenant);
        let json = serde_json::to_string(&record).map_err(|e| LedgerError(e.to_string()))?;
        bounded(async {
            let mut conn = self.conn().await?;
            redis::pipe()
                .atomic()
                .rpush(&key, json)
                .ignore()
                .ltrim(&key, -(AUDIT_CAP as isize), -1)
                .ignore()
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        })
        .await
    }

    async fn recent_audit(&self, tenant: &str, limit: usize) -> Result<Vec<AuditRecord>, LedgerError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let key = self.keys.audit(tenant);
        let start = -(limit.min(AUDIT_CAP) as isize);
        let lines: Vec<String> = bounded(async {
            let mut conn = self.conn().await?;
            redis::cmd("LRANGE").arg(&key).arg(start).arg(-1).query_async(&mut conn).await.map_err(|e| e.to_string())
        })
        .await?;
        lines
            .iter()
            .map(|l| serde_json::from_str(l).map_err(|e| LedgerError(format!("{key} holds an unreadable record: {e}"))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::test_pool;
    use switchboard_load_tests::redis_server::RedisServer;

    async fn ledger(server: &RedisServer) -> (RedisLedger, Pool) {
        let pool = test_pool(server).await;
        (RedisLedger::new(pool.clone(), Keys::new(server.prefix())), pool)
    }

    fn record(tenant: &str, n: u64) -> AuditRecord {
        AuditRecord {
            at_ms: n,
            tenant: tenant.into(),
            caller: "bot:x".into(),
            tool: "get_conversation".into(),
            args_digest: format!("digest{n}"),
            result: "ok".into(),
            detail: None,
        }
    }

    #[tokio::test]
    async fn counters_expire_and_idempotent_results_are_recalled() {
        let server = RedisServer::start().unwrap();
        let (ledger, _) = ledger(&server).await;
        let window = Duration::from_millis(300);
        assert_eq!(ledger.increment("quota:demo:q", window).await.unwrap(), 1);
        assert_eq!(ledger.increment("quota:demo:q", window).await.unwrap(), 2);
        assert_eq!(ledger.increment("quota:outra:q", window).await.unwrap(), 1, "other tenants count apart");
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(ledger.increment("quota:demo:q", window).await.unwrap(), 1, "a new window starts at 1");

        assert_eq!(ledger.recall("idem:demo:k").await.unwrap(), Recall::New);
        assert_eq!(ledger.recall("idem:demo:k").await.unwrap(), Recall::Pending, "a concurrent repeat waits");
        let stored = StoredResult { args_digest: "d".into(), outcome: r#"{"text":"p"}"#.into() };
        ledger.complete("idem:demo:k", &stored, Duration::from_secs(60)).await.unwrap();
        assert_eq!(ledger.recall("idem:demo:k").await.unwrap(), Recall::Done(stored.clone()));
        ledger.abandon("idem:demo:k").await.unwrap();
        assert_eq!(ledger.recall("idem:demo:k").await.unwrap(), Recall::Done(stored), "a late abandon keeps it");

        assert_eq!(ledger.recall("idem:demo:gone").await.unwrap(), Recall::New);
        ledger.abandon("idem:demo:gone").await.unwrap();
        assert_eq!(ledger.recall("idem:demo:gone").await.unwrap(), Recall::New, "an abandoned key may run again");
    }

    #[tokio::test]
    async fn two_ledgers_on_one_redis_share_counters_and_claims() {
        let server = RedisServer::start().unwrap();
        let ((a, _), (b, _)) = (ledger(&server).await, ledger(&server).await);
        let day = Duration::from_secs(86_400);
        let counts = futures_util::future::join_all(
            (0..20)
                .map(|i| if i % 2 == 0 { a.increment("quota:demo:c", day) } else { b.increment("quota:demo:c", day) }),
        )
        .await;
        let mut counts: Vec<u64> = counts.into_iter().map(Result::unwrap).collect();
        counts.sort_unstable();
        assert_eq!(counts, (1..=20).collect::<Vec<_>>(), "every increment counted once, on either node");

        let (x, y) = tokio::join!(a.recall("idem:demo:k"), b.recall("idem:demo:k"));
        let mut claims = [x.unwrap(), y.unwrap()];
        claims.sort_by_key(|c| *c != Recall::New);
        assert_eq!(claims, [Recall::New, Recall::Pending], "exactly one node runs the call");
    }

    #[tokio::test]
    async fn a_tenants_keys_share_its_hash_tag_and_counters_always_expire() {
        let server = RedisServer::start().unwrap();
        let (ledger, pool) = ledger(&server).await;
        ledger.increment("quota:demo:bot:x:1", Duration::from_secs(60)).await.unwrap();
        ledger.increment("quota:demo:bot:x:1", Duration::from_secs(60)).await.unwrap();
        let mut conn = pool.get().await.unwrap();
        let key = format!("{}{{t:demo}}:tl:quota:demo:bot:x:1", server.prefix());
        let ttl: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut conn).await.unwrap();
        assert!((1..=60_000).contains(&ttl), "the counter expires: PTTL {ttl}");
        assert_eq!(Keys::new("sb:").audit("demo"), "sb:{t:demo}:audit");
    }

    #[tokio::test]
    async fn the_audit_trail_is_per_tenant_newest_last_and_capped() {
        let server = RedisServer::start().unwrap();
        let (ledger, _) = ledger(&server).await;
        for n in 0..5 {
            ledger.audit(record("demo", n)).await.unwrap();
        }
        ledger.audit(record("outra", 99)).await.unwrap();
        let recent = ledger.recent_audit("demo", 3).await.unwrap();
        assert_eq!(recent.iter().map(|r| r.at_ms).collect::<Vec<_>>(), [2, 3, 4]);
        assert_eq!(ledger.recent_audit("outra", 10).await.unwrap(), [record("outra", 99)]);
        assert!(ledger.recent_audit("nobody", 10).await.unwrap().is_empty());

        for n in 5..(AUDIT_CAP as u64 + 10) {
            ledger.audit(record("demo", n)).await.unwrap();
        }
        let all = ledger.recent_audit("demo", usize::MAX).await.unwrap();
        assert_eq!(all.len(), AUDIT_CAP, "the oldest records went");
        assert_eq!(all.first().map(|r| r.at_ms), Some(10));
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_a_ledger_error_within_bounded_time() {
        let server = RedisServer::start().unwrap();
        let (ledger, _) = ledger(&server).await;
        assert_eq!(ledger.recall("idem:demo:k").await.unwrap(), Recall::New);
        drop(server);
        let started = tokio::time::Instant::now();
        assert!(ledger.increment("quota:demo:q", Duration::from_secs(1)).await.is_err());
        assert!(ledger.recall("idem:demo:k").await.is_err());
        assert!(ledger.audit(record("demo", 1)).await.is_err());
        assert!(started.elapsed() <= 3 * super::super::OP_TIMEOUT + Duration::from_millis(500));
    }
}
