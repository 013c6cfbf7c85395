//! The hub: wires ports, tenants and actors together on one node, runs the partition consumers,
//! and is the single entry point for ingress (webhooks) and commands (console, REST, MCP).

use crate::agents::ai::{AiAgent, AiLimits, Summarize};
use crate::agents::queue::{GetQueueSnapshot, Loads, LoadsElsewhere, QueueAgent, QueueSnapshot, SetPresence};
use crate::agents::triage::TriageAgent;
use crate::consumer::{PartitionRunner, follow_ownership};
use crate::conversation::{CommandError, ProcessResult, TenantRuntime};
use crate::dispatcher::{Dispatcher, DispatcherPort, TenantRoutes};
use crate::domain::{AgentId, Author, ChannelRef, ConversationId, TenantId};
use crate::event::{Envelope, Event, Input};
use crate::feed::{EventFeed, FeedBatch};
use crate::metrics::HubMetrics;
use crate::outbox::{Busy, ChannelLimits, Outbox, OutboxPolicy, SendOutbound};
use crate::partition::partition_of;
use crate::ports::{
    Bus, BusError, Claim, Clock, ConversationStore, Dedup, LlmClient, LlmRequest, Outbound, Placement, Speaker,
    Verdict, Verdicts,
};
use crate::query::{ConversationPage, ConversationQuery};
use crate::registry::{ConversationRegistry, InspectConversation, LiveCount};
use crate::sink::{DirectSink, InputSink};
use crate::state::ConversationState;
use crate::tenant::TenantPolicy;
use actix::prelude::*;
use futures_util::future::join_all;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, oneshot, watch};
use uuid::Uuid;

/// What the model is asked when an agent wants a summary.
const SUMMARY_PROMPT: &str = "Summarise this customer-service conversation for the human agent taking it over: \
    in at most four sentences, say what the customer wants, what was already answered, and what is still open. \
    Answer in the language of the conversation.";

/// Backend ports (memory or Redis).
pub struct Backend {
    /// Event bus.
    pub bus: Arc<dyn Bus>,
    /// Ingress dedup gate.
    pub dedup: Arc<dyn Dedup>,
    /// Conversation store.
    pub store: Arc<dyn ConversationStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Which partitions this node runs.
    pub placement: Arc<dyn Placement>,
    /// Verdicts of commands whose caller waits on another node.
    pub verdicts: Arc<dyn Verdicts>,
}

/// One outbound channel of a tenant.
pub struct ChannelSetup {
    /// Which channel.
    pub channel: ChannelRef,
    /// Its send API.
    pub outbound: Arc<dyn Outbound>,
    /// Limits and retries.
    pub policy: OutboxPolicy,
}

/// One tenant to run.
pub struct TenantSetup {
    /// Policy.
    pub policy: TenantPolicy,
    /// Model, if configured (without one the AI always falls back to a human).
    pub llm: Option<Arc<dyn LlmClient>>,
    /// Enabled channels.
    pub channels: Vec<ChannelSetup>,
}

/// Node settings.
#[derive(Clone, Debug)]
pub struct HubSettings {
    /// Threads running actors (conversations are spread over them by partition).
    pub workers: usize,
    /// How long provider ids are remembered by the ingress gate.
    pub dedup_ttl: Duration,
    /// Events taken from a partition at once.
    pub batch: usize,
    /// How long a command waits for its conversation.
    pub command_timeout: Duration,
    /// Replies the outboxes may hold (waiting or being sent) before ingress answers 503: when
    /// providers are slower than customers, the provider's retries wait instead of our memory.
    pub max_queued_replies: usize,
    /// Longest an event may wait in its partition before that partition's webhooks get 503
    /// for a while (see `PartitionRunner::hold_off_when_behind`); `None`: never.
    pub max_queue_delay: Option<Duration>,
}

impl Default for HubSettings {
    fn default() -> Self {
        Self {
            workers: 2,
            dedup_ttl: Duration::from_secs(24 * 3600),
            batch: 256,
            command_timeout: Duration::from_secs(10),
            max_queued_replies: 10_000,
            max_queue_delay: None,
        }
    }
}

