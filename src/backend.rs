//! The backend the config asks for: the embedded in-memory one, or Redis (connected and checked
//! before the hub starts, so a wrong URL or a server that is down is a clear start-up error).

use crate::config::Settings;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::hub::Backend;
use switchboard_actors::ports::{AllPartitions, Clock, LocalVerdicts, Placement};
use switchboard_adapters::memory::{MemoryBus, MemoryDedup, MemoryLedger, MemoryStore};
use switchboard_adapters::redis::{
    Keys, LeaseSettings, RedisBus, RedisDedup, RedisLedger, RedisPlacement, RedisPool, RedisSettings, RedisStore,
    RedisVerdicts, StreamSettings, connect, ping,
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
    Redis(RedisPool, Arc<RedisPlacement>),
}

impl Probe {
    /// The backend's name, for `/readyz`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis(..) => "redis",
        }
    }

    /// Partitions this node runs now (`None` in memory, where it runs them all).
    pub fn partitions_owned(&self) -> Option<usize> {
        match self {
            Self::Memory => None,
            Self::Redis(_, placement) => Some(placement.owned().borrow().0.len()),
        }
    }

    /// Graceful exit: hands this node's partitions over (the hub finishes and passivates them,
    /// then the leases are deleted so other nodes take them at once, not after the lease TTL).
    pub async fn leave(&self, deadline: Duration) {
        if let Self::Redis(_, placement) = self {
            placement.shutdown(deadline).await;
        }
    }

    /// `Err(why)` when the backend cannot be reached now.
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Self::Memory => Ok(()),
            Self::Redis(pool, _) => ping(pool, Duration::from_secs(1)).await,
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
        prefix: r.prefix.clone(),
        partitions: b.partitions,
        pool_size: r.pool_size,
    };
    let pool = connect(&redis, Duration::from_millis(r.connect_timeout_ms)).await.context("redis backend")?;
    let keys = Keys::new(&r.prefix);
    let streams = StreamSettings { max_batch: b.batch.max(1), ..StreamSettings::default() };
    let bus = RedisBus::new(pool.clone(), keys.clone(), b.partitions, r.node_id.clone(), streams);
    let leases =
        LeaseSettings { ttl: Duration::from_millis(r.lease_ttl_ms), heartbeat: Duration::from_millis(r.heartbeat_ms) };
    let placement = RedisPlacement::start(pool.clone(), keys.clone(), r.node_id.clone(), b.partitions, leases);
    let tokens = placement.clone();
    let store = RedisStore::new(pool.clone(), keys.clone(), b.partitions).fenced(Arc::new(move |p| tokens.token(p)));
    let ledger = Arc::new(RedisLedger::new(pool.clone(), keys.clone()));
    let backend = Backend {
        bus: Arc::new(bus),
        dedup: Arc::new(RedisDedup::new(pool.clone(), keys, PENDING_CLAIM)),
        store: Arc::new(store),
        clock,
        placement: placement.clone(),
        verdicts: Arc::new(RedisVerdicts::start(pool.clone(), r.url.clone(), &r.prefix, r.node_id.clone())),
    };
    Ok(Built { backend, probe: Probe::Redis(pool, placement), ledger })
}
