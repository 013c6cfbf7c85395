//! Webhook body builders: WhatsApp shapes as in wa_in_*.json, Telegram ones parsed by teloxide.

use serde_json::{Value, json};
use switchboard_load_tests::payloads::{
    tg_callback, tg_photo, tg_text, wa_image, wa_interactive_button, wa_location, wa_sign, wa_statuses, wa_text,
    wa_user_id,
};
use teloxide::types::{MediaKind, MessageKind, Update, UpdateKind};

const PNID: &str = "200000000000002";

fn wa_value(body: &str) -> Value {
    let v: Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["object"], "whatsapp_business_account");
    assert_eq!(v["entry"][0]["changes"][0]["field"], "messages");
    let value = v["entry"][0]["changes"][0]["value"].clone();
    assert_eq!(value["metadata"]["phone_number_id"], PNID);
    value
}

#[test]
fn whatsapp_messages_have_the_documented_shapes() {
    let text = wa_value(&wa_text(PNID, "15551234567", "wamid.A", "café \"ok\""));
    let contact = &text["contacts"][0];
    assert_eq!(contact["wa_id"], "15551234567");
    assert_eq!(contact["user_id"], wa_user_id("15551234567"));
    let msg = &text["messages"][0];
    assert_eq!(msg["from_user_id"], contact["user_id"]);
    assert_eq!((msg["type"].clone(), msg["text"]["body"].clone()), (json!("text"), json!("café \"ok\"")));
    assert!(msg["timestamp"].as_str().unwrap().parse::<u64>().is_ok());
    assert_ne!(wa_user_id("15551234567"), wa_user_id("15551234568"));

    let button = wa_value(&wa_interactive_button(PNID, "1555", "wamid.B", "confirm_yes", "Yes"));
    let reply = &button["messages"][0]["interactive"];
    assert_eq!(*reply, json!({"type":"button_reply","button_reply":{"id":"confirm_yes","title":"Yes"}}));

    let image = wa_value(&wa_image(PNID, "1555", "wamid.C", "900000000000009", Some("receipt")));
    assert_eq!(image["messages"][0]["image"]["id"], "900000000000009");
    assert_eq!(image["messages"][0]["image"]["caption"], "receipt");
    assert_eq!(image["messages"][0]["image"]["mime_type"], "image/jpeg");

    let body = wa_location(PNID, "1555", "wamid.D", 52.52, 13.405, Some("Office"), None);
    let location = wa_value(&body)["messages"][0]["location"].clone();
    assert_eq!(location, json!({"latitude":52.52,"longitude":13.405,"name":"Office"}));
}

#[test]
fn whatsapp_statuses_carry_contacts_and_the_131047_error_when_failed() {
    let delivered = wa_value(&wa_statuses(PNID, "wamid.OUT", "delivered", "15551234567"));
    assert_eq!(delivered["contacts"][0]["wa_id"], "15551234567");
    let status = &delivered["statuses"][0];
    assert_eq!((status["id"].clone(), status["status"].clone()), (json!("wamid.OUT"), json!("delivered")));
    assert_eq!(status["recipient_id"], "15551234567");
    assert!(status.get("errors").is_none());

    let failed = wa_value(&wa_statuses(PNID, "wamid.OUT", "failed", "15551234567"));
    let error = &failed["statuses"][0]["errors"][0];
    assert_eq!(error["code"], 131047);
    assert_eq!(error["title"], "Re-engagement message");
}

#[test]
fn wa_sign_is_over_the_exact_bytes() {
    let body = wa_text(PNID, "15551234567", "wamid.A", "héllo");
    assert!(body.is_ascii(), "non-ASCII must be escaped like Meta does: {body}");
    let sig = wa_sign("secret", body.as_bytes());
    assert_eq!(sig.len(), "sha256=".len() + 64);
    assert_ne!(sig, wa_sign("secret", format!("{body} ").as_bytes()));
}

fn parse_update(body: &str) -> Update {
    // From the raw string, as the hub must (PROTOCOLS.md 2.1: from_value gives UpdateKind::Error).
    let update: Update = serde_json::from_str(body).unwrap();
    assert!(!matches!(update.kind, UpdateKind::Error(_)), "{body} -> {update:?}");
    update
}

#[test]
fn telegram_updates_parse_with_teloxide() {
    let update = parse_update(&tg_text(100001, 4242, "hi hub"));
    assert_eq!(update.id.0, 100001);
    let UpdateKind::Message(message) = update.kind else { panic!() };
    assert_eq!(message.text(), Some("hi hub"));
    assert_eq!(message.chat.id.0, 4242);
    assert_eq!(message.from.unwrap().id.0, 4242);

    let group = parse_update(&tg_text(100005, -1001234567890, "hello team"));
    let UpdateKind::Message(message) = group.kind else { panic!() };
    assert!(message.chat.is_supergroup());

    let photo = parse_update(&tg_photo(100002, 4242, "AgAD-large", Some("receipt")));
    let UpdateKind::Message(message) = photo.kind else { panic!() };
    let MessageKind::Common(common) = &message.kind else { panic!() };
    let MediaKind::Photo(media) = &common.media_kind else { panic!() };
    assert_eq!(media.photo.last().unwrap().file.id.0, "AgAD-large");
    assert_eq!(message.caption(), Some("receipt"));

    let callback = parse_update(&tg_callback(100004, 4242, "confirm_yes"));
    let UpdateKind::CallbackQuery(query) = callback.kind else { panic!() };
    assert_eq!(query.data.as_deref(), Some("confirm_yes"));
    assert_eq!(query.from.id.0, 4242);
}
