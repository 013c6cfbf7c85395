//! Agents' presence in their queues, as their consoles set it.
//!
//! One node alone tells its queues directly. With several nodes (Redis) a conversation waits in
//! the queue of the node that runs it, while its agents may be signed on at any node: each node
//! also publishes its consoles' online agents to the tenant's shared presence and, every
//! [`SYNC_EVERY`], tells its own queues who is online at the other nodes. So every node's queues
//! offer their waiting conversations to every online agent.
//!
//! Capacity: each node also publishes how many conversations its copy of each queue assigned to
//! each agent, and tells its queues what the others assigned, so an agent's capacity counts the
//! conversations of every node. That count is up to a sync old: two nodes may still both fill
//! an agent's last free place within the same second.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_actors::conversation::CommandError;
use switchboard_actors::domain::{AgentId, TenantId};
use switchboard_actors::hub::Hub;
use switchboard_adapters::redis::{Load, Present, RedisPresence};

use super::feed::TenantFeed;

/// How often a node publishes its agents and reads the others'.
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// How long a node's published agents count as online without a new sync: a node that died is
/// forgotten after this (its consoles reconnect to another node meanwhile).
const TTL_MS: u64 = 5_000;

/// (queue, agent) → capacity.
type Online = BTreeMap<(String, String), u32>;

/// The shared presence of the Redis backend, and this node's name in it.
pub struct SharedPresence {
    /// The tenants' presence hashes.
    pub store: RedisPresence,
    /// This node.
    pub node: String,
}

/// The presence entry a node writes while consoles of the tenant are open there, so that every
/// node keeps relaying to them (see `relay`): queue "" (no queue has an empty name), agent the node.
const WATCHING: &str = "";

/// Agents' presence, this node's and (Redis) every node's.
pub struct Presence {
    hub: Hub,
    /// The tenants' console feeds (Redis): whose consoles watch, here and elsewhere.
    feeds: HashMap<TenantId, Arc<TenantFeed>>,
    /// Online through this node's consoles.
    mine: Mutex<HashMap<TenantId, Online>>,
    /// Online at other nodes, as last told to this node's queues.
    told: Mutex<HashMap<TenantId, Online>>,
}

impl Presence {
    /// Presence for `hub`'s queues; with `shared`, also every other node's (a task syncs it for
    /// as long as the process runs).
    pub fn new(hub: Hub, shared: Option<SharedPresence>, feeds: HashMap<TenantId, Arc<TenantFeed>>) -> Arc<Self> {
        let presence = Arc::new(Self { hub, feeds, mine: Mutex::default(), told: Mutex::default() });
        if let Some(shared) = shared {
            tokio::spawn(sync_forever(presence.clone(), shared));
        }
        presence
    }

    /// An agent of this node's consoles goes online or offline in a queue, or changes capacity.
    pub async fn set(
        &self,
        tenant: &TenantId,
        queue: &str,
        agent: AgentId,
        online: bool,
        capacity: u32,
    ) -> Result<(), CommandError> {
        let key = (queue.to_owned(), agent.as_str().to_owned());
        self.hub.set_presence(tenant, queue, agent, online, capacity).await?;
        let mut mine = lock(&self.mine);
        let of_tenant = mine.entry(tenant.clone()).or_default();
        if online {
            of_tenant.insert(key, capacity);
        } else {
            of_tenant.remove(&key);
        }
        Ok(())
    }

