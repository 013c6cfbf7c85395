//! The conversation store on Redis: per conversation, a snapshot and the whole journal in its
//! partition's slot; per tenant, the listing indexes (see `index`).
//!
//! | key | type | holds |
//! |---|---|---|
//! | `Keys::snapshot(p, id)` | string | a recent `ConversationState`, JSON (at most `snapshot_every - 1` events behind) |
//! | `Keys::journal(p, id)` | list | every event (`Envelope<Event>`, JSON), oldest first: sequence `n` is index `n - 1` |
//! | `Keys::index(tenant, …)` | sorted sets, hash | the tenant's indexes |
//!
//! A step appends its events to the journal; the whole state is written only when the step
//! crosses a multiple of `snapshot_every` (and on a conversation's first step). Reading a
//! conversation (load, listings) takes the snapshot and the journal's last `snapshot_every`
//! entries in one script and applies those the snapshot has not seen, exactly as the actor did.
//! Writing the state on every step made the snapshot (1–4 KB) most of what Redis received, and of
//! what its AOF had to rewrite.
//!
//! Memory per conversation: its snapshot (about 1–4 KB of JSON, bounded by the history,
//! outbound and notes windows) plus every journal entry (about 300 B for a status change,
//! message events as long as their text) plus about 200 B across the indexes. The journal is
//! never trimmed, so a conversation's cost grows with its life.

use super::connection::Pool;
use super::shared::{Shared, SharedConn};
use super::{Keys, index};
use async_trait::async_trait;
use std::fmt::Display;
use std::sync::Arc;
use switchboard_actors::domain::{ConversationId, TenantId};
use switchboard_actors::event::{Envelope, Event};
use switchboard_actors::partition::partition_of;
use switchboard_actors::ports::{ConversationStore, Receipt, StoreError};
use switchboard_actors::query::{ConversationPage, ConversationQuery};
use switchboard_actors::state::ConversationState;

/// Conversations read per pipeline while listing: bounds one reply's size.
const FETCH_CHUNK: usize = 256;

/// Journal events between two snapshots of a store built with [`RedisStore::new`].
pub const DEFAULT_SNAPSHOT_EVERY: u64 = 16;

/// History window of a store built with [`RedisStore::new`] (the config's default).
const DEFAULT_WINDOW: usize = 20;

/// Snapshots, journals and indexes on Redis.
pub struct RedisStore {
    conn: Shared,
    keys: Keys,
    partitions: u32,
    fence: Option<Fence>,
    snapshot_every: u64,
    windows: Windows,
    /// Conversations whose last index update failed: their next write updates the indexes
    /// even if their status did not change.
    unindexed: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// A tenant's history window: replaying the journal on a snapshot must apply events with the
/// window the conversation's actor used.
pub type Windows = Arc<dyn Fn(&TenantId) -> usize + Send + Sync>;

/// This node's lease token (`<node>:<epoch>`) for a partition, `None` when it holds no lease.
pub type Fence = Arc<dyn Fn(u32) -> Option<String> + Send + Sync>;

/// Appends a conversation's events and replaces its snapshot, in one step on the partition's
/// slot, but only for the lease holder: a node that lost its lease (a long pause, a partition
/// cut) must not write with its stale token. Nor may a writer whose journal moved on since it
/// loaded the conversation: a step whose call timed out can still be applied later (Redis was
/// slow, not gone), after the conversation was reloaded without it; both steps, applied, would
/// handle the same input twice and answer it twice. The partition's set of conversations owing
/// work changes in the same step, so it never disagrees with the snapshot, and so are the bus
/// entries whose handling the step completes acknowledged (a refused writer acknowledges nothing).
/// KEYS: journal, snapshot, lease, owed set, the partition's bus stream. ARGV: the writer's
/// token ("" when unfenced), the snapshot ("" when this step writes none), "1" if it owes work,
/// the owed-set member, the bus's consumer group, the number of entries to acknowledge, the
/// journal's length before the step, the ids to acknowledge, then the events.
const APPEND: &str = r"
if ARGV[1] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[1] then
  return redis.error_reply('FENCED stale lease token')
end
local acks = tonumber(ARGV[6])
local first = 8 + acks
if #ARGV >= first and redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[7]) then
  return redis.error_reply('FENCED journal moved on')
end
if acks > 0 then
  redis.call('XACK', KEYS[5], ARGV[5], unpack(ARGV, 8, 7 + acks))
end
for i = first, #ARGV do
  redis.call('RPUSH', KEYS[1], ARGV[i])
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[2], ARGV[2])
end
if ARGV[3] == '1' then
  redis.call('SADD', KEYS[4], ARGV[4])
else
  redis.call('SREM', KEYS[4], ARGV[4])
end
return 1
";

