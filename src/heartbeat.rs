//! WebSocket liveness for the console and the widget: the server pings every interval and gives
//! up on a peer silent for three intervals (browsers answer pings by themselves).

use std::time::Duration;
use tokio::time::{Instant, Interval, interval_at};

/// Intervals of silence after which a peer counts as gone.
const GRACE: u32 = 3;

/// When to ping, and whether the peer still answers.
pub struct Heartbeat {
    every: Duration,
    ticker: Interval,
    last_heard: Instant,
}

impl Heartbeat {
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
