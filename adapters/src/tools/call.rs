//! Tool names, their specs, and parsing a call's arguments into a typed `Call`.

use super::args::*;
use super::{ToolError, ToolSpec};
use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// A parsed tool call.
#[derive(Debug)]
pub enum Call {
    /// `list_conversations`
    List(ListConversations),
    /// `get_conversation`
    Get(GetConversation),
    /// `send_message`
    Send(SendMessage),
    /// `transfer_conversation`
    Transfer(TransferConversation),
    /// `assign_conversation`
    Assign(AssignConversation),
    /// `close_conversation`
    Close(OnConversation),
    /// `reopen_conversation`
    Reopen(ReopenConversation),
    /// `add_note`
    Note(AddNote),
    /// `search_contacts`
    Search(SearchContacts),
    /// `queue_stats`
    QueueStats(QueueStats),
    /// `agent_status`
    AgentStatus(AgentStatus),
    /// `summarize_conversation`
    Summarize(SummarizeConversation),
    /// `handoff_to_ai`
    HandToAi(OnConversation),
}

fn parse<T: DeserializeOwned>(tool: &str, args: Value) -> Result<T, ToolError> {
    // A call without arguments is a call with none.
    let args = if args.is_null() { Value::Object(Default::default()) } else { args };
    serde_json::from_value(args)
        .map_err(|e| ToolError::InvalidArguments { tool: tool.to_owned(), reason: e.to_string() })
}

impl Call {
    /// Parses `args` for tool `name`.
    pub fn parse(name: &str, args: Value) -> Result<Self, ToolError> {
        Ok(match name {
            "list_conversations" => Self::List(parse(name, args)?),
            "get_conversation" => Self::Get(parse(name, args)?),
            "send_message" => Self::Send(parse(name, args)?),
            "transfer_conversation" => Self::Transfer(parse(name, args)?),
            "assign_conversation" => Self::Assign(parse(name, args)?),
            "close_conversation" => Self::Close(parse(name, args)?),
            "reopen_conversation" => Self::Reopen(parse(name, args)?),
            "add_note" => Self::Note(parse(name, args)?),
            "search_contacts" => Self::Search(parse(name, args)?),
            "queue_stats" => Self::QueueStats(parse(name, args)?),
            "agent_status" => Self::AgentStatus(parse(name, args)?),
            "summarize_conversation" => Self::Summarize(parse(name, args)?),
            "handoff_to_ai" => Self::HandToAi(parse(name, args)?),
            other => return Err(ToolError::UnknownTool(other.to_owned())),
        })
    }

    /// The client's key for a safe repeat, on tools that change something.
    pub fn idempotency_key(&self) -> Option<&str> {
        match self {
            Self::Send(a) => a.idempotency_key.as_deref(),
            Self::Transfer(a) => a.idempotency_key.as_deref(),
            Self::Assign(a) => a.idempotency_key.as_deref(),
            Self::Close(a) | Self::HandToAi(a) => a.idempotency_key.as_deref(),
            Self::Reopen(a) => a.idempotency_key.as_deref(),
            Self::Note(a) => a.idempotency_key.as_deref(),
            _ => None,
        }
    }
}

fn schema<T: JsonSchema>() -> Arc<serde_json::Map<String, Value>> {
    // Inline sub-schemas: some clients do not follow `$ref`.
    let generator = SchemaSettings::draft2020_12().with(|s| s.inline_subschemas = true).into_generator();
    let mut value = generator.into_root_schema_for::<T>().to_value();
    let map = value.as_object_mut().expect("a struct's schema is an object");
    // The struct name and meta-schema mean nothing to a client.
    map.remove("title");
    map.remove("$schema");
    Arc::new(std::mem::take(map))
}

fn spec<T: JsonSchema>(
    name: &'static str,
    title: &'static str,
    read_only: bool,
    description: &'static str,
) -> ToolSpec {
    ToolSpec { name, title, description, input_schema: schema::<T>(), read_only }
}

pub(super) fn specs() -> Vec<ToolSpec> {
    vec![
        spec::<ListConversations>(
            "list_conversations",
            "List conversations",
            true,
            "List the tenant's conversations, most recently active first, filtered by status (bot, triage, queued, assigned, closed), queue or agent. Paginated with limit and offset.",
        ),
        spec::<GetConversation>(
            "get_conversation",
            "Get a conversation",
            true,
            "One conversation: status, queue, agent, contact, whether the WhatsApp 24-hour window is open, recent messages and internal notes.",
        ),
        spec::<SendMessage>(
            "send_message",
            "Send a message",
            false,
            "Send a text message to the customer of an open conversation, in order with everything else it receives. On WhatsApp it is refused outside the 24-hour customer-service window.",
        ),
        spec::<TransferConversation>(
            "transfer_conversation",
            "Transfer to a queue",
            false,
            "Move an open conversation to another queue, where it waits for the next agent.",
        ),
        spec::<AssignConversation>(
            "assign_conversation",
            "Assign to an agent",
            false,
            "Give a queued or assigned conversation to an agent who is online in its queue and has room.",
        ),
        spec::<OnConversation>(
            "close_conversation",
            "Close a conversation",
            false,
            "Close the conversation's ticket; the customer's next message opens a new one.",
        ),
        spec::<ReopenConversation>(
            "reopen_conversation",
            "Reopen a conversation",
            false,
            "Open a new ticket on a closed conversation and queue it for a human (in the given queue or the default one).",
        ),
        spec::<AddNote>(
            "add_note",
            "Add an internal note",
            false,
            "Add an internal note to a conversation. Notes are for the team: never sent to the customer nor shown to the AI.",
        ),
        spec::<SearchContacts>(
            "search_contacts",
            "Search contacts",
            true,
            "Find contacts by part of their name, phone number or chat id, with their conversation.",
        ),
        spec::<QueueStats>(
            "queue_stats",
            "Queue statistics",
            true,
            "For each queue (or one): conversations waiting, the oldest wait in seconds, and agents online.",
        ),
        spec::<AgentStatus>(
            "agent_status",
            "Agent status",
            true,
            "For each agent (or one): in which queues they are online, their capacity and how many conversations they hold.",
        ),
        spec::<SummarizeConversation>(
            "summarize_conversation",
            "Summarize a conversation",
            true,
            "A short summary of a conversation written by the tenant's AI model: what the customer wants, what was answered, what is open.",
        ),
        spec::<OnConversation>(
            "handoff_to_ai",
            "Hand back to the AI",
            false,
            "Give a queued, assigned or triage conversation back to the AI agent, which answers the customer's next message.",
        ),
    ]
}