/// The owed-set member of a conversation.
fn owed_member(state: &ConversationState) -> String {
    format!("{}\t{}", state.tenant, state.id)
}

static APPEND_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(APPEND));

/// A conversation as stored: its snapshot, the journal's length and its last ARGV[1] entries, in
/// one reply (an empty one when there is no snapshot). KEYS: snapshot, journal.
static READ: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
local snapshot = redis.call('GET', KEYS[1])
if not snapshot then return {} end
return {snapshot, redis.call('LLEN', KEYS[2]), redis.call('LRANGE', KEYS[2], -tonumber(ARGV[1]), -1)}
",
    )
});

/// What a read found, before the events the snapshot has not seen are applied.
enum Read {
    Missing,
    /// The snapshot, and the journal entries after it (JSON), oldest first.
    Found(ConversationState, Vec<Vec<u8>>),
    /// The journal's tail did not reach back to the snapshot (it was written with a larger
    /// `snapshot_every`): the entries after it must be read on their own.
    Behind(ConversationState),
}

impl RedisStore {
    /// A store on `pool`, its conversations spread over `partitions` (as the bus's), writing
    /// without a lease check (one node alone, tests).
    pub fn new(pool: Pool, keys: Keys, partitions: u32) -> Self {
        let windows: Windows = Arc::new(|_| DEFAULT_WINDOW);
        Self {
            conn: Shared::new(pool),
            keys,
            partitions,
            fence: None,
            snapshot_every: DEFAULT_SNAPSHOT_EVERY,
            windows,
            unindexed: std::sync::Mutex::default(),
        }
    }

    /// Writes a snapshot every `every` journal events (at least 1) and replays the events after
    /// it with the tenants' history windows.
    pub fn snapshots(mut self, every: u64, windows: Windows) -> Self {
        self.snapshot_every = every.max(1);
        self.windows = windows;
        self
    }

    /// Writes only under this node's lease of the conversation's partition.
    pub fn fenced(mut self, fence: Fence) -> Self {
        self.fence = Some(fence);
        self
    }

    async fn conn(&self) -> Result<SharedConn, StoreError> {
        self.conn.get().await.map_err(|e| unavailable("redis connection", e))
    }

