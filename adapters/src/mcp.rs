//! The tool registry as an MCP server (rmcp `ServerHandler`, hand-written because the tools are
//! the registry's, not macro-generated). The HTTP side (Streamable HTTP, sessions, revisions)
//! is rmcp's; `src/routes/mcp.rs` mounts it and authenticates the caller.
//!
//! Errors: a tool that ran and refused answers `isError: true` with a readable text; an unknown
//! tool or arguments that do not fit the schema are JSON-RPC -32602; quota limits are
//! [`QUOTA_EXCEEDED`] with `data` saying which limit and when it resets.

use crate::tools::{Caller, ToolError, ToolOutcome, Tools};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, ErrorCode, Implementation, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value, json};
use std::sync::Arc;

/// JSON-RPC code of a call over its quota (implementation-defined server-error range, clear of
/// the codes MCP itself uses; 29 as in HTTP 429).
pub const QUOTA_EXCEEDED: ErrorCode = ErrorCode(-32029);
/// JSON-RPC code of a call that could not run now (backend unreachable, same key in flight): retry.
pub const RETRY_LATER: ErrorCode = ErrorCode(-32030);

const INSTRUCTIONS: &str = "Switchboard: read and act on customer conversations (WhatsApp, Telegram, web chat) of \
    your tenant. Conversation ids look like `tenant:whatsapp.main:5511987654321`; a contact's phone number or chat \
    id also works when it has one conversation. Pass an idempotency_key to tools that change something to make \
    retries safe.";

/// One MCP server per session (rmcp's factory), all sharing the registry.
#[derive(Clone)]
pub struct McpServer {
    tools: Arc<Tools>,
    listed: Arc<Vec<Tool>>,
}

impl McpServer {
    /// A server for `tools`.
    pub fn new(tools: Arc<Tools>) -> Self {
        let listed = Tools::specs()
            .iter()
            .map(|spec| {
                let annotations = ToolAnnotations::with_title(spec.title)
                    .read_only(spec.read_only)
                    .destructive(false)
                    .open_world(false);
                Tool::new(spec.name, spec.description, spec.input_schema.clone())
                    .with_title(spec.title)
                    .with_annotations(annotations)
            })
            .collect();
        Self { tools, listed: Arc::new(listed) }
    }
}

/// The authenticated caller: the HTTP layer puts it in the request's extensions, rmcp carries the
/// request parts into the handler's context.
fn caller(context: &RequestContext<RoleServer>) -> Option<Arc<Caller>> {
    let parts = context.extensions.get::<http::request::Parts>()?;
    // rmcp-actix-web nests the values of its `on_request` hook in the parts' extensions.
    parts.extensions.get::<rmcp::model::Extensions>()?.get::<Arc<Caller>>().cloned()
}

fn trace_id(context: &RequestContext<RoleServer>) -> String {
    let header = context.extensions.get::<http::request::Parts>().and_then(|p| p.headers.get("x-trace-id"));
    header.and_then(|v| v.to_str().ok()).map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned)
}

fn to_result(outcome: ToolOutcome) -> CallToolResult {
    let mut result = if outcome.is_error {
        CallToolResult::error(vec![ContentBlock::text(outcome.text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(outcome.text)])
    };
    // Clients type structured content as an object.
    result.structured_content = Some(match outcome.data {
        Value::Object(_) => outcome.data,
        other => json!({ "result": other }),
    });
    result
}

fn to_error(error: ToolError) -> McpError {
    let message = error.to_string();
    match error {
        ToolError::UnknownTool(name) => McpError::invalid_params(format!("Unknown tool: {name}"), None),
        ToolError::InvalidArguments { .. } | ToolError::KeyReused(_) => McpError::invalid_params(message, None),
        ToolError::QuotaExceeded(q) => McpError::new(QUOTA_EXCEEDED, message, serde_json::to_value(q).ok()),
        ToolError::InProgress(_) | ToolError::Unavailable(_) => McpError::new(RETRY_LATER, message, None),
    }
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("switchboard", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.listed.as_ref().clone()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.listed.iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let Some(caller) = caller(&context) else {
            return Err(McpError::internal_error("no authenticated caller on the request", None));
        };
        let args = request.arguments.map_or(Value::Null, Value::Object);
        let trace = trace_id(&context);
        match self.tools.call(&caller, &request.name, args, &trace).await {
            Ok(outcome) => Ok(to_result(outcome).into()),
            Err(e) => Err(to_error(e)),
        }
    }
}
