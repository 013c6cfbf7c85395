//! Quotas: a burst rate per caller (in this process) and a daily count per caller (in the
//! backend, so it holds across nodes). Days are UTC.

use super::ledger::ToolLedger;
use super::{Caller, ToolError};
use governor::clock::{Clock as _, DefaultClock};
use serde::Serialize;
use std::time::Duration;
use switchboard_actors::ports::{Clock as _, SystemClock};

const DAY_MS: u64 = 86_400_000;

/// Which limit a call ran into and when it lifts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaExceeded {
    /// `daily` or `burst`.
    pub limit: &'static str,
    /// The caller's plan.
    pub plan: &'static str,
    /// Calls allowed in the window (per day, or the burst size).
    pub allowed: u64,
    /// When the limit lifts (RFC 3339, UTC).
    pub resets_at: String,
    /// Milliseconds until then.
    pub retry_after_ms: u64,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.limit {
            "daily" => write!(
                f,
                "daily quota exceeded: plan {} allows {} tool calls per day; it resets at {}",
                self.plan, self.allowed, self.resets_at
            ),
            _ => write!(
                f,
                "burst rate exceeded: at most {} tool calls at once; retry in {} ms (at {})",
                self.allowed, self.retry_after_ms, self.resets_at
            ),
        }
    }
}

pub(super) fn check_burst(caller: &Caller) -> Result<(), ToolError> {
    let Err(not_until) = caller.limiter.check() else { return Ok(()) };
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    let now_ms = SystemClock.now_ms();
    let retry_after_ms = wait.as_millis().max(1) as u64;
    Err(ToolError::QuotaExceeded(QuotaExceeded {
        limit: "burst",
        plan: caller.plan.name(),
        allowed: u64::from(caller.burst.1),
        resets_at: rfc3339(now_ms + retry_after_ms),
        retry_after_ms,
    }))
}

pub(super) async fn charge_daily(ledger: &dyn ToolLedger, now_ms: u64, caller: &Caller) -> Result<(), ToolError> {
    let Some(allowed) = caller.plan.daily_limit() else { return Ok(()) };
    let day = now_ms / DAY_MS;
    let key = format!("quota:{}:{}:{day}", caller.tenant, caller.id);
    // Two days: the counter outlives its day whatever the clocks of the nodes say.
    let used = ledger
        .increment(&key, Duration::from_millis(2 * DAY_MS))
        .await
        .map_err(|e| ToolError::Unavailable(e.to_string()))?;
    if used <= allowed {
        return Ok(());
    }
    let resets = (day + 1) * DAY_MS;
    Err(ToolError::QuotaExceeded(QuotaExceeded {
        limit: "daily",
        plan: caller.plan.name(),
        allowed,
        resets_at: rfc3339(resets),
        retry_after_ms: resets - now_ms,
    }))
}

/// `YYYY-MM-DDTHH:MM:SSZ` for a time in ms since the epoch (civil-from-days, proleptic Gregorian).
pub fn rfc3339(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_305_600_000 + 3_661_000), "2026-11-22T01:01:01Z");
    }
}
