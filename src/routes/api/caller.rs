//! The signed-in account of a REST request: `Authorization: Bearer <token>` of a configured agent
//! or admin, or 401. Tokens are looked up by their SHA-256 and never logged.

use super::error::RestError;
use crate::app::AppState;
use crate::auth::AgentAccount;
use actix_web::dev::Payload;
use actix_web::http::header::AUTHORIZATION;
use actix_web::{FromRequest, HttpRequest, web};
use std::future::{Ready, ready};
use std::ops::Deref;
use std::sync::Arc;

/// The account behind the request's bearer token. Put it first among a handler's arguments:
/// extractors run in order, so a request without credentials learns nothing else.
pub struct SignedIn(pub Arc<AgentAccount>);

impl Deref for SignedIn {
    type Target = AgentAccount;

    fn deref(&self) -> &AgentAccount {
        &self.0
    }
}

/// The token of an `Authorization: Bearer …` header (the scheme is case-insensitive).
pub fn bearer_token(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl FromRequest for SignedIn {
    type Error = RestError;
    type Future = Ready<Result<Self, RestError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let account = match bearer_token(req) {
            None => Err("missing bearer token"),
            Some(token) => req
                .app_data::<web::Data<AppState>>()
                .and_then(|state| state.agents.find(token))
                .ok_or("unknown bearer token"),
        };
        ready(account.map(SignedIn).map_err(|why| {
            tracing::info!(reason = why, path = req.path(), "rest request refused");
            RestError::Unauthorized(why)
        }))
    }
}
