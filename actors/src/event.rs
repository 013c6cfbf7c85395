//! The event envelope and its two payload families: bus inputs (what a conversation is told)
//! and journal events (what a conversation records). Both serialize to the documented wire form
//! `{event_id, type, tenant_id, conversation_id, trace_id, idempotency_key, occurred_at, version, payload}`.

use crate::domain::{AgentId, Author, ConversationId, DeliveryUpdate, InboundMessage, OutboundContent, TenantId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Version of the envelope format.
pub const ENVELOPE_VERSION: u32 = 1;

/// Every event, on the bus and in journals.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// UUID v7: unique and time-ordered.
    pub event_id: Uuid,
    /// Owning tenant.
    pub tenant_id: TenantId,
    /// Conversation the event belongs to; also the partition key.
    pub conversation_id: ConversationId,
    /// Request trace id, carried end to end.
    pub trace_id: String,
    /// Key that makes a repeat of the same intent harmless (provider message id, client key).
    pub idempotency_key: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub occurred_at: u64,
    /// Envelope format version.
    pub version: u32,
    /// The node whose caller waits for the verdict of this command, when that node may not be
    /// the one that runs the conversation (several nodes on Redis). Absent on everything else.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<String>,
    /// `type` + `payload`.
    #[serde(flatten)]
    pub body: B,
}

impl<B> Envelope<B> {
    /// A new envelope with a fresh v7 id.
    pub fn new(
        tenant_id: TenantId,
        conversation_id: ConversationId,
        trace_id: impl Into<String>,
        occurred_at: u64,
        body: B,
    ) -> Self {
        Self {
            event_id: Uuid::now_v7(),
            tenant_id,
            conversation_id,
            trace_id: trace_id.into(),
            idempotency_key: None,
            occurred_at,
            version: ENVELOPE_VERSION,
            reply_to: None,
            body,
        }
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Same metadata, another body (used to journal what an input caused).
    pub fn derive<C>(&self, occurred_at: u64, body: C) -> Envelope<C> {
        Envelope {
            event_id: Uuid::now_v7(),
            tenant_id: self.tenant_id.clone(),
            conversation_id: self.conversation_id.clone(),
            trace_id: self.trace_id.clone(),
            idempotency_key: self.idempotency_key.clone(),
            occurred_at,
            version: ENVELOPE_VERSION,
            reply_to: None,
            body,
        }
    }
}

/// Where a transfer sends a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferTarget {
    /// Back to the waiting list of a queue.
    Queue(String),
    /// Straight to an agent (in the current queue).
    Agent(AgentId),
}

/// What a conversation is told through the bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum Input {
    /// A customer message.
    #[serde(rename = "inbox.message.received")]
    MessageReceived(InboundMessage),
    /// A delivery receipt for one of our messages.
    #[serde(rename = "inbox.message.status")]
    StatusReceived(DeliveryUpdate),
    /// A queue assigned the conversation to an agent.
    #[serde(rename = "command.assign")]
    Assign {
        /// Queue that made the assignment.
        queue: String,
        /// The agent.
        agent: AgentId,
    },
    /// A human agent takes the conversation while it waits in its queue (the console's
    /// "accept"). It goes to the node that runs the conversation, whose queue holds the waiting
    /// list, so an agent signed on at any node can take any waiting conversation.
    #[serde(rename = "command.accept")]
    Accept {
        /// Who takes it.
        agent: AgentId,
    },
    /// A human agent replies.
    #[serde(rename = "command.reply")]
    AgentReply {
        /// Who replies.
        agent: AgentId,
        /// The text.
        body: String,
    },
    /// Move the conversation to another queue or agent.
    #[serde(rename = "command.transfer")]
    Transfer {
        /// Destination.
        target: TransferTarget,
    },
    /// Close the ticket.
    #[serde(rename = "command.close")]
    Close {
        /// Who closes.
        by: Author,
    },
    /// An integration (bot, MCP client) writes to the customer; unlike an agent reply it does
    /// not need to own the conversation, but the ticket must be open.
    #[serde(rename = "command.send")]
    Send {
        /// Who writes.
        author: Author,
        /// The text.
        body: String,
    },
    /// An internal note for the team; never sent to the customer nor shown to the AI.
    #[serde(rename = "command.note")]
    Note {
        /// Who writes it.
        author: Author,
        /// The text.
        body: String,
    },
    /// Opens a new ticket on a closed conversation and queues it for a human.
    #[serde(rename = "command.reopen")]
    Reopen {
        /// Queue to wait in (the tenant's default queue if `None`).
        queue: Option<String>,
    },
    /// Gives the conversation back to the AI agent.
    #[serde(rename = "command.handoff_to_ai")]
    HandToAi,
    /// The outbox's verdict on a send.
    #[serde(rename = "outbound.result")]
    OutboundResult {
        /// Our id of the outbound message.
        local_id: u64,
        /// Provider id, or why it failed.
        outcome: SendOutcome,
    },
    /// The partition's new owner wakes a conversation that owed work (a model turn, a send)
    /// when its previous owner stopped: it resumes what is still undone.
    #[serde(rename = "conversation.resume")]
    Resume {
        /// Ownership epoch of the partition's owner that queued it. A wake-up queued by an owner
        /// that let go before reading it is dropped: results its sends put on the bus come after
        /// it, and acting on it would send those messages twice.
        epoch: u64,
    },
}

