//! In-memory dedup gate: provider ids with an expiry, in sharded maps. A key is first claimed
//! as pending (while its event is being published), then confirmed or forgotten.

use super::{SHARDS, shard_of};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use switchboard_actors::ports::{Claim, Dedup, DedupError};
use tokio::time::Instant;

/// How long a pending claim blocks its key if its holder never confirms or forgets it.
const PENDING_TTL: Duration = Duration::from_secs(30);

struct Mark {
    expires: Instant,
    done: bool,
}

#[derive(Default)]
struct Shard {
    seen: HashMap<String, Mark>,
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
    async fn claim(&self, key: &str) -> Result<Claim, DedupError> {
        let now = Instant::now();
        let mut shard = self.shard(key)?;
        if let Some(mark) = shard.seen.get(key).filter(|m| m.expires > now) {
            return Ok(if mark.done { Claim::Done } else { Claim::Pending });
        }
        shard.seen.insert(key.to_owned(), Mark { expires: now + PENDING_TTL, done: false });
        shard.inserts_since_sweep += 1;
        // Amortised sweep keeps memory bounded by the TTL without a timer task.
        if shard.inserts_since_sweep >= 1024.max(shard.seen.len() / 2) {
            shard.seen.retain(|_, m| m.expires > now);
            shard.inserts_since_sweep = 0;
        }
        Ok(Claim::New)
    }

    async fn confirm(&self, key: &str, ttl: Duration) -> Result<(), DedupError> {
        let expires = Instant::now() + ttl;
        self.shard(key)?.seen.insert(key.to_owned(), Mark { expires, done: true });
        Ok(())
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
    async fn claim_confirm_forget_and_expiry() {
        let d = MemoryDedup::default();
        let ttl = Duration::from_secs(3600);
        assert_eq!(d.claim("wamid.1").await.unwrap(), Claim::New);
        assert_eq!(d.claim("wamid.1").await.unwrap(), Claim::Pending, "being published");
        d.confirm("wamid.1", ttl).await.unwrap();
        assert_eq!(d.claim("wamid.1").await.unwrap(), Claim::Done);
        d.forget("wamid.1").await.unwrap();
        assert_eq!(d.claim("wamid.1").await.unwrap(), Claim::New);
        d.confirm("wamid.1", ttl).await.unwrap();
        tokio::time::advance(Duration::from_secs(3601)).await;
        assert_eq!(d.claim("wamid.1").await.unwrap(), Claim::New, "expired");
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_claim_frees_its_key() {
        let d = MemoryDedup::default();
        assert_eq!(d.claim("k").await.unwrap(), Claim::New);
        tokio::time::advance(PENDING_TTL + Duration::from_secs(1)).await;
        assert_eq!(d.claim("k").await.unwrap(), Claim::New);
    }
}
