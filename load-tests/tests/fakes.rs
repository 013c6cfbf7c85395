//! Drives each fake over real HTTP (reqwest, teloxide, async-openai) and checks the wire shapes
//! against the PROTOCOLS.md examples. Most tests run under `#[actix_web::test]` like the hub's
//! tests; a few use a multi-thread tokio runtime like the load generator.
//!
//! One test binary (linking teloxide and async-openai once), one module per fake in `fakes/`
//! (a crate root resolves `mod` beside itself, hence the `#[path]`s):
//! * `whatsapp` — FakeGraph; `telegram` — FakeTelegram with teloxide;
//! * `openai` — FakeOpenAi with async-openai; `payloads` — webhook body builders.

#[path = "fakes/openai.rs"]
mod openai;
#[path = "fakes/payloads.rs"]
mod payloads;
#[path = "fakes/telegram.rs"]
mod telegram;
#[path = "fakes/whatsapp.rs"]
mod whatsapp;

use std::time::Duration;

use serde_json::Value;

/// Upper bound for waits that should succeed quickly.
const WAIT: Duration = Duration::from_secs(5);

/// POSTs `body` as JSON with an optional bearer token; returns status and JSON answer.
async fn post(url: &str, token: Option<&str>, body: &Value) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(url).json(body);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let resp = req.send().await.expect("request");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("JSON body"))
}
