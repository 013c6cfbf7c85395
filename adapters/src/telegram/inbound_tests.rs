//! Tests of `inbound`: payloads from PROTOCOLS.md 2.4 / `tg.json` plus the other shapes.

use super::*;

const TEXT: &str = r#"{"update_id":100001,"message":{"message_id":11,"from":{"id":4242,"is_bot":false,"first_name":"Ada","language_code":"en"},"chat":{"id":4242,"first_name":"Ada","type":"private"},"date":1760000000,"text":"hi hub"}}"#;
const PHOTO: &str = r#"{"update_id":100002,"message":{"message_id":12,"from":{"id":4242,"is_bot":false,"first_name":"Ada"},"chat":{"id":4242,"first_name":"Ada","type":"private"},"date":1760000050,"photo":[{"file_id":"AgAD-small","file_unique_id":"uq-s","width":90,"height":67,"file_size":1200},{"file_id":"AgAD-large","file_unique_id":"uq-l","width":800,"height":600,"file_size":64000}],"caption":"receipt"}}"#;
const LOCATION: &str = r#"{"update_id":100003,"message":{"message_id":13,"from":{"id":4242,"is_bot":false,"first_name":"Ada"},"chat":{"id":-1001234567890,"title":"Team","type":"supergroup"},"date":1760000100,"location":{"latitude":52.52,"longitude":13.405}}}"#;
const CALLBACK: &str = r#"{"update_id":100004,"callback_query":{"id":"4382bfdwdsb323b2d9","from":{"id":4242,"is_bot":false,"first_name":"Ada"},"message":{"message_id":14,"from":{"id":777000,"is_bot":true,"first_name":"HubBot","username":"hub_bot"},"chat":{"id":4242,"first_name":"Ada","type":"private"},"date":1760000150,"text":"Confirm?"},"chat_instance":"-8123456789","data":"confirm_yes"}}"#;

fn settings() -> TelegramSettings {
    TelegramSettings::new("acme", "bot", "123:token", "s3cret")
}

fn parse(body: &str) -> Option<ParsedUpdate> {
    parse_update(&settings(), body.as_bytes()).expect("valid update")
}

/// The message of an update with `body` spliced in as the message's content fields.
fn message_with(fields: &str) -> String {
    format!(
        r#"{{"update_id":7,"message":{{"message_id":30,"from":{{"id":4242,"is_bot":false,"first_name":"Ada","last_name":"Lovelace"}},"chat":{{"id":4242,"first_name":"Ada","type":"private"}},"date":1760000300,{fields}}}}}"#
    )
}

fn content_of(fields: &str) -> Content {
    parse(&message_with(fields)).expect("handled").message.content
}

fn bot_channel() -> ChannelRef {
    ChannelRef::new(ChannelKind::Telegram, "bot")
}

#[test]
fn secret_must_match_exactly() {
    assert!(verify_secret("s3cret", Some(b"s3cret")).is_ok());
    for bad in [&b"s3cre"[..], b"s3cret ", b"S3CRET", b""] {
        assert!(matches!(verify_secret("s3cret", Some(bad)), Err(TelegramError::Unauthorized)));
    }
    assert!(matches!(verify_secret("s3cret", None), Err(TelegramError::Unauthorized)));
    // An unset secret never authenticates, not even an empty header.
    assert!(matches!(verify_secret("", Some(b"")), Err(TelegramError::Unauthorized)));
}

#[test]
fn text_message() {
    let parsed = parse(TEXT).expect("handled");
    assert_eq!(parsed.update_id, 100001);
    assert_eq!(
        parsed.message,
        InboundMessage {
            provider_id: "tg:100001".into(),
            contact: Contact { key: "4242".into(), name: Some("Ada".into()) },
            reply_to: ReplyAddress { channel: bot_channel(), recipient: "4242".into() },
            content: Content::Text { body: "hi hub".into() },
            sent_at_ms: 1_760_000_000_000,
            callback_query_id: None,
        }
    );
}

#[test]
fn photo_takes_the_largest_size() {
    let msg = parse(PHOTO).expect("handled").message;
    assert_eq!(msg.provider_id, "tg:100002");
    assert_eq!(
        msg.content,
        Content::Media {
            media: MediaKind::Image,
            media_id: "AgAD-large".into(),
            mime_type: None,
            caption: Some("receipt".into()),
            filename: None,
        }
    );
}

