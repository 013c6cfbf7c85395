//! Sending with teloxide's `Bot`: `sendMessage` with an optional inline keyboard, after
//! `answerCallbackQuery` when the customer pressed a button.
//!
//! teloxide turns Telegram's `{"ok":false,...}` answers into `RequestError`s; they are mapped to
//! what the outbox can act on (wait, retry, give up).

use super::{TelegramError, TelegramSettings};
use async_trait::async_trait;
use std::time::Duration;
use switchboard_actors::domain::{MenuOption, OutboundContent};
use switchboard_actors::ports::{Outbound, OutboundMessage, SendError};
use teloxide::payloads::SendMessageSetters;
use teloxide::requests::Requester;
use teloxide::types::{CallbackQueryId, ChatId, InlineKeyboardButton, InlineKeyboardMarkup, Message};
use teloxide::{ApiError, Bot, RequestError};

/// Telegram's limit on `callback_data`, in bytes.
const CALLBACK_DATA_MAX_BYTES: usize = 64;

/// Descriptions of the Bot API's own failures (HTTP 5xx); worth retrying.
const SERVER_SIDE: [&str; 4] = ["Internal Server Error", "Bad Gateway", "Service Unavailable", "Gateway Timeout"];

/// How long the best-effort `answerCallbackQuery` may hold up the real message: teloxide waits
/// 10 s after any 5xx and up to 17 s for an answer, and the customer's reply matters more
/// than the button's spinner.
const ANSWER_CALLBACK_BUDGET: Duration = Duration::from_secs(3);

/// Sends through one Telegram bot.
#[derive(Clone)]
pub struct TelegramOutbound {
    bot: Bot,
    /// Removed from error texts: teloxide's network errors carry the request URL, and the URL
    /// contains `bot<token>`.
    token: String,
    tenant: String,
    channel: String,
}

impl std::fmt::Debug for TelegramOutbound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TelegramOutbound")
            .field("tenant", &self.tenant)
            .field("channel", &self.channel)
            .field("api_url", &self.bot.api_url().as_str())
            .finish_non_exhaustive()
    }
}

impl TelegramOutbound {
    /// A sender for the configured bot. Fails on an empty token or an unusable API URL.
    pub fn new(settings: &TelegramSettings) -> Result<Self, TelegramError> {
        if settings.bot_token.trim().is_empty() {
            return Err(TelegramError::InvalidConfig("bot token is empty".into()));
        }
        let url = api_url(&settings.api_url)?;
        Ok(Self {
            bot: Bot::new(settings.bot_token.clone()).set_api_url(url),
            token: settings.bot_token.clone(),
            tenant: settings.tenant.clone(),
            channel: settings.channel.clone(),
        })
    }

    /// `err` as text without the bot token, cut to a log-friendly length (an unreadable answer
    /// carries the whole body).
    fn describe(&self, err: &RequestError) -> String {
        err.to_string().replace(&self.token, "<token>").chars().take(300).collect()
    }

    /// Maps a failed `sendMessage`.
    fn send_error(&self, err: RequestError) -> SendError {
        match err {
            RequestError::RetryAfter(secs) => SendError::RateLimited { retry_after: secs.duration() },
            RequestError::MigrateToChatId(new_id) => SendError::Permanent(format!(
                "group was upgraded to supergroup {}: the conversation must use the new chat id",
                new_id.0
            )),
            // teloxide ignores `error_code` and matches only the description, so a Bot API 5xx
            // answered in JSON arrives as an unknown API error: recognise it by its text.
            RequestError::Api(ApiError::Unknown(description)) => {
                if SERVER_SIDE.iter().any(|p| description.starts_with(p)) {
                    SendError::Transient(description)
                } else {
                    SendError::Permanent(description)
                }
            }
            // Known errors are the request's own fault ("Forbidden: bot was blocked by the
            // user", "Bad Request: chat not found"...; the text is Telegram's description):
            // retrying cannot help.
            RequestError::Api(api) => SendError::Permanent(api.to_string()),
            RequestError::Network(_) | RequestError::Io(_) => SendError::Transient(self.describe(&err)),
            // A body teloxide cannot read is most often a proxy's HTML error page.
            RequestError::InvalidJson { .. } => SendError::Transient(self.describe(&err)),
        }
    }

