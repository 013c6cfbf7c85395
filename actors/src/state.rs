//! Conversation state and how journal events change it (event sourcing: `apply` is the only
//! writer, so replaying a journal over a snapshot rebuilds any past state).

use crate::domain::{AgentId, Author, Contact, ConversationId, DeliveryState, OutboundContent, ReplyAddress, TenantId};
use crate::event::{Event, TransferTarget};
use crate::partition::stable_hash;
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::Arc;

/// How many provider ids a conversation remembers for dedup (after the ingress gate).
const HANDLED_IDS: usize = 64;
/// How many outbound messages keep their delivery state in the snapshot.
const OUTBOUND_WINDOW: usize = 16;
/// How many internal notes the snapshot keeps (all of them stay in the journal).
const NOTES_WINDOW: usize = 16;

/// Who owns the conversation now. Variants carry their data.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Status {
    /// The AI agent answers.
    Bot,
    /// The triage menu is waiting for a choice.
    Triage {
        /// Invalid answers so far.
        invalid_attempts: u8,
    },
    /// Waiting for a human in a queue.
    Queued {
        /// The queue.
        queue: String,
    },
    /// A human agent owns it.
    Assigned {
        /// The queue it came through.
        queue: String,
        /// The agent.
        agent: AgentId,
    },
    /// No open ticket; the next customer message opens one.
    Closed,
}

impl Status {
    /// Lowercase name (`bot`, `triage`, `queued`, `assigned`, `closed`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Bot => "bot",
            Self::Triage { .. } => "triage",
            Self::Queued { .. } => "queued",
            Self::Assigned { .. } => "assigned",
            Self::Closed => "closed",
        }
    }

    /// The queue involved, if any.
    pub fn queue(&self) -> Option<&str> {
        match self {
            Self::Queued { queue } | Self::Assigned { queue, .. } => Some(queue),
            _ => None,
        }
    }
}

/// One line of the context window an agent sees.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Who said it.
    pub author: Author,
    /// Text form (shared: snapshots are copied on write, and the text never changes).
    pub text: Arc<str>,
    /// Journal sequence of the event that added it; the AI answers entries after its last turn.
    pub seq: u64,
}

/// Delivery state of one of our recent messages.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutboundRecord {
    /// Our id.
    pub local_id: u64,
    /// Provider's id once sent.
    pub provider_message_id: Option<String>,
    /// Latest known state; `None` while queued in the outbox.
    pub state: Option<DeliveryState>,
}

/// An internal note for the team.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    /// Who wrote it.
    pub author: Author,
    /// The text.
    pub text: String,
    /// When (ms).
    pub at: u64,
}

/// The state a conversation actor owns. Cloneable snapshot; persisted by the store.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConversationState {
    /// Identity.
    pub id: ConversationId,
    /// Owner tenant.
    pub tenant: TenantId,
    /// The customer.
    pub contact: Option<Contact>,
    /// Where replies go (updated from the latest customer message).
    pub reply_to: Option<ReplyAddress>,
    /// Who owns it.
    pub status: Status,
    /// Bumped on every change of owner; a reply computed under an older epoch is dropped.
    pub epoch: u64,
    /// Ticket number, from 1; 0 before the first message.
    pub ticket: u32,
    /// Sequence of the last applied journal event.
    pub seq: u64,
    /// Recent messages, oldest first, bounded by the tenant's history window.
    pub history: VecDeque<HistoryEntry>,
    /// Stable hashes of the most recent provider ids handled, to ignore redeliveries that passed
    /// the ingress gate (hashes: small to keep and to copy; a 64-bit collision among 64 is negligible).
    pub handled_ids: VecDeque<u64>,
    /// When the customer last wrote (ms): opens WhatsApp's 24-hour service window.
    pub last_customer_at: Option<u64>,
    /// Next local id for an outbound message.
    pub next_local_id: u64,
    /// Recent outbound messages and their delivery state.
    pub outbound: VecDeque<OutboundRecord>,
    /// Sequence of the last customer entry the AI has answered.
    pub ai_answered_seq: u64,
    /// When the last event was applied (ms); lists sort by it.
    #[serde(default)]
    pub updated_at: u64,
    /// Recent internal notes, oldest first.
    #[serde(default)]
    pub notes: VecDeque<Note>,
}

