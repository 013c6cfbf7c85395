//! The backend the config asks for: the embedded in-memory one, or Redis (connected and checked
//! before the hub starts, so a wrong URL or a server that is down is a clear start-up error).

use crate::config::Settings;
use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::hub::Backend;
use switchboard_actors::ports::Clock;
use switchboard_adapters::memory::{MemoryBus, MemoryDedup, MemoryStore};
use switchboard_adapters::redis::{
    Keys, RedisBus, RedisDedup, RedisPool, RedisSettings, RedisStore, StreamSettings, connect, ping,
};

/// How long a claimed but not yet published provider id blocks a concurrent duplicate.
const PENDING_CLAIM: Duration = Duration::from_secs(30);

/// What the backend offers beyond the ports: a way to tell whether it is reachable.
#[derive(Clone)]
pub enum Probe {
    /// In-process: always there.
    Memory,
    /// Answers `PING`.
    Redis(RedisPool),
}

impl Probe {
    /// The backend's name, for `/readyz`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Redis(_) => "redis",
        }
    }

    /// `Err(why)` when the backend cannot be reached now.
    pub async fn check(&self) -> Result<(), String> {
        match self {
            Self::Memory => Ok(()),
            Self::Redis(pool) => ping(pool, Duration::from_secs(1)).await,
        }
    }
}

/// Builds the configured backend.
pub async fn build(settings: &Settings, clock: Arc<dyn Clock>) -> anyhow::Result<(Backend, Probe)> {
    let b = &settings.backend;
    if b.kind != "redis" {
        let backend = Backend {
            bus: Arc::new(MemoryBus::new(b.partitions, b.partition_capacity)),
            dedup: Arc::new(MemoryDedup::default()),
            store: Arc::new(MemoryStore::with_journal_limit(b.memory_journal_limit)),
            clock,
        };
        return Ok((backend, Probe::Memory));
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
    let backend = Backend {
        bus: Arc::new(bus),
        dedup: Arc::new(RedisDedup::new(pool.clone(), keys.clone(), PENDING_CLAIM)),
        store: Arc::new(RedisStore::new(pool.clone(), keys, b.partitions)),
        clock,
    };
    Ok((backend, Probe::Redis(pool)))
}
