//! Errors as HTTP answers: every error gets a status and a JSON body
//! `{"error":{"code":"…","message":"…"}}`. This is the only place statuses are chosen.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;
use switchboard_actors::ports::RETRY_AFTER;

/// The `Retry-After` header of every 503: when a provider or a load balancer should try again.
pub fn retry_after() -> (&'static str, String) {
    ("Retry-After", RETRY_AFTER.as_secs().max(1).to_string())
}

/// An error a handler returns.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Malformed input.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or wrong credentials/signature.
    #[error("{0}")]
    Unauthorized(String),
    /// Credentials understood but refused (WhatsApp handshake token).
    #[error("{0}")]
    Forbidden(String),
    /// No such resource (unknown channel, unknown path).
    #[error("{0}")]
    NotFound(String),
    /// The path exists but not with this method.
    #[error("method {0} is not allowed here")]
    MethodNotAllowed(String),
    /// Body over the configured limit.
    #[error("request body exceeds {0} bytes")]
    PayloadTooLarge(usize),
    /// Backpressure: try again soon.
    #[error("hub is busy, retry later")]
    Busy,
    /// A dependency is down.
    #[error("service unavailable: {0}")]
    Unavailable(String),
}

impl ApiError {
    /// The machine-readable code of the error body.
    pub fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::Unauthorized(_) => "unauthorized",
            Self::Forbidden(_) => "forbidden",
            Self::NotFound(_) => "not_found",
            Self::MethodNotAllowed(_) => "method_not_allowed",
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Busy => "busy",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Busy | Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status_code());
        if matches!(self, Self::Busy | Self::Unavailable(_)) {
            // WhatsApp and Telegram retry non-2xx; tell them when.
            res.insert_header(retry_after());
        }
        res.json(json!({ "error": { "code": self.code(), "message": self.to_string() } }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::body::to_bytes;

    #[actix_web::test]
    async fn busy_is_503_with_retry_after_and_a_json_body() {
        let res = ApiError::Busy.error_response();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(res.headers().get("retry-after").unwrap(), "1");
        let body: serde_json::Value = serde_json::from_slice(&to_bytes(res.into_body()).await.unwrap()).unwrap();
        assert_eq!(body["error"]["code"], "busy");
    }

    #[test]
    fn client_errors_do_not_invite_retries() {
        let res = ApiError::PayloadTooLarge(10).error_response();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(res.headers().get("retry-after").is_none());
    }
}
