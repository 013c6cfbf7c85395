//! Outbox: one per channel (a WhatsApp number, a Telegram bot) and actor thread, the channel's
//! limits shared; a conversation's sends always go through its own thread's outbox. Sends
//! through the `Outbound` port with a rate limit (per channel, and per chat where the provider
//! wants it), retries with backoff on throttling and transient errors, and a circuit breaker.
//! Sends of one conversation go out one at a time and in order; different conversations go in
//! parallel. Results return to the conversation as `outbound.result` inputs on the bus.

use crate::breaker::CircuitBreaker;
use crate::domain::ConversationId;
use crate::event::{Envelope, Input, SendOutcome};
use crate::metrics::HubMetrics;
use crate::partition::partition_of;
use crate::ports::{Clock, Outbound, OutboundMessage, SendError};
use crate::sink::InputSink;
use crate::telemetry::{OutboundFailed, OutboundSent, RateLimited};
use actix::prelude::*;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::{HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Semaphore;

/// Limits and retry behaviour of one channel (all its outboxes together).
#[derive(Clone, Debug, PartialEq)]
pub struct OutboxPolicy {
    /// Messages per second for the whole channel (WhatsApp: 80 per number; Telegram: 30 per bot).
    pub per_second: u32,
    /// Messages per second to one chat (Telegram: 1), `None` for no per-chat limit.
    pub per_chat_per_second: Option<u32>,
    /// Attempts before a transient failure becomes permanent.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub backoff: Duration,
    /// Consecutive failures that open the breaker.
    pub breaker_failures: u32,
    /// Breaker cooldown.
    pub breaker_cooldown: Duration,
    /// Sends in flight at once on this channel (bounds the connections in use to the provider).
    pub max_in_flight: usize,
}

impl Default for OutboxPolicy {
    fn default() -> Self {
        Self {
            per_second: 80,
            per_chat_per_second: None,
            max_attempts: 6,
            backoff: Duration::from_millis(200),
            breaker_failures: 10,
            breaker_cooldown: Duration::from_secs(10),
            max_in_flight: 256,
        }
    }
}

struct Limits {
    channel: DefaultDirectRateLimiter,
    per_chat: Option<DefaultKeyedRateLimiter<String>>,
    in_flight: Semaphore,
}

/// What the outboxes of one channel share: its rate limits, its bound on sends in flight and
/// its breaker.
#[derive(Clone)]
pub struct ChannelLimits {
    limits: Arc<Limits>,
    breaker: Arc<Mutex<CircuitBreaker>>,
}

impl ChannelLimits {
    /// The limits `policy` sets.
    pub fn new(policy: &OutboxPolicy) -> Self {
        let limits = Limits {
            channel: RateLimiter::direct(quota(policy.per_second)),
            per_chat: policy.per_chat_per_second.map(|n| RateLimiter::keyed(quota(n))),
            in_flight: Semaphore::new(policy.max_in_flight.max(1)),
        };
        let breaker = CircuitBreaker::new(policy.breaker_failures, policy.breaker_cooldown);
        Self { limits: Arc::new(limits), breaker: Arc::new(Mutex::new(breaker)) }
    }

    /// Reports the channel's breaker at `/metrics` as `name`.
    pub fn named(self, name: String, metrics: &HubMetrics) -> Self {
        metrics.series.watch_breaker(name, &self.breaker);
        self
    }
}

fn quota(per_second: u32) -> Quota {
    Quota::per_second(NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN))
}

/// How long (ms) and how many finished sends an outbox remembers. A conversation can ask again
/// for a send this node already made: when its partition's lease lapsed (an overloaded node
/// renewing too late) and came back, it is rehydrated from a journal that may not hold the
/// result yet (it is still on its way through the bus). Sending again would answer twice. That
/// happens within seconds of the send; the bound keeps the memory small (about 200 bytes a send).
const RECALL_MS: u64 = 60_000;
const RECALL_AT_MOST: usize = 20_000;

/// Finished sends by (conversation, local id), oldest first.
#[derive(Default)]
struct Recent {
    outcomes: HashMap<(ConversationId, u64), SendOutcome>,
    order: VecDeque<(u64, ConversationId, u64)>,
}

impl Recent {
    fn outcome(&self, conversation: &ConversationId, local_id: u64) -> Option<SendOutcome> {
        self.outcomes.get(&(conversation.clone(), local_id)).cloned()
    }

