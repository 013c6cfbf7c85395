//! Builds a hub from the configuration and serves it over HTTP. `main` and the test harness both
//! go through here, so tests run the real wiring.

use crate::config::{ChannelIndex, Settings, build_tenants};
use crate::routes;
use crate::telemetry::WebhookMetrics;
use actix_web::dev::Server;
use actix_web::{App, HttpServer, middleware::from_fn, web};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::hub::{Backend, Hub, HubSettings};
use switchboard_actors::ports::Clock;
use switchboard_adapters::memory::{MemoryBus, MemoryDedup, MemoryStore};

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
pub fn start(
    settings: &Settings,
    env: &BTreeMap<String, String>,
    clock: Arc<dyn Clock>,
    listener: TcpListener,
) -> anyhow::Result<Running> {
    let wiring = build_tenants(settings, env)?;
    let backend = Backend {
        bus: Arc::new(MemoryBus::new(settings.backend.partitions, settings.backend.partition_capacity)),
        dedup: Arc::new(MemoryDedup::default()),
        store: Arc::new(MemoryStore::with_journal_limit(settings.backend.memory_journal_limit)),
        clock,
    };
    let hub_settings = HubSettings {
        workers: settings.server.actor_workers.max(1),
        dedup_ttl: Duration::from_secs(settings.backend.dedup_ttl_secs),
        batch: settings.backend.batch.max(1),
        ..HubSettings::default()
    };
    let hub = Hub::start(backend, wiring.tenants, hub_settings);
    let state = web::Data::new(AppState {
        hub: hub.clone(),
        channels: wiring.channels,
        body_limit: settings.server.body_limit_bytes,
        webhooks: WebhookMetrics::default(),
    });
    let data = state.clone();
    let server = HttpServer::new(move || {
        App::new().app_data(data.clone()).wrap(from_fn(crate::trace::trace_id)).configure(routes::configure)
    })
    .workers(settings.server.http_workers.max(1))
    .backlog(4096)
    .max_connection_rate(4096)
    .shutdown_timeout(settings.server.shutdown_timeout_secs)
    .listen(listener)?
    .run();
    Ok(Running { hub, state, server, warnings: wiring.warnings })
}