    fn lock_unindexed(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<String>> {
        self.unindexed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn snapshot_key(&self, id: &str) -> String {
        self.keys.snapshot(partition_of(id, self.partitions), id)
    }

    /// Whether a step that took the conversation to `state.seq` with `events` writes the
    /// snapshot: on its first step, when it crosses a multiple of `snapshot_every`, and when
    /// asked to store the state alone (no events). So the snapshot is never `snapshot_every`
    /// events behind.
    fn snapshot_due(&self, state: &ConversationState, events: usize) -> bool {
        let before = state.seq.saturating_sub(events as u64);
        events == 0 || before == 0 || before / self.snapshot_every != state.seq / self.snapshot_every
    }

    fn read_call(&self, id: &str) -> redis::ScriptInvocation<'static> {
        let p = partition_of(id, self.partitions);
        let mut call = READ.prepare_invoke();
        call.key(self.keys.snapshot(p, id)).key(self.keys.journal(p, id)).arg(self.snapshot_every);
        call
    }

    /// Splits a `READ` reply into the snapshot and the journal entries it has not seen.
    fn parse_read(&self, id: &str, reply: Vec<redis::Value>) -> Result<Read, StoreError> {
        let key = self.snapshot_key(id);
        let odd = |e: redis::RedisError| unavailable(&format!("read of {key}"), e);
        let mut parts = reply.into_iter();
        let (Some(snapshot), Some(len), Some(tail)) = (parts.next(), parts.next(), parts.next()) else {
            return Ok(Read::Missing);
        };
        let snapshot: Vec<u8> = redis::from_redis_value(&snapshot).map_err(odd)?;
        let len: u64 = redis::from_redis_value(&len).map_err(odd)?;
        let mut tail: Vec<Vec<u8>> = redis::from_redis_value(&tail).map_err(odd)?;
        let state = parse_snapshot(&key, &snapshot)?;
        // The tail holds sequences `len - tail.len() + 1 ..= len`.
        let first = len + 1 - tail.len() as u64;
        if first > state.seq + 1 {
            return Ok(Read::Behind(state));
        }
        let seen = usize::try_from((state.seq + 1 - first).min(tail.len() as u64)).unwrap_or(tail.len());
        tail.drain(..seen);
        Ok(Read::Found(state, tail))
    }

    /// The snapshot with `events` (the journal after it) applied.
    fn caught_up(&self, mut state: ConversationState, events: &[Envelope<Event>]) -> ConversationState {
        let window = (self.windows)(&state.tenant);
        for event in events {
            state.apply(&event.body, event.occurred_at, window);
        }
        state
    }

    /// See `append`; with `ack`, the bus entry acknowledged in the same script.
    async fn write(
        &self,
        state: &Arc<ConversationState>,
        events: &[Envelope<Event>],
        ack: Option<&str>,
    ) -> Result<(), StoreError> {
        let id = state.id.as_str();
        let p = partition_of(id, self.partitions);
        let snapshot = if self.snapshot_due(state, events.len()) {
            serde_json::to_vec(&**state).map_err(|e| unavailable("encode snapshot", e))?
        } else {
            Vec::new()
        };
        let entries = events
            .iter()
            .map(serde_json::to_vec)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| unavailable("encode journal event", e))?;
        let token = match &self.fence {
            None => String::new(),
            Some(fence) => fence(p).ok_or(StoreError::Fenced)?,
        };
        let mut step = APPEND_SCRIPT.prepare_invoke();
        step.key(self.keys.journal(p, id)).key(self.keys.snapshot(p, id)).key(self.keys.lease(p));
        step.key(self.keys.owed(p)).key(self.keys.stream(p));
        step.arg(token).arg(snapshot).arg(if state.owes_work() { "1" } else { "0" }).arg(owed_member(state));
        step.arg(super::bus::GROUP).arg(usize::from(ack.is_some()));
        step.arg(state.seq.saturating_sub(events.len() as u64));
        if let Some(ack) = ack {
            step.arg(ack);
        }
        for entry in entries {
            step.arg(entry);
        }
        let mut conn = self.conn().await?;
        match step.invoke_async::<i64>(&mut conn).await {
            Ok(_) => {}
            Err(e) if e.to_string().contains("FENCED") => {
                let why = if e.to_string().contains("journal moved on") {
                    "the journal moved on since this writer loaded it"
                } else {
                    "this node no longer holds the lease"
                };
                tracing::warn!(conversation = id, partition = p, "write refused: {why}");
                return Err(StoreError::Fenced);
            }
            Err(e) => return Err(unavailable("append journal and snapshot", e)),
        }
        // Listings sort by the states they load, so the indexes only need to know membership,
        // which changes with the status alone (and on the first write).
        let moved =
            events.is_empty() || state.seq == events.len() as u64 || events.iter().any(|e| e.body.may_change_status());
        if !moved && !self.lock_unindexed().contains(id) {
            return Ok(());
        }
        match index::update(&self.keys, state).invoke_async::<i64>(&mut conn).await {
            Ok(_) => drop(self.lock_unindexed().remove(id)),
            Err(error) => {
                tracing::warn!(conversation = id, %error, "conversation index update failed; retried on its next write");
                self.lock_unindexed().insert(id.to_owned());
            }
        }
        Ok(())
    }

    /// A conversation as it stands: the snapshot and the journal after it.
    async fn finish(&self, id: &str, read: Read) -> Result<Option<ConversationState>, StoreError> {
        match read {
            Read::Missing => Ok(None),
            Read::Found(state, tail) => {
                let key = self.keys.journal(partition_of(id, self.partitions), id);
                let tail = parse_journal(&key, &tail)?;
                Ok(Some(self.caught_up(state, &tail)))
            }
            Read::Behind(state) => {
                let tail = self.journal(&state.id, state.seq + 1).await?;
                Ok(Some(self.caught_up(state, &tail)))
            }
        }
    }
}

fn unavailable(what: &str, e: impl Display) -> StoreError {
    StoreError::Unavailable(format!("{what}: {e}"))
}

/// Journal entries' JSON (of the journal `key`); unreadable data is reported, never a panic.
fn parse_journal(key: &str, entries: &[Vec<u8>]) -> Result<Vec<Envelope<Event>>, StoreError> {
    entries
        .iter()
        .map(|json| serde_json::from_slice(json).map_err(|e| unavailable(&format!("journal {key} is unreadable"), e)))
        .collect()
}

/// A snapshot's JSON; unreadable data is reported, never a panic.
fn parse_snapshot(key: &str, json: &[u8]) -> Result<ConversationState, StoreError> {
    serde_json::from_slice(json).map_err(|e| unavailable(&format!("snapshot {key} is unreadable"), e))
}

#[async_trait]
impl ConversationStore for RedisStore {
    async fn load(&self, id: &ConversationId) -> Result<Option<Arc<ConversationState>>, StoreError> {
        let reply: Vec<redis::Value> = self
            .read_call(id.as_str())
            .invoke_async(&mut self.conn().await?)
            .await
            .map_err(|e| unavailable("load snapshot", e))?;
        let read = self.parse_read(id.as_str(), reply)?;
        Ok(self.finish(id.as_str(), read).await?.map(Arc::new))
    }