    fn record(&mut self, now_ms: u64, conversation: ConversationId, local_id: u64, outcome: SendOutcome) {
        while let Some((at, ..)) = self.order.front()
            && (now_ms.saturating_sub(*at) > RECALL_MS || self.order.len() >= RECALL_AT_MOST)
        {
            if let Some((_, c, id)) = self.order.pop_front() {
                self.outcomes.remove(&(c, id));
            }
        }
        self.order.push_back((now_ms, conversation.clone(), local_id));
        self.outcomes.insert((conversation, local_id), outcome);
    }
}

/// One conversation's sends: one at a time, in order.
struct Lane {
    in_flight: u64,
    waiting: VecDeque<SendOutbound>,
}

/// An outbox of one channel, on one actor thread.
pub struct Outbox {
    outbound: Arc<dyn Outbound>,
    policy: OutboxPolicy,
    limits: Arc<Limits>,
    breaker: Arc<Mutex<CircuitBreaker>>,
    /// Per conversation: the message in flight and those waiting behind it.
    lanes: HashMap<ConversationId, Lane>,
    /// Sends made lately, so that none is made twice.
    recent: Recent,
    sink: Arc<dyn InputSink>,
    clock: Arc<dyn Clock>,
    metrics: Arc<HubMetrics>,
}

impl Outbox {
    /// An outbox over `outbound` within `limits`, which the channel's other outboxes share.
    pub fn new(
        limits: ChannelLimits,
        outbound: Arc<dyn Outbound>,
        policy: OutboxPolicy,
        sink: Arc<dyn InputSink>,
        clock: Arc<dyn Clock>,
        metrics: Arc<HubMetrics>,
    ) -> Self {
        Self {
            outbound,
            policy,
            limits: limits.limits,
            breaker: limits.breaker,
            lanes: HashMap::new(),
            recent: Recent::default(),
            sink,
            clock,
            metrics,
        }
    }

    fn start_send(&mut self, msg: SendOutbound, ctx: &mut Context<Self>) {
        let outbound = self.outbound.clone();
        let limits = self.limits.clone();
        let breaker = self.breaker.clone();
        let policy = self.policy.clone();
        let metrics = self.metrics.clone();
        let message = msg.message.clone();
        let made = self.recent.outcome(&msg.conversation, msg.local_id);
        let repeat = made.is_some();
        if repeat {
            tracing::info!(conversation = %msg.conversation, local_id = msg.local_id, "already sent: its result is reported again, the message is not sent twice");
        }
        let attempt = async move {
            match made {
                Some(outcome) => outcome,
                None => deliver(&*outbound, &message, &limits, &breaker, &policy, &metrics).await,
            }
        };
        ctx.spawn(attempt.into_actor(self).then(move |outcome, act, _| {
            match &outcome {
                _ if repeat => {}
                SendOutcome::Sent { provider_message_id } => {
                    let now = act.clock.now_ms();
                    OutboundSent {
                        conversation: &msg.conversation,
                        trace_id: &msg.trace_id,
                        provider_message_id,
                        channel: msg.message.to.channel.kind.as_str(),
                        reply_latency: msg.answers_since.map(|since| Duration::from_millis(now.saturating_sub(since))),
                    }
                    .emit(&act.metrics);
                }
                SendOutcome::Failed { reason } => {
                    OutboundFailed { conversation: &msg.conversation, trace_id: &msg.trace_id, reason }
                        .emit(&act.metrics);
                }
            }
            if !repeat {
                act.recent.record(act.clock.now_ms(), msg.conversation.clone(), msg.local_id, outcome.clone());
            }
            let env = Envelope::new(
                msg.message.tenant.clone(),
                msg.conversation.clone(),
                msg.trace_id.clone(),
                act.clock.now_ms(),
                Input::OutboundResult { local_id: msg.local_id, outcome },
            );
            // The lane stays busy until the result is durable (see `BusyIn`).
            act.sink.submit_durable(env).into_actor(act).map(move |(), act, ctx| {
                act.metrics.series.replies_queued.dec();
                let next = act.lanes.get_mut(&msg.conversation).and_then(|lane| lane.waiting.pop_front());
                match next {
                    Some(next) => {
                        if let Some(lane) = act.lanes.get_mut(&next.conversation) {
                            lane.in_flight = next.local_id;
                        }
                        act.start_send(next, ctx);
                    }
                    None => {
                        act.lanes.remove(&msg.conversation);
                    }
                }
            })
        }));
    }
}

