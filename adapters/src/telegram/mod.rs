//! Telegram Bot API: webhook authentication and parsing with teloxide's `Update` (`inbound`),
//! sending with teloxide's `Bot` (`outbound`), and the channel settings (`config`).
//!
//! Telegram redelivers any update that does not get a 2xx, with one update in flight per chat,
//! so the webhook must answer 200 for everything it authenticated, including updates the hub
//! ignores (`parse_update` returns `Ok(None)` for those).

pub mod config;
pub mod inbound;
pub mod outbound;

pub use config::TelegramSettings;
pub use inbound::{ParsedUpdate, parse_update, verify_secret};
pub use outbound::TelegramOutbound;

/// Telegram adapter errors.
#[derive(Debug, thiserror::Error)]
pub enum TelegramError {
    /// `X-Telegram-Bot-Api-Secret-Token` missing or wrong.
    #[error("missing or wrong X-Telegram-Bot-Api-Secret-Token header")]
    Unauthorized,
    /// Body is not a Telegram `Update`.
    #[error("malformed telegram update: {0}")]
    Malformed(String),
    /// Settings cannot work (bad API URL, empty token).
    #[error("invalid telegram configuration: {0}")]
    InvalidConfig(String),
}
