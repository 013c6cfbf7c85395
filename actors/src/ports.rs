//! Ports: the traits the actors need from the outside world. Adapters implement them
//! (`adapters::memory` for one process; Redis later), tests fake them.

use crate::domain::{ConversationId, OutboundContent, ReplyAddress, TenantId};
use crate::event::{Envelope, Event, Input};
use crate::query::{ConversationPage, ConversationQuery};
use crate::state::ConversationState;
use async_trait::async_trait;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long a sender told to come back later (503) should wait: what the HTTP answer's
/// `Retry-After` says, and how long a partition whose events wait too long refuses webhooks.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Why the bus refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The partition's queue is at its bound: the caller should answer 503 and let the provider retry.
    #[error("bus partition {partition} is full")]
    Full {
        /// The partition.
        partition: u32,
    },
    /// The backend is unreachable.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// The bus is shutting down.
    #[error("bus closed")]
    Closed,
}

/// One event taken from a partition, to be acknowledged once its effect is persisted.
#[derive(Debug)]
pub struct Delivery {
    /// Backend id used to acknowledge (stream entry id in Redis).
    pub id: String,
    /// The event.
    pub envelope: Envelope<Input>,
}

/// The bus entry an input came from, for the write that completes its handling to acknowledge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Receipt {
    /// The entry's partition.
    pub partition: u32,
    /// [`Delivery::id`].
    pub id: String,
}

/// Partitioned event bus: per-partition order, one consumer per partition.
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Number of partitions (fixed per cluster).
    fn partitions(&self) -> u32;
    /// Appends to a partition; returns once durable. `wait` = wait for room instead of `Full`.
    async fn publish(&self, partition: u32, envelope: Envelope<Input>, wait: bool) -> Result<(), BusError>;
    /// Ingress in one atomic step where the backend can (Redis: one script on the partition's
    /// slot): unless `key` was published within `ttl`, appends the event and remembers `key` for
    /// `ttl`. `Claim::New`: appended now; `Done`: a repeat, nothing appended; `Pending`: another
    /// writer is at it (only where an older two-step gate still runs). `None`: not supported,
    /// the hub claims the key at its dedup gate, publishes and confirms, in three steps.
    async fn publish_unique(
        &self,
        _partition: u32,
        _envelope: &Envelope<Input>,
        _key: &str,
        _ttl: Duration,
    ) -> Option<Result<Claim, BusError>> {
        None
    }
    /// The partition's consumer is behind (its events wait too long before they are handled):
    /// for `span`, new webhook events (`publish_unique`) get `Full`, so providers hold the
    /// surplus and retry instead of the backlog growing. Duplicates are still recognised, and
    /// internal events are never refused. Default: nothing (the memory bus bounds its queues by
    /// length instead).
    async fn hold_off(&self, _partition: u32, _span: Duration) -> Result<(), BusError> {
        Ok(())
    }
    /// Events of `partition` queued only in this process (the memory bus): a graceful stop
    /// waits for them to be handled. `0` where the bus keeps them elsewhere (Redis keeps them
    /// for the partition's next owner).
    fn held_here(&self, _partition: u32) -> usize {
        0
    }
    /// Waits for the next events of a partition this node owns (at most `max`).
    async fn next_batch(&self, partition: u32, max: usize) -> Result<Vec<Delivery>, BusError>;
    /// Acknowledges handled deliveries.
    async fn ack(&self, partition: u32, ids: &[String]) -> Result<(), BusError>;
    /// Deliveries a conversation's write already acknowledged in its own atomic step
    /// ([`ConversationStore::append_and_ack`]): counted like acks (a stream is trimmed behind
    /// them) without a round trip. Default: nothing to count.
    async fn acked_elsewhere(&self, _partition: u32, _ids: &[String]) -> Result<(), BusError> {
        Ok(())
    }
    /// Deliveries the consumer could not handle now (the store was down): a durable bus delivers
    /// them again, before newer ones, on a later `next_batch`, and does not count this as a
    /// failed delivery (an outage must not send events to a dead-letter stream). The in-memory bus cannot (its
    /// deliveries leave the channel when read) and keeps this default.
    async fn nack(&self, _partition: u32, _ids: &[String]) -> Result<(), BusError> {
        Ok(())
    }
    /// Like [`nack`](Self::nack), for deliveries whose handling failed while the store answered:
    /// the entry's own fault (it cannot be loaded or applied), not an outage's. A durable bus
    /// counts these as failed deliveries, so such an entry moves to the dead-letter stream after
    /// a few tries instead of blocking its partition. Default: `nack`.
    async fn reject(&self, partition: u32, ids: &[String]) -> Result<(), BusError> {
        self.nack(partition, ids).await
    }
    /// This node has just become the partition's owner: take over what earlier owners were given
    /// and did not acknowledge, so it is delivered (first) to this node. In-memory: nothing to do.
    async fn adopt(&self, _partition: u32) -> Result<(), BusError> {
        Ok(())
    }
    /// This node stops reading the partition (it hands it over): once this returns, nothing more
    /// is delivered to this node, so the next owner gets everything not handled here. In-memory:
    /// nothing to do.
    async fn quiesce(&self, _partition: u32) -> Result<(), BusError> {
        Ok(())
    }
}