/// Why ingress refused an event. The caller answers 503 and the provider retries.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// Queues are full (backpressure).
    #[error("hub is busy, retry later")]
    Busy,
    /// A backend is unreachable.
    #[error("backend unavailable: {0}")]
    Unavailable(String),
}

/// What ingress did with an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingested {
    /// On the bus.
    Accepted,
    /// Seen before: nothing published.
    Duplicate,
}

/// A tenant's queue actors, by name.
type TenantQueues = HashMap<String, Addr<QueueAgent>>;

/// What the hub keeps of each tenant to answer commands and queries.
struct TenantHandles {
    policy: Arc<TenantPolicy>,
    feed: EventFeed,
    queues: TenantQueues,
    ai: Addr<AiAgent>,
}

pub(crate) type Replies = Mutex<HashMap<Uuid, oneshot::Sender<ProcessResult>>>;

struct Inner {
    bus: Arc<dyn Bus>,
    dedup: Arc<dyn Dedup>,
    store: Arc<dyn ConversationStore>,
    clock: Arc<dyn Clock>,
    metrics: Arc<HubMetrics>,
    registries: Vec<Addr<ConversationRegistry>>,
    tenants: HashMap<TenantId, TenantHandles>,
    replies: Arc<Replies>,
    settings: HubSettings,
    shutdown: watch::Sender<bool>,
    /// Partition consumers still running (a graceful stop waits for their handovers).
    consumers: Arc<AtomicUsize>,
    outboxes: Vec<Addr<Outbox>>,
    /// This node's name for verdicts sent back to it (several nodes).
    origin: Option<String>,
}

/// Handle to a running hub; cheap to clone.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

