//! The actor shell: lifecycle (rehydrate, passivate), the journal/flush cycle and effects.

use super::{
    CheckIdle, CommandError, Drain, Handled, IdleReport, Inspect, Passivate, Process, ProcessResult, TenantRuntime,
};
use crate::dispatcher::LeaveQueue;
use crate::domain::{Author, ConversationId, OutboundContent, TenantId};
use crate::event::{Envelope, Event, Input, SendOutcome};
use crate::feed::FeedBatch;
use crate::metrics::HubMetrics;
use crate::outbox::SendOutbound;
use crate::ports::{OutboundMessage, Receipt};
use crate::state::{ConversationState, Status};
use actix::prelude::*;
use std::sync::Arc;
use tokio::time::Instant;

/// Bounded mailbox: past this the registry's sends wait (backpressure towards the bus).
const MAILBOX: usize = 64;

/// A rehydrated conversation that inherited unsent messages holds its new sends (to keep the
/// customer's order) until the partition's owner wakes it with `Resume`, or their results come
/// in. Should neither happen, it resends them after this long anyway.
const RESEND_GRACE: std::time::Duration = std::time::Duration::from_secs(15);

/// Journal events read back to find the content of messages to send again.
const RESEND_LOOKBACK: u64 = 128;

/// Work to do once the journal is durable.
pub(super) enum Effect {
    Send(SendOutbound),
    LeaveQueue(String),
}

/// One conversation.
pub struct ConversationActor {
    pub(super) state: Arc<ConversationState>,
    pub(super) rt: Arc<TenantRuntime>,
    registry: Recipient<IdleReport>,
    unsaved: Vec<Envelope<Event>>,
    /// Status before the first unsaved event, for the live feed (boxed: one pointer per actor).
    status_before: Option<Box<Status>>,
    effects: Vec<Effect>,
    /// Epoch under which the model is thinking, if it is.
    pub(super) ai_turn: Option<u64>,
    pub(super) debounce_armed: bool,
    last_activity: Instant,
    processed: u64,
    /// Trace id of the input being handled; stamped on the events it causes.
    pub(super) trace_id: String,
    /// Telegram callback query of the customer's last menu tap, answered with our next send.
    pub(super) pending_callback: Option<String>,
    /// When the input being handled reached the hub (its envelope's time, ms).
    pub(super) input_at: u64,
    /// When the latest customer message not yet answered reached the hub: what the next
    /// automated reply is measured from (the first one only: a notice sent later, on assignment
    /// say, answers nothing).
    pub(super) customer_wrote_at: Option<u64>,
    /// Sends held back behind messages inherited unsent from a previous life (see `Held`).
    held: Option<Box<Held>>,
    /// Callers of `Drain` waiting for the model turn to end; dropped when the actor stops.
    drain_waiters: Vec<tokio::sync::oneshot::Sender<()>>,
}

/// A conversation rehydrated with messages journaled but never reported on (its previous node
/// stopped or died meanwhile) may have to send them again; what it sends meanwhile waits here, so
/// the customer still gets everything in order.
struct Held {
    /// Local ids of the inherited unsent messages.
    inherited: Vec<u64>,
    /// New sends, in order.
    sends: Vec<SendOutbound>,
    /// The journal is being read to send the inherited ones again.
    resuming: bool,
}

impl ConversationActor {
    /// A conversation that will load its state from the store when it starts.
    pub fn new(id: ConversationId, tenant: TenantId, rt: Arc<TenantRuntime>, registry: Recipient<IdleReport>) -> Self {
        Self {
            state: Arc::new(ConversationState::new(id, tenant)),
            rt,
            registry,
            unsaved: Vec::new(),
            status_before: None,
            effects: Vec::new(),
            ai_turn: None,
            debounce_armed: false,
            last_activity: Instant::now(),
            processed: 0,
            trace_id: String::new(),
            pending_callback: None,
            input_at: 0,
            customer_wrote_at: None,
            held: None,
            drain_waiters: Vec::new(),
        }
    }

    /// Applies an event to the state and queues it for the journal.
    pub(super) fn record(&mut self, event: Event) {
        let now = self.rt.clock.now_ms();
        if self.unsaved.is_empty() {
            self.status_before = Some(Box::new(self.state.status.clone()));
        }
        // Copy-on-write: the store may share the last snapshot with us.
        Arc::make_mut(&mut self.state).apply(&event, now, self.rt.policy.history_window);
        // No idempotency key on journal events: (conversation, sequence) already identifies them.
        let env = Envelope::new(self.state.tenant.clone(), self.state.id.clone(), self.trace_id.clone(), now, event);
        self.unsaved.push(env);
    }