    /// One round: publish this node's agents, tell the queues what changed elsewhere.
    async fn sync(&self, shared: &SharedPresence) {
        for tenant in self.hub.tenants() {
            let mine: Online = lock(&self.mine).get(tenant).cloned().unwrap_or_default();
            let mut published: Vec<Present> = mine
                .iter()
                .map(|((queue, agent), capacity)| Present {
                    queue: queue.clone(),
                    agent: agent.clone(),
                    capacity: *capacity,
                })
                .collect();
            let feed = self.feeds.get(tenant);
            if feed.is_some_and(|f| f.sessions_here()) {
                published.push(Present { queue: WATCHING.into(), agent: shared.node.clone(), capacity: 0 });
            }
            let others = match shared.store.sync(tenant.as_str(), &shared.node, &published, TTL_MS).await {
                Ok(others) => others,
                // Redis away: keep what the queues know (nobody is signed off by an outage).
                Err(e) => {
                    tracing::debug!(%tenant, error = %e, "presence not synced");
                    continue;
                }
            };
            let (watching, others): (Vec<_>, Vec<_>) = others.into_iter().partition(|p| p.queue == WATCHING);
            if let Some(feed) = feed.filter(|_| !watching.is_empty()) {
                feed.mark_watched();
            }
            let now: Online = others
                .into_iter()
                .filter(|p| !mine.contains_key(&(p.queue.clone(), p.agent.clone())))
                .map(|p| ((p.queue, p.agent), p.capacity))
                .collect();
            let before = lock(&self.told).get(tenant).cloned().unwrap_or_default();
            // Every round, not only on change: an agent's own console at this node may have
            // signed them off here meanwhile while they are still online at another node.
            for ((queue, agent), capacity) in &now {
                self.tell(tenant, queue, agent, true, *capacity).await;
            }
            for ((queue, agent), capacity) in &before {
                let key = (queue.clone(), agent.clone());
                if !now.contains_key(&key) && !lock(&self.mine).get(tenant).is_some_and(|m| m.contains_key(&key)) {
                    self.tell(tenant, queue, agent, false, *capacity).await;
                }
            }
            lock(&self.told).insert(tenant.clone(), now);
            self.sync_loads(tenant, shared).await;
        }
    }

    /// Publishes what this node's queues assigned per agent and tells them what the other
    /// nodes' did, so that each counts an agent's conversations at every node against the
    /// agent's capacity (as of the last sync: within a second, two nodes may still both fill
    /// the same free place).
    async fn sync_loads(&self, tenant: &TenantId, shared: &SharedPresence) {
        let queues = self.hub.queue_names(tenant);
        let mut mine = Vec::new();
        for queue in &queues {
            let Ok(loads) = self.hub.queue_loads(tenant, queue).await else { continue };
            mine.extend(loads.into_iter().map(|(agent, conversations)| Load {
                queue: queue.clone(),
                agent: agent.as_str().to_owned(),
                conversations,
            }));
        }
        let others = match shared.store.sync_loads(tenant.as_str(), &shared.node, &mine, TTL_MS).await {
            Ok(others) => others,
            Err(e) => {
                tracing::debug!(%tenant, error = %e, "queue loads not synced");
                return;
            }
        };
        let mut per_queue: HashMap<String, BTreeMap<AgentId, u32>> = HashMap::new();
        for load in others {
            let agents = per_queue.entry(load.queue).or_default();
            *agents.entry(AgentId::new(load.agent)).or_default() += load.conversations;
        }
        for queue in &queues {
            let loads = per_queue.remove(queue).unwrap_or_default();
            if let Err(e) = self.hub.set_loads_elsewhere(tenant, queue, loads).await {
                tracing::debug!(%tenant, queue, error = %e, "queue loads from other nodes not applied");
            }
        }
    }

    async fn tell(&self, tenant: &TenantId, queue: &str, agent: &str, online: bool, capacity: u32) {
        // A queue another node knows and this one does not (config being rolled out): skip it.
        if let Err(e) = self.hub.set_presence(tenant, queue, AgentId::new(agent), online, capacity).await {
            tracing::debug!(%tenant, queue, agent, error = %e, "presence from another node not applied");
        }
    }
}

async fn sync_forever(presence: Arc<Presence>, shared: SharedPresence) {
    let mut every = tokio::time::interval(SYNC_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        presence.sync(&shared).await;
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
