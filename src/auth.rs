//! Who may work on conversations: the human agents and admins of each tenant, each holding a
//! bearer token that the hub keeps only as its SHA-256 (never in clear, never logged).
//!
//! Access rules, the same for every surface that uses them:
//! - nobody sees anything of another tenant; to them it does not exist;
//! - an agent works the conversations waiting in or assigned through one of its queues, and any
//!   conversation assigned to it; the rest of the tenant (AI, triage, closed, other teams'
//!   queues) does not exist for it either;
//! - an admin works every conversation of its tenant.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use switchboard_actors::domain::{AgentId, Author, TenantId};
use switchboard_actors::state::{ConversationState, Status};
use switchboard_adapters::tools::identity::token_sha256;

/// What an account may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Works the conversations of its queues.
    Agent,
    /// Works every conversation of its tenant.
    Admin,
}

impl Role {
    /// Parses `agent` or `admin`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "agent" => Some(Self::Agent),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Admin => "admin",
        }
    }
}

/// A human agent or admin of one tenant.
#[derive(Debug, Clone)]
pub struct AgentAccount {
    /// Its tenant.
    pub tenant: TenantId,
    /// Its agent id (the author of its replies and notes, the owner of its assignments).
    pub id: AgentId,
    /// Agent or admin.
    pub role: Role,
    /// The queues it works in.
    pub queues: BTreeSet<String>,
}

impl AgentAccount {
    /// Whether this account may see and act on `state` (see the module header for the rules).
    pub fn may_work_on(&self, state: &ConversationState) -> bool {
        state.tenant == self.tenant && self.may_work_on_status(&state.status)
    }

    /// Whether this account may work on a conversation of its tenant in `status`.
    pub fn may_work_on_status(&self, status: &Status) -> bool {
        match (self.role, status) {
            (Role::Admin, _) => true,
            (Role::Agent, Status::Assigned { agent, .. }) if *agent == self.id => true,
            (Role::Agent, status) => status.queue().is_some_and(|q| self.queues.contains(q)),
        }
    }

    /// How its actions appear in conversations.
    pub fn author(&self) -> Author {
        Author::Agent(self.id.clone())
    }
}

/// Every account the hub knows, by the SHA-256 of its token.
#[derive(Debug, Default)]
pub struct Accounts {
    by_token: HashMap<[u8; 32], Arc<AgentAccount>>,
}

impl Accounts {
    /// Registers an account. A token already held by another account is refused (one token must
    /// never mean two people) and the holder is returned.
    pub fn add(&mut self, token_sha256: [u8; 32], account: AgentAccount) -> Result<(), Arc<AgentAccount>> {
        if let Some(holder) = self.by_token.get(&token_sha256) {
            return Err(holder.clone());
        }
        self.by_token.insert(token_sha256, Arc::new(account));
        Ok(())
    }

    /// The account holding `token`.
    pub fn find(&self, token: &str) -> Option<Arc<AgentAccount>> {
        self.by_token.get(&token_sha256(token)).cloned()
    }

    /// How many accounts are enabled.
    pub fn len(&self) -> usize {
        self.by_token.len()
    }

    /// Whether no account is enabled.
    pub fn is_empty(&self) -> bool {
        self.by_token.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_actors::domain::ConversationId;

    fn account(id: &str, role: Role, queues: &[&str]) -> AgentAccount {
        AgentAccount {
            tenant: TenantId::new("t"),
            id: AgentId::new(id),
            role,
            queues: queues.iter().map(|q| (*q).to_owned()).collect(),
        }
    }

    fn conversation(tenant: &str, status: Status) -> ConversationState {
        let mut s = ConversationState::new(ConversationId::new("c"), TenantId::new(tenant));
        s.status = status;
        s
    }

    #[test]
    fn agents_work_their_queues_and_their_own_conversations_admins_the_whole_tenant() {
        let ana = account("ana", Role::Agent, &["vendas"]);
        let admin = account("boss", Role::Admin, &[]);
        let queued = |q: &str| conversation("t", Status::Queued { queue: q.into() });
        let assigned =
            |q: &str, a: &str| conversation("t", Status::Assigned { queue: q.into(), agent: AgentId::new(a) });

        assert!(ana.may_work_on(&queued("vendas")));
        assert!(ana.may_work_on(&assigned("vendas", "bruno")), "a colleague's chat in her queue");
        assert!(ana.may_work_on(&assigned("suporte", "ana")), "assigned to her through another queue");
        assert!(!ana.may_work_on(&queued("suporte")));
        assert!(!ana.may_work_on(&conversation("t", Status::Bot)));
        assert!(!ana.may_work_on(&conversation("t", Status::Closed)));

        assert!(admin.may_work_on(&conversation("t", Status::Closed)));
        assert!(admin.may_work_on(&queued("suporte")));
        assert!(!admin.may_work_on(&conversation("other", Status::Bot)), "never another tenant");
    }

    #[test]
    fn accounts_are_found_by_token_and_a_token_means_one_account() {
        let mut accounts = Accounts::default();
        accounts.add(token_sha256("s3cret"), account("ana", Role::Agent, &[])).unwrap();
        let holder = accounts.add(token_sha256("s3cret"), account("bruno", Role::Agent, &[])).unwrap_err();
        assert_eq!(holder.id.as_str(), "ana");
        assert_eq!(accounts.find("s3cret").map(|a| a.id.clone()), Some(AgentId::new("ana")));
        assert!(accounts.find("S3cret").is_none());
        assert_eq!(accounts.len(), 1);
    }
}