impl Hub {
    /// Starts every actor. Must run inside an actix `System`.
    pub fn start(backend: Backend, tenants: Vec<TenantSetup>, settings: HubSettings) -> Hub {
        let metrics = Arc::new(HubMetrics::default());
        metrics.series.prepare(backend.bus.partitions());
        let arbiters: Vec<ArbiterHandle> = (0..settings.workers.max(1)).map(|_| Arbiter::new().handle()).collect();
        let direct = Arc::new(DirectSink::new(backend.bus.clone(), metrics.clone()));
        let sink: Arc<dyn InputSink> = direct.clone();
        let mut routes = HashMap::new();
        let mut handles = HashMap::new();
        let mut pending_runtimes = Vec::new();
        // Per actor thread, its outboxes (every tenant's and channel's).
        let mut outboxes_of_thread: Vec<Vec<Addr<Outbox>>> = vec![Vec::new(); arbiters.len()];
        for (i, setup) in tenants.into_iter().enumerate() {
            let arbiter = &arbiters[i % arbiters.len()];
            let policy = Arc::new(setup.policy);
            let id = policy.id.clone();
            let queues: HashMap<String, Addr<QueueAgent>> = policy
                .queues
                .iter()
                .map(|q| {
                    let (tenant, q2, s, c, m) =
                        (id.clone(), q.clone(), sink.clone(), backend.clock.clone(), metrics.clone());
                    let start = move |_: &mut Context<QueueAgent>| QueueAgent::new(tenant, q2, s, c).measured(m);
                    (q.name.clone(), QueueAgent::start_in_arbiter(arbiter, start))
                })
                .collect();
            // Each actor thread has its own outbox per channel and its own AI agent, with HTTP
            // clients of their own: a conversation's model call and sends stay on its thread.
            let mut outboxes: Vec<HashMap<ChannelRef, Recipient<SendOutbound>>> = vec![HashMap::new(); arbiters.len()];
            for ch in setup.channels {
                let shared =
                    ChannelLimits::new(&ch.policy).named(format!("outbound:{id}:{}", ch.channel.name), &metrics);
                for (k, arb) in arbiters.iter().enumerate() {
                    let (s, c, m, l, p) =
                        (sink.clone(), backend.clock.clone(), metrics.clone(), shared.clone(), ch.policy.clone());
                    let outbound = ch.outbound.with_own_connections().unwrap_or_else(|| ch.outbound.clone());
                    let addr = Outbox::start_in_arbiter(arb, move |_| Outbox::new(l, outbound, p, s, c, m));
                    outboxes_of_thread[k].push(addr.clone());
                    outboxes[k].insert(ch.channel.clone(), addr.recipient());
                }
            }
            for (name, addr) in &queues {
                let (store, placement) = (backend.store.clone(), backend.placement.clone());
                let partitions = backend.bus.partitions();
                arbiter.spawn(follow_ownership(store, placement, partitions, id.clone(), name.clone(), addr.clone()));
            }
            let limits = AiLimits::new(&policy, &metrics);
            let ais: Vec<Addr<AiAgent>> = arbiters
                .iter()
                .map(|arb| {
                    let llm = setup.llm.as_ref().map(|llm| llm.with_own_connections().unwrap_or_else(|| llm.clone()));
                    let (l, p, m) = (limits.clone(), policy.clone(), metrics.clone());
                    AiAgent::start_in_arbiter(arb, move |_| AiAgent::new(l, p, llm, m))
                })
                .collect();
            let p = policy.clone();
            let triage = TriageAgent::start_in_arbiter(arbiter, move |_| TriageAgent::new(p));
            routes.insert(id.clone(), TenantRoutes { policy: policy.clone(), queues: queues.clone() });
            let feed = EventFeed::default();
            handles.insert(
                id.clone(),
                // Summaries (asked for by agents, through HTTP) use the first thread's agent.
                TenantHandles { policy: policy.clone(), feed: feed.clone(), queues, ai: ais[0].clone() },
            );
            pending_runtimes.push((id, policy, ais, triage, outboxes, feed));
        }
        let dispatcher = Dispatcher::start_in_arbiter(&arbiters[0], move |_| Dispatcher::new(routes));
        // The tenants as seen from each actor thread: the same but for the AI agents and outboxes.
        let runtimes: Vec<Arc<HashMap<TenantId, Arc<TenantRuntime>>>> = (0..arbiters.len())
            .map(|k| {
                let tenants = pending_runtimes.iter().map(|(id, policy, ais, triage, outboxes, feed)| {
                    let rt = TenantRuntime {
                        policy: policy.clone(),
                        dispatcher: DispatcherPort::from(&dispatcher),
                        ai: ais[k].clone().recipient(),
                        triage: triage.clone().recipient(),
                        outboxes: outboxes[k].clone(),
                        store: backend.store.clone(),
                        clock: backend.clock.clone(),
                        metrics: metrics.clone(),
                        feed: feed.clone(),
                    };
                    (id.clone(), Arc::new(rt))
                });
                Arc::new(tenants.collect())
            })
            .collect();
        let replies: Arc<Replies> = Arc::default();
        let outboxes_of_thread: Vec<Arc<[Addr<Outbox>]>> = outboxes_of_thread.into_iter().map(Into::into).collect();
        if let Some(incoming) = backend.verdicts.incoming() {
            arbiters[0].spawn(hand_out_verdicts(incoming, replies.clone()));
        }
        let (shutdown, _) = watch::channel(false);
        let consumers = Arc::new(AtomicUsize::new(0));
        let registries = (0..backend.bus.partitions())
            .map(|p| {
                // Partition p runs on actor thread p % n, with that thread's agents and outboxes.
                let thread = p as usize % arbiters.len();
                let (arbiter, rts) = (&arbiters[thread], runtimes[thread].clone());
                let registry =
                    ConversationRegistry::start_in_arbiter(arbiter, move |_| ConversationRegistry::new(p, rts));
                let runner = PartitionRunner {
                    partition: p,
                    bus: backend.bus.clone(),
                    store: backend.store.clone(),
                    clock: backend.clock.clone(),
                    registry: registry.clone(),
                    // Only its thread's outboxes can hold this partition's sends.
                    outboxes: outboxes_of_thread[thread].clone(),
                    verdicts: backend.verdicts.clone(),
                    replies: replies.clone(),
                    batch: settings.batch,
                    placement: backend.placement.clone(),
                    metrics: metrics.clone(),
                    max_queue_delay: settings.max_queue_delay,
                    held_until: AtomicU64::new(0),
                    owned_since: AtomicU64::new(0),
                };
                let (running, stop) = (consumers.clone(), shutdown.subscribe());
                running.fetch_add(1, Ordering::SeqCst);
                arbiter.spawn(async move {
                    runner.run(stop).await;
                    running.fetch_sub(1, Ordering::SeqCst);
                });
                registry
            })
            .collect::<Vec<_>>();
        direct.run_with(registries.clone().into());
        Hub(Arc::new(Inner {
            bus: backend.bus,
            dedup: backend.dedup,
            store: backend.store,
            clock: backend.clock,
            metrics,
            registries,
            tenants: handles,
            replies,
            settings,
            shutdown,
            consumers,
            outboxes: outboxes_of_thread.iter().flat_map(|o| o.iter().cloned()).collect(),
            origin: backend.verdicts.origin(),
        }))
    }

