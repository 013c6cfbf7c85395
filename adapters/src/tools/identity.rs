//! Who may call the tools: bots (by bearer token) and staff contacts (by the chat they write
//! from), each with a plan.

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use switchboard_actors::domain::{Author, ChannelRef, TenantId};

/// A caller's plan: how many tool calls a day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plan {
    /// 200 calls a day.
    Starter,
    /// 1,000 calls a day.
    Pro,
    /// No daily limit (the burst rate still applies).
    Unlimited,
}

impl Plan {
    /// Parses `starter`, `pro` or `unlimited`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "starter" => Some(Self::Starter),
            "pro" => Some(Self::Pro),
            "unlimited" => Some(Self::Unlimited),
            _ => None,
        }
    }

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Starter => "starter",
            Self::Pro => "pro",
            Self::Unlimited => "unlimited",
        }
    }

    /// Calls allowed per UTC day, if limited.
    pub fn daily_limit(self) -> Option<u64> {
        match self {
            Self::Starter => Some(200),
            Self::Pro => Some(1000),
            Self::Unlimited => None,
        }
    }
}

/// One identity calling the tools.
#[derive(Debug)]
pub struct Caller {
    /// Its tenant: it sees nothing of any other.
    pub tenant: TenantId,
    /// `bot:<name>` or `staff:<name>`.
    pub id: String,
    /// Daily quota.
    pub plan: Plan,
    /// Burst rate: calls per second, and how many may come at once.
    pub burst: (u32, u32),
    pub(super) limiter: DefaultDirectRateLimiter,
}

impl Caller {
    /// A caller allowed `per_second` calls a second on average and `burst` at once.
    pub fn new(tenant: TenantId, id: impl Into<String>, plan: Plan, per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = burst.max(per_second).max(1);
        let quota = Quota::per_second(rate).allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN));
        Self { tenant, id: id.into(), plan, burst: (rate.get(), burst), limiter: RateLimiter::direct(quota) }
    }

    /// How its actions appear in conversations.
    pub fn author(&self) -> Author {
        Author::Integration(self.id.clone())
    }
}

/// Every caller the hub knows.
#[derive(Debug, Default)]
pub struct Directory {
    bots: HashMap<[u8; 32], Arc<Caller>>,
    staff: HashMap<(TenantId, ChannelRef, String), Arc<Caller>>,
}

impl Directory {
    /// Registers a bot by the SHA-256 of its token (tokens are never kept in clear).
    pub fn add_bot(&mut self, token_sha256: [u8; 32], caller: Caller) {
        self.bots.insert(token_sha256, Arc::new(caller));
    }

    /// Registers a staff contact: `contact` (phone number or chat id) writing on `channel`.
    pub fn add_staff(&mut self, channel: ChannelRef, contact: &str, caller: Caller) {
        self.staff.insert((caller.tenant.clone(), channel, contact.to_owned()), Arc::new(caller));
    }

    /// The bot holding `token`.
    pub fn bot(&self, token: &str) -> Option<Arc<Caller>> {
        self.bots.get(&token_sha256(token)).cloned()
    }

    /// The staff member writing from `contact` on `channel` of `tenant`.
    pub fn staff(&self, tenant: &TenantId, channel: &ChannelRef, contact: &str) -> Option<Arc<Caller>> {
        self.staff.get(&(tenant.clone(), channel.clone(), contact.to_owned())).cloned()
    }

    /// Whether any staff contact is configured (webhooks skip the lookup otherwise).
    pub fn has_staff(&self) -> bool {
        !self.staff.is_empty()
    }
}

/// SHA-256 of a token.
pub fn token_sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}
