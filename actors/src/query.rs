//! Listing conversations: the filter every store applies the same way, and the page it returns.

use crate::domain::{AgentId, TenantId};
use crate::state::{ConversationState, Status};
use std::sync::Arc;

/// Largest page a caller may ask for.
pub const MAX_PAGE: usize = 200;

/// Which conversations of a tenant to list. Filters combine with AND.
#[derive(Clone, Debug)]
pub struct ConversationQuery {
    /// Only this tenant's conversations.
    pub tenant: TenantId,
    /// Status name (`bot`, `triage`, `queued`, `assigned`, `closed`).
    pub status: Option<String>,
    /// Waiting in or assigned through this queue.
    pub queue: Option<String>,
    /// Assigned to this agent.
    pub agent: Option<AgentId>,
    /// Contact key (phone number, chat id) or name containing this text, case-insensitive.
    pub contact: Option<String>,
    /// How many matches to skip (newest first).
    pub offset: usize,
    /// Page size, at most [`MAX_PAGE`].
    pub limit: usize,
}

impl ConversationQuery {
    /// Everything of `tenant`, first page of 50.
    pub fn tenant(tenant: TenantId) -> Self {
        Self { tenant, status: None, queue: None, agent: None, contact: None, offset: 0, limit: 50 }
    }

    /// Whether `state` passes every filter. Conversations without a message are never listed.
    pub fn matches(&self, state: &ConversationState) -> bool {
        if state.tenant != self.tenant || state.ticket == 0 {
            return false;
        }
        if self.status.as_deref().is_some_and(|s| s != state.status.name()) {
            return false;
        }
        if self.queue.as_deref().is_some_and(|q| state.status.queue() != Some(q)) {
            return false;
        }
        if let Some(agent) = &self.agent
            && !matches!(&state.status, Status::Assigned { agent: a, .. } if a == agent)
        {
            return false;
        }
        if let Some(needle) = &self.contact {
            let needle = needle.to_lowercase();
            let Some(contact) = &state.contact else { return false };
            let in_name = contact.name.as_ref().is_some_and(|n| n.to_lowercase().contains(&needle));
            if !contact.key.to_lowercase().contains(&needle) && !in_name {
                return false;
            }
        }
        true
    }

    /// Sorts matches (most recently active first, then by id for a stable order) and cuts the page.
    pub fn page(&self, mut matches: Vec<Arc<ConversationState>>) -> ConversationPage {
        matches.sort_by(|a, b| b.updated_at.cmp(&a.updated_at).then_with(|| a.id.as_str().cmp(b.id.as_str())));
        let total = matches.len();
        let items = matches.into_iter().skip(self.offset).take(self.limit.clamp(1, MAX_PAGE)).collect();
        ConversationPage { items, total }
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct ConversationPage {
    /// The conversations on this page.
    pub items: Vec<Arc<ConversationState>>,
    /// How many match in all.
    pub total: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Contact, ConversationId};

    fn conv(id: &str, status: Status, name: Option<&str>, updated_at: u64) -> Arc<ConversationState> {
        let mut s = ConversationState::new(ConversationId::new(id), TenantId::new("t"));
        s.ticket = 1;
        s.status = status;
        s.updated_at = updated_at;
        s.contact = Some(Contact { key: id.into(), name: name.map(str::to_owned) });
        Arc::new(s)
    }

    #[test]
    fn filters_combine_and_pages_are_newest_first() {
        let all = vec![
            conv("5511900000001", Status::Queued { queue: "vendas".into() }, Some("Maria Silva"), 10),
            conv("5511900000002", Status::Queued { queue: "suporte".into() }, None, 30),
            conv("5511900000003", Status::Assigned { queue: "vendas".into(), agent: AgentId::new("ana") }, None, 20),
            conv("5511900000004", Status::Closed, Some("João"), 40),
        ];
        let mut q = ConversationQuery::tenant(TenantId::new("t"));
        q.queue = Some("vendas".into());
        let ids: Vec<_> = q.page(all.iter().filter(|s| q.matches(s)).cloned().collect()).items;
        let ids: Vec<&str> = ids.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["5511900000003", "5511900000001"], "newest first, only vendas");

        q.queue = None;
        q.contact = Some("silva".into());
        assert_eq!(all.iter().filter(|s| q.matches(s)).count(), 1, "name search is case-insensitive");

        let mut other = ConversationQuery::tenant(TenantId::new("other"));
        other.limit = 10;
        assert_eq!(all.iter().filter(|s| other.matches(s)).count(), 0, "another tenant sees nothing");

        let mut paged = ConversationQuery::tenant(TenantId::new("t"));
        paged.limit = 2;
        paged.offset = 2;
        let page = paged.page(all.clone());
        assert_eq!(page.total, 4);
        assert_eq!(page.items.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(), ["5511900000003", "5511900000001"]);
    }
}
