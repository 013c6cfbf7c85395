//! Builds a hub from the configuration and serves it over HTTP. `main` and the test harness both
//! go through here, so tests run the real wiring.

use crate::auth::Accounts;
use crate::backend::Probe;
use crate::config::{ChannelIndex, Settings, build_agents, build_callers, build_tenants};
use crate::console::ConsoleFeeds;
use crate::routes;
use crate::staff::StaffDesk;
use crate::telemetry::WebhookMetrics;
use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware::from_fn, web};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::hub::{Hub, HubSettings};
use switchboard_actors::ports::Clock;
use switchboard_adapters::tools::{Directory, Tools};

/// What every handler shares.
pub struct AppState {
    /// The hub.
    pub hub: Hub,
    /// Channel lookup for webhooks.
    pub channels: ChannelIndex,
    /// Largest accepted body.
    pub body_limit: usize,
    /// Webhook counters.
    pub webhooks: WebhookMetrics,
    /// The tool registry (MCP and staff commands).
    pub tools: Arc<Tools>,
    /// Who may call the tools.
    pub callers: Arc<Directory>,
    /// Staff chat commands.
    pub staff: StaffDesk,
    /// Human agents and admins (REST API), by token.
    pub agents: Arc<Accounts>,
    /// What agents' consoles are pushed, and their availability.
    pub console: ConsoleFeeds,
    /// Whether the backend is reachable (`/readyz`).
    pub probe: Probe,
}

/// A running hub and its HTTP server.
pub struct Running {
    /// The hub handle.
    pub hub: Hub,
    /// Shared state (tests read counters from it).
    pub state: web::Data<AppState>,
    /// The HTTP server future; await it (or spawn it) to serve.
    pub server: Server,
    /// Warnings from wiring (disabled channels, no model).
    pub warnings: Vec<String>,
}

/// Wires the hub and binds the HTTP server on `listener`. Must run inside an actix `System`.
pub async fn start(
    settings: &Settings,
    env: &BTreeMap<String, String>,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
) -> anyhow::Result<Running> {
    let mut wiring = build_tenants(settings, env)?;
    let (callers, caller_warnings) = build_callers(settings, env);
    wiring.warnings.extend(caller_warnings);
    let (agents, agent_warnings) = build_agents(settings, env);
    wiring.warnings.extend(agent_warnings);
    let crate::backend::Built { backend, probe, ledger } = crate::backend::build(settings, clock).await?;
    let dedup = backend.dedup.clone();
    let hub_settings = HubSettings {
        workers: settings.server.actor_workers.max(1),
        dedup_ttl: Duration::from_secs(settings.backend.dedup_ttl_secs()),
        batch: settings.backend.batch(),
        max_queued_replies: settings.server.max_queued_replies,
        max_queue_delay: (settings.backend.kind == "redis" && settings.backend.redis.max_queue_delay_ms > 0)
            .then(|| Duration::from_millis(settings.backend.redis.max_queue_delay_ms)),
        ..HubSettings::default()
    };
    let outbound = wiring
        .tenants
        .iter()
        .flat_map(|t| t.channels.iter().map(|c| ((t.policy.id.clone(), c.channel.clone()), c.outbound.clone())))
        .collect();
    let dedup_ttl = hub_settings.dedup_ttl;
    let hub = Hub::start(backend, wiring.tenants, hub_settings);
    let tools = Arc::new(Tools::new(hub.clone(), ledger));
    let callers = Arc::new(callers);
    let console = ConsoleFeeds::new(hub.clone(), crate::backend::across_nodes(settings, &probe)).await;
    let state = web::Data::new(AppState {
        hub: hub.clone(),
        channels: wiring.channels,
        body_limit: settings.server.body_limit_bytes,
        webhooks: WebhookMetrics::default(),
        staff: StaffDesk::new(tools.clone(), callers.clone(), dedup, dedup_ttl, outbound),
        tools: tools.clone(),
        callers,
        agents: Arc::new(agents),
        console,
        probe,
    });
    let data = state.clone();
    let mcp = routes::mcp::service(tools, settings.server.mcp_allowed_hosts.clone());
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .wrap(from_fn(crate::trace::trace_id))
            .service(routes::mcp::scope(mcp.clone()))
            .configure(routes::configure)
    })
    .workers(settings.server.http_workers.max(1))
    // Streamed answers (MCP's SSE events) are written in pieces: without this, Nagle's algorithm
    // meets the client's delayed ACK and each one waits ~40 ms.
    .tcp_nodelay(true)
    .backlog(4096)
    .max_connection_rate(4096)
    .shutdown_timeout(settings.server.shutdown_timeout_secs)
    // main handles SIGTERM/SIGINT: actix-server's handler would stop the actix system at once.
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(Running { hub, state, server, warnings: wiring.warnings })
}