impl ConversationState {
    /// Empty state of a conversation that has never received anything.
    pub fn new(id: ConversationId, tenant: TenantId) -> Self {
        Self {
            id,
            tenant,
            contact: None,
            reply_to: None,
            status: Status::Closed,
            epoch: 0,
            ticket: 0,
            seq: 0,
            history: VecDeque::new(),
            handled_ids: VecDeque::new(),
            last_customer_at: None,
            next_local_id: 1,
            outbound: VecDeque::new(),
            ai_answered_seq: 0,
            updated_at: 0,
            notes: VecDeque::new(),
        }
    }

    /// Whether WhatsApp still allows free-form messages (within the service window after the
    /// customer's last message). Other channels have no such window.
    pub fn service_window_open(&self, now_ms: u64, window_ms: u64) -> bool {
        let on_whatsapp =
            self.reply_to.as_ref().is_some_and(|r| r.channel.kind == crate::domain::ChannelKind::WhatsApp);
        !on_whatsapp || now_ms <= self.last_customer_at.unwrap_or_default() + window_ms
    }

    /// Whether this provider id was already handled.
    pub fn has_handled(&self, provider_id: &str) -> bool {
        let hash = stable_hash(provider_id);
        self.handled_ids.iter().any(|id| *id == hash)
    }

    /// Customer entries the AI has not answered yet, oldest first.
    pub fn unanswered(&self) -> impl Iterator<Item = &HistoryEntry> {
        let after = self.ai_answered_seq;
        self.history.iter().filter(move |e| e.author == Author::Customer && e.seq > after)
    }

    /// Outbound messages recorded as queued that no outbox has reported on (sent or failed).
    pub fn unsent(&self) -> impl Iterator<Item = u64> + '_ {
        self.outbound.iter().filter(|r| r.provider_message_id.is_none() && r.state.is_none()).map(|r| r.local_id)
    }

    /// Whether the conversation has work in flight that nothing would restart if its node
    /// stopped now: a customer message the AI has not answered, or a message not yet sent. The
    /// store keeps such conversations in a per-partition set that the next owner wakes.
    pub fn owes_work(&self) -> bool {
        (self.status == Status::Bot && self.unanswered().next().is_some()) || self.unsent().next().is_some()
    }

    /// Applies one journal event. `occurred_at` is the event time (ms), `window` the history bound.
    pub fn apply(&mut self, event: &Event, occurred_at: u64, window: usize) {
        self.seq += 1;
        self.updated_at = self.updated_at.max(occurred_at);
        if event.changes_owner() {
            self.epoch += 1;
        }
        match event {
            Event::MessageReceived(msg) => {
                self.contact = Some(msg.contact.clone());
                self.reply_to = Some(msg.reply_to.clone());
                // The service window runs from when the customer wrote, not from when a (possibly
                // days-late) redelivery reached us.
                let wrote_at = if msg.sent_at_ms > 0 { msg.sent_at_ms.min(occurred_at) } else { occurred_at };
                self.last_customer_at = Some(self.last_customer_at.unwrap_or(0).max(wrote_at));
                self.handled_ids.push_back(stable_hash(&msg.provider_id));
                if self.handled_ids.len() > HANDLED_IDS {
                    self.handled_ids.pop_front();
                }
                // A reaction is not something to answer: journaled, but kept out of the context.
                if !matches!(msg.content, crate::domain::Content::Reaction { .. }) {
                    self.push_history(Author::Customer, msg.content.as_text(), window);
                }
            }
            Event::StatusReceived(update) => {
                if let Some(rec) = self
                    .outbound
                    .iter_mut()
                    .find(|r| r.provider_message_id.as_deref() == Some(update.provider_message_id.as_str()))
                {
                    let newer = rec.state.as_ref().is_none_or(|s| update.state.rank() > s.rank());
                    if newer {
                        rec.state = Some(update.state.clone());
                    }
                }
            }
            Event::Opened { ticket } => {
                self.ticket = *ticket;
                // A new ticket starts a fresh AI turn: earlier tickets' messages stay in history
                // for context, but the AI only answers what arrives from now on.
                self.ai_answered_seq = self.seq;
            }
            Event::AiStarted => {
                // What was said before the AI took over (e.g. the menu choice) is not its to answer.
                self.ai_answered_seq = self.seq;
                self.status = Status::Bot;
            }
            Event::TriageStarted => self.status = Status::Triage { invalid_attempts: 0 },
            Event::TriageInvalid => {
                if let Status::Triage { invalid_attempts } = &mut self.status {
                    *invalid_attempts = invalid_attempts.saturating_add(1);
                }
            }
            Event::HandoffRequested { queue, .. } | Event::Queued { queue, .. } => {
                self.status = Status::Queued { queue: queue.clone() };
            }
            Event::Assigned { queue, agent } => {
                self.status = Status::Assigned { queue: queue.clone(), agent: agent.clone() };
            }
            Event::Transferred { target } => match target {
                TransferTarget::Queue(queue) => self.status = Status::Queued { queue: queue.clone() },
                TransferTarget::Agent(agent) => {
                    let queue = self.status.queue().unwrap_or_default().to_owned();
                    self.status = Status::Assigned { queue, agent: agent.clone() };
                }
            },
            Event::Closed { .. } => self.status = Status::Closed,
            Event::AiResponse { answered_through, .. } => {
                self.ai_answered_seq = self.ai_answered_seq.max(*answered_through);
            }
            Event::OutboundQueued { local_id, author, content } => {
                self.next_local_id = local_id + 1;
                self.push_history(author.clone(), content.body().to_owned(), window);
                self.outbound.push_back(OutboundRecord { local_id: *local_id, provider_message_id: None, state: None });
                if self.outbound.len() > OUTBOUND_WINDOW {
                    self.outbound.pop_front();
                }
            }
            Event::OutboundSent { local_id, provider_message_id } => {
                if let Some(rec) = self.outbound.iter_mut().find(|r| r.local_id == *local_id) {
                    rec.provider_message_id = Some(provider_message_id.clone());
                    if rec.state.is_none() {
                        rec.state = Some(DeliveryState::Sent);
                    }
                }
            }
            Event::NoteAdded { author, body } => {
                self.notes.push_back(Note { author: author.clone(), text: body.clone(), at: occurred_at });
                if self.notes.len() > NOTES_WINDOW {
                    self.notes.pop_front();
                }
            }
            Event::OutboundFailed { local_id, .. } => {
                if let Some(rec) = self.outbound.iter_mut().find(|r| r.local_id == *local_id) {
                    rec.state = Some(DeliveryState::Failed);
                }
            }
        }
    }

    fn push_history(&mut self, author: Author, text: String, window: usize) {
        self.history.push_back(HistoryEntry { author, text: Arc::from(text), seq: self.seq });
        // While the AI owns the conversation, customer messages it has not answered yet are never
        // evicted: every acknowledged message gets its answer, however long the burst.
        let protect_pending = self.status == Status::Bot;
        while self.history.len() > window.max(1) {
            let answered = self.ai_answered_seq;
            let evictable = self
                .history
                .iter()
                .position(|e| !(protect_pending && e.author == Author::Customer && e.seq > answered));
            match evictable {
                Some(i) => {
                    self.history.remove(i);
                }
                None => break,
            }
        }
    }
}

