//! `/api`: the REST API for agents, admins and integrations. JSON in and out, bearer tokens of the
//! tenant's agent and admin accounts (see `crate::auth` for who sees what), errors in the same
//! `{"error":{code,message}}` body as the rest of the hub. `GET /api/openapi.json` describes it
//! and needs no token.
//!
//! - `caller`: the bearer-token extractor (401).
//! - `input`: query strings and bodies, each a closed shape.
//! - `listing`, `conversations`, `commands`: the handlers.
//! - `journal`: sequences, message history and past states from a conversation's journal.
//! - `render`: the JSON views; `error`: statuses of REST answers.

pub(crate) mod caller;
pub(crate) mod commands;
mod conversations;
pub(crate) mod error;
mod input;
pub(crate) mod journal;
pub(crate) mod listing;
pub(crate) mod render;

use self::caller::SignedIn;
use actix_web::dev::HttpServiceFactory;
use actix_web::http::Method;
use actix_web::{HttpResponse, Route, web};
use serde_json::json;

/// The OpenAPI document, written by hand next to the routes (tests hold the two together).
pub const OPENAPI: &str = include_str!("openapi.json");

/// One route: method, path under `/api`, and how its handler is attached.
struct Endpoint {
    method: Method,
    path: &'static str,
    to: fn(Route) -> Route,
}

/// Every REST route. The router is built from this table, and the tests check the OpenAPI
/// document against it, so neither can have a route the other lacks.
const ENDPOINTS: &[Endpoint] = &[
    Endpoint { method: Method::GET, path: "/openapi.json", to: |r| r.to(openapi) },
    Endpoint { method: Method::GET, path: "/me", to: |r| r.to(me) },
    Endpoint { method: Method::GET, path: "/conversations", to: |r| r.to(listing::list) },
    Endpoint { method: Method::GET, path: "/conversations/{id}", to: |r| r.to(conversations::get) },
    Endpoint { method: Method::GET, path: "/conversations/{id}/messages", to: |r| r.to(conversations::messages) },
    Endpoint { method: Method::GET, path: "/conversations/{id}/events", to: |r| r.to(conversations::events) },
    Endpoint { method: Method::GET, path: "/conversations/{id}/state", to: |r| r.to(conversations::state_at) },
    Endpoint { method: Method::POST, path: "/conversations/{id}/reply", to: |r| r.to(commands::reply) },
    Endpoint { method: Method::POST, path: "/conversations/{id}/transfer", to: |r| r.to(commands::transfer) },
    Endpoint { method: Method::POST, path: "/conversations/{id}/assign", to: |r| r.to(commands::assign) },
    Endpoint { method: Method::POST, path: "/conversations/{id}/close", to: |r| r.to(commands::close) },
    Endpoint { method: Method::POST, path: "/conversations/{id}/reopen", to: |r| r.to(commands::reopen) },
    Endpoint { method: Method::POST, path: "/conversations/{id}/notes", to: |r| r.to(commands::note) },
];

/// Every route as `(method, path)`, the path as in the OpenAPI document (`/api/…`).
pub fn routes() -> impl Iterator<Item = (&'static str, String)> {
    ENDPOINTS.iter().map(|e| (e.method.as_str(), format!("/api{}", e.path)))
}

/// The `/api` scope: one resource per path, its methods from the table, JSON 405 for the others
/// and JSON 404 for unknown paths.
pub fn scope() -> impl HttpServiceFactory {
    let mut scope = web::scope("/api").default_service(web::to(super::not_found));
    let mut paths: Vec<&str> = Vec::new();
    for e in ENDPOINTS {
        if !paths.contains(&e.path) {
            paths.push(e.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path).default_service(web::to(super::method_not_allowed));
        for e in ENDPOINTS.iter().filter(|e| e.path == path) {
            resource = resource.route((e.to)(web::route().method(e.method.clone())));
        }
        scope = scope.service(resource);
    }
    scope
}

async fn openapi() -> HttpResponse {
    HttpResponse::Ok().content_type("application/json").body(OPENAPI)
}

/// `GET /api/me`: the account behind the token (a console checks a token with it).
async fn me(who: SignedIn) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "tenant": who.tenant.as_str(),
        "agent": who.id.as_str(),
        "role": who.role.name(),
        "queues": who.queues,
    }))
}
