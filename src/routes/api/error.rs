//! REST errors: everything `ApiError` answers, plus what only the REST API needs — 401 with a
//! `WWW-Authenticate` challenge, and the refusals of conversation commands (409, 410, 422). Same
//! body as every other error: `{"error":{"code":"…","message":"…"}}`.

use crate::http_error::ApiError;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use switchboard_actors::conversation::CommandError;

/// An error a REST handler returns.
#[derive(Debug, thiserror::Error)]
pub enum RestError {
    /// Shared with the rest of the HTTP surface (400, 404, 405, 413, 503).
    #[error(transparent)]
    Api(#[from] ApiError),
    /// No bearer token, or one no account holds.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// The conversation's state does not allow it now (closed, taken, not yours, window closed).
    #[error("{message}")]
    Conflict {
        /// Machine-readable reason.
        code: &'static str,
        /// Readable reason.
        message: String,
    },
    /// Asked for journal history older than what is kept.
    #[error("{0}")]
    Gone(String),
    /// Well-formed but impossible (unknown queue, empty text, a sequence not reached yet).
    #[error("{0}")]
    Unprocessable(String),
}

impl RestError {
    /// A 400 for malformed input.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Api(ApiError::BadRequest(message.into()))
    }

    /// A 404: what does not exist and what the caller may not see look the same.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::Api(ApiError::NotFound(message.into()))
    }
}

impl From<CommandError> for RestError {
    fn from(e: CommandError) -> Self {
        let message = e.to_string();
        match e {
            CommandError::WindowClosed => Self::Conflict { code: "window_closed", message },
            CommandError::NotAssignedToYou => Self::Conflict { code: "not_assigned", message },
            CommandError::Closed => Self::Conflict { code: "closed", message },
            CommandError::Conflict(_) => Self::Conflict { code: "conflict", message },
            CommandError::AgentUnavailable => Self::Conflict { code: "not_available", message },
            CommandError::UnknownQueue(_) | CommandError::Invalid(_) => Self::Unprocessable(message),
            // Callers only name tenants they belong to; one gone from the config is "not found".
            CommandError::UnknownTenant => Self::not_found(message),
            CommandError::Unavailable(why) => Self::Api(ApiError::Unavailable(why)),
        }
    }
}

impl RestError {
    /// The machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Api(e) => e.code(),
            Self::Unauthorized(_) => "unauthorized",
            Self::Conflict { code, .. } => code,
            Self::Gone(_) => "gone",
            Self::Unprocessable(_) => "unprocessable",
        }
    }
}

impl ResponseError for RestError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Api(e) => e.status_code(),
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Gone(_) => StatusCode::GONE,
            Self::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            Self::Api(e) => return e.error_response(),
            _ => self.code(),
        };
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, Self::Unauthorized(_)) {
            // RFC 6750: tell the client which scheme to use.
            res.insert_header(("WWW-Authenticate", r#"Bearer realm="switchboard""#));
        }
        res.json(json!({ "error": { "code": code, "message": self.to_string() } }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_commands_become_client_errors_and_only_outages_invite_a_retry() {
        let status = |e: CommandError| RestError::from(e).error_response();
        assert_eq!(status(CommandError::Closed).status(), StatusCode::CONFLICT);
        assert_eq!(status(CommandError::NotAssignedToYou).status(), StatusCode::CONFLICT);
        assert_eq!(status(CommandError::WindowClosed).status(), StatusCode::CONFLICT);
        assert_eq!(status(CommandError::UnknownQueue("x".into())).status(), StatusCode::UNPROCESSABLE_ENTITY);
        let busy = status(CommandError::Unavailable("down".into()));
        assert_eq!(busy.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(busy.headers().contains_key("retry-after"));
        let denied = RestError::Unauthorized("missing bearer token").error_response();
        assert_eq!(denied.headers().get("www-authenticate").unwrap(), r#"Bearer realm="switchboard""#);
    }
}
