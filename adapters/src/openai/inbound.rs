//! The model's answer, translated: the first choice's tool call (hand off, close) or its text,
//! plus token usage.

use super::{CLOSE_TOOL, HANDOFF_TOOL};
use async_openai::types::chat::{
    ChatCompletionMessageToolCalls, ChatCompletionResponseMessage, CreateChatCompletionResponse,
};
use serde::Deserialize;
use switchboard_actors::ports::{LlmAction, LlmError, LlmResponse};

/// Reason used when the model asked for a human without a usable reason.
pub const DEFAULT_HANDOFF_REASON: &str = "model asked for a human";

/// `handoff_to_human` arguments; every field optional because models omit or garble them.
#[derive(Debug, Default, Deserialize)]
struct HandoffArgs {
    queue: Option<String>,
    reason: Option<String>,
}

/// `close_conversation` arguments.
#[derive(Debug, Default, Deserialize)]
struct CloseArgs {
    message: Option<String>,
}

/// Maps a completion to the hub's decision and token usage (0 when the server sent none).
pub fn to_llm_response(response: CreateChatCompletionResponse) -> Result<LlmResponse, LlmError> {
    let (prompt_tokens, completion_tokens) =
        response.usage.as_ref().map_or((0, 0), |u| (u.prompt_tokens, u.completion_tokens));
    let choice =
        response.choices.into_iter().next().ok_or_else(|| LlmError::Invalid("completion has no choices".into()))?;
    Ok(LlmResponse { action: to_action(choice.message)?, prompt_tokens, completion_tokens })
}

/// The decision in one assistant message. A known tool call wins over text; the text then
/// rides along as the message sent before handing off or closing.
pub fn to_action(message: ChatCompletionResponseMessage) -> Result<LlmAction, LlmError> {
    let content = non_empty(message.content);
    for call in message.tool_calls.iter().flatten() {
        let ChatCompletionMessageToolCalls::Function(call) = call else {
            continue;
        };
        match call.function.name.as_str() {
            HANDOFF_TOOL => return Ok(handoff(&call.function.arguments, content)),
            CLOSE_TOOL => return Ok(close(&call.function.arguments, content)),
            other => tracing::debug!(tool = other, "unknown tool call from model ignored"),
        }
    }
    // A refusal is text meant for the user ("I can't help with that").
    match content.or_else(|| non_empty(message.refusal)) {
        Some(text) => Ok(LlmAction::Reply(text)),
        None => Err(LlmError::Invalid("empty answer without a tool call".into())),
    }
}

fn handoff(arguments: &str, message: Option<String>) -> LlmAction {
    let args: HandoffArgs = serde_json::from_str(arguments).unwrap_or_else(|e| {
        tracing::debug!(error = %e, "handoff arguments are not valid json");
        HandoffArgs::default()
    });
    LlmAction::Handoff {
        queue: non_empty(args.queue),
        reason: non_empty(args.reason).unwrap_or_else(|| DEFAULT_HANDOFF_REASON.to_owned()),
        message,
    }
}

fn close(arguments: &str, content: Option<String>) -> LlmAction {
    // No arguments at all is legal for this tool; some models send "" instead of "{}".
    let args: CloseArgs = serde_json::from_str(arguments).unwrap_or_default();
    LlmAction::Close { message: non_empty(args.message).or(content) }
}

/// Trimmed text, or `None` when blank.
fn non_empty(text: Option<String>) -> Option<String> {
    text.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A completion as the server sends it (`oai.json` shapes), parsed by async-openai.
    fn completion(message: serde_json::Value, usage: Option<(u32, u32)>) -> CreateChatCompletionResponse {
        let mut body = json!({"id": "chatcmpl-t", "object": "chat.completion", "created": 1760000000,
            "model": "test-model", "choices": [{"index": 0, "message": message, "finish_reason": "stop"}]});
        if let Some((p, c)) = usage {
            body["usage"] = json!({"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c});
        }
        serde_json::from_value(body).expect("async-openai parses it")
    }

    fn tool_call(name: &str, arguments: &str, content: Option<&str>) -> serde_json::Value {
        json!({"role": "assistant", "content": content, "tool_calls": [{"id": "call_1",
            "type": "function", "function": {"name": name, "arguments": arguments}}]})
    }

    fn action(message: serde_json::Value) -> Result<LlmAction, LlmError> {
        to_llm_response(completion(message, None)).map(|r| r.action)
    }

    #[test]
    fn text_is_a_reply_with_usage() {
        let msg = json!({"role": "assistant", "content": "Done - Ada has been told."});
        let r = to_llm_response(completion(msg, Some((80, 7)))).unwrap();
        assert_eq!(r.action, LlmAction::Reply("Done - Ada has been told.".into()));
        assert_eq!((r.prompt_tokens, r.completion_tokens), (80, 7));
    }

    #[test]
    fn handoff_with_queue_reason_and_text() {
        let call = tool_call(HANDOFF_TOOL, r#"{"queue":"billing","reason":"refund"}"#, Some("One moment."));
        assert_eq!(
            action(call).unwrap(),
            LlmAction::Handoff {
                queue: Some("billing".into()),
                reason: "refund".into(),
                message: Some("One moment.".into()),
            }
        );
    }

    #[test]
    fn handoff_with_bad_or_empty_arguments_still_hands_off() {
        for args in ["{not json", "", r#"{"queue":"","reason":"  "}"#] {
            assert_eq!(
                action(tool_call(HANDOFF_TOOL, args, None)).unwrap(),
                LlmAction::Handoff { queue: None, reason: DEFAULT_HANDOFF_REASON.into(), message: None },
                "{args}"
            );
        }
    }

    #[test]
    fn close_prefers_the_argument_then_the_content() {
        let with_arg = tool_call(CLOSE_TOOL, r#"{"message":"Bye!"}"#, Some("ignored"));
        assert_eq!(action(with_arg).unwrap(), LlmAction::Close { message: Some("Bye!".into()) });
        let with_content = tool_call(CLOSE_TOOL, "{}", Some("Take care"));
        assert_eq!(action(with_content).unwrap(), LlmAction::Close { message: Some("Take care".into()) });
        let bare = tool_call(CLOSE_TOOL, "", None);
        assert_eq!(action(bare).unwrap(), LlmAction::Close { message: None });
    }

    #[test]
    fn unknown_tool_falls_back_to_text_or_is_invalid() {
        let with_text = tool_call("send_message", "{}", Some("Hello"));
        assert_eq!(action(with_text).unwrap(), LlmAction::Reply("Hello".into()));
        let without = tool_call("send_message", "{}", None);
        assert!(matches!(action(without), Err(LlmError::Invalid(_))));
    }

    #[test]
    fn empty_answers_are_invalid_but_refusals_are_replies() {
        for content in [json!(null), json!(""), json!("  \n")] {
            let msg = json!({"role": "assistant", "content": content});
            assert!(matches!(action(msg), Err(LlmError::Invalid(_))));
        }
        let refusal = json!({"role": "assistant", "content": null, "refusal": "I can't help with that."});
        assert_eq!(action(refusal).unwrap(), LlmAction::Reply("I can't help with that.".into()));
    }

    #[test]
    fn no_choices_is_invalid() {
        let mut response = completion(json!({"role": "assistant", "content": "x"}), None);
        response.choices.clear();
        assert!(matches!(to_llm_response(response), Err(LlmError::Invalid(_))));
    }
}
