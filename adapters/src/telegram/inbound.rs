//! Inbound webhooks: the secret-token header check and the translation of one teloxide
//! `Update` into the hub's `InboundMessage`.
//!
//! The body is deserialised with `serde_json::from_slice` straight into teloxide's `Update`:
//! going through `serde_json::Value` first silently yields `UpdateKind::Error` (PROTOCOLS.md 2.1).

use super::{TelegramError, TelegramSettings};
use sha2::{Digest, Sha256};
use std::time::{SystemTime, UNIX_EPOCH};
use switchboard_actors::domain::{ChannelKind, ChannelRef, Contact, Content, InboundMessage, MediaKind, ReplyAddress};
use teloxide::types::{
    CallbackQuery, ChatId, InlineKeyboardButtonKind, MediaKind as TgMedia, Message, MessageKind, Update, UpdateKind,
    User,
};

/// `provider_type` of message content teloxide could not parse.
const UNKNOWN: &str = "unknown";

/// An update the hub handles, translated.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedUpdate {
    /// Telegram's `update_id` (teloxide models it as `u32`).
    pub update_id: u32,
    /// The customer message; `provider_id` is `tg:{update_id}`.
    pub message: InboundMessage,
}

/// Checks `X-Telegram-Bot-Api-Secret-Token` against the configured secret.
///
/// Fails closed: a missing header, a wrong one, or an empty configured secret is
/// `Unauthorized`.
pub fn verify_secret(expected: &str, header: Option<&[u8]>) -> Result<(), TelegramError> {
    let header = header.ok_or(TelegramError::Unauthorized)?;
    if expected.is_empty() {
        return Err(TelegramError::Unauthorized);
    }
    // Comparing fixed-size digests keeps both the content and the length of the secret out of
    // the timing; the fold never exits early.
    let want = Sha256::digest(expected.as_bytes());
    let got = Sha256::digest(header);
    let diff = want.iter().zip(got.iter()).fold(0u8, |acc, (a, b)| acc | (a ^ b));
    if diff == 0 { Ok(()) } else { Err(TelegramError::Unauthorized) }
}

/// Parses one webhook body.
///
/// `Ok(None)` means a valid update the hub does not handle (channel posts, polls, member
/// changes, kinds teloxide cannot parse): the webhook still answers 200 so Telegram does not
/// redeliver it.
pub fn parse_update(settings: &TelegramSettings, body: &[u8]) -> Result<Option<ParsedUpdate>, TelegramError> {
    let update: Update = serde_json::from_slice(body).map_err(|e| TelegramError::Malformed(e.to_string()))?;
    let update_id = update.id.0;
    // One provider id per update, edits and callbacks included, so dedup never drops an edit
    // as a repeat of the original message.
    let provider_id = format!("tg:{update_id}");
    let message = match update.kind {
        UpdateKind::Message(msg) => {
            let content = match message_content(&msg) {
                Content::Unsupported { provider_type } if provider_type == UNKNOWN => {
                    raw_media(body).unwrap_or(Content::Unsupported { provider_type })
                }
                content => content,
            };
            Some(from_message(settings, provider_id, &msg, content, unix_ms(msg.date.timestamp())))
        }
        UpdateKind::EditedMessage(msg) => edit_content(&msg).map(|content| {
            let at = msg.edit_date().unwrap_or(&msg.date).timestamp();
            from_message(settings, provider_id, &msg, content, unix_ms(at))
        }),
        UpdateKind::CallbackQuery(query) => Some(from_callback(settings, provider_id, query)),
        other => {
            tracing::debug!(
                tenant = %settings.tenant,
                channel = %settings.channel,
                update_id,
                kind = %variant_name(&format!("{other:?}")),
                "telegram update ignored"
            );
            None
        }
    };
    Ok(message.map(|message| ParsedUpdate { update_id, message }))
}

/// The channel's reply address for a chat.
fn reply_to(settings: &TelegramSettings, chat_id: ChatId) -> ReplyAddress {
    ReplyAddress {
        channel: ChannelRef::new(ChannelKind::Telegram, &settings.channel),
        recipient: chat_id.0.to_string(),
    }
}

