//! Builders for the inbound webhook bodies the hub receives, and the WhatsApp signature.
//!
//! WhatsApp bodies are one-line JSON in the exact key order and escaping Meta uses
//! (PROTOCOLS.md 1.1/1.6: non-ASCII as lowercase `\uXXXX`), so signatures computed over them
//! exercise the hub's raw-bytes check. Telegram bodies follow `tg.json` and parse as
//! teloxide-core 0.13 `Update`s.

use std::fmt::Write as _;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::fakes::unix_now;

/// WABA id put in `entry[].id` (that of the PROTOCOLS.md examples).
pub const WA_WABA_ID: &str = "100000000000001";
/// Business display number put in `metadata.display_phone_number`.
pub const WA_DISPLAY_PHONE_NUMBER: &str = "15550001111";

/// JSON string literal with non-ASCII as lowercase `\uXXXX` escapes, as Meta writes bodies.
pub fn json_ascii(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                for unit in c.encode_utf16(&mut [0; 2]) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
    out
}

/// Telegram-style JSON string (plain UTF-8, minimal escaping).
fn json_str(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// A deterministic business-scoped user id (`US.` + 16 digits) for a sender number, so every
/// simulated user gets a distinct `user_id` (the hub may key conversations on it).
pub fn wa_user_id(from: &str) -> String {
    const RANGE: u64 = 1_000_000_000_000_000;
    let n = match from.parse::<u64>() {
        Ok(n) if from.bytes().all(|b| b.is_ascii_digit()) => n % RANGE,
        // FNV-1a: stable across runs and platforms, unlike std's RandomState.
        _ => {
            from.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
                % RANGE
        }
    };
    format!("US.{}", RANGE + n)
}

/// Envelope details of an inbound WhatsApp webhook that the short builders fill in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WaMeta {
    /// `entry[].id`.
    pub waba_id: String,
    /// `metadata.display_phone_number` (also `context.from` of replies).
    pub display_phone_number: String,
    /// `contacts[].profile.name`.
    pub profile_name: String,
    /// `contacts[].user_id` and `messages[].from_user_id`.
    pub user_id: String,
    /// Unix seconds, written as a string like Meta does.
    pub timestamp: u64,
}

impl WaMeta {
    /// Defaults for `from`: example WABA and display number, name "Ada", [`wa_user_id`], now.
    pub fn for_sender(from: &str) -> WaMeta {
        WaMeta {
            waba_id: WA_WABA_ID.to_owned(),
            display_phone_number: WA_DISPLAY_PHONE_NUMBER.to_owned(),
            profile_name: "Ada".to_owned(),
            user_id: wa_user_id(from),
            timestamp: unix_now(),
        }
    }
}

/// Wraps one `messages[]`/`statuses[]` item (`list` names which) in the full envelope.
fn wa_envelope(meta: &WaMeta, phone_number_id: &str, wa_id: &str, list: &str, item: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":{},"changes":[{{"value":{{"messaging_product":"whatsapp","metadata":{{"display_phone_number":{},"phone_number_id":{}}},"contacts":[{{"profile":{{"name":{}}},"wa_id":{},"user_id":{}}}],"{list}":[{item}]}},"field":"messages"}}]}}]}}"#,
        json_ascii(&meta.waba_id),
        json_ascii(&meta.display_phone_number),
        json_ascii(phone_number_id),
        json_ascii(&meta.profile_name),
        json_ascii(wa_id),
        json_ascii(&meta.user_id),
    )
}

