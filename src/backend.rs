//! The backend the config asks for: the embedded in-memory one, or Redis (connected and checked
//! before the hub starts, so a wrong URL or a server that is down is a clear start-up error).

use crate::config::Settings;
use crate::console::AcrossNodes;
use crate::console::presence::SharedPresence;
use anyhow::Context;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use switchboard_actors::domain::TenantId;
use switchboard_actors::hub::Backend;
use switchboard_actors::ports::{AllPartitions, Clock, LocalVerdicts, Placement};
use switchboard_adapters::memory::{MemoryBus, MemoryDedup, MemoryLedger, MemoryStore};
use switchboard_adapters::redis::{
    DeadLetters, Keys, LeaseSettings, LeaseStats, RedisBus, RedisDedup, RedisFeedLog, RedisLedger, RedisPlacement,
    RedisPool, RedisPresence, RedisSettings, RedisStore, RedisVerdicts, StreamSettings, connect, ping,
};
use switchboard_adapters::tools::ledger::ToolLedger;

/// How long a claimed but not yet published provider id blocks a concurrent duplicate.
const PENDING_CLAIM: Duration = Duration::from_secs(30);

/// What the backend offers beyond the ports: whether it is reachable, and a graceful exit.
#[derive(Clone)]
pub enum Probe {
    /// In-process: always there.
    Memory,
    /// Answers `PING`; holds this node's partition leases.
    Redis(RedisPool, Arc<RedisPlacement>, DeadLetterGauges),
}

/// What `/metrics` reports of the dead-letter streams.
#[derive(Clone)]
pub struct DeadLetterGauges {
    /// Every partition's dead-letter stream (counted at scrape).
    pub streams: DeadLetters,
    /// Entries this node moved there.
    pub moved: Arc<AtomicU64>,
}

impl Probe {
    /// The backend's name, for `/readyz`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis(..) => "redis",
        }
    }

    /// `(entries moved to dead-letter streams by this node, entries in all of them)`, with Redis;
    /// the second is `None` when Redis does not answer.
    pub async fn dead_letters(&self) -> Option<(u64, Option<u64>)> {
        match self {
            Self::Memory => None,
            Self::Redis(_, _, gauges) => {
                let moved = gauges.moved.load(Ordering::Relaxed);
                Some((moved, gauges.streams.count().await.ok()))
            }
        }
    }

    /// Lease counters of this node (`None` in memory, where there are no leases).
    pub fn lease_stats(&self) -> Option<LeaseStats> {
        match self {
            Self::Memory => None,
            Self::Redis(_, placement, _) => Some(placement.stats()),
        }
    }

    /// Partitions this node runs now (`None` in memory, where it runs them all).
    pub fn partitions_owned(&self) -> Option<usize> {
        match self {
            Self::Memory => None,
            Self::Redis(_, placement, _) => Some(placement.owned().borrow().0.len()),
        }
    }

    /// Graceful exit: hands this node's partitions over (the hub finishes and passivates them,
    /// then the leases are deleted so other nodes take them at once, not after the lease TTL).
    pub async fn leave(&self, deadline: Duration) {
        if let Self::Redis(_, placement, _) = self {
            placement.shutdown(deadline).await;
        }
    }

    /// `Err(why)` when the backend cannot be reached now.
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Self::Memory => Ok(()),
            Self::Redis(pool, ..) => ping(pool, Duration::from_secs(1)).await,
        }
    }
}

/// The configured backend: the hub's ports, its probe, and the tools' ledger (on the same
/// backend, so that quotas and idempotency hold across every node that shares it).
pub struct Built {
    /// The hub's ports.
    pub backend: Backend,
    /// Reachability and graceful exit.
    pub probe: Probe,
    /// Tool quotas, idempotency records and audit.
    pub ledger: Arc<dyn ToolLedger>,
}

