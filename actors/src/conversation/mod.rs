//! The conversation actor: one per conversation, the single writer of its state. Messages are
//! handled in arrival order; slow work (the model) runs beside the mailbox, and its result is
//! dropped if ownership moved meanwhile (the ownership epoch), so a bot never talks over a human.

mod actor;
mod steps;

pub use actor::ConversationActor;

use crate::agents::ai::Generate;
use crate::agents::triage::Triage;
use crate::dispatcher::DispatcherPort;
use crate::domain::ChannelRef;
use crate::event::{Envelope, Input};
use crate::feed::EventFeed;
use crate::metrics::HubMetrics;
use crate::outbox::SendOutbound;
use crate::ports::{Clock, ConversationStore, Receipt};
use crate::state::ConversationState;
use crate::tenant::TenantPolicy;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// Everything a conversation of one tenant talks to.
pub struct TenantRuntime {
    /// The tenant's policy.
    pub policy: Arc<TenantPolicy>,
    /// Routing.
    pub dispatcher: DispatcherPort,
    /// The tenant's AI agent on this actor thread.
    pub ai: Recipient<Generate>,
    /// The tenant's triage bot.
    pub triage: Recipient<Triage>,
    /// Outboxes by channel; a channel missing here is disabled.
    pub outboxes: HashMap<ChannelRef, Recipient<SendOutbound>>,
    /// Durable state.
    pub store: Arc<dyn ConversationStore>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Counters.
    pub metrics: Arc<HubMetrics>,
    /// The tenant's live feed of persisted events.
    pub feed: EventFeed,
}

/// What happened to an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It changed the conversation.
    Applied,
    /// It was a repeat of something already handled.
    Duplicate,
    /// Nothing to do (e.g. a receipt for a message we do not know).
    Ignored,
}

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CommandError {
    /// WhatsApp allows free-form replies only within 24 h of the customer's last message.
    #[error("outside the 24-hour customer service window: only template messages can be sent")]
    WindowClosed,
    /// The agent does not own the conversation.
    #[error("conversation is not assigned to this agent")]
    NotAssignedToYou,
    /// The conversation has no open ticket.
    #[error("conversation is closed")]
    Closed,
    /// No such queue in the tenant.
    #[error("unknown queue {0}")]
    UnknownQueue(String),
    /// The state moved on (e.g. assignment of a conversation no longer waiting).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The agent is offline or has no room for another conversation.
    #[error("agent is offline or at capacity")]
    AgentUnavailable,
    /// Bad arguments.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// Unknown tenant.
    #[error("unknown tenant")]
    UnknownTenant,
    /// A dependency (store, dispatcher) failed; retry later.
    #[error("unavailable: {0}")]
    Unavailable(String),
}

/// Result of handing an input to a conversation.
pub type ProcessResult = Result<Outcome, CommandError>;

/// Handle one input (from the registry).
#[derive(Message, Debug)]
#[rtype(result = "Handled")]
pub struct Process {
    /// The input.
    pub envelope: Envelope<Input>,
    /// Its bus entry, acknowledged by the write that completes its handling where the store can.
    pub receipt: Option<Receipt>,
}

/// What became of an input.
#[derive(Debug)]
pub struct Handled {
    /// The conversation's verdict.
    pub result: ProcessResult,
    /// The write that completed it also acknowledged its bus entry.
    pub acked: bool,
}

/// The registry decided this idle actor stops (its state is in the store).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Passivate;

/// The partition is handed over: finish the model turn in flight, then stop. Answers when the
/// actor stops.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Drain;

/// The registry asks a quiet actor whether it is idle; it answers with an `IdleReport` if so.
/// (One sweep per registry instead of a timer per actor keeps idle conversations small.)
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct CheckIdle;

/// Asks for a copy of the state (console, tests).
#[derive(Message, Debug)]
#[rtype(result = "ConversationState")]
pub struct Inspect;

/// An idle actor tells its registry how many deliveries it has handled; the registry stops it
/// only if it has not delivered more since (so nothing in flight is lost).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct IdleReport {
    /// Which conversation.
    pub id: crate::domain::ConversationId,
    /// Deliveries handled so far.
    pub processed: u64,
}
