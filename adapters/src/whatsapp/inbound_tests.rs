use super::*;
use switchboard_actors::domain::ChannelKind;

const TEXT_BODY: &str = include_str!("../../../../shared/protocols/wa_in_text.body");

fn resolve(pnid: &str) -> Option<(TenantId, ChannelRef)> {
    (pnid == "200000000000002").then(|| (TenantId::new("demo"), ChannelRef::new(ChannelKind::WhatsApp, "main")))
}

fn more(name: &str) -> String {
    let all: serde_json::Value =
        serde_json::from_str(include_str!("../../../../shared/protocols/wa_in_more.json")).unwrap();
    all[name].to_string()
}

fn only_message(body: &[u8]) -> InboundMessage {
    let parsed = parse_webhook(body, &resolve).unwrap();
    match parsed.items.as_slice() {
        [WebhookItem { kind: WebhookKind::Message(m), .. }] => m.clone(),
        other => panic!("expected one message, got {other:?}"),
    }
}

#[test]
fn signature_matches_the_worked_examples() {
    let body = TEXT_BODY.trim_end_matches('\n').as_bytes();
    let good = b"sha256=a6dd50298bc960768ba449f80a73c2df6839c8ed3596c6d6f52cdce19a87ff11";
    verify_signature("test-app-secret", Some(good), body).unwrap();
    let escaped = br#"{"x":"caf\u00e9"}"#;
    let sig = b"sha256=39c56f96db18f4b33ae1715d420bfe9517723d1c163158850b298c12f27170ba";
    verify_signature("test-app-secret", Some(sig), escaped).unwrap();
    assert!(matches!(verify_signature("other", Some(good), body), Err(WhatsAppError::BadSignature)));
    assert!(matches!(verify_signature("test-app-secret", None, body), Err(WhatsAppError::MissingSignature)));
    assert!(matches!(verify_signature("test-app-secret", Some(b"sha256=zz"), body), Err(WhatsAppError::BadSignature)));
}

#[test]
fn handshake_echoes_the_challenge_only_for_the_right_token() {
    assert_eq!(verify_handshake("tok", Some("tok"), Some("1158201444")).unwrap(), "1158201444");
    assert!(verify_handshake("tok", Some("nope"), Some("1")).is_err());
    assert!(verify_handshake("tok", None, Some("1")).is_err());
}

#[test]
fn parses_text_with_contact_and_reply_address() {
    let m = only_message(TEXT_BODY.as_bytes());
    assert_eq!(m.provider_id, "wamid.TEST-IN-1");
    assert_eq!(m.content, Content::Text { body: "hi hub".into() });
    assert_eq!(m.contact, Contact { key: "15551234567".into(), name: Some("Ada".into()) });
    assert_eq!(m.reply_to.recipient, "15551234567");
    assert_eq!(m.sent_at_ms, 1_760_000_000_000);
}

#[test]
fn parses_media_button_and_location() {
    let image = only_message(more("image").as_bytes());
    assert_eq!(
        image.content,
        Content::Media {
            media: MediaKind::Image,
            media_id: "900000000000009".into(),
            mime_type: Some("image/jpeg".into()),
            caption: Some("receipt".into()),
            filename: None
        }
    );
    let button = only_message(more("button").as_bytes());
    assert_eq!(button.content, Content::Choice { id: "confirm_yes".into(), title: "Yes".into() });
    let location = only_message(more("location").as_bytes());
    assert!(
        matches!(location.content, Content::Location { latitude, name: Some(ref n), .. } if latitude == 52.52 && n == "Office")
    );
}

#[test]
fn parses_statuses_including_failures() {
    let parsed = parse_webhook(more("status_failed").as_bytes(), &resolve).unwrap();
    let [WebhookItem { kind: WebhookKind::Status(update), .. }] = parsed.items.as_slice() else { panic!() };
    assert_eq!(update.state, DeliveryState::Failed);
    assert_eq!(update.provider_message_id, "wamid.TEST-OUT-2");
    assert_eq!(update.error.as_deref(), Some("(131047) Re-engagement message"));
}

#[test]
fn several_messages_and_unknown_numbers() {
    let body = r#"{"object":"whatsapp_business_account","entry":[
      {"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1","phone_number_id":"200000000000002"},
        "contacts":[{"profile":{"name":"Bia"},"wa_id":"551187654321"}],
        "messages":[{"from":"551187654321","id":"wamid.A","timestamp":"1","type":"text","text":{"body":"a"}},
                    {"from":"551187654321","id":"wamid.B","timestamp":"2","type":"reaction","reaction":{"message_id":"wamid.A","emoji":"👍"}},
                    {"from":"551187654321","id":"wamid.C","timestamp":"3","type":"order"}]}}]},
      {"id":"2","changes":[{"field":"messages","value":{"metadata":{"phone_number_id":"999"},"messages":[{"from":"1","id":"wamid.X","type":"text","text":{"body":"x"}}]}}]}]}"#;
    let parsed = parse_webhook(body.as_bytes(), &resolve).unwrap();
    assert_eq!(parsed.items.len(), 3);
    assert_eq!(parsed.unknown_numbers, vec!["999".to_owned()]);
    let WebhookKind::Message(first) = &parsed.items[0].kind else { panic!() };
    assert_eq!(first.contact.key, "5511987654321", "ninth digit added to the contact key");
    assert_eq!(first.reply_to.recipient, "551187654321", "replies go to the wa_id as received");
    let WebhookKind::Message(third) = &parsed.items[2].kind else { panic!() };
    assert_eq!(third.content, Content::Unsupported { provider_type: "order".into() });
}

#[test]
fn malformed_bodies_are_errors() {
    assert!(matches!(parse_webhook(b"{not json", &resolve), Err(WhatsAppError::Malformed(_))));
    assert!(matches!(parse_webhook(br#"{"object":"page","entry":[]}"#, &resolve), Err(WhatsAppError::Malformed(_))));
}
