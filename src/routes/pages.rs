//! The browser pages, built into the binary (no build step, nothing fetched from elsewhere): the
//! landing page, the agent console and the customer web-chat widget, with their scripts and
//! styles.

use crate::http_error::ApiError;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpRequest, HttpResponse, web};

const INDEX: &str = include_str!("../pages/index.html");
const CONSOLE: &str = include_str!("../pages/console.html");
const WIDGET: &str = include_str!("../pages/widget.html");

/// One file of `src/pages/`: name, content type, contents.
macro_rules! asset {
    ($name:literal, $content_type:expr) => {
        ($name, $content_type, include_str!(concat!("../pages/", $name)))
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// Scripts (ES modules, imported by relative path) and styles under `/assets/`.
const ASSETS: &[(&str, &str, &str)] = &[
    asset!("console.js", JS),
    asset!("console-util.js", JS),
    asset!("console-store.js", JS),
    asset!("console-api.js", JS),
    asset!("console-list.js", JS),
    asset!("console-chat.js", JS),
    asset!("console-actions.js", JS),
    asset!("console-notify.js", JS),
    asset!("console-socket.js", JS),
    asset!("console.css", CSS),
    asset!("menu-text.js", JS),
    asset!("widget.js", JS),
    asset!("widget.css", CSS),
];

fn html(body: &'static str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::html())
        // The pages load only their own scripts and talk only to this origin.
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .body(body)
}

/// `GET /`: the landing page; a client asking for JSON gets the service index instead.
pub async fn index(req: HttpRequest) -> HttpResponse {
    let accept = req.headers().get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("application/json") && !accept.contains("text/html") {
        return super::health::index().await;
    }
    html(INDEX)
}

/// `GET /console`.
pub async fn console() -> HttpResponse {
    html(CONSOLE)
}

/// `GET /widget`.
pub async fn widget() -> HttpResponse {
    html(WIDGET)
}

/// `GET /assets/{name}`.
pub async fn asset(name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    Ok(match ASSETS.iter().find(|(n, _, _)| *n == name.as_str()) {
        Some((_, content_type, body)) => HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, *content_type))
            .insert_header((header::CACHE_CONTROL, "no-cache"))
            .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
            .body(*body),
        None => return Err(ApiError::NotFound(format!("no asset {name}"))),
    })
}
