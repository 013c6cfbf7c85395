//! Domain types shared by every actor: identities, channels, contacts and message content.
//!
//! Nothing here knows a provider's JSON; adapters translate provider payloads into these.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::sync::Arc;

/// A tenant (one business) of the hub.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantId(pub Arc<str>);

/// A conversation: one contact on one channel of one tenant. Stable across tickets.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ConversationId(pub Arc<str>);

/// A human agent (console user) of a tenant.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AgentId(pub Arc<str>);

macro_rules! string_id {
    ($t:ty) => {
        impl $t {
            /// Wraps a string.
            pub fn new(value: impl AsRef<str>) -> Self {
                Self(Arc::from(value.as_ref()))
            }
            /// The string form.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
string_id!(TenantId);
string_id!(ConversationId);
string_id!(AgentId);

impl ConversationId {
    /// The id of a contact's conversation on a channel: `{tenant}:{kind}.{channel}:{contact}`.
    pub fn for_contact(tenant: &TenantId, channel: &ChannelRef, contact_key: &str) -> Self {
        Self::new(format!("{tenant}:{}.{}:{contact_key}", channel.kind.as_str(), channel.name))
    }
}

/// The kind of provider a channel talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// WhatsApp Cloud API.
    WhatsApp,
    /// Telegram Bot API.
    Telegram,
    /// The hub's own web-chat widget.
    WebChat,
}

impl ChannelKind {
    /// Short lowercase name used in ids, logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WhatsApp => "whatsapp",
            Self::Telegram => "telegram",
            Self::WebChat => "webchat",
        }
    }
}

/// One configured channel of a tenant (a WhatsApp number, a Telegram bot).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ChannelRef {
    /// Which provider.
    pub kind: ChannelKind,
    /// The channel's name in the tenant config (e.g. `main`).
    pub name: Arc<str>,
}

impl ChannelRef {
    /// A channel reference.
    pub fn new(kind: ChannelKind, name: &str) -> Self {
        Self { kind, name: Arc::from(name) }
    }
}

/// Where replies to a contact go: the channel plus the provider's recipient id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyAddress {
    /// The channel the customer wrote on.
    pub channel: ChannelRef,
    /// Recipient as the provider wants it (WhatsApp `wa_id` as received, Telegram chat id).
    pub recipient: String,
}

/// The customer behind a conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// Stable key of the contact on its channel (normalised phone number, Telegram user id).
    pub key: String,
    /// Display name, when the provider sent one.
    pub name: Option<String>,
}

/// Media kinds a customer can send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    /// A picture.
    Image,
    /// A voice note or audio file.
    Audio,
    /// A video.
    Video,
    /// Any file.
    Document,
    /// A sticker.
    Sticker,
}

/// What a customer sent. Media is kept as the provider's id; fetching it is a later concern.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Content {
    /// Plain text.
    Text {
        /// The text.
        body: String,
    },
    /// A choice from a menu we sent (WhatsApp button/list reply, Telegram callback).
    Choice {
        /// The option id we put on the button.
        id: String,
        /// The label the customer saw.
        title: String,
    },
    /// A media file.
    Media {
        /// Image, audio...
        media: MediaKind,
        /// Provider's media id (WhatsApp media id, Telegram file_id).
        media_id: String,
        /// MIME type, when known.
        mime_type: Option<String>,
        /// Caption, when sent.
        caption: Option<String>,
        /// File name (documents).
        filename: Option<String>,
    },
    /// A shared location.
    Location {
        /// Latitude in degrees.
        latitude: f64,
        /// Longitude in degrees.
        longitude: f64,
        /// Place name.
        name: Option<String>,
        /// Street address.
        address: Option<String>,
    },
    /// Shared contact cards (names only; numbers stay in the raw payload).
    Contacts {
        /// Formatted names of the shared contacts.
        names: Vec<String>,
    },
    /// A reaction to an earlier message.
    Reaction {
        /// Provider id of the message reacted to.
        message_id: String,
        /// The emoji; empty when the reaction was removed.
        emoji: String,
    },
    /// A customer edited an earlier message.
    Edit {
        /// Provider id of the original message.
        original_id: String,
        /// The new text.
        body: String,
    },
    /// Anything the hub does not understand yet.
    Unsupported {
        /// The provider's type name.
        provider_type: String,
    },
}

