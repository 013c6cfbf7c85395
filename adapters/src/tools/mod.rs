//! The tool registry: one set of operations on the hub, with a JSON Schema for each input, used
//! by the MCP server and by staff chat commands alike. Calls that change a conversation go through
//! the hub's bus like every other command (ordering, ownership epochs); every call passes the
//! caller's quota, may be repeated safely with an `idempotency_key`, and is audited.

pub mod args;
mod call;
pub mod commands;
pub mod identity;
pub mod ledger;
mod quota;
mod render;
mod run;

pub use call::Call;
pub use identity::{Caller, Directory, Plan};
pub use quota::{QuotaExceeded, rfc3339};

use crate::tools::ledger::{AuditRecord, Recall, StoredResult, ToolLedger};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use switchboard_actors::hub::Hub;
use switchboard_actors::telemetry::RateLimited;

/// How long a finished call is remembered for repeats with the same `idempotency_key`.
const IDEMPOTENCY_TTL: Duration = Duration::from_secs(24 * 3600);

/// One tool as clients see it.
#[derive(Debug, Clone)]
pub struct ToolSpec {
    /// Name (`[a-z_]`).
    pub name: &'static str,
    /// Short human title.
    pub title: &'static str,
    /// What it does, for a model deciding whether to call it.
    pub description: &'static str,
    /// JSON Schema of the arguments (`"type": "object"`).
    pub input_schema: Arc<serde_json::Map<String, Value>>,
    /// Whether it only reads.
    pub read_only: bool,
}

/// What a call produced: text for people and models, data for programs. `is_error` marks a tool
/// that ran but refused (not found, window closed, conflict): the caller can react to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolOutcome {
    /// Readable result.
    pub text: String,
    /// Structured result (an object).
    pub data: Value,
    /// The tool refused; nothing changed.
    pub is_error: bool,
}

impl ToolOutcome {
    fn ok(text: impl Into<String>, data: Value) -> Self {
        Self { text: text.into(), data, is_error: false }
    }

    fn refused(text: impl Into<String>) -> Self {
        let text = text.into();
        Self { data: serde_json::json!({ "error": text }), text, is_error: true }
    }
}

/// A call that did not run (protocol-level failures; a refusal by the tool is a `ToolOutcome`).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ToolError {
    /// No tool of that name.
    #[error("unknown tool: {0}")]
    UnknownTool(String),
    /// The arguments do not fit the tool's schema.
    #[error("invalid arguments for {tool}: {reason}")]
    InvalidArguments {
        /// The tool.
        tool: String,
        /// What is wrong.
        reason: String,
    },
    /// Over the caller's plan or burst rate.
    #[error("{0}")]
    QuotaExceeded(QuotaExceeded),
    /// The same `idempotency_key` was used with other arguments.
    #[error("idempotency_key {0:?} was already used with different arguments")]
    KeyReused(String),
    /// A call with the same `idempotency_key` is still running.
    #[error("a call with idempotency_key {0:?} is still running; repeat it in a moment")]
    InProgress(String),
    /// The backend is unreachable; retry later.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

/// The registry bound to a running hub.
pub struct Tools {
    hub: Hub,
    ledger: Arc<dyn ToolLedger>,
    /// Calls by (tool, result), for `/metrics`.
    counts: Mutex<BTreeMap<(String, &'static str), u64>>,
}

impl Tools {
    /// Tools over `hub`, book-kept in `ledger`.
    pub fn new(hub: Hub, ledger: Arc<dyn ToolLedger>) -> Self {
        Self { hub, ledger, counts: Mutex::default() }
    }

    /// Calls so far by tool and result (`ok`, `error`, `rejected`, `repeat`), sorted.
    pub fn call_counts(&self) -> Vec<(String, &'static str, u64)> {
        let counts = self.counts.lock().map(|c| c.clone()).unwrap_or_default();
        counts.into_iter().map(|((tool, result), n)| (tool, result, n)).collect()
    }

    /// Every tool, in a stable order.
    pub fn specs() -> &'static [ToolSpec] {
        static SPECS: OnceLock<Vec<ToolSpec>> = OnceLock::new();
        SPECS.get_or_init(call::specs)
    }

    /// The audit trail of a tenant (newest last).
    pub async fn audit_trail(&self, tenant: &str, limit: usize) -> Result<Vec<AuditRecord>, ToolError> {
        self.ledger.recent_audit(tenant, limit).await.map_err(|e| ToolError::Unavailable(e.to_string()))
    }

