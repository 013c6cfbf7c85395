//! Tests of `outbound` against the load-tests crate's `FakeTelegram`.

use super::*;
use serde_json::json;
use switchboard_actors::domain::{ChannelKind, ChannelRef, ReplyAddress, TenantId};
use switchboard_load_tests::fakes::telegram::FakeTelegram;

const TOKEN: &str = "123456:TEST-token";

fn settings(api_url: String) -> TelegramSettings {
    TelegramSettings { api_url, ..TelegramSettings::new("acme", "bot", TOKEN, "s3cret") }
}

fn message(recipient: &str, content: OutboundContent) -> OutboundMessage {
    OutboundMessage {
        tenant: TenantId::new("acme"),
        to: ReplyAddress { channel: ChannelRef::new(ChannelKind::Telegram, "bot"), recipient: recipient.to_owned() },
        content,
        key: "conv-1/1".to_owned(),
        callback_query_id: None,
    }
}

fn text(body: &str) -> OutboundContent {
    OutboundContent::Text { body: body.to_owned() }
}

fn option(id: &str, title: &str) -> MenuOption {
    MenuOption { id: id.to_owned(), title: title.to_owned() }
}

async fn fake_and_sender() -> (FakeTelegram, TelegramOutbound) {
    let fake = FakeTelegram::start(TOKEN).await.expect("fake telegram");
    // The trailing slash must not turn into `//bot...`.
    let sender = TelegramOutbound::new(&settings(format!("{}/", fake.base_url()))).expect("sender");
    (fake, sender)
}

#[tokio::test]
async fn text_is_sent_with_numeric_chat_id() {
    let (fake, sender) = fake_and_sender().await;
    let id = sender.send(&message("4242", text("hello from the hub"))).await.expect("sent");
    assert_eq!(id, "1");
    let sent = fake.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].path, format!("/bot{TOKEN}/SendMessage"));
    assert_eq!(sent[0].body, json!({"chat_id": 4242, "text": "hello from the hub"}));
}

#[tokio::test]
async fn menu_is_an_inline_keyboard_one_button_per_row() {
    let (fake, sender) = fake_and_sender().await;
    let menu = OutboundContent::Menu {
        body: "Confirm?".to_owned(),
        options: vec![option("confirm_yes", "Yes"), option("confirm_no", "No")],
    };
    sender.send(&message("-1001234567890", menu)).await.expect("sent");
    let sent = fake.sent();
    assert_eq!(
        sent[0].body,
        json!({"chat_id": -1001234567890_i64, "text": "Confirm?", "reply_markup": {"inline_keyboard": [
            [{"text": "Yes", "callback_data": "confirm_yes"}],
            [{"text": "No", "callback_data": "confirm_no"}]
        ]}})
    );
}

#[tokio::test]
async fn callback_query_is_answered_before_the_reply() {
    let (fake, sender) = fake_and_sender().await;
    let mut msg = message("4242", text("noted"));
    msg.callback_query_id = Some("4382bfdwdsb323b2d9".to_owned());
    sender.send(&msg).await.expect("sent");
    let calls = fake.requests();
    let methods: Vec<&str> = calls.iter().map(|r| r.path.rsplit('/').next().unwrap_or("")).collect();
    assert_eq!(methods, ["AnswerCallbackQuery", "SendMessage"]);
    assert_eq!(calls[0].body["callback_query_id"], "4382bfdwdsb323b2d9");
}

#[tokio::test]
async fn flood_is_rate_limited_with_retry_after() {
    let (fake, sender) = fake_and_sender().await;
    fake.flood_next(1, 3);
    let err = sender.send(&message("4242", text("hi"))).await.expect_err("flooded");
    assert!(matches!(err, SendError::RateLimited { retry_after } if retry_after == Duration::from_secs(3)), "{err:?}");
    // The next one goes through.
    assert!(sender.send(&message("4242", text("hi"))).await.is_ok());
}

