//! Correlates the replies the fake Graph and the fake Bot API receive with the messages sent.
//!
//! Message `i` carries the unique text `<prefix><i>`; the echo AI answers a turn with
//! `echo: ` + the texts of the messages it saw, one per line. So every reply line names exactly
//! one message, whichever conversation or batching it came through.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use hdrhistogram::Histogram;
use serde_json::Value;
use tokio::sync::mpsc;

use super::engine::Shared;
use super::timeline::NONE;
use super::wire::ChannelMix;
use crate::fakes::whatsapp::OnSend;

/// Examples of odd replies kept for the report.
const MAX_SAMPLES: usize = 5;

/// One accepted send as the fake Graph or Bot API saw it.
pub(crate) struct ReplySeen {
    at: Instant,
    to: String,
    text: Option<String>,
}

/// The hook to install on the fake Graph: it only timestamps and forwards, because it runs on
/// the fake's worker thread and must not slow the fake down.
pub(crate) fn wa_hook(tx: mpsc::UnboundedSender<ReplySeen>) -> OnSend {
    hook(tx, "/text/body")
}

/// The same for the fake Bot API (`sendMessage` carries the text at the top level).
pub(crate) fn tg_hook(tx: mpsc::UnboundedSender<ReplySeen>) -> OnSend {
    hook(tx, "/text")
}

fn hook(tx: mpsc::UnboundedSender<ReplySeen>, text_at: &'static str) -> OnSend {
    Arc::new(move |to: &str, body: &Value| {
        let text = body.pointer(text_at).and_then(Value::as_str).map(str::to_owned);
        let _ = tx.send(ReplySeen { at: Instant::now(), to: to.to_owned(), text });
    })
}

/// Reply bookkeeping of one load run.
pub(crate) struct Collector {
    sh: Arc<Shared>,
    prefix: char,
    conversations: usize,
    number_base: u64,
    channel: ChannelMix,
    /// Per message: when its first reply line arrived, ns since `Shared::t0`.
    pub(crate) replied_at: Vec<u64>,
    /// Per conversation: highest message index answered so far.
    last_in_conv: Vec<u64>,
    /// Intended start → reply line, µs.
    pub(crate) e2e: Histogram<u64>,
    /// Text sends received (one per AI turn).
    pub(crate) reply_sends: u64,
    /// Reply lines naming one of this run's messages.
    pub(crate) lines: u64,
    /// Lines naming a message already answered.
    pub(crate) duplicated: u64,
    /// Lines answering a message older than one already answered in its conversation.
    pub(crate) out_of_order: u64,
    /// Sends or lines that are not echoes of this run's messages (fallbacks, greetings, ...).
    pub(crate) unexpected: u64,
    /// Lines sent to another number than the message's sender.
    pub(crate) misrouted: u64,
    /// Lines answering another run's messages (a late warm-up reply).
    pub(crate) foreign: u64,
    /// First examples of unexpected replies.
    pub(crate) samples: Vec<String>,
    /// Most lines of this run in one reply (the largest AI batch).
    pub(crate) max_batch: u64,
    /// Last reply line of this run, ns since `Shared::t0` (0 if none).
    pub(crate) last_reply_ns: u64,
}

impl Collector {
    pub(crate) fn new(
        sh: Arc<Shared>,
        prefix: char,
        conversations: usize,
        number_base: u64,
        channel: ChannelMix,
    ) -> Self {
        let messages = sh.intended_ns.len();
        Collector {
            sh,
            prefix,
            conversations,
            number_base,
            channel,
            replied_at: vec![NONE; messages],
            last_in_conv: vec![NONE; conversations],
            e2e: Histogram::new(3).expect("3 significant figures are valid"),
            reply_sends: 0,
            lines: 0,
            duplicated: 0,
            out_of_order: 0,
            unexpected: 0,
            misrouted: 0,
            foreign: 0,
            samples: Vec::new(),
            max_batch: 0,
            last_reply_ns: 0,
        }
    }

    /// Consumes replies until every sender (the hook) is gone.
    pub(crate) async fn run(mut self, mut rx: mpsc::UnboundedReceiver<ReplySeen>) -> Self {
        while let Some(reply) = rx.recv().await {
            self.on_reply(reply);
        }
        self
    }

    fn sample(&mut self, what: String) {
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(what);
        }
    }

    fn on_reply(&mut self, reply: ReplySeen) {
        self.reply_sends += 1;
        let body = reply.text.as_deref().unwrap_or("");
        let Some(echo) = body.strip_prefix("echo: ") else {
            self.unexpected += 1;
            self.sample(format!("to {}: {:?}", reply.to, reply.text));
            return;
        };
        let at_ns = nanos(reply.at.saturating_duration_since(self.sh.t0));
        let before = self.lines;
        for line in echo.split('\n') {
            self.on_line(line, &reply.to, at_ns);
        }
        self.max_batch = self.max_batch.max(self.lines - before);
    }

    fn on_line(&mut self, line: &str, to: &str, at_ns: u64) {
        let index =
            line.strip_prefix(self.prefix).and_then(|n| n.parse::<usize>().ok()).filter(|&i| i < self.replied_at.len());
        let Some(i) = index else {
            // Another run's prefix: a letter followed by digits.
            let mut chars = line.chars();
            let foreign = chars.next().is_some_and(|c| c.is_ascii_lowercase()) && chars.as_str().parse::<u64>().is_ok();
            if foreign {
                self.foreign += 1;
            } else {
                self.unexpected += 1;
                self.sample(format!("line to {to}: {line:?}"));
            }
            return;
        };
        self.lines += 1;
        let conv = i % self.conversations;
        if to != self.channel.address(self.number_base, conv) {
            self.misrouted += 1;
            self.sample(format!("{line} sent to {to}"));
        }
        if self.replied_at[i] != NONE {
            self.duplicated += 1;
            return;
        }
        self.replied_at[i] = at_ns;
        self.last_reply_ns = self.last_reply_ns.max(at_ns);
        self.sh.replied.fetch_add(1, Ordering::Relaxed);
        if let Some(slot) = self.sh.reply_waiters.get(i)
            && let Some(waiter) = slot.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            let _ = waiter.send(());
        }
        let intended = self.sh.intended_ns[i].load(Ordering::Relaxed);
        let _ = self.e2e.record(at_ns.saturating_sub(intended) / 1_000);
        // Lanes deliver a conversation's messages in index order, so its answers must be too.
        let last = self.last_in_conv[conv];
        if last != NONE && (i as u64) < last {
            self.out_of_order += 1;
        } else {
            self.last_in_conv[conv] = i as u64;
        }
    }
}

/// A duration in ns, saturating.
pub(crate) fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
