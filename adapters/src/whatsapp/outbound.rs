//! The Graph send API: `POST {graph}/{version}/{phone_number_id}/messages` with a Bearer token.
//! Meta's error `code` (not the HTTP status) says whether to back off, retry or give up.

use super::{WhatsAppError, WhatsAppSettings};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::time::Duration;
use switchboard_actors::domain::{MenuOption, OutboundContent};
use switchboard_actors::ports::{Outbound, OutboundMessage, SendError};

/// Sends through one WhatsApp business number.
pub struct WhatsAppOutbound {
    client: reqwest::Client,
    url: String,
    token: String,
}

impl WhatsAppOutbound {
    /// A sender for the configured number.
    pub fn new(settings: &WhatsAppSettings) -> Result<Self, WhatsAppError> {
        let client = http_client().map_err(|e| WhatsAppError::InvalidConfig(e.to_string()))?;
        let url = format!(
            "{}/{}/{}/messages",
            settings.graph_url.trim_end_matches('/'),
            settings.graph_version,
            settings.phone_number_id
        );
        Ok(Self { client, url, token: settings.access_token.clone() })
    }
}

fn http_client() -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(256)
        .build()
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// The JSON body for a message (text; reply buttons for ≤ 3 options; a list otherwise).
pub fn request_body(recipient: &str, content: &OutboundContent) -> Value {
    let mut body = json!({ "messaging_product": "whatsapp", "recipient_type": "individual" });
    // Business-scoped user ids (users without a phone number) go in `recipient`, not `to`.
    if recipient.chars().all(|c| c.is_ascii_digit()) {
        body["to"] = json!(recipient);
    } else {
        body["recipient"] = json!(recipient);
    }
    match content {
        OutboundContent::Text { body: text } => {
            body["type"] = json!("text");
            body["text"] = json!({ "preview_url": false, "body": truncate(text, 4096) });
        }
        OutboundContent::Menu { body: text, options } => {
            body["type"] = json!("interactive");
            body["interactive"] = menu(text, options);
        }
    }
    body
}

fn menu(text: &str, options: &[MenuOption]) -> Value {
    let text = truncate(text, 1024);
    if options.len() <= 3 {
        let buttons: Vec<Value> = options
            .iter()
            .map(|o| json!({ "type": "reply", "reply": { "id": o.id, "title": truncate(&o.title, 20) } }))
            .collect();
        return json!({ "type": "button", "body": { "text": text }, "action": { "buttons": buttons } });
    }
    let rows: Vec<Value> =
        options.iter().take(10).map(|o| json!({ "id": o.id, "title": truncate(&o.title, 24) })).collect();
    json!({
        "type": "list",
        "body": { "text": text },
        "action": { "button": "Opções", "sections": [{ "title": "Opções", "rows": rows }] }
    })
}

/// Maps a Graph error to what the outbox should do.
pub fn classify_error(status: u16, body: &Value) -> SendError {
    let code = body["error"]["code"].as_i64().unwrap_or_default();
    let message = body["error"]["message"].as_str().unwrap_or("unknown error").to_owned();
    match code {
        // Throughput and app-level limits: back off briefly.
        130429 | 80007 | 4 => SendError::RateLimited { retry_after: Duration::from_secs(1) },
        // Pair limit: about one message per 6 s to the same user.
        131056 => SendError::RateLimited { retry_after: Duration::from_secs(6) },
        131000 | 131016 => SendError::Transient(message),
        _ if status == 429 => SendError::RateLimited { retry_after: Duration::from_secs(1) },
        _ if status >= 500 => SendError::Transient(format!("graph http {status}: {message}")),
        _ => SendError::Permanent(if code != 0 {
            format!("(#{code}) {message}")
        } else {
            format!("graph http {status}: {message}")
        }),
    }
}

#[async_trait]
impl Outbound for WhatsAppOutbound {
    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        let body = request_body(&msg.to.recipient, &msg.content);
        let resp = self
            .client
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::Transient(format!("graph unreachable: {e}")))?;
        let status = resp.status().as_u16();
        let json: Value = resp.json().await.unwrap_or(Value::Null);
        if status != 200 {
            return Err(classify_error(status, &json));
        }
        json["messages"][0]["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| SendError::Transient("graph answered 200 without a message id".into()))
    }

    fn with_own_connections(&self) -> Option<std::sync::Arc<dyn Outbound>> {
        let client = crate::own_client(http_client())?;
        Some(std::sync::Arc::new(Self { client, url: self.url.clone(), token: self.token.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wa_out(name: &str) -> Value {
        let all: Value = serde_json::from_str(include_str!("../../../../shared/protocols/wa_out.json")).unwrap();
        all[name].clone()
    }

    #[test]
    fn text_and_button_bodies_match_the_graph_shapes() {
        let text = request_body("15551234567", &OutboundContent::Text { body: "hello from the hub".into() });
        assert_eq!(text, wa_out("send_text_request"));
        let options = vec![
            MenuOption { id: "confirm_yes".into(), title: "Yes".into() },
            MenuOption { id: "confirm_no".into(), title: "No".into() },
        ];
        let buttons = request_body("15551234567", &OutboundContent::Menu { body: "Confirm?".into(), options });
        assert_eq!(buttons, wa_out("send_buttons_request"));
    }

    #[test]
    fn four_options_become_a_list_and_bsuid_goes_in_recipient() {
        let options = (1..=4).map(|i| MenuOption { id: i.to_string(), title: format!("Opção {i}") }).collect();
        let body = request_body("US.1000000000000001", &OutboundContent::Menu { body: "Menu".into(), options });
        assert_eq!(body["recipient"], "US.1000000000000001");
        assert!(body.get("to").is_none());
        assert_eq!(body["interactive"]["type"], "list");
        assert_eq!(body["interactive"]["action"]["sections"][0]["rows"].as_array().unwrap().len(), 4);
    }

    #[test]
    fn errors_are_classified_by_meta_code() {
        assert!(matches!(classify_error(400, &wa_out("error_throughput_400")), SendError::RateLimited { .. }));
        assert!(
            matches!(classify_error(400, &wa_out("error_pair_rate_400")), SendError::RateLimited { retry_after } if retry_after.as_secs() == 6)
        );
        assert!(matches!(
            classify_error(500, &json!({"error":{"code":131000,"message":"x"}})),
            SendError::Transient(_)
        ));
        assert!(matches!(classify_error(502, &Value::Null), SendError::Transient(_)));
        let permanent = classify_error(400, &json!({"error":{"code":131026,"message":"Message undeliverable"}}));
        assert!(matches!(permanent, SendError::Permanent(ref m) if m == "(#131026) Message undeliverable"));
    }
}