/// Helper for tests and replies: a text outbound content.
pub fn text(body: impl Into<String>) -> OutboundContent {
    OutboundContent::Text { body: body.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ChannelKind, ChannelRef, Content, InboundMessage};

    fn message(i: u32) -> Event {
        Event::MessageReceived(Box::new(InboundMessage {
            provider_id: format!("m{i}"),
            contact: Contact { key: "k".into(), name: None },
            reply_to: ReplyAddress { channel: ChannelRef::new(ChannelKind::WhatsApp, "main"), recipient: "k".into() },
            content: Content::Text { body: format!("msg {i}") },
            sent_at_ms: 0,
            callback_query_id: None,
        }))
    }

    #[test]
    fn unanswered_messages_outlive_the_history_window_while_the_ai_owns_the_chat() {
        let mut s = ConversationState::new(ConversationId::new("c"), TenantId::new("t"));
        s.apply(&Event::AiStarted, 0, 5);
        for i in 0..30 {
            s.apply(&message(i), 0, 5);
        }
        assert_eq!(s.unanswered().count(), 30, "a burst larger than the window is kept for the AI");
        let through = s.seq;
        s.apply(
            &Event::AiResponse { answered_through: through, prompt_tokens: 0, completion_tokens: 0, fallback: false },
            0,
            5,
        );
        s.apply(&Event::OutboundQueued { local_id: 1, author: Author::Bot, content: text("ok") }, 0, 5);
        assert_eq!(s.history.len(), 5, "answered messages fall out of the window again");
        assert_eq!(s.unanswered().count(), 0);
    }

    #[test]
    fn humans_see_a_bounded_window() {
        let mut s = ConversationState::new(ConversationId::new("c"), TenantId::new("t"));
        s.apply(&Event::Queued { queue: "q".into(), position: 1 }, 0, 5);
        for i in 0..30 {
            s.apply(&message(i), 0, 5);
        }
        assert_eq!(s.history.len(), 5);
        assert_eq!(&*s.history.back().unwrap().text, "msg 29");
    }
}