/// Builds the configured backend.
pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Built> {
    let b = &settings.backend;
    if b.kind != "redis" {
        let backend = Backend {
            bus: Arc::new(MemoryBus::new(b.partitions, b.partition_capacity)),
            dedup: Arc::new(MemoryDedup::default()),
            store: Arc::new(MemoryStore::with_journal_limit(b.memory_journal_limit)),
            clock,
            placement: Arc::new(AllPartitions::new(b.partitions)),
            verdicts: Arc::new(LocalVerdicts),
        };
        return Ok(Built { backend, probe: Probe::Memory, ledger: Arc::new(MemoryLedger::default()) });
    }
    let r = &b.redis;
    let redis = RedisSettings {
        url: r.url.clone(),
        cluster: r.cluster,
        prefix: r.prefix.clone(),
        partitions: b.partitions,
        pool_size: r.pool_size,
    };
    let pool = connect(&redis, Duration::from_millis(r.connect_timeout_ms)).await.context("redis backend")?;
    let keys = Keys::new(&r.prefix);
    let streams = StreamSettings {
        max_batch: b.batch(),
        dlq_after: r.dlq_after,
        max_len: r.stream_max_len,
        ..StreamSettings::default()
    };
    let bus = RedisBus::new(pool.clone(), keys.clone(), b.partitions, r.node_id.clone(), streams);
    let gauges = DeadLetterGauges {
        streams: DeadLetters::new(pool.clone(), keys.clone(), b.partitions, r.stream_max_len),
        moved: bus.dead_lettered(),
    };
    let leases =
        LeaseSettings { ttl: Duration::from_millis(r.lease_ttl_ms), heartbeat: Duration::from_millis(r.heartbeat_ms) };
    let placement = RedisPlacement::start(pool.clone(), keys.clone(), r.node_id.clone(), b.partitions, leases);
    let tokens = placement.clone();
    let windows: BTreeMap<TenantId, usize> =
        settings.tenants.iter().map(|(name, t)| (TenantId::new(name.as_str()), t.history_window)).collect();
    // A tenant not in the config has no conversations running here; its default is as good as any.
    let default_window = crate::config::default_history();
    let store = RedisStore::new(pool.clone(), keys.clone(), b.partitions)
        .fenced(Arc::new(move |p| tokens.token(p)))
        .snapshots(r.snapshot_every, Arc::new(move |t| windows.get(t).copied().unwrap_or(default_window)));
    let ledger = Arc::new(RedisLedger::new(pool.clone(), keys.clone()));
    let backend = Backend {
        bus: Arc::new(bus),
        dedup: Arc::new(RedisDedup::new(pool.clone(), keys, PENDING_CLAIM)),
        store: Arc::new(store),
        clock,
        placement: placement.clone(),
        verdicts: Arc::new(RedisVerdicts::start(pool.clone(), r.url.clone(), &r.prefix, r.node_id.clone())),
    };
    Ok(Built { backend, probe: Probe::Redis(pool, placement, gauges), ledger })
}

/// Entries kept in a tenant's shared console stream (Redis): a live feed that each node reads as
/// it comes, so a short one does; the journal is the record.
const CONSOLE_STREAM_LEN: usize = 10_000;

/// What links every tenant's consoles across nodes: the stream of their frames and the agents'
/// presence (Redis only: one node alone feeds its consoles and tells its queues directly).
pub fn across_nodes(settings: &Settings, probe: &Probe) -> Option<AcrossNodes> {
    match probe {
        Probe::Memory => None,
        Probe::Redis(pool, ..) => {
            let r = &settings.backend.redis;
            Some(AcrossNodes {
                feed: RedisFeedLog::new(pool.clone(), Keys::new(&r.prefix), CONSOLE_STREAM_LEN),
                presence: SharedPresence {
                    store: RedisPresence::new(pool.clone(), Keys::new(&r.prefix)),
                    node: r.node_id.clone(),
                },
            })
        }
    }
}