fn contact_of(user: &User) -> Contact {
    Contact { key: user.id.0.to_string(), name: Some(user.full_name()) }
}

/// A message or an edit (`content` already decided) with its sender and chat.
fn from_message(
    settings: &TelegramSettings,
    provider_id: String,
    msg: &Message,
    content: Content,
    sent_at_ms: u64,
) -> InboundMessage {
    // `from` is absent only for messages sent on behalf of a chat (linked channel, anonymous
    // admin); that chat is then the most stable "contact" there is.
    let contact = msg
        .from
        .as_ref()
        .map(contact_of)
        .unwrap_or_else(|| Contact { key: msg.sender_chat.as_ref().unwrap_or(&msg.chat).id.0.to_string(), name: None });
    InboundMessage {
        provider_id,
        contact,
        reply_to: reply_to(settings, msg.chat.id),
        content,
        sent_at_ms,
        callback_query_id: None,
    }
}

/// An inline-button press.
fn from_callback(settings: &TelegramSettings, provider_id: String, query: CallbackQuery) -> InboundMessage {
    // Answer in the chat that holds the keyboard; a button on an inline-mode message has no
    // chat, and the private chat with the presser has the presser's id.
    let chat_id = query.message.as_ref().map_or_else(|| ChatId::from(query.from.id), |m| m.chat().id);
    let content = match query.data.as_deref() {
        Some(data) => Content::Choice { id: data.to_owned(), title: button_label(&query, data) },
        None => Content::Unsupported { provider_type: "callback_game".to_owned() },
    };
    InboundMessage {
        provider_id,
        contact: contact_of(&query.from),
        reply_to: reply_to(settings, chat_id),
        content,
        // A callback carries no timestamp (the message's `date` is when the bot sent the
        // keyboard), so the press is stamped on arrival.
        sent_at_ms: now_ms(),
        callback_query_id: Some(query.id.0.clone()),
    }
}

/// The label of the pressed button when the keyboard message is at hand, else the data itself.
fn button_label(query: &CallbackQuery, data: &str) -> String {
    query
        .message
        .as_ref()
        .and_then(|m| m.regular_message())
        .and_then(Message::reply_markup)
        .into_iter()
        .flat_map(|markup| markup.inline_keyboard.iter().flatten())
        .find(|b| matches!(&b.kind, InlineKeyboardButtonKind::CallbackData(d) if d == data))
        .map_or_else(|| data.to_owned(), |b| b.text.clone())
}

/// The content of a new message.
fn message_content(msg: &Message) -> Content {
    let common = match &msg.kind {
        MessageKind::Common(common) => common,
        // teloxide's catch-all: content it cannot parse (a newer Bot API kind, or a known kind
        // missing a field teloxide requires) lands here rather than failing the update.
        MessageKind::Empty {} => {
            return Content::Unsupported { provider_type: UNKNOWN.into() };
        }
        // Service messages (members joining, pins, dice...) are not customer content.
        other => return unsupported(other),
    };
    match &common.media_kind {
        TgMedia::Text(t) => Content::Text { body: t.text.clone() },
        // Sizes come smallest first: the last one is the original resolution.
        TgMedia::Photo(p) => match p.photo.last() {
            Some(largest) => media(MediaKind::Image, &largest.file.id.0, None, &p.caption, None),
            None => Content::Unsupported { provider_type: "photo".to_owned() },
        },
        TgMedia::Document(d) => {
            let doc = &d.document;
            let mime = mime(doc.mime_type.as_ref());
            media(MediaKind::Document, &doc.file.id.0, mime, &d.caption, doc.file_name.clone())
        }
        TgMedia::Voice(v) => {
            let mime = mime(v.voice.mime_type.as_ref());
            media(MediaKind::Audio, &v.voice.file.id.0, mime, &v.caption, None)
        }
        TgMedia::Audio(a) => {
            let mime = mime(a.audio.mime_type.as_ref());
            media(MediaKind::Audio, &a.audio.file.id.0, mime, &a.caption, a.audio.file_name.clone())
        }
        TgMedia::Video(v) => {
            let mime = mime(v.video.mime_type.as_ref());
            media(MediaKind::Video, &v.video.file.id.0, mime, &v.caption, v.video.file_name.clone())
        }
        TgMedia::Sticker(s) => media(MediaKind::Sticker, &s.sticker.file.id.0, None, &None, None),
        TgMedia::Location(l) => Content::Location {
            latitude: l.location.latitude,
            longitude: l.location.longitude,
            name: None,
            address: None,
        },
        // A venue is a location with a name; Telegram also sends it as `location`.
        TgMedia::Venue(v) => Content::Location {
            latitude: v.venue.location.latitude,
            longitude: v.venue.location.longitude,
            name: Some(v.venue.title.clone()),
            address: Some(v.venue.address.clone()),
        },
        TgMedia::Contact(c) => {
            let c = &c.contact;
            let name = match &c.last_name {
                Some(last) => format!("{} {last}", c.first_name),
                None => c.first_name.clone(),
            };
            Content::Contacts { names: vec![name] }
        }
        other => unsupported(other),
    }
}