    /// Two steps. First, in one script on the partition's slot, the lease check (with a fence),
    /// the journal entries and, when due, the snapshot: they must never disagree, and all keys
    /// carry the partition's hash tag. That is the commit point. Then, when the step may have
    /// changed the status (or is the conversation's first), the tenant's indexes, in one script
    /// on the tenant's slot: a MULTI cannot span two slots on Redis Cluster. If the second step
    /// fails (Redis went away in between), the append still succeeds, since its events are
    /// durable and an error would make the actor drop their effects; the failure is logged, and
    /// until the conversation's next write (which retries it) it is missing from listings by its
    /// new status, queue or agent. The journal relies on the caller's sequence: the first event
    /// ever appended is sequence 1, batches are consecutive.
    async fn append(&self, state: &Arc<ConversationState>, events: &[Envelope<Event>]) -> Result<(), StoreError> {
        self.write(state, events, None).await
    }

    async fn append_and_ack(
        &self,
        state: &Arc<ConversationState>,
        events: &[Envelope<Event>],
        receipt: &Receipt,
    ) -> Result<bool, StoreError> {
        // Always the conversation's own partition: its input came from there.
        if receipt.partition != partition_of(state.id.as_str(), self.partitions) {
            return self.append(state, events).await.map(|()| false);
        }
        self.write(state, events, Some(&receipt.id)).await.map(|()| true)
    }

    async fn journal(&self, id: &ConversationId, from: u64) -> Result<Vec<Envelope<Event>>, StoreError> {
        let key = self.keys.journal(partition_of(id.as_str(), self.partitions), id.as_str());
        let start = isize::try_from(from.saturating_sub(1)).unwrap_or(isize::MAX);
        let entries: Vec<Vec<u8>> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(start)
            .arg(-1)
            .query_async(&mut self.conn().await?)
            .await
            .map_err(|e| unavailable("read journal", e))?;
        parse_journal(&key, &entries)
    }

    /// Reads the smallest index that covers the query, then every conversation it names
    /// (snapshot and journal tail, pipelined; on Redis Cluster the conversations are in many
    /// slots, where a pipeline may not span them: concurrent reads, which the cluster connection
    /// pipelines per node), and filters and pages them like the memory store. Cost: one read per
    /// member of that index, so an unfiltered listing of a big tenant reads all of its
    /// conversations.
    async fn list(&self, query: &ConversationQuery) -> Result<ConversationPage, StoreError> {
        let mut conn = self.conn().await?;
        let ids: Vec<String> = redis::cmd("ZREVRANGE")
            .arg(index::index_for(&self.keys, query))
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await
            .map_err(|e| unavailable("read index", e))?;
        let mut found = Vec::new();
        for chunk in ids.chunks(FETCH_CHUNK) {
            let replies: Vec<Vec<redis::Value>> = if self.conn.is_cluster() {
                let reads = chunk.iter().map(|id| async move {
                    self.read_call(id)
                        .invoke_async(&mut self.conn().await?)
                        .await
                        .map_err(|e| unavailable("read snapshot", e))
                });
                futures_util::future::try_join_all(reads).await?
            } else {
                let mut fetch = redis::pipe();
                fetch.load_script(&READ).ignore();
                for id in chunk {
                    fetch.invoke_script(&self.read_call(id));
                }
                fetch.query_async(&mut conn).await.map_err(|e| unavailable("read snapshots", e))?
            };
            // A snapshot missing for an indexed id (deleted by hand, say) is not an error: skip it.
            for (id, reply) in chunk.iter().zip(replies) {
                let read = self.parse_read(id, reply)?;
                let Some(state) = self.finish(id, read).await? else { continue };
                if query.matches(&state) {
                    found.push(Arc::new(state));
                }
            }
        }
        Ok(query.page(found))
    }

    async fn reachable(&self) -> bool {
        let ping = async {
            let mut conn = self.conn.get().await?;
            redis::cmd("PING").query_async::<String>(&mut conn).await.map_err(|e| e.to_string())
        };
        super::bounded(ping).await.is_ok()
    }

