//! What the console's and the widget's WebSockets share: how client frames are read (control
//! frames answered here, continuations joined, a size limit) and liveness (the server pings every
//! interval and gives up on a peer silent for three intervals; browsers answer pings by
//! themselves).

use actix_ws::{AggregatedMessage, AggregatedMessageStream, MessageStream, ProtocolError, Session};
use std::time::Duration;
use tokio::time::{Instant, Interval, interval_at};

/// Seconds between server pings.
pub const HEARTBEAT_SECS: u64 = 20;

/// A client's frames, continuations joined into one message of at most `max_frame` bytes (a
/// bigger one is a protocol error, which ends the connection).
pub fn frames(stream: MessageStream, max_frame: usize) -> AggregatedMessageStream {
    stream.max_frame_size(max_frame).aggregate_continuations().max_continuation_size(max_frame)
}

/// What a client frame leaves for the caller once control frames are dealt with.
pub enum Incoming {
    /// A text message.
    Text(String),
    /// A binary message (neither protocol uses them).
    Binary,
    /// A ping or pong, answered; nothing to do.
    Control,
    /// The client closed, broke the protocol or cannot be answered: end the connection.
    Gone,
}

/// Reads one frame's meaning: answers pings, notes that the peer is alive.
pub async fn incoming(
    frame: Option<Result<AggregatedMessage, ProtocolError>>,
    session: &mut Session,
    beat: &mut Heartbeat,
) -> Incoming {
    let frame = match frame {
        Some(Ok(frame)) => frame,
        Some(Err(e)) => {
            tracing::info!(error = %e, "websocket client sent a bad frame; closing");
            return Incoming::Gone;
        }
        None => return Incoming::Gone,
    };
    beat.heard();
    match frame {
        AggregatedMessage::Text(text) => Incoming::Text(text.to_string()),
        AggregatedMessage::Binary(_) => Incoming::Binary,
        AggregatedMessage::Ping(bytes) => {
            if session.pong(&bytes).await.is_ok() {
                Incoming::Control
            } else {
                Incoming::Gone
            }
        }
        AggregatedMessage::Pong(_) => Incoming::Control,
        AggregatedMessage::Close(_) => Incoming::Gone,
    }
}

/// Intervals of silence after which a peer counts as gone.
const GRACE: u32 = 3;

/// When to ping, and whether the peer still answers.
pub struct Heartbeat {
    every: Duration,
    ticker: Interval,
    last_heard: Instant,
}

impl Heartbeat {
    /// Pings every [`HEARTBEAT_SECS`], the first one interval from now.
    pub fn standard() -> Self {
        Self::new(Duration::from_secs(HEARTBEAT_SECS))
    }

    /// Pings every `every`, the first one interval from now.
    pub fn new(every: Duration) -> Self {
        Self { every, ticker: interval_at(Instant::now() + every, every), last_heard: Instant::now() }
    }

    /// The peer sent something (a frame, a ping, a pong).
    pub fn heard(&mut self) {
        self.last_heard = Instant::now();
    }

    /// Waits for the next ping time; `false` when the peer has been silent too long.
    pub async fn due(&mut self) -> bool {
        self.ticker.tick().await;
        self.last_heard.elapsed() <= self.every * GRACE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_answers_stays_and_one_silent_for_three_intervals_is_given_up() {
        let mut beat = Heartbeat::new(Duration::from_secs(20));
        for _ in 0..5 {
            assert!(beat.due().await, "pinged and still answering");
            beat.heard();
        }
        assert!(beat.due().await, "silent for one interval");
        assert!(beat.due().await, "two");
        assert!(beat.due().await, "three");
        assert!(!beat.due().await, "silent for more than three intervals");
    }
}
