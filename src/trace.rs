//! `X-Trace-Id`: kept from the request when it is sane, created otherwise, echoed in the
//! response and carried in every event the request causes.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use std::future::{Ready, ready};

/// Header name.
pub const TRACE_HEADER: &str = "x-trace-id";

/// The trace id of the current request.
#[derive(Clone, Debug)]
pub struct TraceId(pub String);

fn acceptable(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Middleware: attach a trace id to the request and the response.
pub async fn trace_id(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let id = req
        .headers()
        .get(TRACE_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(TraceId(id.clone()));
    let mut res = next.call(req).await?;
    if let Ok(value) = HeaderValue::from_str(&id) {
        res.headers_mut().insert(HeaderName::from_static(TRACE_HEADER), value);
    }
    Ok(res)
}

impl FromRequest for TraceId {
    type Error = actix_web::Error;
    type Future = Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let id =
            req.extensions().get::<TraceId>().cloned().unwrap_or_else(|| TraceId(uuid::Uuid::now_v7().to_string()));
        ready(Ok(id))
    }
}
