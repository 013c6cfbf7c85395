//! Inbound webhooks: the GET subscription handshake, the HMAC signature over the raw body, and
//! parsing every entry/change/message/status of a POST into domain types.

use super::WhatsAppError;
use super::wire;
use crate::phone::contact_key;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use switchboard_actors::domain::{
    ChannelRef, Contact, Content, DeliveryState, DeliveryUpdate, InboundMessage, MediaKind, ReplyAddress, TenantId,
};

/// Answers the subscription handshake: the challenge if the token matches.
pub fn verify_handshake(
    expected_token: &str,
    token: Option<&str>,
    challenge: Option<&str>,
) -> Result<String, WhatsAppError> {
    match (token, challenge) {
        (Some(t), Some(c)) if constant_time_eq(t.as_bytes(), expected_token.as_bytes()) => Ok(c.to_owned()),
        _ => Err(WhatsAppError::BadVerifyToken),
    }
}

/// Checks `X-Hub-Signature-256: sha256=<hex>` against HMAC-SHA256(app secret, raw body).
pub fn verify_signature(app_secret: &str, header: Option<&[u8]>, body: &[u8]) -> Result<(), WhatsAppError> {
    let header = header.ok_or(WhatsAppError::MissingSignature)?;
    let hex_sig = header.strip_prefix(b"sha256=").ok_or(WhatsAppError::BadSignature)?;
    let expected = hex::decode(hex_sig).map_err(|_| WhatsAppError::BadSignature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(app_secret.as_bytes()).map_err(|_| WhatsAppError::BadSignature)?;
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&expected).map_err(|_| WhatsAppError::BadSignature)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What one webhook item means for the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum WebhookKind {
    /// A customer message.
    Message(InboundMessage),
    /// A delivery receipt for one of our messages.
    Status(DeliveryUpdate),
}

/// One item routed to its tenant and channel.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookItem {
    /// Owning tenant.
    pub tenant: TenantId,
    /// The number's channel.
    pub channel: ChannelRef,
    /// Message or status.
    pub kind: WebhookKind,
}

/// A parsed POST.
#[derive(Debug, Default)]
pub struct ParsedWebhook {
    /// Items for configured numbers.
    pub items: Vec<WebhookItem>,
    /// `phone_number_id`s we do not serve (counted and logged by the caller; nothing stored).
    pub unknown_numbers: Vec<String>,
    /// Messages with neither `from` nor `from_user_id` (dropped).
    pub senderless: usize,
}

/// Parses a webhook body. `resolve` maps a `phone_number_id` to its tenant and channel.
pub fn parse_webhook(
    body: &[u8],
    resolve: &dyn Fn(&str) -> Option<(TenantId, ChannelRef)>,
) -> Result<ParsedWebhook, WhatsAppError> {
    let envelope: wire::Envelope = serde_json::from_slice(body).map_err(|e| WhatsAppError::Malformed(e.to_string()))?;
    if envelope.object.as_deref() != Some("whatsapp_business_account") {
        return Err(WhatsAppError::Malformed("object is not whatsapp_business_account".into()));
    }
    let mut parsed = ParsedWebhook::default();
    for change in envelope.entry.into_iter().flat_map(|e| e.changes) {
        if change.field.as_deref().is_some_and(|f| f != "messages") {
            continue;
        }
        let Some(value) = change.value else { continue };
        let Some(pnid) = value.metadata.as_ref().map(|m| m.phone_number_id.clone()) else { continue };
        let Some((tenant, channel)) = resolve(&pnid) else {
            parsed.unknown_numbers.push(pnid);
            continue;
        };
        for msg in &value.messages {
            if msg.from.is_none() && msg.from_user_id.is_none() {
                // Nobody to answer: drop it (counted by the caller), never a conversation keyed "".
                parsed.senderless += 1;
                continue;
            }
            let inbound = message(msg, &value.contacts, &channel);
            parsed.items.push(WebhookItem {
                tenant: tenant.clone(),
                channel: channel.clone(),
                kind: WebhookKind::Message(inbound),
            });
        }
        for st in value.statuses {
            let Some(state) = delivery_state(&st.status) else { continue };
            let error = st
                .errors
                .first()
                .map(|e| format!("({}) {}", e.code.unwrap_or_default(), e.title.clone().unwrap_or_default()));
            let update = DeliveryUpdate {
                provider_message_id: st.id,
                state,
                error,
                recipient: st.recipient_id.unwrap_or_default(),
            };
            parsed.items.push(WebhookItem {
                tenant: tenant.clone(),
                channel: channel.clone(),
                kind: WebhookKind::Status(update),
            });
        }
    }
    Ok(parsed)
}

