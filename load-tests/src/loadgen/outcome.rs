//! What a load run is asked to do ([`LoadSpec`]) and what it measured ([`LoadOutcome`]).

use std::time::Duration;

use hdrhistogram::Histogram;

use super::schedule::{Schedule, Think};
use super::timeline::Trace;
use super::wire::ChannelMix;

/// How messages are paced.
#[derive(Clone, Debug)]
pub enum Pace {
    /// Open model: message `i` is due at `schedule.due(i)` after the start, whatever the hub
    /// does; latencies count from then.
    Open(Schedule),
    /// Closed loop: `concurrency` messages in flight, each holding its slot until its reply
    /// arrives (`close_on_reply`, the pipeline's capacity) or only until its webhook is
    /// acknowledged (the ingest capacity; the backlog may outgrow the hub's history window).
    Closed { close_on_reply: bool },
    /// Chats: each conversation sends a message, waits for its reply, thinks, and sends the
    /// next, like a customer; until its share of `messages` is sent or `until` has passed.
    Chats { think: Think, until: Option<Duration> },
}

/// What to send.
#[derive(Clone, Debug)]
pub struct LoadSpec {
    /// Name in progress lines.
    pub label: &'static str,
    /// Distinct senders; message `i` comes from conversation `i % conversations`.
    pub conversations: usize,
    /// Messages to send (in chats mode: at most; conversation `c` sends `c`, `c + C`, ...).
    pub messages: usize,
    /// How they are paced.
    pub pace: Pace,
    /// Requests in flight at most (lane waits included; not used by chats).
    pub concurrency: usize,
    /// Which provider each conversation writes through.
    pub channel: ChannelMix,
    /// Conversation `c` is the number `55119` + `number_base + c` (8 digits).
    pub number_base: u64,
    /// Message texts are `<prefix><i>`: distinct per run so late replies of a previous run
    /// are recognised.
    pub prefix: char,
    /// How long to wait for missing replies after the last acknowledgement.
    pub drain_timeout: Duration,
    /// Extra wait after the last expected reply, to catch late duplicates.
    pub settle: Duration,
}

/// Figures of one run.
pub struct LoadOutcome {
    /// The spec it ran.
    pub spec: LoadSpec,
    /// Intended start → webhook 200, µs.
    pub ack: Histogram<u64>,
    /// One successful webhook request, µs.
    pub ack_service: Histogram<u64>,
    /// Intended start → first attempt, µs (the generator's own lateness).
    pub send_lag: Histogram<u64>,
    /// Intended start → reply line at the fake Graph, µs.
    pub e2e: Histogram<u64>,
    /// Messages whose first attempt was made.
    pub sent: u64,
    /// Messages answered 200.
    pub acked: u64,
    /// Messages with at least one reply line.
    pub replied: u64,
    /// 503 answers (each retried).
    pub busy_503: u64,
    /// Other non-200 answers (not retried).
    pub http_errors: u64,
    /// Connection errors and timeouts (retried).
    pub transport_errors: u64,
    /// Messages never acknowledged.
    pub failed: u64,
    /// Acknowledged messages without reply after the drain.
    pub lost: u64,
    /// Reply lines for already answered messages.
    pub duplicated: u64,
    /// Reply lines older than one already answered in the same conversation.
    pub out_of_order: u64,
    /// Replies that are not echoes of this run's messages.
    pub unexpected: u64,
    /// Lines sent to the wrong number.
    pub misrouted: u64,
    /// Late lines of an earlier run.
    pub foreign: u64,
    /// Text sends received (AI turns); `replied / reply_sends` is the batching factor.
    pub reply_sends: u64,
    /// Most messages answered by one reply.
    pub max_batch: u64,
    /// First send → last acknowledgement.
    pub ack_span: Duration,
    /// First send → last reply line.
    pub reply_span: Duration,
    /// A few lost message indices, for digging in the hub log.
    pub lost_samples: Vec<usize>,
    /// Examples of odd replies and HTTP errors.
    pub samples: Vec<String>,
    /// Every message's timestamps, for the timeline and per-phase figures.
    pub trace: Trace,
}

impl LoadSpec {
    /// Whether a message waits for its reply before its slot is free (closed loop on replies,
    /// chats).
    pub fn wait_reply(&self) -> bool {
        matches!(self.pace, Pace::Closed { close_on_reply: true } | Pace::Chats { .. })
    }

    /// Mean offered rate of an open-model run, 0 otherwise.
    pub fn rate(&self) -> f64 {
        match &self.pace {
            Pace::Open(schedule) => schedule.mean_rate(),
            _ => 0.0,
        }
    }

    /// Name of the pacing in reports.
    pub fn mode(&self) -> &'static str {
        match self.pace {
            Pace::Open(_) => "open",
            Pace::Closed { close_on_reply: true } => "closed_on_reply",
            Pace::Closed { close_on_reply: false } => "closed_on_ack",
            Pace::Chats { .. } => "chats",
        }
    }
}

impl LoadOutcome {
    /// Replied messages per second from first send to last reply.
    pub fn throughput(&self) -> f64 {
        per_sec(self.replied, self.reply_span)
    }

    /// Acknowledged messages per second from first send to last acknowledgement.
    pub fn ack_rate(&self) -> f64 {
        per_sec(self.acked, self.ack_span)
    }

    /// True when every message was acknowledged and answered exactly once, in order.
    pub fn is_clean(&self) -> bool {
        self.failed + self.lost + self.duplicated + self.out_of_order + self.misrouted == 0
    }
}

fn per_sec(n: u64, span: Duration) -> f64 {
    if span.is_zero() { 0.0 } else { n as f64 / span.as_secs_f64() }
}