    /// Stops the client's spinner on the pressed button; failures only cost the spinner.
    async fn answer_callback(&self, query_id: &str) {
        let request = self.bot.answer_callback_query(CallbackQueryId(query_id.to_owned()));
        match tokio::time::timeout(ANSWER_CALLBACK_BUDGET, request).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::debug!(tenant = %self.tenant, channel = %self.channel, error = %self.describe(&e), "answer callback query failed");
            }
            Err(_) => {
                tracing::debug!(tenant = %self.tenant, channel = %self.channel, "answer callback query timed out");
            }
        }
    }
}

/// Parses the configured base URL and drops trailing slashes: teloxide appends `bot<token>/
/// <method>` as path segments, so `http://h/tg/` would give `http://h/tg//bot...`.
fn api_url(raw: &str) -> Result<reqwest::Url, TelegramError> {
    let trimmed = raw.trim().trim_end_matches('/');
    let url =
        reqwest::Url::parse(trimmed).map_err(|e| TelegramError::InvalidConfig(format!("api url {trimmed:?}: {e}")))?;
    // teloxide panics on a URL that cannot take path segments (`mailto:`, `data:`).
    if url.cannot_be_a_base() || !matches!(url.scheme(), "http" | "https") {
        return Err(TelegramError::InvalidConfig(format!("api url {trimmed:?} is not http(s)")));
    }
    Ok(url)
}

/// `result.message_id` of a raw `{"ok":true,"result":{...}}` answer.
fn sent_message_id(raw: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(raw).ok()?;
    if value.get("ok")?.as_bool()? {
        value.pointer("/result/message_id")?.as_i64().map(|id| id.to_string())
    } else {
        None
    }
}

/// One button per row, so long labels are not squeezed side by side on phones.
fn keyboard(options: &[MenuOption]) -> InlineKeyboardMarkup {
    InlineKeyboardMarkup::new(
        options.iter().map(|o| [InlineKeyboardButton::callback(o.title.clone(), callback_data(&o.id))]),
    )
}

/// `id` cut to Telegram's 64-byte limit at a char boundary (a longer one is refused with
/// `BUTTON_DATA_INVALID`).
fn callback_data(id: &str) -> String {
    let mut end = id.len().min(CALLBACK_DATA_MAX_BYTES);
    while !id.is_char_boundary(end) {
        end -= 1;
    }
    id[..end].to_owned()
}

#[async_trait]
impl Outbound for TelegramOutbound {
    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        let chat_id: i64 =
            msg.to.recipient.trim().parse().map_err(|_| {
                SendError::Permanent(format!("telegram recipient {:?} is not a chat id", msg.to.recipient))
            })?;
        if let Some(query_id) = &msg.callback_query_id {
            self.answer_callback(query_id).await;
        }
        let request = self.bot.send_message(ChatId(chat_id), msg.content.body());
        let result: Result<Message, RequestError> = match &msg.content {
            OutboundContent::Menu { options, .. } if !options.is_empty() => {
                request.reply_markup(keyboard(options)).await
            }
            _ => request.await,
        };
        match result {
            Ok(sent) => {
                tracing::debug!(tenant = %self.tenant, channel = %self.channel, chat_id, message_id = sent.id.0, key = %msg.key, "telegram message sent");
                Ok(sent.id.0.to_string())
            }
            Err(e) => {
                // Telegram accepted the message but teloxide could not read the `Message` back
                // (a newer Bot API shape): retrying would send it twice, so take the id from the
                // raw answer.
                if let RequestError::InvalidJson { raw, .. } = &e
                    && let Some(id) = sent_message_id(raw)
                {
                    tracing::warn!(tenant = %self.tenant, channel = %self.channel, chat_id, message_id = %id, "telegram answer not understood by teloxide, message was sent");
                    return Ok(id);
                }
                let err = self.send_error(e);
                tracing::debug!(tenant = %self.tenant, channel = %self.channel, chat_id, key = %msg.key, error = %err, "telegram send failed");
                Err(err)
            }
        }
    }

    fn with_own_connections(&self) -> Option<std::sync::Arc<dyn Outbound>> {
        // The client `Bot::new` builds, without its panic when that fails.
        let client = crate::own_client(teloxide::net::default_reqwest_settings().build())?;
        let bot = Bot::with_client(self.token.clone(), client).set_api_url(self.bot.api_url());
        Some(std::sync::Arc::new(Self { bot, ..self.clone() }))
    }
}

#[cfg(test)]
#[path = "outbound_tests.rs"]
mod tests;
