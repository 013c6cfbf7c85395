//! The tools' book-keeping port: quota counters, idempotent results and the audit trail. It lives
//! in the backend (memory for one process, Redis for many) so limits and repeats hold across nodes.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Audit records kept per tenant (the oldest go first).
pub const AUDIT_CAP: usize = 10_000;

/// The backend is unreachable.
#[derive(Debug, thiserror::Error)]
#[error("tool ledger unavailable: {0}")]
pub struct LedgerError(pub String);

/// What the ledger knows of an idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recall {
    /// Never seen: the caller holds it now and must `complete` or `abandon` it.
    New,
    /// A call with this key is running right now.
    Pending,
    /// Done before: the stored result (with the digest of the arguments it was made with).
    Done(StoredResult),
}

/// A finished call kept for repeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredResult {
    /// Digest of the arguments of the first call.
    pub args_digest: String,
    /// The serialized outcome.
    pub outcome: String,
}

/// One tool call, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When (ms since the epoch).
    pub at_ms: u64,
    /// Tenant of the caller.
    pub tenant: String,
    /// Who called (`bot:<name>` or `staff:<name>`).
    pub caller: String,
    /// Tool name.
    pub tool: String,
    /// SHA-256 of the arguments (hex, first 16 bytes): enough to match repeats, no content kept.
    pub args_digest: String,
    /// `ok`, `error` (the tool refused), `rejected` (quota, bad arguments) or `repeat`.
    pub result: String,
    /// Readable detail of a failure.
    pub detail: Option<String>,
}

/// Counters, idempotent results and audit, per tenant. Keys are `<kind>:<tenant>:…`: a backend
/// may place a tenant's keys together by that second segment.
#[async_trait]
pub trait ToolLedger: Send + Sync + 'static {
    /// Adds one to `key` and returns the new count; the counter expires after `ttl`.
    async fn increment(&self, key: &str, ttl: Duration) -> Result<u64, LedgerError>;
    /// Claims an idempotency key or returns what is known of it. A pending claim expires by itself
    /// after a short while, so a caller that died does not block the key.
    async fn recall(&self, key: &str) -> Result<Recall, LedgerError>;
    /// Stores the result of a claimed key for `ttl`.
    async fn complete(&self, key: &str, result: &StoredResult, ttl: Duration) -> Result<(), LedgerError>;
    /// Releases a claimed key without a result (the call could not run; a repeat may try again).
    async fn abandon(&self, key: &str) -> Result<(), LedgerError>;
    /// Appends to the tenant's audit trail (the oldest records go past a cap).
    async fn audit(&self, record: AuditRecord) -> Result<(), LedgerError>;
    /// The tenant's most recent audit records, newest last.
    async fn recent_audit(&self, tenant: &str, limit: usize) -> Result<Vec<AuditRecord>, LedgerError>;
}
