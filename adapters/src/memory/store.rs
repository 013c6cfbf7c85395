//! In-memory conversation store: latest snapshot plus the journal, per conversation.

use super::{SHARDS, shard_of};
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use switchboard_actors::domain::ConversationId;
use switchboard_actors::event::{Envelope, Event};
use switchboard_actors::ports::{ConversationStore, StoreError};
use switchboard_actors::state::ConversationState;

struct Entry {
    snapshot: Arc<ConversationState>,
    journal: Vec<Envelope<Event>>,
}

/// Snapshots and journals in sharded maps.
pub struct MemoryStore {
    shards: Vec<Mutex<HashMap<ConversationId, Entry>>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect() }
    }
}

impl MemoryStore {
    fn shard(
        &self,
        id: &ConversationId,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<ConversationId, Entry>>, StoreError> {
        self.shards[shard_of(id.as_str())].lock().map_err(|_| StoreError::Unavailable("store lock poisoned".into()))
    }

    /// Number of stored conversations.
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|m| m.len()).unwrap_or(0)).sum()
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn load(&self, id: &ConversationId) -> Result<Option<Arc<ConversationState>>, StoreError> {
        Ok(self.shard(id)?.get(id).map(|e| e.snapshot.clone()))
    }

    async fn append(&self, state: &Arc<ConversationState>, events: &[Envelope<Event>]) -> Result<(), StoreError> {
        let mut shard = self.shard(&state.id)?;
        match shard.get_mut(&state.id) {
            Some(entry) => {
                entry.snapshot = state.clone();
                // Most conversations are short: grow small journals exactly instead of doubling,
                // which would leave half of every idle conversation's journal unused.
                if entry.journal.len() < 64 {
                    entry.journal.reserve_exact(events.len());
                }
                entry.journal.extend_from_slice(events);
            }
            None => {
                shard.insert(state.id.clone(), Entry { snapshot: state.clone(), journal: events.to_vec() });
            }
        }
        Ok(())
    }

    async fn journal(&self, id: &ConversationId, from: u64) -> Result<Vec<Envelope<Event>>, StoreError> {
        let shard = self.shard(id)?;
        let skip = from.saturating_sub(1) as usize;
        Ok(shard.get(id).map(|e| e.journal.iter().skip(skip).cloned().collect()).unwrap_or_default())
    }
}
