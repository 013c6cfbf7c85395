//! HTTP routes: provider webhooks, health and metrics.

mod body;
mod health;
mod telegram;
mod whatsapp;

use actix_web::web;

pub use body::read_body;

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(health::index))
        .route("/healthz", web::get().to(health::healthz))
        .route("/readyz", web::get().to(health::readyz))
        .route("/metrics", web::get().to(health::metrics))
        .route("/webhooks/whatsapp", web::get().to(whatsapp::handshake))
        .route("/webhooks/whatsapp", web::post().to(whatsapp::receive))
        .route("/webhooks/telegram/{channel}", web::post().to(telegram::receive));
}
