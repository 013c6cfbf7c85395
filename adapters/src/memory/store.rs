//! In-memory conversation store: latest snapshot plus the most recent journal events, per
//! conversation. The journal is capped per conversation (the embedded backend lives in one
//! process's memory); older events are dropped, so "state at sequence N" reaches back only as
//! far as the cap.

use super::{SHARDS, shard_of};
use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use switchboard_actors::domain::ConversationId;
use switchboard_actors::event::{Envelope, Event};
use switchboard_actors::ports::{ConversationStore, StoreError};
use switchboard_actors::query::{ConversationPage, ConversationQuery};
use switchboard_actors::state::ConversationState;

/// Journal events kept per conversation unless configured otherwise.
pub const DEFAULT_JOURNAL_LIMIT: usize = 1000;

/// Events per journal chunk. A conversation's journal is a list of small chunks, never one
/// big array: growing or trimming a big array means large reallocations (mapped and unmapped
/// memory, stalls for every thread), which showed up as a latency tail on long conversations.
const CHUNK: usize = 32;

struct Entry {
    snapshot: Arc<ConversationState>,
    /// Sequence number of the first kept event.
    first_seq: u64,
    chunks: VecDeque<Vec<Envelope<Event>>>,
    len: usize,
}

impl Entry {
    fn push(&mut self, event: &Envelope<Event>) {
        match self.chunks.back_mut() {
            Some(chunk) if chunk.len() < CHUNK => {
                // Grow exactly: an idle conversation keeps no unused capacity (most conversations
                // are short), and measured under load this beat allocating whole chunks.
                chunk.reserve_exact(1);
                chunk.push(event.clone());
            }
            _ => self.chunks.push_back(vec![event.clone()]),
        }
        self.len += 1;
    }

    /// Drops whole chunks from the front while more than `limit` events would remain.
    fn trim(&mut self, limit: usize) {
        while let Some(front) = self.chunks.front()
            && self.len - front.len() >= limit
        {
            let n = front.len();
            self.chunks.pop_front();
            self.len -= n;
            self.first_seq += n as u64;
        }
    }
}

/// Snapshots and journals in sharded maps.
pub struct MemoryStore {
    shards: Vec<Mutex<HashMap<ConversationId, Entry>>>,
    journal_limit: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::with_journal_limit(DEFAULT_JOURNAL_LIMIT)
    }
}

impl MemoryStore {
    /// A store keeping at most `limit` journal events per conversation.
    pub fn with_journal_limit(limit: usize) -> Self {
        Self { shards: (0..SHARDS).map(|_| Mutex::default()).collect(), journal_limit: limit.max(1) }
    }

    fn shard(
        &self,
        id: &ConversationId,
    ) -> Result<std::sync::MutexGuard<'_, HashMap<ConversationId, Entry>>, StoreError> {
        self.shards[shard_of(id.as_str())].lock().map_err(|_| StoreError::Unavailable("store lock poisoned".into()))
    }
}

#[async_trait]
impl ConversationStore for MemoryStore {
    async fn load(&self, id: &ConversationId) -> Result<Option<Arc<ConversationState>>, StoreError> {
        Ok(self.shard(id)?.get(id).map(|e| e.snapshot.clone()))
    }

    async fn append(&self, state: &Arc<ConversationState>, events: &[Envelope<Event>]) -> Result<(), StoreError> {
        let mut shard = self.shard(&state.id)?;
        let first_of_batch = state.seq + 1 - events.len() as u64;
        let entry = shard.entry(state.id.clone()).or_insert_with(|| Entry {
            snapshot: state.clone(),
            first_seq: first_of_batch,
            chunks: VecDeque::new(),
            len: 0,
        });
        entry.snapshot = state.clone();
        for event in events {
            entry.push(event);
        }
        entry.trim(self.journal_limit);
        Ok(())
    }

    async fn journal(&self, id: &ConversationId, from: u64) -> Result<Vec<Envelope<Event>>, StoreError> {
        let shard = self.shard(id)?;
        let Some(entry) = shard.get(id) else { return Ok(Vec::new()) };
        let skip = from.saturating_sub(entry.first_seq) as usize;
        Ok(entry.chunks.iter().flatten().skip(skip).cloned().collect())
    }

    /// A scan of every snapshot: fine for one process's conversations (about 1 ms per 10k, each
    /// shard locked only while it is read); the Redis store keeps indexes instead.
    async fn list(&self, query: &ConversationQuery) -> Result<ConversationPage, StoreError> {
        let mut matches = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().map_err(|_| StoreError::Unavailable("store lock poisoned".into()))?;
            matches.extend(shard.values().filter(|e| query.matches(&e.snapshot)).map(|e| e.snapshot.clone()));
        }
        Ok(query.page(matches))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_actors::domain::TenantId;

    fn step(store: &MemoryStore, state: &mut ConversationState, n: usize) -> impl Future<Output = ()> {
        let mut events = Vec::new();
        for _ in 0..n {
            state.seq += 1;
            events.push(Envelope::new(state.tenant.clone(), state.id.clone(), "t", state.seq, Event::AiStarted));
        }
        let snapshot = Arc::new(state.clone());
        async move { store.append(&snapshot, &events).await.unwrap() }
    }

    #[tokio::test]
    async fn journal_reads_from_a_sequence_and_keeps_only_the_most_recent_events() {
        let store = MemoryStore::with_journal_limit(8);
        let mut state = ConversationState::new(ConversationId::new("c"), TenantId::new("t"));
        step(&store, &mut state, 3).await;
        step(&store, &mut state, 2).await;
        let id = state.id.clone();
        let seqs = |j: Vec<Envelope<Event>>| j.iter().map(|e| e.occurred_at).collect::<Vec<_>>();
        assert_eq!(seqs(store.journal(&id, 1).await.unwrap()), vec![1, 2, 3, 4, 5]);
        assert_eq!(seqs(store.journal(&id, 4).await.unwrap()), vec![4, 5]);
        for _ in 0..65 {
            step(&store, &mut state, 1).await;
        }
        // 70 events in chunks of 32: the first whole chunk goes, at least 8 stay.
        let kept = seqs(store.journal(&id, 1).await.unwrap());
        assert_eq!(kept.len(), 70 - CHUNK);
        assert_eq!(kept[0], CHUNK as u64 + 1);
        assert_eq!(
            seqs(store.journal(&id, 69).await.unwrap()),
            vec![69, 70],
            "sequence numbers stay right after trimming"
        );
        assert_eq!(store.load(&id).await.unwrap().unwrap().seq, 70);
    }
}
