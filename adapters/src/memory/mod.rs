//! The embedded in-memory backend: bus, dedup gate and conversation store for a single process.
//! Nothing survives a restart; everything is bounded or expires.

mod bus;
mod dedup;
mod ledger;
mod store;

pub use bus::MemoryBus;
pub use dedup::MemoryDedup;
pub use ledger::MemoryLedger;
pub use store::MemoryStore;

/// Shard count for the mutex-protected maps: spreads contention across cores.
const SHARDS: usize = 32;

fn shard_of(key: &str) -> usize {
    (switchboard_actors::partition::stable_hash(key) % SHARDS as u64) as usize
}