    async fn owed(&self, partition: u32) -> Result<Vec<(TenantId, ConversationId)>, StoreError> {
        let members: Vec<String> = redis::cmd("SMEMBERS")
            .arg(self.keys.owed(partition))
            .query_async(&mut self.conn().await?)
            .await
            .map_err(|e| unavailable("read owed conversations", e))?;
        Ok(members
            .iter()
            .filter_map(|m| m.split_once('\t'))
            .map(|(tenant, id)| (TenantId::new(tenant), ConversationId::new(id)))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use switchboard_actors::domain::{AgentId, Author};
    use switchboard_actors::state::text;
    use switchboard_load_tests::redis_server::RedisServer;

    const PARTITIONS: u32 = 8;

    async fn store_on(server: &RedisServer) -> RedisStore {
        let pool = Pool::single(server.url(), 4, std::time::Duration::from_secs(2)).unwrap();
        RedisStore::new(pool, Keys::new(server.prefix()), PARTITIONS)
    }

    fn conversation(tenant: &str, id: &str) -> ConversationState {
        let mut state = ConversationState::new(ConversationId::new(id), TenantId::new(tenant));
        state.ticket = 1;
        state
    }

    /// Applies `events` at time `at` and appends them, as a conversation actor does.
    async fn step(store: &RedisStore, state: &mut ConversationState, at: u64, events: Vec<Event>) {
        step_in(store, state, at, events, 20).await;
    }

    /// [`step`] for a tenant whose history window is `window`.
    async fn step_in(store: &RedisStore, state: &mut ConversationState, at: u64, events: Vec<Event>, window: usize) {
        let envelopes: Vec<_> = events
            .into_iter()
            .map(|event| {
                state.apply(&event, at, window);
                Envelope::new(state.tenant.clone(), state.id.clone(), "trace", at, event)
            })
            .collect();
        store.append(&Arc::new(state.clone()), &envelopes).await.unwrap();
    }

    fn queued(queue: &str) -> Event {
        Event::Queued { queue: queue.into(), position: 1 }
    }

    fn assigned(queue: &str, agent: &str) -> Event {
        Event::Assigned { queue: queue.into(), agent: AgentId::new(agent) }
    }

    fn closed() -> Event {
        Event::Closed { by: Author::System }
    }

    #[tokio::test]
    async fn snapshots_and_journals_survive_a_new_process() {
        let server = RedisServer::start().unwrap();
        let store = store_on(&server).await;
        let mut state = conversation("demo", "demo:whatsapp.main:5511900000001");
        let id = state.id.clone();
        assert!(store.load(&id).await.unwrap().is_none(), "an unknown conversation has no snapshot");

        step(&store, &mut state, 100, vec![Event::AiStarted, queued("vendas")]).await;
        step(&store, &mut state, 200, vec![assigned("vendas", "ana"), closed()]).await;

        let times = |journal: Vec<Envelope<Event>>| journal.iter().map(|e| e.occurred_at).collect::<Vec<_>>();
        // A new pool is what another node or a restarted process would have.
        for reader in [&store, &store_on(&server).await] {
            assert_eq!(*reader.load(&id).await.unwrap().unwrap(), state, "the latest snapshot, as written");
            let journal = reader.journal(&id, 1).await.unwrap();
            assert_eq!(journal.len(), 4);
            assert!(matches!(journal[0].body, Event::AiStarted));
            assert!(matches!(journal[3].body, Event::Closed { .. }));
            assert_eq!(times(reader.journal(&id, 3).await.unwrap()), [200, 200], "the tail from sequence 3");
            assert_eq!(times(reader.journal(&id, 5).await.unwrap()), Vec::<u64>::new(), "nothing after the last");
        }
    }

    fn bot_reply(n: u64) -> Event {
        Event::OutboundQueued { local_id: n, author: Author::Bot, content: text(format!("resposta {n}")) }
    }

    /// The seq of the snapshot as stored, without the journal applied.
    async fn stored_seq(store: &RedisStore, id: &ConversationId) -> u64 {
        let json: Vec<u8> = redis::cmd("GET")
            .arg(store.snapshot_key(id.as_str()))
            .query_async(&mut store.conn().await.unwrap())
            .await
            .unwrap();
        parse_snapshot("snapshot", &json).unwrap().seq
    }

    #[tokio::test]
    async fn between_snapshots_a_conversation_reads_back_as_its_actor_left_it() {
        let server = RedisServer::start().unwrap();
        // A window of 3 makes replay without the tenant's window visibly wrong (history of 4+).
        let store = store_on(&server).await.snapshots(4, Arc::new(|_| 3));
        let mut state = conversation("demo", "demo:whatsapp.main:5511900000010");
        let id = state.id.clone();
        let mut snapshot_seqs = Vec::new();
        for n in 1..=7 {
            let events = if n == 4 { vec![bot_reply(n), queued("vendas")] } else { vec![bot_reply(n)] };
            step_in(&store, &mut state, n * 100, events, 3).await;
            assert_eq!(*store.load(&id).await.unwrap().unwrap(), state, "after step {n} (seq {})", state.seq);
            snapshot_seqs.push(stored_seq(&store, &id).await);
        }
        // Written on the first step, and on the steps that reached seq 4 and crossed 8.
        assert_eq!(snapshot_seqs, [1, 1, 1, 5, 5, 5, 8]);
        let mut query = ConversationQuery::tenant(TenantId::new("demo"));
        query.status = Some("queued".into());
        let page = store.list(&query).await.unwrap();
        assert_eq!(
            page.items.iter().map(|s| (**s).clone()).collect::<Vec<_>>(),
            [state.clone()],
            "listed as it stands"
        );

        // Written with a longer interval than the reader's: the reader reads the journal after
        // the snapshot on its own.
        let short = store_on(&server).await.snapshots(2, Arc::new(|_| 3));
        step_in(&store, &mut state, 900, vec![bot_reply(8)], 3).await;
        step_in(&store, &mut state, 1000, vec![bot_reply(9), bot_reply(10)], 3).await;
        assert_eq!(stored_seq(&store, &id).await, 8, "three events behind");
        assert_eq!(*short.load(&id).await.unwrap().unwrap(), state);
    }

    #[tokio::test]
    async fn the_write_that_completes_an_input_acknowledges_its_bus_entry_and_a_fenced_one_does_not() {
        let server = RedisServer::start().unwrap();
        let keys = Keys::new(server.prefix());
        let token = Arc::new(std::sync::Mutex::new("node-a:1".to_owned()));
        let held = token.clone();
        let store = store_on(&server).await.fenced(Arc::new(move |_| Some(held.lock().unwrap().clone())));
        let mut state = conversation("demo", "demo:whatsapp.main:5511900000020");
        let p = partition_of(state.id.as_str(), PARTITIONS);
        let mut conn = store.conn().await.unwrap();
        redis::cmd("SET").arg(keys.lease(p)).arg("node-a:1").query_async::<()>(&mut conn).await.unwrap();
        let stream = keys.stream(p);
        let group = super::super::bus::GROUP;
        redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(&stream)
            .arg(group)
            .arg("0")
            .arg("MKSTREAM")
            .query_async::<()>(&mut conn)
            .await
            .unwrap();
        let deliver = || {
            let (stream, store) = (stream.clone(), &store);
            async move {
                let mut conn = store.conn().await.unwrap();
                let id: String =
                    redis::cmd("XADD").arg(&stream).arg("*").arg("e").arg("{}").query_async(&mut conn).await.unwrap();
                let _: redis::Value = redis::cmd("XREADGROUP")
                    .arg("GROUP")
                    .arg(group)
                    .arg("node-a")
                    .arg("COUNT")
                    .arg(1)
                    .arg("STREAMS")
                    .arg(&stream)
                    .arg(">")
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                id
            }
        };
        let pending = |mut conn: SharedConn| {
            let stream = stream.clone();
            async move {
                let summary: (u64, redis::Value, redis::Value, redis::Value) =
                    redis::cmd("XPENDING").arg(&stream).arg(group).query_async(&mut conn).await.unwrap();
                summary.0
            }
        };

        let first = deliver().await;
        assert_eq!(pending(store.conn().await.unwrap()).await, 1);
        state.apply(&Event::AiStarted, 10, 20);
        let event = Envelope::new(state.tenant.clone(), state.id.clone(), "trace", 10, Event::AiStarted);
        let receipt = Receipt { partition: p, id: first };
        assert!(store.append_and_ack(&Arc::new(state.clone()), &[event], &receipt).await.unwrap());
        assert_eq!(pending(store.conn().await.unwrap()).await, 0, "journal and acknowledgement in one step");

        let second = deliver().await;
        *token.lock().unwrap() = "node-a:0".into();
        state.apply(&Event::TriageStarted, 20, 20);
        let event = Envelope::new(state.tenant.clone(), state.id.clone(), "trace", 20, Event::TriageStarted);
        let receipt = Receipt { partition: p, id: second };
        let refused = store.append_and_ack(&Arc::new(state.clone()), &[event], &receipt).await;
        assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
        assert_eq!(pending(store.conn().await.unwrap()).await, 1, "a stale writer acknowledges nothing");
        assert_eq!(store.journal(&state.id, 1).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn only_steps_that_may_move_a_conversation_touch_the_tenants_indexes() {
        let server = RedisServer::start().unwrap();
        let store = store_on(&server).await;
        let mut state = conversation("demo", "demo:whatsapp.main:5511900000030");
        let id = state.id.as_str().to_owned();
        let indexed_at = || async {
            let mut conn = store.conn().await.unwrap();
            let json: String = redis::cmd("HGET")
                .arg(Keys::new(server.prefix()).index("demo", "where"))
                .arg(&id)
                .query_async(&mut conn)
                .await
                .unwrap();
            serde_json::from_str::<serde_json::Value>(&json).unwrap()["seq"].as_u64().unwrap()
        };
        step(&store, &mut state, 10, vec![bot_reply(1)]).await;
        assert_eq!(indexed_at().await, 1, "the first write indexes the conversation");
        step(&store, &mut state, 20, vec![bot_reply(2), bot_reply(3)]).await;
        assert_eq!(indexed_at().await, 1, "replies do not move it");
        step(&store, &mut state, 30, vec![bot_reply(4), queued("vendas")]).await;
        assert_eq!(indexed_at().await, 5, "queued: indexed again");
        let mut query = ConversationQuery::tenant(TenantId::new("demo"));
        query.queue = Some("vendas".into());
        let page = store.list(&query).await.unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(page.items[0].updated_at, 30, "listed as it stands, whatever the index's score");
    }

    #[tokio::test]
    async fn the_owed_set_follows_unsent_replies_per_partition() {
        let server = RedisServer::start().unwrap();
        let store = store_on(&server).await;
        let mut state = conversation("demo", "demo:whatsapp.main:5511900000002");
        let p = partition_of(state.id.as_str(), PARTITIONS);
        let queued = Event::OutboundQueued { local_id: 1, author: Author::Bot, content: text("oi") };
        step(&store, &mut state, 10, vec![queued]).await;
        assert!(state.owes_work());
        let owed = store.owed(p).await.unwrap();
        assert_eq!(owed, vec![(TenantId::new("demo"), state.id.clone())], "a reply not yet sent is owed");
        assert!(store.owed((p + 1) % PARTITIONS).await.unwrap().is_empty(), "only in its own partition");
        let sent = Event::OutboundSent { local_id: 1, provider_message_id: "wamid.1".into() };
        step(&store, &mut state, 20, vec![sent]).await;
        assert!(store.owed(p).await.unwrap().is_empty(), "sent: nothing owed any more");
    }

    #[tokio::test]
    async fn listings_follow_conversations_through_their_statuses() {
        let server = RedisServer::start().unwrap();
        let store = store_on(&server).await;
        let (mut a, mut b, mut c) =
            (conversation("demo", "demo:a"), conversation("demo", "demo:b"), conversation("demo", "demo:c"));
        let mut other = conversation("acme", "acme:x");
        step(&store, &mut a, 10, vec![queued("vendas")]).await;
        step(&store, &mut b, 20, vec![queued("vendas")]).await;
        step(&store, &mut c, 30, vec![queued("suporte")]).await;
        step(&store, &mut other, 40, vec![queued("vendas")]).await;
        step(&store, &mut a, 50, vec![assigned("vendas", "ana")]).await;

        let list = |edit: fn(&mut ConversationQuery)| {
            let mut query = ConversationQuery::tenant(TenantId::new("demo"));
            edit(&mut query);
            let store = &store;
            async move {
                let page = store.list(&query).await.unwrap();
                (page.items.iter().map(|s| s.id.as_str().to_owned()).collect::<Vec<_>>(), page.total)
            }
        };
        assert_eq!(list(|_| {}).await.0, ["demo:a", "demo:c", "demo:b"], "newest first, never another tenant");
        assert_eq!(list(|q| q.queue = Some("vendas".into())).await.0, ["demo:a", "demo:b"]);
        assert_eq!(list(|q| q.status = Some("queued".into())).await.0, ["demo:c", "demo:b"], "a left queued");
        assert_eq!(list(|q| q.agent = Some(AgentId::new("ana"))).await.0, ["demo:a"]);
        assert_eq!(list(|q| q.agent = Some(AgentId::new("bia"))).await.0, Vec::<String>::new());

        step(&store, &mut a, 60, vec![closed()]).await;
        assert_eq!(list(|q| q.agent = Some(AgentId::new("ana"))).await.0, Vec::<String>::new(), "closed: not ana's");
        assert_eq!(list(|q| q.queue = Some("vendas".into())).await.0, ["demo:b"]);
        assert_eq!(list(|q| q.status = Some("closed".into())).await.0, ["demo:a"]);
        assert_eq!(list(|q| q.status = Some("assigned".into())).await.0, Vec::<String>::new());
        // Listing filters by snapshot anyway; the old sets must not keep growing with moved ids.
        let keys = Keys::new(server.prefix());
        let mut conn = store.conn().await.unwrap();
        for old in ["agent:ana", "queue:vendas", "status:assigned", "status:queued"] {
            let score: Option<f64> =
                redis::cmd("ZSCORE").arg(keys.index("demo", old)).arg("demo:a").query_async(&mut conn).await.unwrap();
            assert_eq!(score, None, "demo:a left {old}");
        }

        let (ids, total) = list(|q| {
            q.offset = 1;
            q.limit = 1;
        })
        .await;
        assert_eq!((ids, total), (vec!["demo:c".to_owned()], 3), "second page of one, total of all");
        let (ids, total) = list(|q| {
            q.tenant = TenantId::new("acme");
            q.status = Some("queued".into());
        })
        .await;
        assert_eq!((ids, total), (vec!["acme:x".to_owned()], 1));
    }

    #[tokio::test]
    async fn an_unreadable_snapshot_is_an_error_not_a_panic() {
        let server = RedisServer::start().unwrap();
        let store = store_on(&server).await;
        let id = ConversationId::new("demo:broken");
        let key = store.snapshot_key(id.as_str());
        let mut conn = store.conn().await.unwrap();
        redis::cmd("SET").arg(&key).arg("{not json").query_async::<()>(&mut conn).await.unwrap();
        let Err(StoreError::Unavailable(why)) = store.load(&id).await else { panic!("garbage loaded") };
        assert!(why.contains(&key), "names the key: {why}");
    }

    #[tokio::test]
    async fn a_dead_redis_is_reported_as_unavailable() {
        let server = RedisServer::start().unwrap();
        let store = store_on(&server).await;
        let mut state = conversation("demo", "demo:a");
        step(&store, &mut state, 10, vec![queued("vendas")]).await;
        drop(server);

        let state = Arc::new(state);
        let query = ConversationQuery::tenant(TenantId::new("demo"));
        let within = |ms| Duration::from_millis(ms);
        let load = tokio::time::timeout(within(3000), store.load(&state.id)).await.expect("load hung");
        assert!(matches!(load, Err(StoreError::Unavailable(_))), "{load:?}");
        let append = tokio::time::timeout(within(3000), store.append(&state, &[])).await.expect("append hung");
        assert!(matches!(append, Err(StoreError::Unavailable(_))), "{append:?}");
        let list = tokio::time::timeout(within(3000), store.list(&query)).await.expect("list hung");
        assert!(matches!(list, Err(StoreError::Unavailable(_))), "{list:?}");
    }
    #[tokio::test]
    async fn a_writer_whose_journal_moved_on_is_refused_and_writes_nothing() {
        let server = RedisServer::start().unwrap();
        let store = store_on(&server).await;
        let mut state = conversation("demo", "demo:whatsapp.main:5511955500002");
        step(&store, &mut state, 100, vec![queued("vendas")]).await;
        // The same conversation as loaded before that step (its write timed out, say, and was
        // applied after all): its own next step must not land beside the one already there.
        let mut stale = conversation("demo", "demo:whatsapp.main:5511955500002");
        stale.apply(&closed(), 200, 20);
        let event = Envelope::new(stale.tenant.clone(), stale.id.clone(), "trace", 200, closed());
        let refused = store.append(&Arc::new(stale), &[event]).await;
        assert!(matches!(refused, Err(StoreError::Fenced)), "{refused:?}");
        let journal = store.journal(&state.id, 1).await.unwrap();
        assert_eq!(journal.len(), 1, "only the first step is in the journal");
        assert_eq!(*store.load(&state.id).await.unwrap().unwrap(), state, "the snapshot is the first step's");
        // The writer that is up to date goes on.
        step(&store, &mut state, 300, vec![closed()]).await;
        assert_eq!(store.journal(&state.id, 1).await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_node_that_lost_its_lease_cannot_write() {
        let server = RedisServer::start().unwrap();
        let keys = Keys::new(server.prefix());
        let plain = store_on(&server).await;
        let token = Arc::new(std::sync::Mutex::new(Some("node-a:1".to_owned())));
        let held = token.clone();
        let fenced = store_on(&server).await.fenced(Arc::new(move |_| held.lock().unwrap().clone()));
        let mut state = conversation("demo", "demo:whatsapp.main:5511955500001");
        let p = partition_of(state.id.as_str(), PARTITIONS);
        let lease = |value: &str| {
            let (shared, key, value) = (plain.conn.clone(), keys.lease(p), value.to_owned());
            async move {
                let mut conn = shared.get().await.unwrap();
                redis::cmd("SET").arg(key).arg(value).query_async::<()>(&mut conn).await.unwrap();
            }
        };
        lease("node-a:1").await;
        step(&fenced, &mut state, 1_000, vec![Event::AiStarted]).await;

        // Another node took the partition over (epoch 2): node a's next write is refused whole.
        lease("node-b:2").await;
        state.seq += 1;
        let late = Envelope::new(state.tenant.clone(), state.id.clone(), "trace", 2_000, Event::TriageStarted);
        assert!(matches!(fenced.append(&Arc::new(state.clone()), &[late]).await, Err(StoreError::Fenced)));
        assert_eq!(plain.journal(&state.id, 1).await.unwrap().len(), 1, "nothing of the stale write landed");
        assert_eq!(plain.load(&state.id).await.unwrap().unwrap().seq, 1);

        // Without any lease of the partition a fenced store does not write either.
        *token.lock().unwrap() = None;
        assert!(matches!(fenced.append(&Arc::new(state.clone()), &[]).await, Err(StoreError::Fenced)));
    }
}
