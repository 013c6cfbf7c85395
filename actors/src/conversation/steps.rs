//! What a conversation does with each input: the routing, triage, AI-turn and command rules.

use super::actor::{ConversationActor, Effect};
use super::{CommandError, Outcome, ProcessResult};
use crate::agents::ai::{AiOutcome, Generate};
use crate::agents::queue::AcceptError;
use crate::agents::triage::{Triage, TriageDecision};
use crate::dispatcher::{DispatchError, LeaveQueue, MoveToAgent, RequestHandoff, RouteNew, TakeError, TakeWaiting};
use crate::domain::{AgentId, Author, DeliveryUpdate, InboundMessage};
use crate::event::{Event, TransferTarget};
use crate::metrics::HubMetrics;
use crate::ports::{LlmAction, LlmRequest, Speaker};
use crate::state::{HistoryEntry, Status, text};
use crate::tenant::Route;
use actix::prelude::*;

type Step = ResponseActFuture<ConversationActor, ProcessResult>;

fn done(result: ProcessResult) -> Step {
    Box::pin(fut::ready(result))
}

impl ConversationActor {
    pub(super) fn on_customer_message(&mut self, msg: InboundMessage) -> Step {
        if self.state.has_handled(&msg.provider_id) {
            HubMetrics::inc(&self.rt.metrics.duplicates_in_conversation);
            return done(Ok(Outcome::Duplicate));
        }
        self.rt.metrics.series.message(msg.reply_to.channel.kind.as_str(), "in");
        self.customer_wrote_at = Some(self.input_at);
        let callback = msg.callback_query_id.clone();
        self.pending_callback = callback.clone();
        match self.state.status.clone() {
            Status::Closed => {
                self.record(Event::Opened { ticket: self.state.ticket + 1 });
                let tenant = self.state.tenant.clone();
                let ask = self.rt.dispatcher.route.send(RouteNew(tenant));
                Box::pin(ask.into_actor(self).then(move |route, act, _| {
                    let route = match route {
                        Ok(Ok(route)) => route,
                        _ => Route::Queue(act.rt.policy.default_queue.clone()),
                    };
                    act.enter(route, msg, callback)
                }))
            }
            Status::Bot => {
                self.record(Event::MessageReceived(Box::new(msg)));
                done(Ok(Outcome::Applied))
            }
            Status::Triage { invalid_attempts } => {
                let input = msg.content.menu_input().unwrap_or_default().to_owned();
                self.record(Event::MessageReceived(Box::new(msg)));
                let ask = self.rt.triage.send(Triage { input: Some(input), invalid_attempts });
                Box::pin(ask.into_actor(self).then(move |decision, act, _| match decision {
                    Ok(d) => act.on_triage(d, callback),
                    Err(_) => act.handoff(None, "triage unavailable".into()),
                }))
            }
            Status::Queued { .. } | Status::Assigned { .. } => {
                self.record(Event::MessageReceived(Box::new(msg)));
                done(Ok(Outcome::Applied))
            }
        }
    }

    /// A new ticket enters its first route. The route event comes before the message so the AI
    /// answers the message that opened the ticket.
    fn enter(&mut self, route: Route, msg: InboundMessage, callback: Option<String>) -> Step {
        match route {
            Route::Ai => {
                self.record(Event::AiStarted);
                self.record(Event::MessageReceived(Box::new(msg)));
                done(Ok(Outcome::Applied))
            }
            Route::Triage => {
                self.record(Event::TriageStarted);
                self.record(Event::MessageReceived(Box::new(msg)));
                let ask = self.rt.triage.send(Triage { input: None, invalid_attempts: 0 });
                Box::pin(ask.into_actor(self).then(move |decision, act, _| match decision {
                    Ok(d) => act.on_triage(d, callback),
                    Err(_) => act.handoff(None, "triage unavailable".into()),
                }))
            }
            Route::Queue(queue) => {
                self.record(Event::MessageReceived(Box::new(msg)));
                self.handoff(Some(queue), "entry route".into())
            }
        }
    }

    fn on_triage(&mut self, decision: TriageDecision, callback: Option<String>) -> Step {
        match decision {
            TriageDecision::ShowMenu(menu) => {
                self.send(Author::System, menu, callback);
                done(Ok(Outcome::Applied))
            }
            TriageDecision::Chosen(Route::Ai) => {
                self.record(Event::AiStarted);
                let greeting = self.rt.policy.notices.ai_greeting.clone();
                self.send(Author::System, text(greeting), callback);
                done(Ok(Outcome::Applied))
            }
            TriageDecision::Chosen(Route::Triage) => done(Ok(Outcome::Applied)),
            TriageDecision::Chosen(Route::Queue(queue)) => self.handoff(Some(queue), "triage option".into()),
            TriageDecision::Invalid { repeat } => {
                self.record(Event::TriageInvalid);
                self.send(Author::System, repeat, callback);
                done(Ok(Outcome::Applied))
            }
            TriageDecision::Exhausted { queue } => {
                self.record(Event::TriageInvalid);
                self.handoff(Some(queue), "triage: too many invalid answers".into())
            }
        }
    }

