//! HTTP routes: provider webhooks, web chat, the console, pages, health, metrics and the REST API. Unknown paths, wrong methods
//! and bad query strings get the same JSON error body as every other error.

pub mod api;
mod body;
mod health;
pub mod mcp;
mod pages;
mod telegram;
mod webchat;
mod whatsapp;

use crate::http_error::ApiError;
use actix_web::{HttpRequest, HttpResponse, web};

/// Registers every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::QueryConfig::default().error_handler(|err, _| ApiError::BadRequest(err.to_string()).into()))
        .service(web::resource("/").get(pages::index).default_service(web::to(method_not_allowed)))
        .service(web::resource("/console").get(pages::console).default_service(web::to(method_not_allowed)))
        .service(web::resource("/widget").get(pages::widget).default_service(web::to(method_not_allowed)))
        .service(web::resource("/assets/{name}").get(pages::asset).default_service(web::to(method_not_allowed)))
        .service(web::resource("/ws/console").get(crate::console::connect).default_service(web::to(method_not_allowed)))
        .service(web::resource("/ws/widget").get(webchat::connect).default_service(web::to(method_not_allowed)))
        .service(web::resource("/healthz").get(health::healthz).default_service(web::to(method_not_allowed)))
        .service(web::resource("/readyz").get(health::readyz).default_service(web::to(method_not_allowed)))
        .service(web::resource("/metrics").get(health::metrics).default_service(web::to(method_not_allowed)))
        .service(
            web::resource("/webhooks/whatsapp")
                .get(whatsapp::handshake)
                .post(whatsapp::receive)
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/webhooks/telegram/{channel}")
                .post(telegram::receive)
                .default_service(web::to(method_not_allowed)),
        )
        .service(api::scope())
        .default_service(web::to(not_found));
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::NotFound(format!("no route for {} {}", req.method(), req.path())))
}

async fn method_not_allowed(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    Err(ApiError::MethodNotAllowed(req.method().to_string()))
}