/// The partitions a node runs, each with its fencing epoch: the lease's number, bumped at every
/// change of owner, so a store can refuse a node that still writes after losing its lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ownership(pub std::collections::BTreeMap<u32, u64>);

impl Ownership {
    /// Every partition, epoch 0: a node alone (the memory backend).
    pub fn all(partitions: u32) -> Self {
        Self((0..partitions).map(|p| (p, 0)).collect())
    }

    /// Whether `partition` is owned.
    pub fn owns(&self, partition: u32) -> bool {
        self.0.contains_key(&partition)
    }
}

/// Where partitions run. One node alone owns them all; with Redis, nodes hold leases and hand
/// partitions over when nodes join, leave or die.
pub trait Placement: Send + Sync + 'static {
    /// What this node owns now; it changes when a lease is won, lost or to be given up.
    fn owned(&self) -> tokio::sync::watch::Receiver<Ownership>;
    /// The hub has stopped running `partition` (its batch is acknowledged, its conversations
    /// passivated): a lease being given up can be released now.
    fn released(&self, partition: u32);
}

/// A node alone: owns every partition, forever.
pub struct AllPartitions(tokio::sync::watch::Sender<Ownership>);

impl AllPartitions {
    /// Owns `0..partitions`.
    pub fn new(partitions: u32) -> Self {
        Self(tokio::sync::watch::channel(Ownership::all(partitions)).0)
    }
}

impl Placement for AllPartitions {
    fn owned(&self) -> tokio::sync::watch::Receiver<Ownership> {
        self.0.subscribe()
    }

    fn released(&self, _partition: u32) {}
}

/// A verdict on a command, for the node whose caller waits for it.
pub type Verdict = (uuid::Uuid, crate::conversation::ProcessResult);

/// Verdicts of commands whose caller waits on another node: with several nodes, a REST, console
/// or MCP command may arrive at a node that does not run the conversation; the node that runs it
/// sends the verdict back. One node alone (the memory backend) keeps the defaults.
#[async_trait]
pub trait Verdicts: Send + Sync + 'static {
    /// This node's name as a destination of verdicts; `None` when there is no other node.
    fn origin(&self) -> Option<String> {
        None
    }
    /// Sends the verdict on command `event_id` to node `origin`. Best effort: if it is lost, the
    /// caller there times out (503) as it would without it.
    async fn send(&self, _origin: &str, _verdict: &Verdict) {}
    /// Verdicts sent to this node, for the hub to hand to its waiting callers (taken once).
    fn incoming(&self) -> Option<tokio::sync::mpsc::Receiver<Verdict>> {
        None
    }
}

/// One node alone: every caller waits where its conversation runs.
pub struct LocalVerdicts;

impl Verdicts for LocalVerdicts {}

/// Dedup errors.
#[derive(Debug, thiserror::Error)]
pub enum DedupError {
    /// Backend unreachable.
    #[error("dedup unavailable: {0}")]
    Unavailable(String),
}

/// Ingress dedup gate keyed by provider message id.
#[async_trait]
pub trait Dedup: Send + Sync + 'static {
    /// Claims `key` (atomic across concurrent callers). `New` means the caller now holds it as
    /// pending and must `confirm` or `forget` it; a pending claim expires by itself after a short
    /// while, so a caller that died does not block the key for the whole TTL.
    async fn claim(&self, key: &str) -> Result<Claim, DedupError>;
    /// The event of a claimed key is on the bus: remember it as done for `ttl`.
    async fn confirm(&self, key: &str, ttl: Duration) -> Result<(), DedupError>;
    /// Forgets `key` (its event could not be published, so the provider's retry must pass).
    async fn forget(&self, key: &str) -> Result<(), DedupError>;
}

/// What the dedup gate knows of a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    /// Never seen (or expired): the caller holds it now.
    New,
    /// Another request is publishing it right now; its outcome is not known yet.
    Pending,
    /// Already on the bus: a repeat.
    Done,
}

/// Store errors.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Backend unreachable.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// A stale writer: it holds an older fencing token, or the conversation's journal moved on
    /// since it loaded the conversation (a write it gave up as failed was applied after all).
    #[error("stale writer")]
    Fenced,
}

