//! Staff chat commands (`/close <id>` sent to the tenant's Telegram or WhatsApp bot): parsed
//! into tool calls, run with the staff member's quota, answered as chat text.

use super::{Caller, ToolError, Tools};
use serde_json::{Value, json};

/// The help text.
pub const HELP: &str = "Commands:
/queues: waiting conversations and agents online per queue
/list [status|queue]: recent conversations (status: bot, triage, queued, assigned, closed)
/show <id>: a conversation with its recent messages
/assign <id> <agent>: give a conversation to an agent
/transfer <id> <queue>: move a conversation to a queue
/close <id>: close a conversation
/stats: queues and agents at a glance
<id> is a conversation id or the customer's phone number / chat id.";

const STATUSES: [&str; 5] = ["bot", "triage", "queued", "assigned", "closed"];

/// What a command asks for.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// Tool calls to run, in order; their texts are joined into the answer.
    Run(Vec<(&'static str, Value)>),
    /// An immediate answer (help, or a usage line for a bad command).
    Answer(String),
}

/// Parses a staff message. `None` if it is not a command (does not start with `/`).
pub fn parse(text: &str) -> Option<Parsed> {
    let text = text.trim();
    let rest = text.strip_prefix('/')?;
    let mut words = rest.split_whitespace();
    // In Telegram groups commands come as `/close@ShopBot`.
    let command = words.next().unwrap_or_default().split('@').next().unwrap_or_default().to_lowercase();
    let args: Vec<&str> = words.collect();
    let usage = |line: &str| Parsed::Answer(format!("Usage: {line}"));
    let one = |tool: &'static str, args: Value| Parsed::Run(vec![(tool, args)]);
    Some(match (command.as_str(), args.as_slice()) {
        ("help" | "start", _) => Parsed::Answer(HELP.to_owned()),
        ("queues", []) => one("queue_stats", json!({})),
        ("queues", _) => usage("/queues"),
        ("list", []) => one("list_conversations", json!({ "limit": 10 })),
        ("list", [filter]) if STATUSES.contains(&filter.to_lowercase().as_str()) => {
            one("list_conversations", json!({ "status": filter.to_lowercase(), "limit": 10 }))
        }
        ("list", [queue]) => one("list_conversations", json!({ "queue": queue, "limit": 10 })),
        ("list", _) => usage("/list [status|queue]"),
        ("show", [id]) => one("get_conversation", json!({ "conversation_id": id, "messages": 10 })),
        ("show", _) => usage("/show <id>"),
        ("assign", [id, agent]) => one("assign_conversation", json!({ "conversation_id": id, "agent": agent })),
        ("assign", _) => usage("/assign <id> <agent>"),
        ("transfer", [id, queue]) => one("transfer_conversation", json!({ "conversation_id": id, "queue": queue })),
        ("transfer", _) => usage("/transfer <id> <queue>"),
        ("close", [id]) => one("close_conversation", json!({ "conversation_id": id })),
        ("close", _) => usage("/close <id>"),
        ("stats", []) => Parsed::Run(vec![("queue_stats", json!({})), ("agent_status", json!({}))]),
        ("stats", _) => usage("/stats"),
        (other, _) => Parsed::Answer(format!("Unknown command /{other}. Send /help for the list.")),
    })
}

/// Runs a staff command and returns the chat answer. `None` if `text` is not a command; `Err`
/// only when the backend is unavailable (the webhook should ask the provider to retry).
pub async fn run(tools: &Tools, caller: &Caller, text: &str, trace_id: &str) -> Option<Result<String, ToolError>> {
    let calls = match parse(text)? {
        Parsed::Answer(answer) => return Some(Ok(answer)),
        Parsed::Run(calls) => calls,
    };
    let mut answers = Vec::with_capacity(calls.len());
    for (tool, args) in calls {
        match tools.call(caller, tool, args, trace_id).await {
            Ok(outcome) if outcome.is_error => answers.push(format!("Error: {}", outcome.text)),
            Ok(outcome) => answers.push(outcome.text),
            Err(e @ ToolError::Unavailable(_)) => return Some(Err(e)),
            Err(e) => answers.push(format!("Error: {e}")),
        }
    }
    Some(Ok(answers.join("\n\n")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_become_tool_calls_and_bad_ones_get_a_usage_line() {
        assert_eq!(parse("oi, tudo bem?"), None, "not a command");
        assert_eq!(
            parse("/close 5511987654321"),
            Some(Parsed::Run(vec![("close_conversation", json!({ "conversation_id": "5511987654321" }))]))
        );
        assert_eq!(
            parse("/close@LojaDemoBot 4242"),
            Some(Parsed::Run(vec![("close_conversation", json!({ "conversation_id": "4242" }))]))
        );
        assert_eq!(
            parse("/list Queued"),
            Some(Parsed::Run(vec![("list_conversations", json!({ "status": "queued", "limit": 10 }))]))
        );
        assert_eq!(
            parse("/list vendas"),
            Some(Parsed::Run(vec![("list_conversations", json!({ "queue": "vendas", "limit": 10 }))]))
        );
        assert_eq!(parse("/close"), Some(Parsed::Answer("Usage: /close <id>".into())));
        assert_eq!(parse("/assign 4242"), Some(Parsed::Answer("Usage: /assign <id> <agent>".into())));
        assert!(matches!(parse("/frobnicate"), Some(Parsed::Answer(a)) if a.contains("/help")));
        assert!(matches!(parse("/help"), Some(Parsed::Answer(a)) if a.contains("/transfer <id> <queue>")));
    }
}