    /// Records an outbound message and queues its send for after the flush.
    pub(super) fn send(&mut self, author: Author, content: OutboundContent, callback_query_id: Option<String>) {
        let Some(to) = self.state.reply_to.clone() else {
            tracing::warn!(conversation = %self.state.id, "no reply address; message not sent");
            return;
        };
        // The customer's last tap is answered by the first message we send after it, once.
        let pending = self.pending_callback.take();
        let callback_query_id = callback_query_id.or(pending);
        let local_id = self.state.next_local_id;
        // A human's reply measures the human, not the hub: only automated ones are timed.
        let automated = matches!(author, Author::Bot | Author::System);
        self.record(Event::OutboundQueued { local_id, author, content: content.clone() });
        let Some(_) = self.rt.outboxes.get(&to.channel) else {
            self.record(Event::OutboundFailed { local_id, reason: format!("channel {} is disabled", to.channel.name) });
            return;
        };
        let message = OutboundMessage {
            tenant: self.state.tenant.clone(),
            to,
            content,
            key: format!("{}/{}", self.state.id, local_id),
            callback_query_id,
        };
        // Any reply answers the customer's message; only an automated one measures the hub.
        let since = self.customer_wrote_at.take();
        let answers_since = if automated { since } else { None };
        self.effects.push(Effect::Send(SendOutbound {
            conversation: self.state.id.clone(),
            local_id,
            trace_id: self.trace_id.clone(),
            message,
            answers_since,
        }));
    }

    pub(super) fn leave_queue(&mut self) {
        if let Some(q) = self.state.status.queue() {
            self.effects.push(Effect::LeaveQueue(q.to_owned()));
        }
    }

    pub(super) fn push_effect(&mut self, effect: Effect) {
        self.effects.push(effect);
    }

    /// Makes recorded events durable, then runs their effects. On a store failure the actor
    /// stops: its in-memory state ran ahead of the store, and the next delivery rehydrates.
    pub(super) fn flush(&mut self) -> ResponseActFuture<Self, Result<(), CommandError>> {
        Box::pin(self.flush_acking(None).map(|flushed, _, _| flushed.map(drop)))
    }

    /// [`flush`](Self::flush), acknowledging `receipt` with the write where the store can;
    /// `Ok(true)` when it did. Nothing to write: nothing acknowledged.
    pub(super) fn flush_acking(
        &mut self,
        receipt: Option<Receipt>,
    ) -> ResponseActFuture<Self, Result<bool, CommandError>> {
        if self.unsaved.is_empty() {
            self.run_effects();
            return Box::pin(fut::ready(Ok(false)));
        }
        let events = std::mem::take(&mut self.unsaved);
        let snapshot = self.state.clone();
        let store = self.rt.store.clone();
        let write = async move {
            let acked = match &receipt {
                Some(receipt) => store.append_and_ack(&snapshot, &events, receipt).await?,
                None => store.append(&snapshot, &events).await.map(|()| false)?,
            };
            Ok::<_, crate::ports::StoreError>((events, acked))
        };
        Box::pin(write.into_actor(self).map(|res, act, ctx| match res {
            Ok((events, acked)) => {
                let before = act.status_before.take();
                if let Some(before) = before.filter(|_| act.rt.feed.is_live()) {
                    act.rt.feed.publish(FeedBatch { events, before: *before, state: act.state.clone() });
                }
                act.run_effects();
                act.maybe_start_ai_turn(ctx);
                Ok(acked)
            }
            Err(e) => {
                tracing::error!(conversation = %act.state.id, error = %e, "journal write failed; stopping");
                act.effects.clear();
                ctx.stop();
                Err(CommandError::Unavailable(e.to_string()))
            }
        }))
    }

    fn run_effects(&mut self) {
        for effect in std::mem::take(&mut self.effects) {
            match effect {
                Effect::Send(msg) if self.held.is_some() => {
                    if let Some(held) = &mut self.held {
                        held.sends.push(msg);
                    }
                }
                Effect::Send(msg) => {
                    if let Some(outbox) = self.rt.outboxes.get(&msg.message.to.channel) {
                        tracing::debug!(conversation = %msg.conversation, trace_id = %msg.trace_id, "outbound.message.queued");
                        outbox.do_send(msg);
                    }
                }
                Effect::LeaveQueue(queue) => self.rt.dispatcher.leave.do_send(LeaveQueue {
                    tenant: self.state.tenant.clone(),
                    queue,
                    conversation: self.state.id.clone(),
                }),
            }
        }
    }

