//! The `LlmClient` over async-openai: one non-streaming chat completion per call, with the
//! hand-off and close tools offered to the model.
//!
//! async-openai's default transport retries 429, 5xx and connect errors up to 3 times with
//! backoff (up to 8 s per wait, or any `Retry-After`). The AI agent already bounds each call
//! with a timeout and a circuit breaker, so a hidden retry loop would only burn that budget and
//! hammer a struggling endpoint: the client is built on a bare `ReqwestService` instead (needs
//! async-openai's `middleware` feature). A call is sent a second time only when the first got no
//! HTTP answer at all (connection refused, or closed before the response): one lost connection
//! would otherwise hand the customer to a human. Only the answer that arrives is used, so the
//! customer still gets one reply; at worst the model worked twice.

use super::{CLOSE_TOOL, HANDOFF_TOOL, OpenAiError, OpenAiSettings, inbound};
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::middleware::ReqwestService;
use async_openai::types::chat::{
    ChatCompletionRequestAssistantMessage, ChatCompletionRequestMessage, ChatCompletionRequestSystemMessage,
    ChatCompletionRequestUserMessage, ChatCompletionTool, ChatCompletionToolChoiceOption, ChatCompletionTools,
    CreateChatCompletionRequest, FunctionObject, ToolChoiceOptions,
};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::time::Instant;
use switchboard_actors::ports::{LlmAction, LlmClient, LlmError, LlmRequest, LlmResponse, Speaker};

/// Longest error text kept: a failed parse carries the whole response body.
const MAX_ERROR_CHARS: usize = 300;

/// An OpenAI-compatible chat model.
#[derive(Clone)]
pub struct OpenAiClient {
    client: Client<OpenAIConfig>,
    base_url: String,
    model: String,
    max_completion_tokens: Option<u32>,
    temperature: Option<f32>,
}

impl std::fmt::Debug for OpenAiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiClient")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .finish_non_exhaustive()
    }
}

