//! `/mcp`: the tools over MCP Streamable HTTP. rmcp (through rmcp-actix-web) speaks the protocol:
//! the 2026-07-28 revision (`server/discover`, no sessions) and the handshake revisions before it
//! (`initialize`, `Mcp-Session-Id`, `DELETE`), all from one service. This module only
//! authenticates: a bearer token of a configured bot, or 401 before rmcp sees the request.

use crate::app::AppState;
use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{HttpServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::{Next, from_fn};
use actix_web::{HttpMessage, HttpResponse, web};
use rmcp_actix_web::transport::{LocalSessionManager, StreamableHttpService};
use serde_json::json;
use std::sync::Arc;
use switchboard_adapters::mcp::McpServer;
use switchboard_adapters::tools::{Caller, Tools};

/// The MCP service. Build it once and clone it into every HTTP worker, so all workers share the
/// sessions. `allowed_hosts`: the `Host` values accepted (DNS-rebinding protection); empty
/// disables the check.
pub fn service(tools: Arc<Tools>, allowed_hosts: Vec<String>) -> StreamableHttpService<McpServer, LocalSessionManager> {
    let server = McpServer::new(tools);
    StreamableHttpService::builder()
        .service_factory(Arc::new(move || Ok(server.clone())))
        .session_manager(Arc::new(LocalSessionManager::default()))
        .allowed_hosts(allowed_hosts)
        // The caller found by `require_bearer` rides into the tool handler (rmcp strips the
        // Authorization header itself).
        .on_request_fn(|http_req, ext| {
            if let Some(caller) = http_req.extensions().get::<Arc<Caller>>() {
                ext.insert(caller.clone());
            }
        })
        .build()
}

/// `/mcp` and `/mcp/`, behind bearer authentication.
pub fn scope(service: StreamableHttpService<McpServer, LocalSessionManager>) -> impl HttpServiceFactory {
    service.scope_with_path("/mcp").wrap(from_fn(require_bearer))
}

async fn require_bearer(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<EitherBody<impl MessageBody>>, actix_web::Error> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    let caller = token.and_then(|t| req.app_data::<web::Data<AppState>>()?.callers.bot(t));
    match caller {
        Some(caller) => {
            req.extensions_mut().insert(caller);
            Ok(next.call(req).await?.map_into_left_body())
        }
        None => {
            let why = if token.is_none() { "missing bearer token" } else { "unknown bearer token" };
            tracing::info!(reason = why, "mcp request refused");
            // A JSON-RPC error body: MCP clients show it instead of a bare status.
            let res = HttpResponse::Unauthorized()
                .insert_header(("WWW-Authenticate", r#"Bearer realm="switchboard-mcp""#))
                .json(json!({ "jsonrpc": "2.0", "id": null, "error": { "code": -32001, "message": format!("Unauthorized: {why}") } }));
            Ok(req.into_response(res).map_into_right_body())
        }
    }
}