    /// Runs tool `name` for `caller`: burst limit, argument check, idempotent repeat, daily
    /// quota, then the tool itself. Every call ends in the audit trail.
    pub async fn call(
        &self,
        caller: &Caller,
        name: &str,
        args: Value,
        trace_id: &str,
    ) -> Result<ToolOutcome, ToolError> {
        let digest = digest(&args);
        let result = self.admit_and_run(caller, name, args, &digest, trace_id).await;
        let (verdict, detail) = match &result {
            Ok((o, true)) => ("repeat", o.is_error.then(|| o.text.clone())),
            Ok((o, false)) if o.is_error => ("error", Some(o.text.clone())),
            Ok(_) => ("ok", None),
            Err(e) => ("rejected", Some(e.to_string())),
        };
        // Unknown names are logged, audited and counted under one label: a client cannot grow the
        // metrics or fill the audit trail with names of its choosing.
        let label = if Self::specs().iter().any(|s| s.name == name) { name } else { "unknown" };
        tracing::info!(tenant = %caller.tenant, caller = %caller.id, tool = label, args = %digest, result = verdict, trace_id, "tool.called");
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry((label.to_owned(), verdict)).or_default() += 1;
        }
        if matches!(result, Err(ToolError::QuotaExceeded(_))) {
            RateLimited { scope: "tools", whose: &caller.id }.emit(self.hub.metrics());
        }
        let record = AuditRecord {
            at_ms: self.hub.clock().now_ms(),
            tenant: caller.tenant.to_string(),
            caller: caller.id.clone(),
            tool: label.to_owned(),
            args_digest: digest,
            result: verdict.to_owned(),
            detail,
        };
        if let Err(e) = self.ledger.audit(record).await {
            tracing::warn!(error = %e, "tool call not audited");
        }
        result.map(|(outcome, _)| outcome)
    }

    /// The outcome, and whether it is a stored repeat.
    async fn admit_and_run(
        &self,
        caller: &Caller,
        name: &str,
        args: Value,
        digest: &str,
        trace_id: &str,
    ) -> Result<(ToolOutcome, bool), ToolError> {
        quota::check_burst(caller)?;
        let call = Call::parse(name, args)?;
        let Some(key) = call.idempotency_key().map(|k| format!("idem:{}:{}:{name}:{k}", caller.tenant, caller.id))
        else {
            quota::charge_daily(&*self.ledger, self.hub.clock().now_ms(), caller).await?;
            return Ok((self.run(caller, call, trace_id).await?, false));
        };
        let unavailable = |e: ledger::LedgerError| ToolError::Unavailable(e.to_string());
        match self.ledger.recall(&key).await.map_err(unavailable)? {
            Recall::Done(stored) if stored.args_digest == digest => {
                let outcome =
                    serde_json::from_str(&stored.outcome).map_err(|e| ToolError::Unavailable(e.to_string()))?;
                Ok((outcome, true))
            }
            Recall::Done(_) => Err(ToolError::KeyReused(call.idempotency_key().unwrap_or_default().to_owned())),
            Recall::Pending => Err(ToolError::InProgress(call.idempotency_key().unwrap_or_default().to_owned())),
            Recall::New => {
                if let Err(e) = quota::charge_daily(&*self.ledger, self.hub.clock().now_ms(), caller).await {
                    let _ = self.ledger.abandon(&key).await;
                    return Err(e);
                }
                let outcome = match self.run(caller, call, trace_id).await {
                    Ok(outcome) => outcome,
                    Err(e) => {
                        // Not done: a repeat with the same key must be able to try again.
                        let _ = self.ledger.abandon(&key).await;
                        return Err(e);
                    }
                };
                let stored = StoredResult {
                    args_digest: digest.to_owned(),
                    outcome: serde_json::to_string(&outcome).map_err(|e| ToolError::Unavailable(e.to_string()))?,
                };
                self.ledger.complete(&key, &stored, IDEMPOTENCY_TTL).await.map_err(unavailable)?;
                Ok((outcome, false))
            }
        }
    }
}

/// SHA-256 of the arguments as sent (hex, 16 bytes): identifies a repeat without keeping content.
fn digest(args: &Value) -> String {
    let hash = Sha256::digest(args.to_string().as_bytes());
    hex::encode(&hash[..16])
}