impl Input {
    /// The event type name, for logs and metrics.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::MessageReceived(_) => "inbox.message.received",
            Self::StatusReceived(_) => "inbox.message.status",
            Self::Assign { .. } => "command.assign",
            Self::Accept { .. } => "command.accept",
            Self::AgentReply { .. } => "command.reply",
            Self::Transfer { .. } => "command.transfer",
            Self::Close { .. } => "command.close",
            Self::Send { .. } => "command.send",
            Self::Note { .. } => "command.note",
            Self::Reopen { .. } => "command.reopen",
            Self::HandToAi => "command.handoff_to_ai",
            Self::OutboundResult { .. } => "outbound.result",
            Self::Resume { .. } => "conversation.resume",
        }
    }
}

/// Result of one outbound send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum SendOutcome {
    /// Accepted by the provider.
    Sent {
        /// The provider's message id (`wamid…`, Telegram message id).
        provider_message_id: String,
    },
    /// Given up.
    Failed {
        /// Why, readable.
        reason: String,
    },
}

/// What a conversation records in its journal. State = snapshot + these, in order.
/// The large payloads are boxed: journals hold many small events, and an enum is as big as its
/// largest variant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "payload")]
pub enum Event {
    /// A customer message was accepted (opens a ticket when the conversation was closed).
    #[serde(rename = "inbox.message.received")]
    MessageReceived(Box<InboundMessage>),
    /// A delivery receipt moved one of our messages forward.
    #[serde(rename = "inbox.message.status")]
    StatusReceived(Box<DeliveryUpdate>),
    /// A new ticket started.
    #[serde(rename = "conversation.opened")]
    Opened {
        /// Ticket number within the conversation, from 1.
        ticket: u32,
    },
    /// The AI agent owns the conversation.
    #[serde(rename = "routing.ai.started")]
    AiStarted,
    /// The triage menu owns the conversation.
    #[serde(rename = "routing.triage.started")]
    TriageStarted,
    /// The customer's menu answer was not an option.
    #[serde(rename = "routing.triage.invalid")]
    TriageInvalid,
    /// Someone asked for a human.
    #[serde(rename = "routing.handoff.requested")]
    HandoffRequested {
        /// Target queue.
        queue: String,
        /// Why (AI tool call reason, triage option, fallback).
        reason: String,
    },
    /// Waiting in a queue.
    #[serde(rename = "conversation.queued")]
    Queued {
        /// The queue.
        queue: String,
        /// Position when enqueued, from 1.
        position: u32,
    },
    /// A human agent owns the conversation.
    #[serde(rename = "conversation.assigned")]
    Assigned {
        /// The queue it came from.
        queue: String,
        /// The agent.
        agent: AgentId,
    },
    /// Moved elsewhere.
    #[serde(rename = "conversation.transferred")]
    Transferred {
        /// Destination.
        target: TransferTarget,
    },
    /// Ticket closed.
    #[serde(rename = "conversation.closed")]
    Closed {
        /// Who closed it.
        by: Author,
    },
    /// The AI produced an answer (or the fallback was used).
    #[serde(rename = "agent.ai.response.generated")]
    AiResponse {
        /// Journal sequence of the last customer message this turn answered.
        answered_through: u64,
        /// Tokens in the prompt.
        prompt_tokens: u32,
        /// Tokens in the answer.
        completion_tokens: u32,
        /// True when the model was unavailable and the fallback text was used.
        fallback: bool,
    },
    /// A message to the customer was handed to the outbox.
    #[serde(rename = "outbound.message.queued")]
    OutboundQueued {
        /// Our id, unique within the conversation.
        local_id: u64,
        /// Who wrote it.
        author: Author,
        /// What it says.
        content: OutboundContent,
    },
    /// The provider accepted it.
    #[serde(rename = "outbound.message.sent")]
    OutboundSent {
        /// Our id.
        local_id: u64,
        /// Provider's id.
        provider_message_id: String,
    },
    /// An internal note was added.
    #[serde(rename = "conversation.note.added")]
    NoteAdded {
        /// Who wrote it.
        author: Author,
        /// The text.
        body: String,
    },
    /// The provider refused it for good.
    #[serde(rename = "outbound.message.failed")]
    OutboundFailed {
        /// Our id.
        local_id: u64,
        /// Why.
        reason: String,
    },
}

impl Event {
    /// Whether this event moves ownership (and so bumps the ownership epoch).
    pub fn changes_owner(&self) -> bool {
        matches!(
            self,
            Self::AiStarted
                | Self::TriageStarted
                | Self::HandoffRequested { .. }
                | Self::Assigned { .. }
                | Self::Transferred { .. }
                | Self::Closed { .. }
        )
    }

    /// Whether applying this event may change the conversation's status (so its place in
    /// listings by status, queue and agent). Listed in full, so that a new event must decide.
    pub fn may_change_status(&self) -> bool {
        match self {
            Self::AiStarted
            | Self::TriageStarted
            | Self::HandoffRequested { .. }
            | Self::Queued { .. }
            | Self::Assigned { .. }
            | Self::Transferred { .. }
            | Self::Closed { .. } => true,
            // Stays in triage: only the attempt count changes.
            Self::TriageInvalid
            | Self::MessageReceived(_)
            | Self::StatusReceived(_)
            | Self::Opened { .. }
            | Self::AiResponse { .. }
            | Self::OutboundQueued { .. }
            | Self::OutboundSent { .. }
            | Self::NoteAdded { .. }
            | Self::OutboundFailed { .. } => false,
        }
    }
}
