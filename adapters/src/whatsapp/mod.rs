//! WhatsApp Cloud API: webhook verification and parsing (`inbound`), the Graph send API
//! (`outbound`), and the channel settings (`config`).

pub mod config;
pub mod inbound;
pub mod outbound;
mod wire;

pub use config::WhatsAppSettings;
pub use inbound::{ParsedWebhook, WebhookItem, parse_webhook, verify_handshake, verify_signature};
pub use outbound::WhatsAppOutbound;

/// WhatsApp adapter errors.
#[derive(Debug, thiserror::Error)]
pub enum WhatsAppError {
    /// `X-Hub-Signature-256` missing.
    #[error("missing X-Hub-Signature-256 header")]
    MissingSignature,
    /// Signature does not match the body.
    #[error("invalid X-Hub-Signature-256 signature")]
    BadSignature,
    /// `hub.verify_token` does not match.
    #[error("verify token mismatch")]
    BadVerifyToken,
    /// Body is not a WhatsApp webhook.
    #[error("malformed webhook body: {0}")]
    Malformed(String),
    /// HTTP client could not be built.
    #[error("invalid whatsapp configuration: {0}")]
    InvalidConfig(String),
}