/// One send with its retries. Returns what the conversation should record.
async fn deliver(
    outbound: &dyn Outbound,
    msg: &OutboundMessage,
    limits: &Limits,
    breaker: &Mutex<CircuitBreaker>,
    policy: &OutboxPolicy,
    metrics: &HubMetrics,
) -> SendOutcome {
    let mut attempt = 0;
    let mut delay = policy.backoff;
    loop {
        attempt += 1;
        limits.channel.until_ready().await;
        if let Some(per_chat) = &limits.per_chat {
            per_chat.until_key_ready(&msg.to.recipient).await;
        }
        let allowed = breaker.lock().map(|mut b| b.try_acquire()).unwrap_or(true);
        if !allowed {
            // The provider is known to be down: wait for the breaker's trial instead of spending
            // attempts, so a short outage delays replies rather than failing them.
            attempt -= 1;
            tokio::time::sleep(policy.breaker_cooldown.min(Duration::from_secs(1))).await;
            continue;
        }
        let result = {
            let _slot = limits.in_flight.acquire().await;
            outbound.send(msg).await
        };
        let answered = !matches!(result, Err(SendError::Transient(_)));
        if answered && let Ok(mut b) = breaker.lock() {
            // Any answer from the provider (even a refusal) shows it is up.
            b.on_success();
        }
        let wait = match result {
            Ok(id) => return SendOutcome::Sent { provider_message_id: id },
            Err(SendError::Permanent(reason)) => return SendOutcome::Failed { reason },
            // Throttling is the provider working as designed: wait as told.
            Err(SendError::RateLimited { retry_after }) => {
                RateLimited { scope: "provider", whose: &msg.to.channel.name }.emit(metrics);
                retry_after
            }
            Err(SendError::Transient(reason)) => {
                if let Ok(mut b) = breaker.lock() {
                    b.on_failure();
                }
                tracing::debug!(%reason, attempt, "outbound transient failure");
                let d = delay;
                delay = delay.saturating_mul(2).min(Duration::from_secs(30));
                d
            }
        };
        if attempt >= policy.max_attempts {
            return SendOutcome::Failed { reason: format!("gave up after {attempt} attempts") };
        }
        HubMetrics::inc(&metrics.outbound_retries);
        tokio::time::sleep(wait).await;
    }
}

impl Actor for Outbox {
    type Context = Context<Self>;
}

/// Send a message to a customer.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct SendOutbound {
    /// Conversation it belongs to (ordering lane, and where the result goes).
    pub conversation: ConversationId,
    /// The conversation's id for it.
    pub local_id: u64,
    /// Trace id of the request that caused it.
    pub trace_id: String,
    /// What and where.
    pub message: OutboundMessage,
    /// For an automated reply: when the customer message it answers reached the hub (ms), so
    /// the send measures the hub's end-to-end latency.
    pub answers_since: Option<u64>,
}

/// How many conversations have a send queued or in flight (a graceful stop waits for zero).
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct Busy;

impl Handler<Busy> for Outbox {
    type Result = usize;

    fn handle(&mut self, _: Busy, _: &mut Context<Self>) -> usize {
        self.lanes.len()
    }
}

/// How many conversations of one partition have a send queued, in flight, or whose result is
/// not yet on the bus: a partition is handed over only once this is zero, so the next owner
/// finds every result it needs and sends nothing twice.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct BusyIn {
    /// The partition.
    pub partition: u32,
    /// How many partitions there are.
    pub partitions: u32,
}

impl Handler<BusyIn> for Outbox {
    type Result = usize;

    fn handle(&mut self, msg: BusyIn, _: &mut Context<Self>) -> usize {
        self.lanes.keys().filter(|c| partition_of(c.as_str(), msg.partitions) == msg.partition).count()
    }
}

impl Handler<SendOutbound> for Outbox {
    type Result = ();

    fn handle(&mut self, msg: SendOutbound, ctx: &mut Context<Self>) {
        if let Some(lane) = self.lanes.get_mut(&msg.conversation) {
            // A conversation sending again what is still here (it was rehydrated and gave up
            // hearing back): the one in the lane will report.
            if lane.in_flight != msg.local_id && !lane.waiting.iter().any(|queued| queued.local_id == msg.local_id) {
                self.metrics.series.replies_queued.inc();
                lane.waiting.push_back(msg);
            }
            return;
        }
        self.metrics.series.replies_queued.inc();
        self.lanes.insert(msg.conversation.clone(), Lane { in_flight: msg.local_id, waiting: VecDeque::new() });
        self.start_send(msg, ctx);
    }
}
