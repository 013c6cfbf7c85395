//! The Redis backend: the same ports as `memory`, durable (with AOF) and shared by many nodes.
//!
//! Key layout (prefix configurable, default `sb:`). The partition is the unit of placement:
//! every key of partition `p` carries the hash tag `{p}` so that one step's keys live in one
//! Redis Cluster slot.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `sb:{p}:in` | stream | the partition's bus (consumer group `hub`) |
//! | `sb:{p}:dlq` | stream | the partition's dead letters (see `dlq`) |
//! | `sb:{p}:s:<conversation>` | string | the conversation's snapshot (JSON) |
//! | `sb:{p}:j:<conversation>` | list | its journal, one JSON envelope per entry, oldest first |
//! | `sb:{p}:lease`, `sb:{p}:epoch`, `sb:{p}:owed` | string, counter, set | the partition's lease, its fencing epoch, its conversations owing work |
//! | `sb:{p}:dd:<key>` | string | dedup mark of a provider message bound for partition `p` (`d`; expires) |
//! | `sb:dd:<key>` | string | dedup mark of a staff command's client key (`p` pending, `d` done; expires) |
//! | `sb:{t:<tenant>}:ix:…` | sorted sets, hash | a tenant's conversation indexes (see `store`) |
//! | `sb:{t:<tenant>}:feed` | stream | the tenant's console feed, shared by every node (capped; see `feed`) |
//! | `sb:{t:<tenant>}:presence` | hash | the tenant's online agents per queue, every node's (see `presence`) |
//! | `sb:{t:<tenant>}:loads` | hash | per node, queue and agent: conversations that node's queue assigned (see `presence`) |
//! | `sb:nodes` | sorted set | live nodes by last heartbeat |
//! | `sb:{t:<tenant>}:tl:quota:…` | string | a tool quota counter (expires with its window) |
//! | `sb:{t:<tenant>}:tl:idem:…` | string | a tool call's idempotency record (`p` pending, `d` + result; expires) |
//! | `sb:{t:<tenant>}:audit` | list | the tenant's tool-call audit trail, capped, oldest first |
//!
//! On a Redis Cluster every script and every command touches keys of one slot only: the
//! append script (journal, snapshot, lease, owed set) runs in `{p}`, the index script in
//! `{t:<tenant>}` as a second step (see `RedisStore::append`), the lease scripts in `{p}` or on
//! `nodes` alone, the ingress script (dedup mark and append) in `{p}`, the staff commands' dedup
//! gate on its one key.
//!
//! - `connection`: one server or a Cluster behind one `Pool` (`backend.redis.cluster`).
//! - `store`: snapshots, journals and indexes (`ConversationStore`).
//! - `bus`: partition streams and consumer groups (`Bus`).
//! - `dlq`: dead letters: what counts as a failed delivery, listing and replaying them.
//! - `dedup`: the ingress dedup gate (`Dedup`).
//! - `ledger`: the tools' quotas, idempotency records and audit, shared by all nodes (`ToolLedger`).

mod bus;
#[cfg(test)]
mod cluster_tests;
mod connection;
mod dedup;
mod dlq;
mod feed;
mod index;
mod lease;
mod ledger;
mod presence;
mod shared;
mod store;
mod verdicts;

pub use bus::{RedisBus, StreamSettings};
pub use connection::{Conn as RedisConn, Pool as RedisPool};
pub use dedup::RedisDedup;
pub use dlq::{DeadLetter, DeadLetterError, DeadLetters, Replayed};
pub use feed::{Followed, RedisFeedLog};
pub use lease::{LeaseSettings, LeaseStats, RedisPlacement};
pub use ledger::RedisLedger;
pub use presence::{Load, Present, RedisPresence};
pub use store::RedisStore;
pub use verdicts::RedisVerdicts;

use connection::Pool;
use std::time::Duration;

/// Where the backend lives and how its keys are named.
#[derive(Clone, Debug)]
pub struct RedisSettings {
    /// `redis://host:port/db` (or `rediss://`); with `cluster`, one or more of the Cluster's
    /// nodes, comma-separated (`redis://10.0.0.1:7000,redis://10.0.0.2:7000`).
    pub url: String,
    /// The URL names nodes of a Redis Cluster, not a single server.
    pub cluster: bool,
    /// Prefix of every key, e.g. `sb:`.
    pub prefix: String,
    /// Partitions of the bus (fixed per cluster).
    pub partitions: u32,
    /// Connections in the pool (single server; on a Cluster each component keeps one cluster
    /// connection, a socket per master).
    pub pool_size: usize,
}

/// Why the backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL is not a Redis URL.
    #[error("redis url {url:?}: {why}")]
    BadUrl {
        /// The URL as given (without password: see `redacted`).
        url: String,
        /// Why.
        why: String,
    },
    /// The server is not the kind the config says (a Cluster node or not).
    #[error("redis at {url}: {why}")]
    WrongKind {
        /// The URL as given (without password).
        url: String,
        /// What to change.
        why: String,
    },
    /// The server did not answer.
    #[error("redis at {url} is unreachable: {why}")]
    Unreachable {
        /// The URL as given (without password).
        url: String,
        /// Why.
        why: String,
    },
}