    /// Whether inherited messages still lack a result.
    fn inherited_unsent(&self) -> Vec<u64> {
        let Some(held) = &self.held else { return Vec::new() };
        self.state.unsent().filter(|id| held.inherited.contains(id)).collect()
    }

    /// A result came in: once every inherited message has one, nothing needs sending again and
    /// the held sends go out.
    pub(super) fn on_result_recorded(&mut self) {
        if self.held.as_ref().is_some_and(|h| !h.resuming) && self.inherited_unsent().is_empty() {
            self.release_held(Vec::new());
        }
    }

    fn release_held(&mut self, mut sends: Vec<SendOutbound>) {
        if let Some(held) = self.held.take() {
            sends.extend(held.sends);
        }
        self.effects.extend(sends.into_iter().map(Effect::Send));
        self.run_effects();
    }

    /// Sends again the inherited messages still without a result, then what was held behind
    /// them: the node that queued them is gone (a crash) or handed over with their results on
    /// the bus before this wake-up, so what is still unsent here never went out, except for a
    /// send the provider accepted just before a crash, which cannot be known (the Graph and Bot
    /// APIs have no idempotency key): sending twice beats losing a reply. The content comes
    /// from the journal (the snapshot keeps only ids).
    pub(super) fn resume_sends(&mut self, ctx: &mut Context<Self>) {
        let ids = self.inherited_unsent();
        let Some(held) = self.held.as_mut().filter(|h| !h.resuming) else { return };
        let Some(to) = self.state.reply_to.clone().filter(|_| !ids.is_empty()) else {
            self.release_held(Vec::new());
            return;
        };
        held.resuming = true;
        let store = self.rt.store.clone();
        let (id, from) = (self.state.id.clone(), self.state.seq.saturating_sub(RESEND_LOOKBACK) + 1);
        ctx.spawn(async move { store.journal(&id, from).await }.into_actor(self).map(move |journal, act, ctx| {
            let Ok(journal) = journal else {
                // Try again later rather than send the held messages before these.
                if let Some(held) = &mut act.held {
                    held.resuming = false;
                }
                ctx.run_later(RESEND_GRACE, |act, ctx| act.resume_sends(ctx));
                return;
            };
            let still = act.inherited_unsent();
            let mut resends = Vec::new();
            for event in journal {
                let Event::OutboundQueued { local_id, content, .. } = event.body else { continue };
                if !still.contains(&local_id) {
                    continue;
                }
                tracing::warn!(conversation = %act.state.id, local_id, "sending again a message a previous owner never reported on");
                HubMetrics::inc(&act.rt.metrics.outbound_resent);
                let message = OutboundMessage {
                    tenant: act.state.tenant.clone(),
                    to: to.clone(),
                    content,
                    key: format!("{}/{}", act.state.id, local_id),
                    callback_query_id: None,
                };
                resends.push(SendOutbound {
                    conversation: act.state.id.clone(),
                    local_id,
                    trace_id: event.trace_id,
                    message,
                    answers_since: None,
                });
            }
            act.release_held(resends);
        }));
    }

    /// Work in flight that a handover should let finish: a model turn, or one about to start.
    fn thinking(&self) -> bool {
        self.ai_turn.is_some() || self.debounce_armed
    }

    /// Called when a model turn or a debounce ends: a draining actor stops once nothing is left.
    pub(super) fn after_turn(&mut self, ctx: &mut Context<Self>) {
        if !self.drain_waiters.is_empty() && !self.thinking() {
            ctx.stop();
        }
    }

    fn check_idle(&mut self) {
        // A model turn, an armed debounce or a send without its result is work in flight.
        let busy = self.thinking() || self.held.is_some() || self.state.unsent().next().is_some();
        if !busy && self.last_activity.elapsed() >= self.rt.policy.idle_timeout {
            self.registry.do_send(IdleReport { id: self.state.id.clone(), processed: self.processed });
        }
    }
}