    /// Hands the conversation to a human queue and tells the customer where they stand.
    pub(super) fn handoff(&mut self, queue: Option<String>, reason: String) -> Step {
        let ask = self.rt.dispatcher.handoff.send(RequestHandoff {
            tenant: self.state.tenant.clone(),
            conversation: self.state.id.clone(),
            queue,
            reason: reason.clone(),
            trace_id: self.trace_id.clone(),
        });
        Box::pin(ask.into_actor(self).map(move |res, act, _| {
            let handoff = match res {
                Ok(Ok(h)) => h,
                Ok(Err(e)) => return Err(CommandError::Unavailable(e.to_string())),
                Err(e) => return Err(CommandError::Unavailable(e.to_string())),
            };
            act.record(Event::HandoffRequested { queue: handoff.queue.clone(), reason });
            act.record(Event::Queued { queue: handoff.queue.clone(), position: handoff.enqueued.position });
            let notices = &act.rt.policy.notices;
            let notice = if handoff.enqueued.open {
                notices
                    .queued
                    .replace("{position}", &handoff.enqueued.position.to_string())
                    .replace("{queue}", &handoff.queue)
            } else {
                notices.out_of_hours.clone()
            };
            act.send(Author::System, text(notice), None);
            Ok(Outcome::Applied)
        }))
    }

    /// Starts a model turn if the AI owns the conversation, nothing is in flight and the
    /// customer has said something not yet answered.
    pub(super) fn maybe_start_ai_turn(&mut self, ctx: &mut Context<Self>) {
        if self.state.status != Status::Bot || self.ai_turn.is_some() || self.state.unanswered().next().is_none() {
            return;
        }
        match self.rt.policy.ai.debounce {
            Some(window) if !self.debounce_armed => {
                self.debounce_armed = true;
                ctx.run_later(window, |act, ctx| {
                    act.debounce_armed = false;
                    act.start_ai_turn(ctx);
                    act.after_turn(ctx);
                });
            }
            Some(_) => {}
            None => self.start_ai_turn(ctx),
        }
    }

    fn start_ai_turn(&mut self, ctx: &mut Context<Self>) {
        if self.state.status != Status::Bot || self.ai_turn.is_some() {
            return;
        }
        let Some(through) = self.state.unanswered().last().map(|e| e.seq) else { return };
        let epoch = self.state.epoch;
        self.ai_turn = Some(epoch);
        // The model reads what it already answered first, then everything still unanswered:
        // messages that arrived while it was thinking come after its previous reply.
        let answered = self.state.ai_answered_seq;
        let is_pending = |e: &&HistoryEntry| e.author == Author::Customer && e.seq > answered;
        let speaker =
            |e: &HistoryEntry| if e.author == Author::Customer { Speaker::Customer } else { Speaker::Assistant };
        let history = (self.state.history.iter().filter(|e| !is_pending(e)))
            .chain(self.state.history.iter().filter(is_pending))
            .map(|e| (speaker(e), e.text.to_string()))
            .collect();
        let policy = &self.rt.policy;
        let request = LlmRequest {
            system_prompt: policy.ai.system_prompt.clone(),
            history,
            queues: policy.queues.iter().map(|q| q.name.clone()).collect(),
            tools: true,
        };
        let trace_id = self.trace_id.clone();
        ctx.spawn(self.rt.ai.send(Generate(request)).into_actor(self).map(move |outcome, act, ctx| {
            act.ai_turn = None;
            // The agent actor gone (shutting down) is the model being unavailable: fallback and
            // handoff, never silence.
            let outcome = outcome.unwrap_or_else(|e| {
                tracing::error!(conversation = %act.state.id, error = %e, "ai agent unreachable");
                AiOutcome::fallback(&act.rt.policy, "ai agent unreachable")
            });
            if act.state.epoch != epoch || act.state.status != Status::Bot {
                HubMetrics::inc(&act.rt.metrics.stale_ai_replies_dropped);
                tracing::info!(conversation = %act.state.id, epoch, now = act.state.epoch, "stale ai reply dropped");
                // A new ticket may have opened with the AI while this one was thinking.
                act.maybe_start_ai_turn(ctx);
                act.after_turn(ctx);
                return;
            }
            act.trace_id = trace_id;
            let step = act.apply_ai(outcome, through);
            ctx.wait(step.then(|_, act, _| act.flush()).map(|_, act, ctx| act.after_turn(ctx)));
        }));
    }

