//! Settings of one Telegram bot, built by the binary from the tenant config.

use std::fmt;

/// The public Bot API server.
pub const DEFAULT_API_URL: &str = "https://api.telegram.org";

/// One Telegram bot of a tenant.
#[derive(Clone)]
pub struct TelegramSettings {
    /// Channel name in the tenant config (e.g. `bot`).
    pub channel: String,
    /// Tenant owning the bot.
    pub tenant: String,
    /// Bot token from BotFather (`123456:ABC...`); it is part of every API URL.
    pub bot_token: String,
    /// `secret_token` given to `setWebhook`, echoed in `X-Telegram-Bot-Api-Secret-Token`.
    pub secret_token: String,
    /// Bot API base URL ([`DEFAULT_API_URL`], or a local Bot API server or a fake).
    pub api_url: String,
}

impl TelegramSettings {
    /// Settings for the public Bot API server.
    pub fn new(
        tenant: impl Into<String>,
        channel: impl Into<String>,
        bot_token: impl Into<String>,
        secret_token: impl Into<String>,
    ) -> Self {
        Self {
            channel: channel.into(),
            tenant: tenant.into(),
            bot_token: bot_token.into(),
            secret_token: secret_token.into(),
            api_url: DEFAULT_API_URL.to_owned(),
        }
    }
}

impl fmt::Debug for TelegramSettings {
    // The token grants full control of the bot and the secret authenticates webhooks: neither
    // may reach logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelegramSettings")
            .field("channel", &self.channel)
            .field("tenant", &self.tenant)
            .field("api_url", &self.api_url)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_token_and_secret() {
        let s = TelegramSettings::new("acme", "bot", "123:SECRET-TOKEN", "webhook-secret");
        let printed = format!("{s:?}");
        assert!(printed.contains("acme") && printed.contains("api.telegram.org"));
        assert!(!printed.contains("SECRET-TOKEN"), "{printed}");
        assert!(!printed.contains("webhook-secret"), "{printed}");
    }
}