impl OpenAiClient {
    /// A client for the configured endpoint. Fails on a base URL that is not http(s) or an
    /// empty model name; a trailing slash is dropped (async-openai appends `/chat/completions`
    /// verbatim).
    pub fn new(settings: &OpenAiSettings) -> Result<Self, OpenAiError> {
        let base_url = settings.base_url.trim().trim_end_matches('/').to_owned();
        let parsed = reqwest::Url::parse(&base_url)
            .map_err(|e| OpenAiError::InvalidConfig(format!("base url {base_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(OpenAiError::InvalidConfig(format!("base url {base_url:?} is not http(s)")));
        }
        if settings.model.trim().is_empty() {
            return Err(OpenAiError::InvalidConfig("model is empty".into()));
        }
        let config = OpenAIConfig::new().with_api_base(&base_url).with_api_key(&settings.api_key);
        let client = client(config)?;
        Ok(Self {
            client,
            base_url,
            model: settings.model.trim().to_owned(),
            max_completion_tokens: settings.max_completion_tokens,
            temperature: settings.temperature,
        })
    }

    /// The completion request for `req`: system prompt, history in order, and both tools when
    /// the request offers them.
    fn build_request(&self, req: &LlmRequest) -> CreateChatCompletionRequest {
        let mut messages: Vec<ChatCompletionRequestMessage> = Vec::with_capacity(req.history.len() + 1);
        // Some servers refuse an empty system message; no prompt means no message.
        if !req.system_prompt.trim().is_empty() {
            messages.push(ChatCompletionRequestSystemMessage::from(req.system_prompt.as_str()).into());
        }
        messages.extend(req.history.iter().map(|(speaker, text)| match speaker {
            Speaker::Customer => ChatCompletionRequestUserMessage::from(text.as_str()).into(),
            Speaker::Assistant => ChatCompletionRequestAssistantMessage::from(text.as_str()).into(),
        }));
        CreateChatCompletionRequest {
            model: self.model.clone(),
            messages,
            tools: req.tools.then(|| tools(&req.queues)),
            tool_choice: req.tools.then_some(ChatCompletionToolChoiceOption::Mode(ToolChoiceOptions::Auto)),
            max_completion_tokens: self.max_completion_tokens,
            temperature: self.temperature,
            ..Default::default()
        }
    }
}

/// async-openai over an HTTP client of its own. No retry layer around the transport: see the
/// module header. Idle connections are dropped after 4 s, before the usual 5 s keep-alive of
/// servers and proxies ends them: reusing one the server is closing at that moment fails the
/// call ("error sending request"), and a model call is not retried.
fn client(config: OpenAIConfig) -> Result<Client<OpenAIConfig>, OpenAiError> {
    let http = openai_http::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_secs(4))
        .build()
        .map_err(|e| OpenAiError::InvalidConfig(format!("http client: {e}")))?;
    Ok(Client::with_config(config).with_http_service(ReqwestService::new(http)))
}

/// The two tools. The queue is an `enum` of the tenant's queues so the model cannot invent
/// one; with no queues the `enum` is left out, as an empty one is not a valid schema.
fn tools(queues: &[String]) -> Vec<ChatCompletionTools> {
    let mut queue = json!({
        "type": "string",
        "description": "queue of human agents that should take over; leave out when unsure"
    });
    if !queues.is_empty() {
        queue["enum"] = json!(queues);
    }
    let handoff = json!({
        "type": "object",
        "properties": {"queue": queue, "reason": {"type": "string"}},
        "required": ["reason"]
    });
    let close = json!({
        "type": "object",
        "properties": {"message": {"type": "string", "description": "goodbye text"}}
    });
    vec![
        function(
            HANDOFF_TOOL,
            "Hand the conversation to a human agent when the customer asks for one or you cannot help.",
            handoff,
        ),
        function(
            CLOSE_TOOL,
            "End the conversation when the customer's request is resolved or they said goodbye.",
            close,
        ),
    ]
}

fn function(name: &str, description: &str, parameters: Value) -> ChatCompletionTools {
    ChatCompletionTools::Function(ChatCompletionTool {
        function: FunctionObject {
            name: name.to_owned(),
            description: Some(description.to_owned()),
            parameters: Some(parameters),
            strict: None,
        },
    })
}

/// Error text for logs and the breaker, with its causes ("error sending request" alone does not
/// tell a refused connection from one the server closed), cut to [`MAX_ERROR_CHARS`].
fn describe(err: &OpenAIError) -> String {
    let mut text = err.to_string();
    let mut cause = std::error::Error::source(err);
    while let Some(e) = cause {
        let line = e.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        cause = e.source();
    }
    text.chars().take(MAX_ERROR_CHARS).collect()
}

/// The request got no HTTP answer: the connection failed or closed before a response came.
/// Timeouts are not among them (the model may still be working on it, and the agent's own
/// timeout bounds the call), nor is any answer, even an error status.
fn unanswered(err: &OpenAIError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        if let Some(http) = e.downcast_ref::<openai_http::Error>() {
            return !http.is_timeout() && (http.is_connect() || http.is_request()) && http.status().is_none();
        }
        cause = e.source();
    }
    false
}

fn action_kind(action: &LlmAction) -> &'static str {
    match action {
        LlmAction::Reply(_) => "reply",
        LlmAction::Handoff { .. } => "handoff",
        LlmAction::Close { .. } => "close",
    }
}

#[async_trait]
impl LlmClient for OpenAiClient {
    async fn complete(&self, req: LlmRequest) -> Result<LlmResponse, LlmError> {
        let started = Instant::now();
        let mut result = self.client.chat().create(self.build_request(&req)).await;
        if let Err(e) = &result
            && unanswered(e)
        {
            tracing::debug!(model = %self.model, error = %describe(e), "llm call got no answer; sent once more");
            result = self.client.chat().create(self.build_request(&req)).await;
        }
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let response = result.map_err(|e| {
            let reason = describe(&e);
            tracing::debug!(model = %self.model, elapsed_ms, error = %reason, "llm call failed");
            LlmError::Unavailable(reason)
        })?;
        let mapped = inbound::to_llm_response(response);
        match &mapped {
            Ok(r) => tracing::debug!(
                model = %self.model,
                elapsed_ms,
                action = action_kind(&r.action),
                prompt_tokens = r.prompt_tokens,
                completion_tokens = r.completion_tokens,
                "llm call answered"
            ),
            Err(e) => {
                tracing::debug!(model = %self.model, elapsed_ms, error = %e, "llm answer unusable")
            }
        }
        mapped
    }

    fn with_own_connections(&self) -> Option<std::sync::Arc<dyn LlmClient>> {
        let client = crate::own_client(client(self.client.config().clone()))?;
        Some(std::sync::Arc::new(Self { client, ..self.clone() }))
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