    fn apply_ai(&mut self, outcome: AiOutcome, through: u64) -> Step {
        tracing::debug!(conversation = %self.state.id, trace_id = %self.trace_id, fallback = outcome.fallback, tokens = outcome.prompt_tokens + outcome.completion_tokens, "agent.ai.response.generated");
        self.record(Event::AiResponse {
            answered_through: through,
            prompt_tokens: outcome.prompt_tokens,
            completion_tokens: outcome.completion_tokens,
            fallback: outcome.fallback,
        });
        let author = if outcome.fallback { Author::System } else { Author::Bot };
        match outcome.action {
            LlmAction::Reply(body) => {
                self.send(author, text(body), None);
                done(Ok(Outcome::Applied))
            }
            LlmAction::Handoff { queue, reason, message } => {
                let notice = message.unwrap_or_else(|| self.rt.policy.notices.handoff.clone());
                self.send(author, text(notice), None);
                self.handoff(queue, reason)
            }
            LlmAction::Close { message } => {
                if let Some(body) = message {
                    self.send(author, text(body), None);
                }
                // The customer wrote again while the model decided to close: keep the ticket open
                // so the next turn answers them.
                let wrote_since = self.state.unanswered().any(|e| e.seq > through);
                if !wrote_since {
                    self.record(Event::Closed { by: Author::Bot });
                }
                done(Ok(Outcome::Applied))
            }
        }
    }

    pub(super) fn on_status(&mut self, update: DeliveryUpdate) -> ProcessResult {
        let known =
            self.state.outbound.iter().find(|r| r.provider_message_id.as_deref() == Some(&update.provider_message_id));
        match known {
            Some(rec) if rec.state.as_ref().is_none_or(|s| update.state.rank() > s.rank()) => {
                self.record(Event::StatusReceived(Box::new(update)));
                Ok(Outcome::Applied)
            }
            Some(_) => Ok(Outcome::Duplicate),
            None => Ok(Outcome::Ignored),
        }
    }

    pub(super) fn on_assign(&mut self, queue: String, agent: AgentId) -> ProcessResult {
        match &self.state.status {
            Status::Queued { queue: q } if *q == queue => {
                self.record(Event::Assigned { queue, agent: agent.clone() });
                let notice = self.rt.policy.notices.assigned.replace("{agent}", agent.as_str());
                self.send(Author::System, text(notice), None);
                Ok(Outcome::Applied)
            }
            Status::Assigned { queue: q, agent: a } if *q == queue && *a == agent => Ok(Outcome::Duplicate),
            other => {
                // The queue thought it was waiting: free the agent's slot there.
                let why = format!("conversation is {} and no longer waits in {queue}", other.name());
                self.push_effect(Effect::LeaveQueue(queue));
                Err(CommandError::Conflict(why))
            }
        }
    }

    pub(super) fn on_agent_reply(&mut self, agent: AgentId, body: String) -> ProcessResult {
        if body.trim().is_empty() {
            return Err(CommandError::Invalid("reply text is empty".into()));
        }
        match &self.state.status {
            Status::Assigned { agent: owner, .. } if *owner == agent => {}
            Status::Closed => return Err(CommandError::Closed),
            _ => return Err(CommandError::NotAssignedToYou),
        }
        self.check_window()?;
        self.send(Author::Agent(agent), text(body), None);
        Ok(Outcome::Applied)
    }

    fn check_window(&self) -> Result<(), CommandError> {
        let window = self.rt.policy.service_window.as_millis() as u64;
        if self.state.service_window_open(self.rt.clock.now_ms(), window) {
            return Ok(());
        }
        HubMetrics::inc(&self.rt.metrics.window_refusals);
        Err(CommandError::WindowClosed)
    }

    pub(super) fn on_send(&mut self, author: Author, body: String) -> ProcessResult {
        if body.trim().is_empty() {
            return Err(CommandError::Invalid("message text is empty".into()));
        }
        if self.state.status == Status::Closed {
            return Err(CommandError::Closed);
        }
        self.check_window()?;
        self.send(author, text(body), None);
        Ok(Outcome::Applied)
    }

    pub(super) fn on_note(&mut self, author: Author, body: String) -> ProcessResult {
        if body.trim().is_empty() {
            return Err(CommandError::Invalid("note text is empty".into()));
        }
        if self.state.ticket == 0 {
            return Err(CommandError::Invalid("conversation has no messages yet".into()));
        }
        self.record(Event::NoteAdded { author, body });
        Ok(Outcome::Applied)
    }