/// Any inbound message: `kind` is `type`, `payload` the raw JSON object put under `kind`, and
/// `context` the wamid replied to (its `from` is the business number).
pub fn wa_message_with(
    meta: &WaMeta,
    phone_number_id: &str,
    from: &str,
    wamid: &str,
    context: Option<&str>,
    kind: &str,
    payload: &str,
) -> String {
    let context = context.map_or_else(String::new, |id| {
        format!(r#""context":{{"from":{},"id":{}}},"#, json_ascii(&meta.display_phone_number), json_ascii(id))
    });
    let item = format!(
        r#"{{{context}"from":{},"from_user_id":{},"id":{},"timestamp":"{}","type":{},{}:{payload}}}"#,
        json_ascii(from),
        json_ascii(&meta.user_id),
        json_ascii(wamid),
        meta.timestamp,
        json_ascii(kind),
        json_ascii(kind),
    );
    wa_envelope(meta, phone_number_id, from, "messages", &item)
}

/// Inbound text message webhook body (shape of `wa_in_text.json`).
pub fn wa_text(phone_number_id: &str, from: &str, wamid: &str, text: &str) -> String {
    let payload = format!(r#"{{"body":{}}}"#, json_ascii(text));
    let meta = WaMeta::for_sender(from);
    wa_message_with(&meta, phone_number_id, from, wamid, None, "text", &payload)
}

/// Inbound reply-button press (`interactive.button_reply`), without `context`.
pub fn wa_interactive_button(phone_number_id: &str, from: &str, wamid: &str, id: &str, title: &str) -> String {
    let payload = format!(
        r#"{{"type":"button_reply","button_reply":{{"id":{},"title":{}}}}}"#,
        json_ascii(id),
        json_ascii(title)
    );
    let meta = WaMeta::for_sender(from);
    wa_message_with(&meta, phone_number_id, from, wamid, None, "interactive", &payload)
}

/// Inbound image: only the media id arrives (fetch it with `GET /v{N}/{media_id}`).
pub fn wa_image(phone_number_id: &str, from: &str, wamid: &str, media_id: &str, caption: Option<&str>) -> String {
    let caption = caption.map_or_else(String::new, |c| format!(r#","caption":{}"#, json_ascii(c)));
    let payload = format!(r#"{{"id":{},"mime_type":"image/jpeg","sha256":"q1w2e3="{caption}}}"#, json_ascii(media_id));
    let meta = WaMeta::for_sender(from);
    wa_message_with(&meta, phone_number_id, from, wamid, None, "image", &payload)
}

/// Inbound shared location; `name` and `address` are optional as on the real API.
pub fn wa_location(
    phone_number_id: &str,
    from: &str,
    wamid: &str,
    latitude: f64,
    longitude: f64,
    name: Option<&str>,
    address: Option<&str>,
) -> String {
    let mut payload = format!(r#"{{"latitude":{latitude},"longitude":{longitude}"#);
    for (key, value) in [("name", name), ("address", address)] {
        if let Some(v) = value {
            let _ = write!(payload, r#","{key}":{}"#, json_ascii(v));
        }
    }
    payload.push('}');
    let meta = WaMeta::for_sender(from);
    wa_message_with(&meta, phone_number_id, from, wamid, None, "location", &payload)
}

/// Status webhook for an outbound message; `"failed"` carries the 131047 error of
/// `wa_in_more.json` (24-hour window closed).
pub fn wa_statuses(phone_number_id: &str, wamid_out: &str, status: &str, recipient: &str) -> String {
    let meta = WaMeta::for_sender(recipient);
    let errors = if status == "failed" {
        r#","errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message","error_data":{"details":"More than 24 hours have passed since the recipient last replied."},"href":"https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]"#
    } else {
        ""
    };
    let item = format!(
        r#"{{"id":{},"status":{},"timestamp":"{}","recipient_id":{}{errors}}}"#,
        json_ascii(wamid_out),
        json_ascii(status),
        meta.timestamp,
        json_ascii(recipient),
    );
    wa_envelope(&meta, phone_number_id, recipient, "statuses", &item)
}

/// `X-Hub-Signature-256` value for `body`: `sha256=` + lowercase hex HMAC-SHA256.
pub fn wa_sign(app_secret: &str, body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).expect("any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Customer user object; group chats (negative ids) get the example user 4242.
fn tg_user(chat_id: i64) -> String {
    let id = if chat_id > 0 { chat_id } else { 4242 };
    format!(r#"{{"id":{id},"is_bot":false,"first_name":"Ada","language_code":"en"}}"#)
}

fn tg_chat(chat_id: i64) -> String {
    if chat_id > 0 {
        format!(r#"{{"id":{chat_id},"first_name":"Ada","type":"private"}}"#)
    } else {
        format!(r#"{{"id":{chat_id},"title":"Team","type":"supergroup"}}"#)
    }
}

/// `{"update_id":..,"message":{..common fields.., <rest>}}`; message_id derives from update_id
/// (teloxide's `MessageId` is an i32).
fn tg_message_update(update_id: u64, chat_id: i64, rest: &str) -> String {
    let message_id = update_id % (i32::MAX as u64);
    format!(
        r#"{{"update_id":{update_id},"message":{{"message_id":{message_id},"from":{},"chat":{},"date":{},{rest}}}}}"#,
        tg_user(chat_id),
        tg_chat(chat_id),
        unix_now()
    )
}

/// Telegram text message update (shape of `tg.json` `update_text`).
pub fn tg_text(update_id: u64, chat_id: i64, text: &str) -> String {
    tg_message_update(update_id, chat_id, &format!(r#""text":{}"#, json_str(text)))
}

/// Telegram photo update: two sizes, `<file_id>-small` then `file_id` (largest last).
pub fn tg_photo(update_id: u64, chat_id: i64, file_id: &str, caption: Option<&str>) -> String {
    let caption = caption.map_or_else(String::new, |c| format!(r#","caption":{}"#, json_str(c)));
    let rest = format!(
        r#""photo":[{{"file_id":{},"file_unique_id":"uq-s","width":90,"height":67,"file_size":1200}},{{"file_id":{},"file_unique_id":"uq-l","width":800,"height":600,"file_size":64000}}]{caption}"#,
        json_str(&format!("{file_id}-small")),
        json_str(file_id)
    );
    tg_message_update(update_id, chat_id, &rest)
}

/// Inline-button press (`callback_query`, id `cbq-<update_id>`) on a bot message "Confirm?".
pub fn tg_callback(update_id: u64, chat_id: i64, data: &str) -> String {
    let message_id = update_id % (i32::MAX as u64);
    format!(
        r#"{{"update_id":{update_id},"callback_query":{{"id":"cbq-{update_id}","from":{},"message":{{"message_id":{message_id},"from":{{"id":777000,"is_bot":true,"first_name":"HubBot","username":"hub_bot"}},"chat":{},"date":{},"text":"Confirm?"}},"chat_instance":"-8123456789","data":{}}}}}"#,
        tg_user(chat_id),
        tg_chat(chat_id),
        unix_now(),
        json_str(data)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `wa_in_text.body` from the shared protocol examples (487 bytes, no newline).
    const WA_IN_TEXT: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"100000000000001","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"200000000000002"},"contacts":[{"profile":{"name":"Ada"},"wa_id":"15551234567","user_id":"US.1000000000000001"}],"messages":[{"from":"15551234567","from_user_id":"US.1000000000000001","id":"wamid.TEST-IN-1","timestamp":"1760000000","type":"text","text":{"body":"hi hub"}}]},"field":"messages"}]}]}"#;

    fn fixture_meta(timestamp: u64) -> WaMeta {
        WaMeta { user_id: "US.1000000000000001".to_owned(), timestamp, ..WaMeta::for_sender("15551234567") }
    }

    #[test]
    fn wa_sign_matches_worked_examples() {
        assert_eq!(WA_IN_TEXT.len(), 487);
        assert_eq!(
            wa_sign("test-app-secret", WA_IN_TEXT.as_bytes()),
            "sha256=a6dd50298bc960768ba449f80a73c2df6839c8ed3596c6d6f52cdce19a87ff11"
        );
        let cafe = br#"{"x":"caf\u00e9"}"#;
        assert_eq!(cafe.len(), 17);
        assert_eq!(
            wa_sign("test-app-secret", cafe),
            "sha256=39c56f96db18f4b33ae1715d420bfe9517723d1c163158850b298c12f27170ba"
        );
    }

    #[test]
    fn json_ascii_escapes_like_meta() {
        assert_eq!(format!(r#"{{"x":{}}}"#, json_ascii("café")), r#"{"x":"caf\u00e9"}"#);
        assert_eq!(json_ascii("a\"b\\\n😀"), r#""a\"b\\\n\ud83d\ude00""#);
    }

    #[test]
    fn text_body_is_byte_identical_to_the_example() {
        let payload = r#"{"body":"hi hub"}"#;
        let meta = fixture_meta(1_760_000_000);
        let body = wa_message_with(&meta, "200000000000002", "15551234567", "wamid.TEST-IN-1", None, "text", payload);
        assert_eq!(body, WA_IN_TEXT);
    }

    #[test]
    fn wa_text_differs_from_the_example_only_in_user_id_and_timestamp() {
        let body = wa_text("200000000000002", "15551234567", "wamid.TEST-IN-1", "hi hub");
        let ts = &body.split(r#""timestamp":""#).nth(1).unwrap()[..10];
        let normalised = body
            .replace("US.1000015551234567", "US.1000000000000001")
            .replace(&format!(r#""timestamp":"{ts}""#), r#""timestamp":"1760000000""#);
        assert_eq!(normalised, WA_IN_TEXT);
    }

    #[test]
    fn button_reply_with_context_matches_the_example_item() {
        let payload = r#"{"type":"button_reply","button_reply":{"id":"confirm_yes","title":"Yes"}}"#;
        let meta = fixture_meta(1_760_000_100);
        let body = wa_message_with(
            &meta,
            "200000000000002",
            "15551234567",
            "wamid.TEST-IN-3",
            Some("wamid.TEST-OUT-1"),
            "interactive",
            payload,
        );
        let item = r#"[{"context":{"from":"15550001111","id":"wamid.TEST-OUT-1"},"from":"15551234567","from_user_id":"US.1000000000000001","id":"wamid.TEST-IN-3","timestamp":"1760000100","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"confirm_yes","title":"Yes"}}}]"#;
        assert!(body.contains(item), "{body}");
    }
}