#[test]
fn location_in_a_supergroup_replies_to_the_group() {
    let msg = parse(LOCATION).expect("handled").message;
    assert_eq!(msg.contact.key, "4242");
    assert_eq!(msg.reply_to.recipient, "-1001234567890");
    assert_eq!(msg.content, Content::Location { latitude: 52.52, longitude: 13.405, name: None, address: None });
    assert_eq!(msg.sent_at_ms, 1_760_000_100_000);
}

#[test]
fn callback_is_a_choice_with_the_query_id() {
    let before = now_ms();
    let msg = parse(CALLBACK).expect("handled").message;
    assert_eq!(msg.provider_id, "tg:100004");
    assert_eq!(msg.content, Content::Choice { id: "confirm_yes".into(), title: "confirm_yes".into() });
    assert_eq!(msg.callback_query_id.as_deref(), Some("4382bfdwdsb323b2d9"));
    assert_eq!(msg.reply_to, ReplyAddress { channel: bot_channel(), recipient: "4242".into() });
    assert_eq!(msg.contact.key, "4242");
    assert!(msg.sent_at_ms >= before);
}

#[test]
fn callback_title_is_the_button_label_when_the_keyboard_is_known() {
    let body = r#"{"update_id":9,"callback_query":{"id":"q1","from":{"id":4242,"is_bot":false,"first_name":"Ada"},"message":{"message_id":14,"from":{"id":777000,"is_bot":true,"first_name":"HubBot"},"chat":{"id":-100555,"title":"Team","type":"supergroup"},"date":1760000150,"text":"Confirm?","reply_markup":{"inline_keyboard":[[{"text":"Yes","callback_data":"confirm_yes"}],[{"text":"No","callback_data":"confirm_no"}]]}},"chat_instance":"-1","data":"confirm_no"}}"#;
    let msg = parse(body).expect("handled").message;
    assert_eq!(msg.content, Content::Choice { id: "confirm_no".into(), title: "No".into() });
    assert_eq!(msg.reply_to.recipient, "-100555");
}

#[test]
fn callback_without_message_answers_the_presser() {
    let body = r#"{"update_id":10,"callback_query":{"id":"q2","from":{"id":4242,"is_bot":false,"first_name":"Ada"},"inline_message_id":"AAAA","chat_instance":"-1","data":"x"}}"#;
    let msg = parse(body).expect("handled").message;
    assert_eq!(msg.reply_to.recipient, "4242");
    assert_eq!(msg.callback_query_id.as_deref(), Some("q2"));
}

#[test]
fn edited_text_is_an_edit_with_its_own_provider_id() {
    let body = r#"{"update_id":100005,"edited_message":{"message_id":11,"from":{"id":4242,"is_bot":false,"first_name":"Ada"},"chat":{"id":4242,"first_name":"Ada","type":"private"},"date":1760000000,"edit_date":1760000060,"text":"hi hub!"}}"#;
    let parsed = parse(body).expect("handled");
    assert_eq!(parsed.message.provider_id, "tg:100005");
    assert_eq!(parsed.message.content, Content::Edit { original_id: "tg-msg:4242:11".into(), body: "hi hub!".into() });
    assert_eq!(parsed.message.sent_at_ms, 1_760_000_060_000);
}

#[test]
fn edited_live_location_is_ignored() {
    let body = r#"{"update_id":100007,"edited_message":{"message_id":13,"from":{"id":4242,"is_bot":false,"first_name":"Ada"},"chat":{"id":4242,"first_name":"Ada","type":"private"},"date":1760000100,"edit_date":1760000160,"location":{"latitude":52.53,"longitude":13.41,"live_period":900}}}"#;
    assert_eq!(parse(body), None);
}

#[test]
fn updates_the_hub_does_not_handle_are_none() {
    let unknown = r#"{"update_id":100006,"some_future_update":{"x":1}}"#;
    let channel_post = r#"{"update_id":100008,"channel_post":{"message_id":5,"sender_chat":{"id":-100777,"title":"News","type":"channel"},"chat":{"id":-100777,"title":"News","type":"channel"},"date":1760000000,"text":"news"}}"#;
    // A `message` teloxide cannot parse becomes `UpdateKind::Error`, and is ignored too.
    let broken_message = r#"{"update_id":100009,"message":{"message_id":"not a number"}}"#;
    for body in [unknown, channel_post, broken_message] {
        assert_eq!(parse(body), None, "{body}");
    }
}