fn delivery_state(status: &str) -> Option<DeliveryState> {
    match status {
        "sent" => Some(DeliveryState::Sent),
        "delivered" => Some(DeliveryState::Delivered),
        "read" | "played" => Some(DeliveryState::Read),
        "failed" => Some(DeliveryState::Failed),
        _ => None,
    }
}

fn message(msg: &wire::Message, contacts: &[wire::ContactCard], channel: &ChannelRef) -> InboundMessage {
    // Users with a username may come without a phone number: fall back to the BSUID.
    let recipient = msg.from.clone().or_else(|| msg.from_user_id.clone()).unwrap_or_default();
    let key = msg.from.as_deref().map(contact_key).unwrap_or_else(|| recipient.clone());
    let name = contacts
        .iter()
        .find(|c| c.wa_id.as_deref() == msg.from.as_deref() || c.user_id.as_deref() == msg.from_user_id.as_deref())
        .and_then(|c| c.profile.as_ref()?.name.clone());
    let sent_at_ms = msg.timestamp.as_deref().and_then(|t| t.parse::<u64>().ok()).unwrap_or_default() * 1000;
    InboundMessage {
        provider_id: msg.id.clone(),
        contact: Contact { key, name },
        reply_to: ReplyAddress { channel: channel.clone(), recipient },
        content: content(msg),
        sent_at_ms,
        callback_query_id: None,
    }
}

fn media(kind: MediaKind, m: &wire::Media) -> Content {
    Content::Media {
        media: kind,
        media_id: m.id.clone(),
        mime_type: m.mime_type.clone(),
        caption: m.caption.clone(),
        filename: m.filename.clone(),
    }
}

fn content(msg: &wire::Message) -> Content {
    let unsupported = || Content::Unsupported { provider_type: msg.kind.clone() };
    match msg.kind.as_str() {
        "text" => msg.text.as_ref().map(|t| Content::Text { body: t.body.clone() }),
        "interactive" => msg.interactive.as_ref().and_then(|i| {
            let r = i.button_reply.as_ref().or(i.list_reply.as_ref())?;
            Some(Content::Choice { id: r.id.clone(), title: r.title.clone() })
        }),
        "button" => msg.button.as_ref().map(|b| Content::Choice {
            id: b.payload.clone().unwrap_or_else(|| b.text.clone()),
            title: b.text.clone(),
        }),
        "image" => msg.image.as_ref().map(|m| media(MediaKind::Image, m)),
        "audio" => msg.audio.as_ref().map(|m| media(MediaKind::Audio, m)),
        "video" => msg.video.as_ref().map(|m| media(MediaKind::Video, m)),
        "document" => msg.document.as_ref().map(|m| media(MediaKind::Document, m)),
        "sticker" => msg.sticker.as_ref().map(|m| media(MediaKind::Sticker, m)),
        "location" => msg.location.as_ref().map(|l| Content::Location {
            latitude: l.latitude,
            longitude: l.longitude,
            name: l.name.clone(),
            address: l.address.clone(),
        }),
        "contacts" => msg.contacts.as_ref().map(|cs| Content::Contacts {
            names: cs.iter().filter_map(|c| c.name.as_ref()?.formatted_name.clone()).collect(),
        }),
        "reaction" => msg.reaction.as_ref().map(|r| Content::Reaction {
            message_id: r.message_id.clone(),
            emoji: r.emoji.clone().unwrap_or_default(),
        }),
        _ => None,
    }
    .unwrap_or_else(unsupported)
}

#[cfg(test)]
#[path = "inbound_tests.rs"]
mod tests;