/// The URL (or the comma-separated URLs of Cluster nodes) without passwords, for messages and
/// logs.
pub fn redacted(url: &str) -> String {
    let one = |url: &str| match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => format!("{}***{}", &url[..scheme + 3], &url[at..]),
        _ => url.to_owned(),
    };
    url.split(',').map(one).collect::<Vec<_>>().join(",")
}

/// The Cluster node URLs of a comma-separated list.
pub fn cluster_seeds(url: &str) -> Vec<&str> {
    url.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

/// A connection pool (or a Cluster client), checked with a `PING` within `timeout` (on a
/// Cluster, every master must answer).
pub async fn connect(settings: &RedisSettings, timeout: Duration) -> Result<Pool, ConnectError> {
    let url = redacted(&settings.url);
    if settings.cluster {
        let pool = Pool::cluster(&cluster_seeds(&settings.url), timeout)
            .map_err(|why| ConnectError::BadUrl { url: url.clone(), why })?;
        return match ping(&pool, timeout).await {
            Ok(()) => Ok(pool),
            Err(why) => {
                for seed in cluster_seeds(&settings.url) {
                    if cluster_enabled(seed, timeout).await == Some(false) {
                        let why = "the server is not a Redis Cluster node: set backend.redis.cluster = false".into();
                        return Err(ConnectError::WrongKind { url, why });
                    }
                }
                Err(ConnectError::Unreachable { url, why })
            }
        };
    }
    // Bounded waits: a server that accepts connections but never answers must turn into errors
    // (and 503s), not into requests that hang.
    let pool = Pool::single(&settings.url, settings.pool_size, timeout)
        .map_err(|why| ConnectError::BadUrl { url: url.clone(), why })?;
    if let Err(why) = ping(&pool, timeout).await {
        return Err(ConnectError::Unreachable { url, why });
    }
    // A Cluster node serves its own slots only and answers MOVED for the others: refuse to start
    // rather than fail on every other key at run time.
    if cluster_enabled(&settings.url, timeout).await == Some(true) {
        let why = "the server is a Redis Cluster node: set backend.redis.cluster = true".into();
        return Err(ConnectError::WrongKind { url, why });
    }
    Ok(pool)
}

/// Whether the server at `url` runs in cluster mode (`INFO cluster`); `None` when it cannot tell.
async fn cluster_enabled(url: &str, timeout: Duration) -> Option<bool> {
    let client = redis::Client::open(url).ok()?;
    let info = async move {
        let mut conn = client.get_multiplexed_async_connection().await?;
        redis::cmd("INFO").arg("cluster").query_async::<String>(&mut conn).await
    };
    let info = IO.spawn(tokio::time::timeout(timeout, info)).await.ok()?.ok()?.ok()?;
    info.lines().find_map(|l| l.trim().strip_prefix("cluster_enabled:")).map(|v| v == "1")
}

/// The runtime the pooled connections (leases, claims, pings) and a Cluster's connections live
/// on. A multiplexed connection's driver is a task on the runtime that opened it, and it dies
/// with that runtime: a pooled connection first opened by an HTTP worker (a `/readyz` ping)
/// would break when the HTTP server stops at SIGTERM, in the middle of the partition handover
/// that needs it. One thread of its own, never stopped, opens them all. The hot path's
/// connections are each thread's own instead (see `shared`).
static IO: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("redis-io")
        .enable_all()
        .build()
        .expect("the redis-io runtime starts")
});

/// A connection from `pool`, opened (when the pool has none idle) on the Redis IO runtime.
pub(crate) async fn checkout(pool: &Pool) -> Result<connection::Conn, String> {
    pool.get().await
}

/// `Ok` when the server answers `PING` within `timeout`.
pub async fn ping(pool: &Pool, timeout: Duration) -> Result<(), String> {
    let ping = async {
        let mut conn = checkout(pool).await?;
        redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(timeout, ping).await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(why)) => Err(why),
        Err(_) => Err(format!("no answer within {timeout:?}")),
    }
}

/// How long one Redis operation may take before it counts as the server being unavailable:
/// neither the pool nor the client bounds a command on an established connection.
pub(crate) const OP_TIMEOUT: Duration = Duration::from_secs(2);

/// `op` within `limit`, a timeout being an error like any other.
pub(crate) async fn within<T>(limit: Duration, op: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    tokio::time::timeout(limit, op).await.unwrap_or_else(|_| Err(format!("redis did not answer within {limit:?}")))
}

/// `PX` wants whole milliseconds, at least one.
pub(crate) fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// `op` within [`OP_TIMEOUT`].
pub(crate) async fn bounded<T>(op: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    within(OP_TIMEOUT, op).await
}