impl Actor for ConversationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX);
        self.rt.metrics.live_conversations.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Rehydrate before the first message is handled: `wait` holds the mailbox.
        let store = self.rt.store.clone();
        let id = self.state.id.clone();
        ctx.wait(async move { store.load(&id).await }.into_actor(self).map(|res, act, ctx| match res {
            Ok(Some(state)) => {
                HubMetrics::inc(&act.rt.metrics.rehydrations);
                act.state = state;
                // Messages journaled (and acknowledged) before a stop may still await the AI.
                act.maybe_start_ai_turn(ctx);
                let inherited: Vec<u64> = act.state.unsent().collect();
                if !inherited.is_empty() {
                    act.held = Some(Box::new(Held { inherited, sends: Vec::new(), resuming: false }));
                    ctx.run_later(RESEND_GRACE, |act, ctx| act.resume_sends(ctx));
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(conversation = %act.state.id, error = %e, "could not load conversation; stopping");
                ctx.stop();
            }
        }));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.rt.metrics.live_conversations.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Handler<Process> for ConversationActor {
    type Result = AtomicResponse<Self, Handled>;

    fn handle(&mut self, msg: Process, ctx: &mut Context<Self>) -> Self::Result {
        self.processed += 1;
        self.last_activity = Instant::now();
        HubMetrics::inc(&self.rt.metrics.inputs_handled);
        let Process { envelope: env, receipt } = msg;
        self.trace_id = env.trace_id.clone();
        self.input_at = env.occurred_at;
        tracing::debug!(conversation = %env.conversation_id, trace_id = %env.trace_id, kind = env.body.type_name(), "conversation.input");
        let step: ResponseActFuture<Self, ProcessResult> = match env.body {
            Input::MessageReceived(m) => self.on_customer_message(m),
            Input::StatusReceived(u) => Box::pin(fut::ready(self.on_status(u))),
            Input::Assign { queue, agent } => Box::pin(fut::ready(self.on_assign(queue, agent))),
            Input::Accept { agent } => self.on_accept(agent),
            Input::AgentReply { agent, body } => Box::pin(fut::ready(self.on_agent_reply(agent, body))),
            Input::Transfer { target } => self.on_transfer(target),
            Input::Close { by } => Box::pin(fut::ready(self.on_close(by))),
            Input::Send { author, body } => Box::pin(fut::ready(self.on_send(author, body))),
            Input::Note { author, body } => Box::pin(fut::ready(self.on_note(author, body))),
            Input::Reopen { queue } => self.on_reopen(queue),
            Input::HandToAi => Box::pin(fut::ready(self.on_hand_to_ai())),
            Input::OutboundResult { local_id, outcome } => {
                match outcome {
                    SendOutcome::Sent { provider_message_id } => {
                        self.record(Event::OutboundSent { local_id, provider_message_id })
                    }
                    SendOutcome::Failed { reason } => self.record(Event::OutboundFailed { local_id, reason }),
                }
                self.on_result_recorded();
                Box::pin(fut::ready(Ok(super::Outcome::Applied)))
            }
            Input::Resume { .. } => {
                self.resume_sends(ctx);
                self.maybe_start_ai_turn(ctx);
                Box::pin(fut::ready(Ok(super::Outcome::Applied)))
            }
        };
        // The write that completes the input acknowledges its bus entry in the same step.
        AtomicResponse::new(Box::pin(step.then(move |result, act, _| {
            // An input that could not be handled now is delivered again: not acknowledged.
            let receipt = receipt.filter(|_| !matches!(result, Err(CommandError::Unavailable(_))));
            act.flush_acking(receipt).map(move |flushed, _, _| match flushed {
                Ok(acked) => Handled { result, acked },
                Err(e) => Handled { result: Err(e), acked: false },
            })
        })))
    }
}

impl Handler<CheckIdle> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: CheckIdle, _: &mut Context<Self>) {
        self.check_idle();
    }
}

impl Handler<Passivate> for ConversationActor {
    type Result = ();

    fn handle(&mut self, _: Passivate, ctx: &mut Context<Self>) {
        HubMetrics::inc(&self.rt.metrics.passivations);
        tracing::debug!(conversation = %self.state.id, "passivated");
        ctx.stop();
    }
}

impl Handler<Drain> for ConversationActor {
    type Result = ResponseFuture<()>;

    /// The partition is being handed over: let a model turn in flight finish and persist its
    /// reply (the lease is still ours), then stop. The caller bounds the wait.
    fn handle(&mut self, _: Drain, ctx: &mut Context<Self>) -> Self::Result {
        HubMetrics::inc(&self.rt.metrics.passivations);
        if !self.thinking() {
            ctx.stop();
            return Box::pin(std::future::ready(()));
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.drain_waiters.push(tx);
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<Inspect> for ConversationActor {
    type Result = MessageResult<Inspect>;

    fn handle(&mut self, _: Inspect, _: &mut Context<Self>) -> Self::Result {
        MessageResult(ConversationState::clone(&self.state))
    }
}
