//! In-memory tool ledger: counters and idempotent results with an expiry, and a capped audit
//! trail per tenant.

use async_trait::async_trait;
use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use crate::tools::ledger::{AUDIT_CAP, AuditRecord, LedgerError, Recall, StoredResult, ToolLedger};

/// How long a pending idempotency claim blocks its key if its holder vanished.
const PENDING_TTL: Duration = Duration::from_secs(30);

enum Slot {
    Count(u64),
    Pending,
    Done(StoredResult),
}

#[derive(Default)]
struct State {
    slots: HashMap<String, (Slot, Instant)>,
    audit: HashMap<String, VecDeque<AuditRecord>>,
    writes_since_sweep: usize,
}

impl State {
    fn live(&mut self, key: &str, now: Instant) -> Option<&mut Slot> {
        match self.slots.get_mut(key) {
            Some((slot, expires)) if *expires > now => Some(slot),
            _ => None,
        }
    }

    fn put(&mut self, key: &str, slot: Slot, expires: Instant) {
        self.slots.insert(key.to_owned(), (slot, expires));
        self.writes_since_sweep += 1;
        // Amortised sweep: memory stays bounded by the TTLs without a timer task.
        if self.writes_since_sweep >= 1024.max(self.slots.len() / 2) {
            let now = Instant::now();
            self.slots.retain(|_, (_, e)| *e > now);
            self.writes_since_sweep = 0;
        }
    }
}

/// One process's ledger.
#[derive(Default)]
pub struct MemoryLedger(Mutex<State>);

impl MemoryLedger {
    fn state(&self) -> Result<std::sync::MutexGuard<'_, State>, LedgerError> {
        self.0.lock().map_err(|_| LedgerError("ledger lock poisoned".into()))
    }
}

#[async_trait]
impl ToolLedger for MemoryLedger {
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, LedgerError> {
        let now = Instant::now();
        let mut state = self.state()?;
        if let Some(Slot::Count(n)) = state.live(key, now) {
            *n += 1;
            return Ok(*n);
        }
        state.put(key, Slot::Count(1), now + ttl);
        Ok(1)
    }

    async fn recall(&self, key: &str) -> Result<Recall, LedgerError> {
        let now = Instant::now();
        let mut state = self.state()?;
        match state.live(key, now) {
            Some(Slot::Pending) => Ok(Recall::Pending),
            Some(Slot::Done(result)) => Ok(Recall::Done(result.clone())),
            _ => {
                state.put(key, Slot::Pending, now + PENDING_TTL);
                Ok(Recall::New)
            }
        }
    }

    async fn complete(&self, key: &str, result: &StoredResult, ttl: Duration) -> Result<(), LedgerError> {
        self.state()?.put(key, Slot::Done(result.clone()), Instant::now() + ttl);
        Ok(())
    }

    async fn abandon(&self, key: &str) -> Result<(), LedgerError> {
        self.state()?.slots.remove(key);
        Ok(())
    }

    async fn audit(&self, record: AuditRecord) -> Result<(), LedgerError> {
        let mut state = self.state()?;
        let trail = state.audit.entry(record.tenant.clone()).or_default();
        trail.push_back(record);
        if trail.len() > AUDIT_CAP {
            trail.pop_front();
        }
        Ok(())
    }

    async fn recent_audit(&self, tenant: &str, limit: usize) -> Result<Vec<AuditRecord>, LedgerError> {
        let state = self.state()?;
        let Some(trail) = state.audit.get(tenant) else { return Ok(Vec::new()) };
        Ok(trail.iter().skip(trail.len().saturating_sub(limit)).cloned().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn counters_expire_and_idempotent_results_are_recalled() {
        let ledger = MemoryLedger::default();
        assert_eq!(ledger.increment("q", Duration::from_secs(10)).await.unwrap(), 1);
        assert_eq!(ledger.increment("q", Duration::from_secs(10)).await.unwrap(), 2);
        tokio::time::advance(Duration::from_secs(11)).await;
        assert_eq!(ledger.increment("q", Duration::from_secs(10)).await.unwrap(), 1, "a new window starts at 1");

        assert_eq!(ledger.recall("k").await.unwrap(), Recall::New);
        assert_eq!(ledger.recall("k").await.unwrap(), Recall::Pending, "a concurrent repeat waits");
        let stored = StoredResult { args_digest: "d".into(), outcome: "{}".into() };
        ledger.complete("k", &stored, Duration::from_secs(60)).await.unwrap();
        assert_eq!(ledger.recall("k").await.unwrap(), Recall::Done(stored));

        assert_eq!(ledger.recall("gone").await.unwrap(), Recall::New);
        ledger.abandon("gone").await.unwrap();
        assert_eq!(ledger.recall("gone").await.unwrap(), Recall::New, "an abandoned key may run again");
    }
}
