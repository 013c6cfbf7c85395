//! Which provider each simulated customer writes through, and the webhook request for one of
//! their messages: a signed WhatsApp notification or a Telegram update with the secret-token
//! header.
//!
//! Both carry the same text `<prefix><i>`, so the collector correlates replies the same way
//! whichever fake (Graph or Bot API) received them; only the reply's address differs.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::customer_number;
use super::rig::{APP_SECRET, PHONE_NUMBER_ID, TG_CHANNEL, TG_SECRET};
use crate::payloads::{tg_text, wa_sign, wa_text};

/// Telegram chat ids of simulated customers start here (positive: private chats).
const TG_CHAT_BASE: i64 = 7_000_000_000;

/// Which provider the conversations of a run come through.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ChannelMix {
    /// Every conversation is a WhatsApp customer.
    #[default]
    Whatsapp,
    /// Every conversation is a Telegram chat.
    Telegram,
    /// Odd conversations come through Telegram, even ones through WhatsApp.
    Mixed,
}

impl ChannelMix {
    /// Whether conversation `conv` is a Telegram chat.
    pub fn is_telegram(self, conv: usize) -> bool {
        match self {
            ChannelMix::Whatsapp => false,
            ChannelMix::Telegram => true,
            ChannelMix::Mixed => conv % 2 == 1,
        }
    }

    /// Name in reports.
    pub fn name(self) -> &'static str {
        match self {
            ChannelMix::Whatsapp => "whatsapp",
            ChannelMix::Telegram => "telegram",
            ChannelMix::Mixed => "mixed",
        }
    }

    /// The recipient the hub's reply to conversation `conv` must carry: the customer's number
    /// (Graph `to`) or chat id (Bot API `chat_id`).
    pub fn address(self, number_base: u64, conv: usize) -> String {
        let n = number_base + conv as u64;
        if self.is_telegram(conv) { tg_chat_id(n).to_string() } else { customer_number(n) }
    }
}

/// Telegram chat id of simulated customer `n`.
pub fn tg_chat_id(n: u64) -> i64 {
    TG_CHAT_BASE + (n % 100_000_000) as i64
}

/// One webhook request, ready to post (and re-post on 503).
pub(crate) struct Post {
    pub(crate) telegram: bool,
    pub(crate) body: String,
    /// `X-Hub-Signature-256` or `X-Telegram-Bot-Api-Secret-Token`, with its value.
    pub(crate) auth: (&'static str, String),
}

/// Builds the requests of one run.
pub(crate) struct Wire {
    pub(crate) wa_url: String,
    pub(crate) tg_url: String,
    mix: ChannelMix,
    number_base: u64,
    prefix: char,
    /// Makes wamids unique across runs against the same hub (its dedup gate remembers them).
    nonce: u128,
    /// First Telegram update id of this run.
    update_base: u64,
}

impl Wire {
    pub(crate) fn new(base_url: &str, mix: ChannelMix, number_base: u64, prefix: char, messages: usize) -> Wire {
        let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
        Wire {
            wa_url: format!("{base_url}/webhooks/whatsapp"),
            tg_url: format!("{base_url}/webhooks/telegram/{TG_CHANNEL}"),
            mix,
            number_base,
            prefix,
            nonce,
            update_base: reserve_update_ids(messages),
        }
    }

    /// The request for message `i` (conversation `i % conversations`).
    pub(crate) fn post(&self, i: usize, conv: usize) -> Post {
        let text = format!("{}{i}", self.prefix);
        let n = self.number_base + conv as u64;
        if self.mix.is_telegram(conv) {
            let update_id = wrap_update_id(self.update_base + i as u64);
            let body = tg_text(update_id, tg_chat_id(n), &text);
            Post { telegram: true, body, auth: ("x-telegram-bot-api-secret-token", TG_SECRET.to_owned()) }
        } else {
            let wamid = format!("wamid.LG-{}-{}{i}", self.nonce, self.prefix);
            let body = wa_text(PHONE_NUMBER_ID, &customer_number(n), &wamid, &text);
            let signature = wa_sign(APP_SECRET, body.as_bytes());
            Post { telegram: false, body, auth: ("x-hub-signature-256", signature) }
        }
    }

    /// Where `post` goes.
    pub(crate) fn url(&self, post: &Post) -> &str {
        if post.telegram { &self.tg_url } else { &self.wa_url }
    }
}

/// Telegram update ids are u32 (teloxide's `UpdateId`) and the hub deduplicates on them, so each
/// run takes a fresh range: after a time-derived start (distinct across processes started
/// seconds apart), ranges follow each other within the process.
fn reserve_update_ids(n: usize) -> u64 {
    static START: OnceLock<u64> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let start = *START.get_or_init(|| {
        let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        (secs % 4000) * 1_000_000
    });
    start + NEXT.fetch_add(n as u64, Ordering::Relaxed)
}

/// Keeps an id within 1..u32::MAX.
fn wrap_update_id(id: u64) -> u64 {
    id % (u64::from(u32::MAX) - 1) + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixed_runs_alternate_providers_with_distinct_addresses() {
        let mix = ChannelMix::Mixed;
        assert!(!mix.is_telegram(0) && mix.is_telegram(1));
        assert_eq!(mix.address(10, 0), "5511900000010");
        assert_eq!(mix.address(10, 1), "7000000011");
        assert!(ChannelMix::Telegram.is_telegram(0) && !ChannelMix::Whatsapp.is_telegram(1));
    }

    #[test]
    fn requests_carry_the_text_and_the_provider_credentials() {
        let wire = Wire::new("http://hub", ChannelMix::Mixed, 10, 'm', 4);
        let wa = wire.post(2, 0);
        assert!(!wa.telegram && wa.body.contains(r#""body":"m2""#));
        assert_eq!(wa.auth.1, wa_sign(APP_SECRET, wa.body.as_bytes()));
        assert_eq!(wire.url(&wa), "http://hub/webhooks/whatsapp");
        let tg = wire.post(3, 1);
        assert!(tg.telegram && tg.body.contains(r#""text":"m3""#) && tg.body.contains(r#""id":7000000011"#));
        assert_eq!(tg.auth, ("x-telegram-bot-api-secret-token", TG_SECRET.to_owned()));
        assert_eq!(wire.url(&tg), format!("http://hub/webhooks/telegram/{TG_CHANNEL}"));
        // Another run in the same process gets other update ids.
        let again = Wire::new("http://hub", ChannelMix::Telegram, 10, 'm', 4);
        assert!(again.update_base >= wire.update_base + 4);
    }
}
