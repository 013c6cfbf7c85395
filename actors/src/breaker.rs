//! Circuit breaker (closed → open → half-open) wrapped around a flaky dependency, so a dead
//! model or provider is not hammered and callers get an answer at once.
//! Uses `tokio::time::Instant` so tests can pause and advance time.

use std::time::Duration;
use tokio::time::Instant;

/// Breaker position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cooldown ends.
    Open,
    /// One trial call is allowed; its result closes or reopens the breaker.
    HalfOpen,
}

/// A consecutive-failure circuit breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    failures_to_open: u32,
    cooldown: Duration,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    trial_in_flight: bool,
}

impl CircuitBreaker {
    /// Opens after `failures_to_open` consecutive failures, for `cooldown`.
    pub fn new(failures_to_open: u32, cooldown: Duration) -> Self {
        Self {
            failures_to_open: failures_to_open.max(1),
            cooldown,
            consecutive_failures: 0,
            opened_at: None,
            trial_in_flight: false,
        }
    }

    /// Current position.
    pub fn state(&self) -> BreakerState {
        match self.opened_at {
            None => BreakerState::Closed,
            Some(at) if at.elapsed() < self.cooldown => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
        }
    }

    /// Whether a call may go out now. In half-open, only one trial at a time.
    pub fn try_acquire(&mut self) -> bool {
        match self.state() {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if self.trial_in_flight => false,
            BreakerState::HalfOpen => {
                self.trial_in_flight = true;
                true
            }
        }
    }

    /// Gives back a half-open trial that never reached the dependency (so the next call may try).
    pub fn release_trial(&mut self) {
        self.trial_in_flight = false;
    }

    /// Records a success: closes the breaker.
    pub fn on_success(&mut self) {
        self.consecutive_failures = 0;
        self.opened_at = None;
        self.trial_in_flight = false;
    }

    /// Records a failure: may open (or reopen) the breaker.
    pub fn on_failure(&mut self) {
        self.consecutive_failures += 1;
        let trial_failed = self.trial_in_flight;
        self.trial_in_flight = false;
        if trial_failed || self.consecutive_failures >= self.failures_to_open {
            self.opened_at = Some(Instant::now());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_and_half_opens_after_cooldown() {
        let mut b = CircuitBreaker::new(2, Duration::from_secs(10));
        assert!(b.try_acquire());
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Closed);
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open);
        assert!(!b.try_acquire());
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(b.state(), BreakerState::HalfOpen);
        assert!(b.try_acquire(), "one trial");
        assert!(!b.try_acquire(), "only one trial at a time");
        b.on_failure();
        assert_eq!(b.state(), BreakerState::Open, "failed trial reopens");
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(b.try_acquire());
        b.on_success();
        assert_eq!(b.state(), BreakerState::Closed);
    }
}
