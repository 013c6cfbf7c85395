//! In-memory dedup gate: provider ids with an expiry, in sharded maps.

use super::{SHARDS, shard_of};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use switchboard_actors::ports::{Dedup, DedupError};
use tokio::time::Instant;

#[derive(Default)]
struct Shard {
    seen: HashMap<String, Instant>,
    inserts_since_sweep: usize,
}

/// Remembers keys until their TTL passes.
pub struct MemoryDedup {
    shards: Vec<Mutex<Shard>>,
}

impl Default for MemoryDedup {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl MemoryDedup {
    fn shard(&self, key: &str) -> Result<std::sync::MutexGuard<'_, Shard>, DedupError> {
        self.shards[shard_of(key)].lock().map_err(|_| DedupError::Unavailable("dedup lock poisoned".into()))
    }
}

#[async_trait]
impl Dedup for MemoryDedup {
    async fn first_seen(&self, key: &str, ttl: Duration) -> Result<bool, DedupError> {
        let now = Instant::now();
        let mut shard = self.shard(key)?;
        if shard.seen.get(key).is_some_and(|expires| *expires > now) {
            return Ok(false);
        }
        shard.seen.insert(key.to_owned(), now + ttl);
        shard.inserts_since_sweep += 1;
        // Amortised sweep keeps memory bounded by the TTL without a timer task.
        if shard.inserts_since_sweep >= 1024.max(shard.seen.len() / 2) {
            shard.seen.retain(|_, expires| *expires > now);
            shard.inserts_since_sweep = 0;
        }
        Ok(true)
    }

    async fn forget(&self, key: &str) -> Result<(), DedupError> {
        self.shard(key)?.seen.remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn first_wins_until_ttl_or_forget() {
        let d = MemoryDedup::default();
        let ttl = Duration::from_secs(60);
        assert!(d.first_seen("wamid.1", ttl).await.unwrap());
        assert!(!d.first_seen("wamid.1", ttl).await.unwrap());
        d.forget("wamid.1").await.unwrap();
        assert!(d.first_seen("wamid.1", ttl).await.unwrap());
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(d.first_seen("wamid.1", ttl).await.unwrap(), "expired");
    }
}