#[tokio::test]
async fn blocked_bot_is_permanent() {
    let (fake, sender) = fake_and_sender().await;
    fake.block_next(1);
    let err = sender.send(&message("4242", text("hi"))).await.expect_err("blocked");
    assert!(matches!(&err, SendError::Permanent(m) if m.contains("blocked")), "{err:?}");
}

#[tokio::test]
async fn recipient_that_is_not_a_chat_id_is_permanent_without_a_call() {
    let (fake, sender) = fake_and_sender().await;
    let err = sender.send(&message("@somechannel", text("hi"))).await.expect_err("refused");
    assert!(matches!(err, SendError::Permanent(_)), "{err:?}");
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn unreachable_api_is_transient_and_hides_the_token() {
    // A port nothing listens on: bind, read the port, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let sender = TelegramOutbound::new(&settings(format!("http://127.0.0.1:{port}"))).unwrap();
    let err = sender.send(&message("4242", text("hi"))).await.expect_err("unreachable");
    let SendError::Transient(reason) = &err else { panic!("expected transient, got {err:?}") };
    assert!(!reason.contains("TEST-token"), "{reason}");
}

#[test]
fn api_url_is_normalised_and_validated() {
    assert_eq!(api_url("http://h:1/").unwrap().as_str(), "http://h:1/");
    assert_eq!(api_url("http://h:1/tg/").unwrap().as_str(), "http://h:1/tg");
    assert_eq!(api_url(" https://api.telegram.org ").unwrap().as_str(), "https://api.telegram.org/");
    for bad in ["", "not a url", "mailto:bot@example.com", "ftp://h/"] {
        assert!(matches!(api_url(bad), Err(TelegramError::InvalidConfig(_))), "{bad}");
    }
    let empty_token = TelegramSettings { bot_token: " ".into(), ..settings("http://h".into()) };
    assert!(matches!(TelegramOutbound::new(&empty_token), Err(TelegramError::InvalidConfig(_))));
}

#[test]
fn callback_data_is_cut_at_64_bytes_on_a_char_boundary() {
    assert_eq!(callback_data("short"), "short");
    let ascii = "a".repeat(70);
    assert_eq!(callback_data(&ascii).len(), 64);
    // 'é' is 2 bytes: 63 ASCII + 'é' would end at byte 65, so the 'é' goes.
    let mixed = format!("{}é", "a".repeat(63));
    assert_eq!(callback_data(&mixed), "a".repeat(63));
}

#[test]
fn sent_id_is_recovered_from_a_raw_success() {
    assert_eq!(sent_message_id(r#"{"ok":true,"result":{"message_id":15,"new":1}}"#).as_deref(), Some("15"));
    assert_eq!(sent_message_id(r#"{"ok":false,"description":"x"}"#), None);
    assert_eq!(sent_message_id("<html>502</html>"), None);
}

#[test]
fn debug_hides_the_token() {
    let sender = TelegramOutbound::new(&settings("http://127.0.0.1:1".into())).unwrap();
    let printed = format!("{sender:?}");
    assert!(!printed.contains("TEST-token"), "{printed}");
}

#[test]
fn api_errors_map_by_description() {
    let sender = TelegramOutbound::new(&settings("http://127.0.0.1:1".into())).unwrap();
    let unknown = |d: &str| RequestError::Api(ApiError::Unknown(d.to_owned()));
    let err = sender.send_error(unknown("Internal Server Error"));
    assert!(matches!(err, SendError::Transient(_)), "{err:?}");
    let err = sender.send_error(unknown("Bad Request: something new"));
    assert!(matches!(&err, SendError::Permanent(m) if m == "Bad Request: something new"), "{err:?}");
    let err = sender.send_error(RequestError::Api(ApiError::ChatNotFound));
    assert!(matches!(&err, SendError::Permanent(m) if m.contains("chat not found")), "{err:?}");
    let err = sender.send_error(RequestError::MigrateToChatId(ChatId(-100123)));
    assert!(matches!(&err, SendError::Permanent(m) if m.contains("-100123")), "{err:?}");
}