#[test]
fn malformed_bodies_are_errors() {
    for body in [&b"not json"[..], b"{\"message\":{}}", b"[]", b""] {
        let result = parse_update(&settings(), body);
        assert!(matches!(result, Err(TelegramError::Malformed(_))), "{result:?}");
    }
}

#[test]
fn documents_voice_audio_video_and_stickers_are_media() {
    let doc = content_of(
        r#""document":{"file_id":"BQAD","file_unique_id":"d","file_name":"invoice.pdf","mime_type":"application/pdf","file_size":10},"caption":"march""#,
    );
    assert_eq!(
        doc,
        Content::Media {
            media: MediaKind::Document,
            media_id: "BQAD".into(),
            mime_type: Some("application/pdf".into()),
            caption: Some("march".into()),
            filename: Some("invoice.pdf".into()),
        }
    );
    let voice = content_of(r#""voice":{"file_id":"AwAD","file_unique_id":"v","duration":3,"mime_type":"audio/ogg"}"#);
    assert!(matches!(
        voice,
        Content::Media { media: MediaKind::Audio, ref media_id, mime_type: Some(ref m), .. }
            if media_id == "AwAD" && m == "audio/ogg"
    ));
    let audio = content_of(
        r#""audio":{"file_id":"CQAD","file_unique_id":"a","duration":180,"file_name":"song.mp3","mime_type":"audio/mpeg"}"#,
    );
    assert!(
        matches!(audio, Content::Media { media: MediaKind::Audio, ref filename, .. } if filename.as_deref() == Some("song.mp3"))
    );
    let video = content_of(
        r#""video":{"file_id":"BAAD","file_unique_id":"w","width":640,"height":360,"duration":5,"mime_type":"video/mp4"}"#,
    );
    assert!(
        matches!(video, Content::Media { media: MediaKind::Video, ref media_id, .. } if media_id == "BAAD"),
        "{video:?}"
    );
    let sticker = content_of(
        r#""sticker":{"file_id":"CAAD","file_unique_id":"s","type":"regular","width":512,"height":512,"is_animated":false,"is_video":false,"emoji":"👍"}"#,
    );
    assert!(matches!(sticker, Content::Media { media: MediaKind::Sticker, ref media_id, .. } if media_id == "CAAD"));
}

#[test]
fn contacts_venues_and_the_rest() {
    let contact = content_of(r#""contact":{"phone_number":"+491701234567","first_name":"Grace","last_name":"Hopper"}"#);
    assert_eq!(contact, Content::Contacts { names: vec!["Grace Hopper".into()] });
    let venue = content_of(
        r#""location":{"latitude":52.5,"longitude":13.4},"venue":{"location":{"latitude":52.5,"longitude":13.4},"title":"Office","address":"Main St 1"}"#,
    );
    assert_eq!(
        venue,
        Content::Location {
            latitude: 52.5,
            longitude: 13.4,
            name: Some("Office".into()),
            address: Some("Main St 1".into()),
        }
    );
    let dice = content_of(r#""dice":{"emoji":"🎲","value":3}"#);
    assert_eq!(dice, Content::Unsupported { provider_type: "dice".into() });
    let note = content_of(r#""video_note":{"file_id":"DQAD","file_unique_id":"n","length":240,"duration":4}"#);
    assert_eq!(note, Content::Unsupported { provider_type: "video_note".into() });
    // teloxide needs `mime_type` on voice/audio/video; the raw body fills in.
    let voice = content_of(r#""voice":{"file_id":"AwAD","file_unique_id":"v","duration":3},"caption":"hear""#);
    assert_eq!(
        voice,
        Content::Media {
            media: MediaKind::Audio,
            media_id: "AwAD".into(),
            mime_type: None,
            caption: Some("hear".into()),
            filename: None,
        }
    );
    let future = content_of(r#""holo_message":{"id":"x"}"#);
    assert_eq!(future, Content::Unsupported { provider_type: "unknown".into() });
}

#[test]
fn contact_name_joins_first_and_last() {
    let msg = parse(&message_with(r#""text":"hi""#)).expect("handled").message;
    assert_eq!(msg.contact, Contact { key: "4242".into(), name: Some("Ada Lovelace".into()) });
}

#[test]
fn variant_names_are_snake_case() {
    assert_eq!(variant_name("VideoNote(MediaVideoNote { .. })"), "video_note");
    assert_eq!(variant_name("NewChatMembers(..)"), "new_chat_members");
    assert_eq!(variant_name("Poll"), "poll");
}