impl Content {
    /// The text an agent (AI or human) should read for this content.
    pub fn as_text(&self) -> String {
        match self {
            Self::Text { body } | Self::Edit { body, .. } => body.clone(),
            Self::Choice { title, .. } => title.clone(),
            Self::Media { media, caption, .. } => match caption {
                Some(c) => format!("[{media:?}] {c}"),
                None => format!("[{media:?}]"),
            },
            Self::Location { latitude, longitude, name, .. } => {
                format!(
                    "[location {latitude},{longitude}{}]",
                    name.as_deref().map(|n| format!(" {n}")).unwrap_or_default()
                )
            }
            Self::Contacts { names } => format!("[contacts {}]", names.join(", ")),
            Self::Reaction { emoji, .. } => format!("[reaction {emoji}]"),
            Self::Unsupported { provider_type } => format!("[unsupported {provider_type}]"),
        }
    }

    /// The raw input a menu (triage) should interpret: option id for a choice, text otherwise.
    pub fn menu_input(&self) -> Option<&str> {
        match self {
            Self::Text { body } => Some(body.trim()),
            Self::Choice { id, .. } => Some(id.as_str()),
            _ => None,
        }
    }
}

/// A message from a customer, as parsed by a channel adapter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InboundMessage {
    /// Provider message id (`wamid…`, Telegram `update_id`); the dedup key.
    pub provider_id: String,
    /// Who wrote.
    pub contact: Contact,
    /// Where the answer goes.
    pub reply_to: ReplyAddress,
    /// What was said.
    pub content: Content,
    /// Provider timestamp, milliseconds since the Unix epoch.
    pub sent_at_ms: u64,
    /// Telegram callback query to acknowledge (stops the client's spinner).
    pub callback_query_id: Option<String>,
}

/// Delivery state of a message we sent, as reported by the provider.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Accepted by the provider.
    Sent,
    /// Reached the customer's device.
    Delivered,
    /// Read by the customer.
    Read,
    /// Could not be delivered.
    Failed,
}

impl DeliveryState {
    /// Order of progress, so late `delivered` never overwrites `read`.
    pub fn rank(&self) -> u8 {
        match self {
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Read => 3,
            Self::Failed => 4,
        }
    }
}

/// A provider's delivery receipt for one of our messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryUpdate {
    /// Provider id of the message we sent.
    pub provider_message_id: String,
    /// New state.
    pub state: DeliveryState,
    /// Provider error code and title, for `failed`.
    pub error: Option<String>,
    /// The recipient, used to find the conversation.
    pub recipient: String,
}

/// One option of a menu we send.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuOption {
    /// Id echoed back when chosen (short: Telegram allows 64 bytes).
    pub id: String,
    /// Label shown to the customer.
    pub title: String,
}

/// What the hub sends to a customer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutboundContent {
    /// Plain text.
    Text {
        /// The text.
        body: String,
    },
    /// Text plus choices (WhatsApp buttons or list, Telegram inline keyboard).
    Menu {
        /// The text above the options.
        body: String,
        /// The options.
        options: Vec<MenuOption>,
    },
}

impl OutboundContent {
    /// The text part.
    pub fn body(&self) -> &str {
        match self {
            Self::Text { body } | Self::Menu { body, .. } => body,
        }
    }
}

/// Who produced an outbound message or a history entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "role", content = "id", rename_all = "lowercase")]
pub enum Author {
    /// The customer.
    Customer,
    /// The AI agent.
    Bot,
    /// The hub itself (menus, queue notices, fallbacks).
    System,
    /// A human agent.
    Agent(AgentId),
    /// An integration acting through the tools (an MCP bot or a staff chat command), by name.
    Integration(String),
}
