//! Staff chat commands arriving through the webhooks: a message from a contact listed as staff
//! that starts with `/` runs the tools (with the staff member's quota) instead of reaching a
//! conversation, and the answer goes back to the same chat. Provider redeliveries pass the same
//! dedup gate as customer messages, so a command never runs twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use switchboard_actors::domain::{ChannelRef, Content, InboundMessage, OutboundContent, TenantId};
use switchboard_actors::hub::IngestError;
use switchboard_actors::ports::{Claim, Dedup, Outbound, OutboundMessage, SendError};
use switchboard_adapters::tools::{Directory, ToolError, Tools, commands};

/// Longest answer sent in one chat message (Telegram allows 4,096 characters).
const MAX_ANSWER_CHARS: usize = 3500;
/// Send attempts for an answer.
const SEND_ATTEMPTS: u32 = 3;

/// What became of an inbound message.
#[derive(Debug, PartialEq, Eq)]
pub enum StaffOutcome {
    /// Not a staff command: the message goes to its conversation as usual.
    NotStaff,
    /// Ran; the answer is on its way.
    Handled,
    /// A redelivery of a command already run.
    Duplicate,
}

/// Runs staff commands.
pub struct StaffDesk {
    tools: Arc<Tools>,
    directory: Arc<Directory>,
    dedup: Arc<dyn Dedup>,
    dedup_ttl: Duration,
    outbound: HashMap<(TenantId, ChannelRef), Arc<dyn Outbound>>,
}

impl StaffDesk {
    /// A desk answering through `outbound` (each tenant channel's send API).
    pub fn new(
        tools: Arc<Tools>,
        directory: Arc<Directory>,
        dedup: Arc<dyn Dedup>,
        dedup_ttl: Duration,
        outbound: HashMap<(TenantId, ChannelRef), Arc<dyn Outbound>>,
    ) -> Self {
        Self { tools, directory, dedup, dedup_ttl, outbound }
    }

    /// Runs `msg` as a command if it is one from staff. `Err` asks the provider to retry.
    pub async fn handle(
        &self,
        tenant: &TenantId,
        channel: &ChannelRef,
        msg: &InboundMessage,
        dedup_key: &str,
        trace_id: &str,
    ) -> Result<StaffOutcome, IngestError> {
        let Content::Text { body } = &msg.content else { return Ok(StaffOutcome::NotStaff) };
        if !self.directory.has_staff() || !body.trim_start().starts_with('/') {
            return Ok(StaffOutcome::NotStaff);
        }
        let Some(caller) = self.directory.staff(tenant, channel, &msg.contact.key) else {
            return Ok(StaffOutcome::NotStaff);
        };
        let unavailable = |e: switchboard_actors::ports::DedupError| IngestError::Unavailable(e.to_string());
        match self.dedup.claim(dedup_key).await.map_err(unavailable)? {
            Claim::New => {}
            Claim::Done => return Ok(StaffOutcome::Duplicate),
            Claim::Pending => return Err(IngestError::Busy),
        }
        let answer = match commands::run(&self.tools, &caller, body, trace_id).await {
            Some(Ok(answer)) => answer,
            Some(Err(e)) => {
                let _ = self.dedup.forget(dedup_key).await;
                return Err(match e {
                    ToolError::Unavailable(why) => IngestError::Unavailable(why),
                    other => IngestError::Unavailable(other.to_string()),
                });
            }
            None => {
                let _ = self.dedup.forget(dedup_key).await;
                return Ok(StaffOutcome::NotStaff);
            }
        };
        self.dedup.confirm(dedup_key, self.dedup_ttl).await.map_err(unavailable)?;
        match self.outbound.get(&(tenant.clone(), channel.clone())) {
            Some(outbound) => {
                let message = OutboundMessage {
                    tenant: tenant.clone(),
                    to: msg.reply_to.clone(),
                    content: OutboundContent::Text { body: truncate(answer) },
                    key: format!("staff/{}", msg.provider_id),
                    callback_query_id: msg.callback_query_id.clone(),
                };
                actix_web::rt::spawn(deliver(outbound.clone(), message, trace_id.to_owned()));
            }
            None => tracing::warn!(%tenant, channel = %channel.name, "staff command ran but its channel cannot send"),
        }
        Ok(StaffOutcome::Handled)
    }
}

fn truncate(answer: String) -> String {
    if answer.chars().count() <= MAX_ANSWER_CHARS {
        return answer;
    }
    let mut cut: String = answer.chars().take(MAX_ANSWER_CHARS).collect();
    cut.push_str("\n…");
    cut
}

/// Sends an answer with a few retries (staff answers are few: no outbox lane needed).
async fn deliver(outbound: Arc<dyn Outbound>, message: OutboundMessage, trace_id: String) {
    for attempt in 1..=SEND_ATTEMPTS {
        let wait = match outbound.send(&message).await {
            Ok(_) => return,
            Err(SendError::Permanent(why)) => {
                tracing::warn!(%trace_id, error = %why, "staff answer refused by the provider");
                return;
            }
            Err(SendError::RateLimited { retry_after }) => retry_after.min(Duration::from_secs(10)),
            Err(SendError::Transient(_)) => Duration::from_millis(500 * u64::from(attempt)),
        };
        tokio::time::sleep(wait).await;
    }
    tracing::warn!(%trace_id, "staff answer not sent after {SEND_ATTEMPTS} attempts");
}