    pub(super) fn on_reopen(&mut self, queue: Option<String>) -> Step {
        if self.state.status != Status::Closed {
            return done(Err(CommandError::Conflict(format!(
                "conversation is {}, not closed",
                self.state.status.name()
            ))));
        }
        if self.state.ticket == 0 {
            return done(Err(CommandError::Invalid("conversation has no messages yet".into())));
        }
        if let Some(q) = &queue
            && self.rt.policy.queue(q).is_none()
        {
            return done(Err(CommandError::UnknownQueue(q.clone())));
        }
        self.record(Event::Opened { ticket: self.state.ticket + 1 });
        self.handoff(queue, "reopened".into())
    }

    pub(super) fn on_hand_to_ai(&mut self) -> ProcessResult {
        match self.state.status {
            Status::Bot => Ok(Outcome::Duplicate),
            Status::Closed => Err(CommandError::Closed),
            _ => {
                self.leave_queue();
                self.record(Event::AiStarted);
                Ok(Outcome::Applied)
            }
        }
    }

    pub(super) fn on_transfer(&mut self, target: TransferTarget) -> Step {
        if self.state.status == Status::Closed {
            return done(Err(CommandError::Closed));
        }
        match target {
            TransferTarget::Queue(queue) => {
                if self.rt.policy.queue(&queue).is_none() {
                    return done(Err(CommandError::UnknownQueue(queue)));
                }
                // Leave the old queue before joining the new one: both go through the dispatcher in
                // order, so a transfer back into the same queue re-enqueues instead of vanishing.
                if let Some(old) = self.state.status.queue() {
                    self.rt.dispatcher.leave.do_send(LeaveQueue {
                        tenant: self.state.tenant.clone(),
                        queue: old.to_owned(),
                        conversation: self.state.id.clone(),
                    });
                }
                self.record(Event::Transferred { target: TransferTarget::Queue(queue.clone()) });
                self.handoff(Some(queue), "transfer".into())
            }
            TransferTarget::Agent(agent) => {
                let Some(queue) = self.state.status.queue().map(str::to_owned) else {
                    return done(Err(CommandError::Conflict(
                        "only queued or assigned conversations move to an agent".into(),
                    )));
                };
                // The queue checks the agent (online, with room) before anything is recorded.
                let ask = self.rt.dispatcher.move_to_agent.send(MoveToAgent {
                    tenant: self.state.tenant.clone(),
                    queue,
                    conversation: self.state.id.clone(),
                    agent: agent.clone(),
                });
                Box::pin(ask.into_actor(self).map(move |res, act, _| match res {
                    Ok(Ok(())) => {
                        act.record(Event::Transferred { target: TransferTarget::Agent(agent) });
                        Ok(Outcome::Applied)
                    }
                    Ok(Err(DispatchError::AgentUnavailable(why))) => Err(CommandError::Conflict(why)),
                    Ok(Err(e)) => Err(CommandError::Unavailable(e.to_string())),
                    Err(e) => Err(CommandError::Unavailable(e.to_string())),
                }))
            }
        }
    }

    /// An agent takes the conversation out of its queue. The queue decides (it may have just
    /// given it to someone else, or the agent may be full); on yes it assigns the conversation,
    /// which arrives here as `Assign` right after this.
    pub(super) fn on_accept(&mut self, agent: AgentId) -> Step {
        let queue = match &self.state.status {
            Status::Closed => return done(Err(CommandError::Closed)),
            Status::Queued { queue } => queue.clone(),
            other => {
                return done(Err(CommandError::Conflict(format!(
                    "{}: conversation is not waiting in a queue (it is {})",
                    AcceptError::NotWaiting,
                    other.name()
                ))));
            }
        };
        let ask = self.rt.dispatcher.take.send(TakeWaiting {
            tenant: self.state.tenant.clone(),
            queue,
            conversation: self.state.id.clone(),
            agent,
        });
        Box::pin(ask.into_actor(self).map(|res, _, _| match res {
            Ok(Ok(())) => Ok(Outcome::Applied),
            Ok(Err(TakeError::Refused(AcceptError::NoCapacity))) => Err(CommandError::AgentUnavailable),
            Ok(Err(TakeError::Refused(e))) => Err(CommandError::Conflict(e.to_string())),
            Ok(Err(e)) => Err(CommandError::Unavailable(e.to_string())),
            Err(e) => Err(CommandError::Unavailable(e.to_string())),
        }))
    }

    pub(super) fn on_close(&mut self, by: Author) -> ProcessResult {
        if self.state.status == Status::Closed {
            return Ok(Outcome::Duplicate);
        }
        self.leave_queue();
        self.record(Event::Closed { by });
        Ok(Outcome::Applied)
    }
}