/// Media teloxide 0.13 could not parse, read from the raw body. teloxide requires `mime_type`
/// on audio, voice and video, which the Bot API marks optional, and files such a message as
/// `MessageKind::Empty`: a customer's voice note must not be lost to that.
fn raw_media(body: &[u8]) -> Option<Content> {
    let update: serde_json::Value = serde_json::from_slice(body).ok()?;
    let msg = update.get("message")?;
    let text = |v: &serde_json::Value, key: &str| v.get(key)?.as_str().map(str::to_owned);
    let caption = text(msg, "caption");
    [("voice", MediaKind::Audio), ("audio", MediaKind::Audio), ("video", MediaKind::Video)].into_iter().find_map(
        |(key, kind)| {
            let file = msg.get(key)?;
            let file_id = text(file, "file_id")?;
            let (mime, name) = (text(file, "mime_type"), text(file, "file_name"));
            Some(media(kind, &file_id, mime, &caption, name))
        },
    )
}

/// An edit the hub shows to agents: new text (or new caption). Other edits, such as the
/// stream of live-location updates, are ignored.
fn edit_content(msg: &Message) -> Option<Content> {
    let body = msg.text().or_else(|| msg.caption())?;
    Some(Content::Edit { original_id: format!("tg-msg:{}:{}", msg.chat.id.0, msg.id.0), body: body.to_owned() })
}

/// A MIME type as text (teloxide uses `mime::Mime`, which the hub does not depend on).
fn mime(m: Option<&impl ToString>) -> Option<String> {
    m.map(ToString::to_string)
}

fn media(
    media: MediaKind,
    file_id: &str,
    mime_type: Option<String>,
    caption: &Option<String>,
    filename: Option<String>,
) -> Content {
    Content::Media { media, media_id: file_id.to_owned(), mime_type, caption: caption.clone(), filename }
}

/// `Unsupported` named after the teloxide variant (`VideoNote` -> `video_note`). teloxide has
/// dozens of message kinds and adds more with each Bot API release; naming them from `Debug`
/// keeps this from rotting.
fn unsupported(kind: &impl std::fmt::Debug) -> Content {
    Content::Unsupported { provider_type: variant_name(&format!("{kind:?}")) }
}

/// The leading identifier of a `Debug` rendering, in snake case.
fn variant_name(debug: &str) -> String {
    let mut name = String::new();
    for c in debug.chars().take_while(char::is_ascii_alphanumeric) {
        if c.is_ascii_uppercase() && !name.is_empty() {
            name.push('_');
        }
        name.push(c.to_ascii_lowercase());
    }
    name
}

/// Unix seconds to milliseconds; dates before 1970 (never sent) become 0.
fn unix_ms(secs: i64) -> u64 {
    u64::try_from(secs).unwrap_or(0).saturating_mul(1000)
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