    /// Counters.
    pub fn metrics(&self) -> &Arc<HubMetrics> {
        &self.0.metrics
    }

    /// The clock the hub runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.0.clock
    }

    /// Ingress: dedup gate, then onto the bus (one step where the bus can do both). `Ok` means
    /// durable: the webhook may answer 2xx.
    pub async fn ingest(&self, envelope: Envelope<Input>, dedup_key: Option<String>) -> Result<Ingested, IngestError> {
        let inner = &self.0;
        let queued = inner.metrics.series.replies_queued.get();
        if queued >= inner.settings.max_queued_replies as i64 {
            tracing::debug!(queued, "replies back up in the outboxes: ingress pushes back");
            return Err(IngestError::Busy);
        }
        let partition = partition_of(envelope.conversation_id.as_str(), inner.bus.partitions());
        if let Some(key) = &dedup_key
            && let Some(once) = inner.bus.publish_unique(partition, &envelope, key, inner.settings.dedup_ttl).await
        {
            return match once {
                Ok(Claim::New) => {
                    inner.metrics.series.published(partition);
                    Ok(Ingested::Accepted)
                }
                Ok(Claim::Done) => Ok(Ingested::Duplicate),
                Ok(Claim::Pending) | Err(BusError::Full { .. }) => Err(IngestError::Busy),
                Err(e) => Err(IngestError::Unavailable(e.to_string())),
            };
        }
        if let Some(key) = &dedup_key {
            let claim = inner.dedup.claim(key).await.map_err(|e| IngestError::Unavailable(e.to_string()))?;
            match claim {
                Claim::New => {}
                Claim::Done => return Ok(Ingested::Duplicate),
                // A concurrent copy is being published and may still fail: answering 200 here
                // would let the provider drop its retry. Ask for a retry instead.
                Claim::Pending => return Err(IngestError::Busy),
            }
        }
        let result = inner.bus.publish(partition, envelope, false).await;
        if result.is_ok() {
            inner.metrics.series.published(partition);
        }
        if let Err(e) = result {
            // Not on the bus: the provider's retry must pass the gate again.
            if let Some(key) = &dedup_key {
                let _ = inner.dedup.forget(key).await;
            }
            return Err(match e {
                BusError::Full { .. } => IngestError::Busy,
                other => IngestError::Unavailable(other.to_string()),
            });
        }
        if let Some(key) = &dedup_key {
            inner
                .dedup
                .confirm(key, inner.settings.dedup_ttl)
                .await
                .map_err(|e| IngestError::Unavailable(e.to_string()))?;
        }
        Ok(Ingested::Accepted)
    }

    /// A command for one conversation (agent reply, transfer, close…), ordered with everything
    /// else it receives; waits for the conversation's verdict.
    pub async fn execute(
        &self,
        tenant: TenantId,
        conversation: ConversationId,
        input: Input,
        trace_id: &str,
    ) -> ProcessResult {
        let inner = &self.0;
        if !inner.tenants.contains_key(&tenant) {
            return Err(CommandError::UnknownTenant);
        }
        let mut envelope = Envelope::new(tenant, conversation, trace_id, inner.clock.now_ms(), input);
        envelope.reply_to.clone_from(&inner.origin);
        let (tx, rx) = oneshot::channel();
        let event_id = envelope.event_id;
        inner.replies.lock().map_err(|_| CommandError::Unavailable("poisoned".into()))?.insert(event_id, tx);
        let partition = partition_of(envelope.conversation_id.as_str(), inner.bus.partitions());
        if let Err(e) = inner.bus.publish(partition, envelope, false).await {
            inner.replies.lock().ok().map(|mut r| r.remove(&event_id));
            return Err(CommandError::Unavailable(e.to_string()));
        }
        inner.metrics.series.published(partition);
        match tokio::time::timeout(inner.settings.command_timeout, rx).await {
            Ok(Ok(result)) => result,
            _ => {
                inner.replies.lock().ok().map(|mut r| r.remove(&event_id));
                Err(CommandError::Unavailable("conversation did not answer in time".into()))
            }
        }
    }

    /// A human agent goes online/offline in a queue.
    pub async fn set_presence(
        &self,
        tenant: &TenantId,
        queue: &str,
        agent: AgentId,
        online: bool,
        capacity: u32,
    ) -> Result<(), CommandError> {
        let addr = self.queue(tenant, queue)?;
        addr.send(SetPresence { agent, online, capacity }).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    /// The names of a tenant's queues.
    pub fn queue_names(&self, tenant: &TenantId) -> Vec<String> {
        self.0.tenants.get(tenant).map(|t| t.queues.keys().cloned().collect()).unwrap_or_default()
    }

    /// The conversations a queue of this node has assigned, per agent.
    pub async fn queue_loads(&self, tenant: &TenantId, queue: &str) -> Result<Vec<(AgentId, u32)>, CommandError> {
        self.queue(tenant, queue)?.send(Loads).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    /// What the other nodes' copies of a queue have assigned, per agent (see [`LoadsElsewhere`]).
    pub async fn set_loads_elsewhere(
        &self,
        tenant: &TenantId,
        queue: &str,
        loads: BTreeMap<AgentId, u32>,
    ) -> Result<(), CommandError> {
        let addr = self.queue(tenant, queue)?;
        addr.send(LoadsElsewhere(loads)).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    /// The actor of a queue.
    pub fn queue(&self, tenant: &TenantId, queue: &str) -> Result<Addr<QueueAgent>, CommandError> {
        let t = self.0.tenants.get(tenant).ok_or(CommandError::UnknownTenant)?;
        t.queues.get(queue).cloned().ok_or_else(|| CommandError::UnknownQueue(queue.to_owned()))
    }

    /// The tenants this hub serves.
    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.0.tenants.keys()
    }

    /// The tenant's live feed: every event its conversations persist from now on, in each
    /// conversation's order (see [`EventFeed`]).
    pub fn subscribe(&self, tenant: &TenantId) -> Result<broadcast::Receiver<Arc<FeedBatch>>, CommandError> {
        Ok(self.0.tenants.get(tenant).ok_or(CommandError::UnknownTenant)?.feed.subscribe())
    }

    /// A tenant's policy.
    pub fn policy(&self, tenant: &TenantId) -> Option<&Arc<TenantPolicy>> {
        self.0.tenants.get(tenant).map(|t| &t.policy)
    }

    /// Where a queue stands now: who waits and for how long, which agents are online.
    pub async fn queue_snapshot(&self, tenant: &TenantId, queue: &str) -> Result<QueueSnapshot, CommandError> {
        let addr = self.queue(tenant, queue)?;
        addr.send(GetQueueSnapshot).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    /// Current state of a conversation of `tenant` (`None` if it has no messages or belongs to
    /// another tenant).
    pub async fn conversation(&self, tenant: &TenantId, id: &ConversationId) -> Option<ConversationState> {
        let registry = self.registry_of(id);
        let state = registry.send(InspectConversation { tenant: tenant.clone(), id: id.clone() }).await.ok().flatten();
        state.filter(|s| s.tenant == *tenant && s.ticket > 0)
    }

    /// One page of a tenant's conversations, as last persisted.
    pub async fn list_conversations(&self, query: &ConversationQuery) -> Result<ConversationPage, CommandError> {
        if !self.0.tenants.contains_key(&query.tenant) {
            return Err(CommandError::UnknownTenant);
        }
        self.0.store.list(query).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    /// A short summary of a conversation written by the tenant's model, for a human agent.
    pub async fn summarize(&self, tenant: &TenantId, state: &ConversationState) -> Result<String, CommandError> {
        let t = self.0.tenants.get(tenant).ok_or(CommandError::UnknownTenant)?;
        let speaker = |a: &Author| if *a == Author::Customer { Speaker::Customer } else { Speaker::Assistant };
        let request = LlmRequest {
            system_prompt: SUMMARY_PROMPT.into(),
            history: state.history.iter().map(|e| (speaker(&e.author), e.text.to_string())).collect(),
            queues: Vec::new(),
            tools: false,
        };
        match t.ai.send(Summarize(request)).await {
            Ok(Ok(summary)) => Ok(summary),
            Ok(Err(why)) => Err(CommandError::Unavailable(format!("the model could not summarise: {why}"))),
            Err(e) => Err(CommandError::Unavailable(e.to_string())),
        }
    }

    /// The journal of a conversation from sequence `from` (as far back as the store keeps it).
    pub async fn journal(&self, id: &ConversationId, from: u64) -> Result<Vec<Envelope<Event>>, CommandError> {
        self.0.store.journal(id, from).await.map_err(|e| CommandError::Unavailable(e.to_string()))
    }

    /// Live conversation actors on this node.
    pub async fn live_conversations(&self) -> usize {
        let counts = join_all(self.0.registries.iter().map(|r| r.send(LiveCount))).await;
        counts.into_iter().map(|c| c.unwrap_or(0)).sum()
    }

    /// Waits until every outbox has sent (or given up on) what it holds, at most `deadline`;
    /// `false` when time ran out. A graceful stop calls it so no reply dies with the process.
    pub async fn flush_outboxes(&self, deadline: Duration) -> bool {
        let until = tokio::time::Instant::now() + deadline;
        loop {
            let busy = join_all(self.0.outboxes.iter().map(|o| o.send(Busy))).await;
            if busy.into_iter().map(|b| b.unwrap_or(0)).sum::<usize>() == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Graceful stop, once ingress has stopped: waits until the events only this process holds
    /// (memory bus) have been handed to their conversations and handled, then stops the
    /// consumers and waits for their handovers: each lets its model turns finish (up to 5 s)
    /// and its sends be reported, as when a partition moves to another node. `false` when
    /// `until` came first.
    pub async fn drain(&self, until: tokio::time::Instant) -> bool {
        let inner = &self.0;
        let mut idle_checks = 0;
        // Idle for 100 ms in a row: a batch just taken off the bus is not in a mailbox yet, and
        // a webhook that was being answered when the listener closed publishes its event.
        while idle_checks < 5 {
            let held: usize = (0..inner.bus.partitions()).map(|p| inner.bus.held_here(p)).sum();
            let handling = inner.metrics.series.mailbox_depth.get();
            if held == 0 && handling <= 0 {
                idle_checks += 1;
            } else if tokio::time::Instant::now() >= until {
                tracing::warn!(held, handling, "events still queued at the shutdown deadline");
                self.shutdown();
                return false;
            } else {
                idle_checks = 0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.shutdown();
        loop {
            let running = inner.consumers.load(Ordering::SeqCst);
            if running == 0 {
                return true;
            }
            if tokio::time::Instant::now() >= until {
                tracing::warn!(partitions = running, "partitions still handing over at the shutdown deadline");
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the partition consumers (in-flight batches finish).
    pub fn shutdown(&self) {
        let _ = self.0.shutdown.send(true);
    }

    fn registry_of(&self, id: &ConversationId) -> &Addr<ConversationRegistry> {
        let p = partition_of(id.as_str(), self.0.bus.partitions()) as usize;
        &self.0.registries[p % self.0.registries.len()]
    }
}

/// Hands the verdicts other nodes send back to this node's waiting callers.
async fn hand_out_verdicts(mut incoming: tokio::sync::mpsc::Receiver<Verdict>, replies: Arc<Replies>) {
    while let Some((event_id, result)) = incoming.recv().await {
        let waiter = replies.lock().ok().and_then(|mut r| r.remove(&event_id));
        if let Some(tx) = waiter {
            let _ = tx.send(result);
        }
    }
}
