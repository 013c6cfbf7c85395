//! Tool inputs. Each struct is both the parser (serde, unknown fields refused) and the JSON
//! Schema clients see (schemars), so the two cannot drift apart.

use schemars::JsonSchema;
use serde::Deserialize;

/// A conversation status.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum StatusName {
    /// The AI agent answers.
    Bot,
    /// The menu waits for a choice.
    Triage,
    /// Waiting for a human.
    Queued,
    /// A human owns it.
    Assigned,
    /// No open ticket.
    Closed,
}

impl StatusName {
    /// The name the core uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Bot => "bot",
            Self::Triage => "triage",
            Self::Queued => "queued",
            Self::Assigned => "assigned",
            Self::Closed => "closed",
        }
    }
}

/// `list_conversations`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListConversations {
    /// Only conversations in this status.
    pub status: Option<StatusName>,
    /// Only conversations waiting in or assigned through this queue.
    pub queue: Option<String>,
    /// Only conversations assigned to this agent.
    pub agent: Option<String>,
    /// Page size (1-200, default 20).
    #[schemars(range(min = 1, max = 200))]
    pub limit: Option<u32>,
    /// How many to skip, for the next page (default 0).
    pub offset: Option<u32>,
}

/// `get_conversation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetConversation {
    /// Conversation id, or the contact's phone number / chat id when it has one conversation.
    pub conversation_id: String,
    /// How many recent messages to include (1-100, default 20).
    #[schemars(range(min = 1, max = 100))]
    pub messages: Option<u32>,
}

/// A tool acting on one conversation and nothing else.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OnConversation {
    /// Conversation id, or the contact's phone number / chat id when it has one conversation.
    pub conversation_id: String,
    /// Repeat a call with the same key to get the first call's result instead of acting twice.
    pub idempotency_key: Option<String>,
}

/// `send_message`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// Conversation id, or the contact's phone number / chat id when it has one conversation.
    pub conversation_id: String,
    /// The text to send to the customer.
    #[schemars(length(min = 1, max = 4096))]
    pub text: String,
    /// Repeat a call with the same key to get the first call's result instead of sending twice.
    pub idempotency_key: Option<String>,
}

/// `add_note`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AddNote {
    /// Conversation id, or the contact's phone number / chat id when it has one conversation.
    pub conversation_id: String,
    /// The note, visible to the team only.
    #[schemars(length(min = 1, max = 4096))]
    pub text: String,
    /// Repeat a call with the same key to get the first call's result instead of adding twice.
    pub idempotency_key: Option<String>,
}

/// `transfer_conversation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransferConversation {
    /// Conversation id, or the contact's phone number / chat id when it has one conversation.
    pub conversation_id: String,
    /// Queue to move it to.
    pub queue: String,
    /// Repeat a call with the same key to get the first call's result instead of acting twice.
    pub idempotency_key: Option<String>,
}

/// `assign_conversation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignConversation {
    /// Conversation id, or the contact's phone number / chat id when it has one conversation.
    pub conversation_id: String,
    /// Agent to give it to (must be online in the conversation's queue, with room).
    pub agent: String,
    /// Repeat a call with the same key to get the first call's result instead of acting twice.
    pub idempotency_key: Option<String>,
}

/// `reopen_conversation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReopenConversation {
    /// Conversation id, or the contact's phone number / chat id when it has one conversation.
    pub conversation_id: String,
    /// Queue to wait in (default: the tenant's default queue).
    pub queue: Option<String>,
    /// Repeat a call with the same key to get the first call's result instead of acting twice.
    pub idempotency_key: Option<String>,
}

/// `search_contacts`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchContacts {
    /// Part of a name, phone number or chat id (at least 2 characters, case-insensitive).
    #[schemars(length(min = 2))]
    pub query: String,
    /// How many contacts at most (1-100, default 20).
    #[schemars(range(min = 1, max = 100))]
    pub limit: Option<u32>,
}

/// `queue_stats`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueStats {
    /// One queue (default: every queue of the tenant).
    pub queue: Option<String>,
}

/// `agent_status`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentStatus {
    /// One agent (default: every agent known to the tenant's queues).
    pub agent: Option<String>,
}

/// `summarize_conversation`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SummarizeConversation {
    /// Conversation id, or the contact's phone number / chat id when it has one conversation.
    pub conversation_id: String,
}