/// Durable conversation state: snapshot + journal.
#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Latest snapshot, if the conversation exists.
    async fn load(&self, id: &ConversationId) -> Result<Option<Arc<ConversationState>>, StoreError>;
    /// Appends journal events and replaces the snapshot, atomically. The snapshot is shared
    /// (`Arc`): an in-process store keeps it without copying, and the actor copies on its next write.
    async fn append(&self, state: &Arc<ConversationState>, events: &[Envelope<Event>]) -> Result<(), StoreError>;
    /// [`append`](Self::append), and in the same atomic step the acknowledgement of the bus
    /// entry whose handling this write completes, where store and bus share one backend (Redis:
    /// the `XACK` in the journal script, on the partition's slot). `true` when acknowledged; the
    /// default only appends and says `false`, and the caller acknowledges on the bus.
    async fn append_and_ack(
        &self,
        state: &Arc<ConversationState>,
        events: &[Envelope<Event>],
        _receipt: &Receipt,
    ) -> Result<bool, StoreError> {
        self.append(state, events).await.map(|()| false)
    }
    /// Whether the store answers right now: an input that failed while it does failed for its
    /// own reasons. An in-process store always answers.
    async fn reachable(&self) -> bool {
        true
    }
    /// The journal of a conversation, from sequence `from` (1-based).
    async fn journal(&self, id: &ConversationId, from: u64) -> Result<Vec<Envelope<Event>>, StoreError>;
    /// One page of a tenant's conversations that match `query` (see [`ConversationQuery::matches`]).
    async fn list(&self, query: &ConversationQuery) -> Result<ConversationPage, StoreError>;
    /// The conversations of `partition` whose last snapshot owed work
    /// ([`ConversationState::owes_work`]): a partition's new owner wakes them, since the node
    /// that was doing that work may have died with it. A store that does not outlive its
    /// process (memory) has no previous owner to cover for and keeps this default.
    async fn owed(&self, _partition: u32) -> Result<Vec<(TenantId, ConversationId)>, StoreError> {
        Ok(Vec::new())
    }
}

/// A message for a provider's send API.
#[derive(Clone, Debug, PartialEq)]
pub struct OutboundMessage {
    /// Tenant sending.
    pub tenant: TenantId,
    /// Channel and recipient.
    pub to: ReplyAddress,
    /// What to send.
    pub content: OutboundContent,
    /// Idempotency key (`conversation/local_id`) for providers that support one.
    pub key: String,
    /// Telegram callback query to answer before sending.
    pub callback_query_id: Option<String>,
}

/// Why a provider send failed, in terms the outbox can act on.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// Throttled: wait this long, then retry.
    #[error("rate limited, retry after {retry_after:?}")]
    RateLimited {
        /// How long to wait.
        retry_after: Duration,
    },
    /// Network error or provider 5xx: retry with backoff.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The provider refused for good (bad recipient, window closed, auth): do not retry.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// A provider's send API for one channel.
#[async_trait]
pub trait Outbound: Send + Sync + 'static {
    /// Sends one message; returns the provider's message id.
    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError>;

    /// The same sender with connections of its own, for the outbox on another actor thread: a
    /// pooled HTTP connection's I/O runs on the thread that opened it, so a client shared by
    /// threads moves every request's reads and writes across threads. `None`: share this one.
    fn with_own_connections(&self) -> Option<Arc<dyn Outbound>> {
        None
    }
}

/// Speaker of a chat turn given to the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Speaker {
    /// The customer.
    Customer,
    /// Us (bot, system notices or a human agent).
    Assistant,
}

/// A request to the language model.
#[derive(Clone, Debug)]
pub struct LlmRequest {
    /// Tenant system prompt.
    pub system_prompt: String,
    /// Recent history, oldest first.
    pub history: Vec<(Speaker, String)>,
    /// Queues the model may hand off to (for the tool's schema).
    pub queues: Vec<String>,
    /// Offer the hand-off and close tools (a conversation turn); `false` for plain text tasks
    /// such as a summary.
    pub tools: bool,
}

/// What the model decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LlmAction {
    /// Answer the customer.
    Reply(String),
    /// Tool call `handoff_to_human(queue, reason)`; optional text to send first.
    Handoff {
        /// Queue asked for (may be unknown; the dispatcher falls back to the default).
        queue: Option<String>,
        /// Why.
        reason: String,
        /// Text the model sent alongside the call.
        message: Option<String>,
    },
    /// Tool call `close_conversation`; optional goodbye text.
    Close {
        /// Text the model sent alongside the call.
        message: Option<String>,
    },
}

/// Model answer plus token usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LlmResponse {
    /// The decision.
    pub action: LlmAction,
    /// Prompt tokens used.
    pub prompt_tokens: u32,
    /// Completion tokens used.
    pub completion_tokens: u32,
}

/// Model errors.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Network error, 5xx, 429.
    #[error("model unavailable: {0}")]
    Unavailable(String),
    /// The model answered something we cannot use.
    #[error("unusable model answer: {0}")]
    Invalid(String),
}

/// An OpenAI-compatible chat model.
#[async_trait]
pub trait LlmClient: Send + Sync + 'static {
    /// One completion.
    async fn complete(&self, req: LlmRequest) -> Result<LlmResponse, LlmError>;

    /// The same model with connections of its own, for the AI agent on another actor thread
    /// (see [`Outbound::with_own_connections`]). `None`: share this one.
    fn with_own_connections(&self) -> Option<Arc<dyn LlmClient>> {
        None
    }
}

/// Wall clock in milliseconds since the Unix epoch; injected so tests control time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in ms.
    fn now_ms(&self) -> u64;
}

/// The real clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// Starts at `ms`.
    pub fn at(ms: u64) -> Self {
        Self(AtomicU64::new(ms))
    }
    /// Moves forward.
    pub fn advance(&self, by: Duration) {
        self.0.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