/// Key names.
#[derive(Clone, Debug)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// The bus stream of partition `p`.
    pub fn stream(&self, p: u32) -> String {
        format!("{}{{{p}}}:in", self.prefix)
    }

    /// The dead-letter stream of partition `p`.
    pub fn dead_letters(&self, p: u32) -> String {
        format!("{}{{{p}}}:dlq", self.prefix)
    }

    /// A conversation's snapshot.
    pub fn snapshot(&self, p: u32, conversation: &str) -> String {
        format!("{}{{{p}}}:s:{conversation}", self.prefix)
    }

    /// A conversation's journal.
    pub fn journal(&self, p: u32, conversation: &str) -> String {
        format!("{}{{{p}}}:j:{conversation}", self.prefix)
    }

    /// A dedup mark of the two-step gate (`RedisDedup`: staff commands' client keys).
    pub fn dedup(&self, key: &str) -> String {
        format!("{}dd:{key}", self.prefix)
    }

    /// Present while partition `p`'s owner is behind: its new webhooks are refused
    /// (`RedisBus::hold_off`).
    pub fn hold(&self, p: u32) -> String {
        format!("{}{{{p}}}:hold", self.prefix)
    }

    /// The dedup mark of a provider message bound for partition `p`: in the partition's slot, so
    /// that one script checks it, appends the event and marks it (`RedisBus::publish_unique`).
    pub fn ingress(&self, p: u32, key: &str) -> String {
        format!("{}{{{p}}}:dd:{key}", self.prefix)
    }

    /// A tenant's index key `name` (all of a tenant's indexes share one slot).
    pub fn index(&self, tenant: &str, name: &str) -> String {
        format!("{}{{t:{tenant}}}:ix:{name}", self.prefix)
    }

    /// A tenant's console feed stream (in the tenant's slot, like its indexes).
    pub fn feed(&self, tenant: &str) -> String {
        format!("{}{{t:{tenant}}}:feed", self.prefix)
    }

    /// A tenant's online agents per queue, as every node's consoles set them (see `presence`).
    pub fn presence(&self, tenant: &str) -> String {
        format!("{}{{t:{tenant}}}:presence", self.prefix)
    }

    /// What each node's copy of the tenant's queues has assigned per agent (see `presence`).
    pub fn loads(&self, tenant: &str) -> String {
        format!("{}{{t:{tenant}}}:loads", self.prefix)
    }

    /// A tool ledger key (quota counter or idempotency record) of `tenant`.
    pub fn ledger(&self, tenant: &str, key: &str) -> String {
        format!("{}{{t:{tenant}}}:tl:{key}", self.prefix)
    }

    /// A tenant's tool-call audit trail.
    pub fn audit(&self, tenant: &str) -> String {
        format!("{}{{t:{tenant}}}:audit", self.prefix)
    }

    /// The lease of partition `p`: `<node>:<epoch>` of its owner, expiring unless renewed.
    pub fn lease(&self, p: u32) -> String {
        format!("{}{{{p}}}:lease", self.prefix)
    }

    /// The conversations of partition `p` that owe work (`tenant` TAB `conversation` members).
    pub fn owed(&self, p: u32) -> String {
        format!("{}{{{p}}}:owed", self.prefix)
    }

    /// The fencing epoch counter of partition `p` (bumped at every new lease).
    pub fn epoch(&self, p: u32) -> String {
        format!("{}{{{p}}}:epoch", self.prefix)
    }

    /// The live nodes: a sorted set of node ids scored by their last heartbeat (ms).
    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }
}

/// A pool on a throwaway test server (single-node mode, four connections).
#[cfg(test)]
pub(crate) async fn test_pool(server: &switchboard_load_tests::redis_server::RedisServer) -> Pool {
    let settings = RedisSettings {
        url: server.url().into(),
        cluster: false,
        prefix: server.prefix().into(),
        partitions: 4,
        pool_size: 4,
    };
    connect(&settings, Duration::from_secs(5)).await.expect("the test redis-server answers")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_messages() {
        assert_eq!(redacted("redis://:s3cret@10.0.0.5:6379/0"), "redis://***@10.0.0.5:6379/0");
        assert_eq!(redacted("redis://user:s3cret@host"), "redis://***@host");
        assert_eq!(redacted("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redacted("redis://:a@h1:7000,redis://:b@h2:7000"), "redis://***@h1:7000,redis://***@h2:7000");
    }

    #[test]
    fn every_key_of_a_partition_shares_its_hash_tag() {
        let k = Keys::new("sb:");
        assert_eq!(k.stream(7), "sb:{7}:in");
        assert_eq!(k.dead_letters(7), "sb:{7}:dlq");
        assert_eq!(k.snapshot(7, "demo:whatsapp.main:55"), "sb:{7}:s:demo:whatsapp.main:55");
        assert_eq!(k.journal(7, "demo:whatsapp.main:55"), "sb:{7}:j:demo:whatsapp.main:55");
        assert_eq!(k.index("demo", "all"), "sb:{t:demo}:ix:all");
    }
}
