//! Which human agents are online in which queue, shared by every node (one hash per tenant,
//! `<prefix>{t:<tenant>}:presence`). A console signs on at one node, but the conversations
//! waiting in a queue are held by the queue of the node that runs each of them: every node
//! writes the agents of its own consoles here and reads everyone's, so each node's queues offer
//! their waiting conversations to agents signed on at any node.
//!
//! Field `<queue>\n<agent>`, value `<node>\n<capacity>\n<expires ms>`. A node rewrites its own
//! entries at every sync and they expire unless rewritten, so a node that dies stops counting
//! its agents as online within the TTL. Clocks are Redis's (`TIME`), never the nodes'.

use super::Keys;
use super::connection::Pool;
use super::shared::Shared;
use redis::Script;

/// One agent online in one queue.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Present {
    /// Queue name.
    pub queue: String,
    /// Agent id.
    pub agent: String,
    /// Conversations the agent takes at once.
    pub capacity: u32,
}

/// KEYS: the tenant's hash. ARGV: node, TTL (ms), then field and capacity of each of the node's
/// online agents. Replaces the node's entries with those, drops expired and unreadable ones, and
/// returns field and capacity of every other node's live entries (fields the node also wrote
/// are its own now: when an agent has consoles on two nodes, the last writer holds the field).
const SYNC: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local node, ttl = ARGV[1], tonumber(ARGV[2])
local mine = {}
for i = 3, #ARGV, 2 do mine[ARGV[i]] = ARGV[i + 1] end
local all = redis.call('HGETALL', KEYS[1])
local others = {}
for i = 1, #all, 2 do
  local field, value = all[i], all[i + 1]
  local owner, cap, expires = string.match(value, '^(.*)\n(%d+)\n(%d+)$')
  if owner == nil or tonumber(expires) < now or (owner == node and mine[field] == nil) then
    redis.call('HDEL', KEYS[1], field)
  elseif mine[field] == nil then
    table.insert(others, field)
    table.insert(others, cap)
  end
end
for field, cap in pairs(mine) do
  redis.call('HSET', KEYS[1], field, node .. '\n' .. cap .. '\n' .. (now + ttl))
end
redis.call('PEXPIRE', KEYS[1], ttl * 4)
return others
";

/// The tenants' presence hashes.
#[derive(Clone)]
pub struct RedisPresence {
    conn: Shared,
    keys: Keys,
    sync: Script,
}

impl RedisPresence {
    /// Presence under `keys`.
    pub fn new(pool: Pool, keys: Keys) -> Self {
        Self { conn: Shared::new(pool), keys, sync: Script::new(SYNC) }
    }

    /// Publishes `mine` as `node`'s online agents for `ttl_ms` (replacing what the node wrote
    /// before) and returns the agents other nodes have online, in one atomic step.
    pub async fn sync(&self, tenant: &str, node: &str, mine: &[Present], ttl_ms: u64) -> Result<Vec<Present>, String> {
        let fields = mine.iter().map(|p| (format!("{}\n{}", p.queue, p.agent), p.capacity)).collect();
        let others = self.exchange(&self.keys.presence(tenant), node, fields, ttl_ms).await?;
        Ok(others
            .into_iter()
            .filter_map(|(field, capacity)| {
                let (queue, agent) = field.split_once('\n')?;
                Some(Present { queue: queue.to_owned(), agent: agent.to_owned(), capacity })
            })
            .collect())
    }

    /// One `SYNC` on hash `key`: `node`'s entries become `mine` (field, number); returns the other
    /// nodes' live entries.
    async fn exchange(
        &self,
        key: &str,
        node: &str,
        mine: Vec<(String, u32)>,
        ttl_ms: u64,
    ) -> Result<Vec<(String, u32)>, String> {
        let mut call = self.sync.key(key);
        call.arg(node).arg(ttl_ms.max(1));
        for (field, n) in mine {
            call.arg(field).arg(n);
        }
        let mut conn = self.conn.get().await?;
        let flat: Vec<String> =
            super::within(super::OP_TIMEOUT, async { call.invoke_async(&mut conn).await.map_err(|e| e.to_string()) })
                .await?;
        Ok(flat.chunks_exact(2).filter_map(|pair| Some((pair[0].clone(), pair[1].parse().ok()?))).collect())
    }
}

/// One node's count of conversations its copy of a queue assigned to an agent.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Load {
    /// Queue name.
    pub queue: String,
    /// Agent id.
    pub agent: String,
    /// Conversations assigned there.
    pub conversations: u32,
}

impl RedisPresence {
    /// Publishes `mine` as `node`'s queue loads for `ttl_ms` (replacing what it wrote before) and
    /// returns every other node's, in one atomic step. Same hash semantics as `sync`, in the
    /// tenant's hash `loads`, one field per node: `<queue>\n<agent>\n<node>`.
    pub async fn sync_loads(&self, tenant: &str, node: &str, mine: &[Load], ttl_ms: u64) -> Result<Vec<Load>, String> {
        let fields = mine.iter().map(|l| (format!("{}\n{}\n{node}", l.queue, l.agent), l.conversations)).collect();
        let others = self.exchange(&self.keys.loads(tenant), node, fields, ttl_ms).await?;
        Ok(others
            .into_iter()
            .filter_map(|(field, conversations)| {
                let mut parts = field.splitn(3, '\n');
                let (queue, agent) = (parts.next()?, parts.next()?);
                Some(Load { queue: queue.to_owned(), agent: agent.to_owned(), conversations })
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::test_pool;
    use std::time::Duration;
    use switchboard_load_tests::redis_server::RedisServer;

    fn present(queue: &str, agent: &str, capacity: u32) -> Present {
        Present { queue: queue.into(), agent: agent.into(), capacity }
    }

    async fn presence_on(server: &RedisServer) -> RedisPresence {
        let pool = test_pool(server).await;
        RedisPresence::new(pool, Keys::new(server.prefix()))
    }

    #[tokio::test]
    async fn each_node_sees_the_agents_the_others_have_online() {
        let server = RedisServer::start().expect("redis-server");
        let presence = presence_on(&server).await;
        let ana = present("vendas", "ana", 3);
        let bia = present("suporte", "bia", 1);
        assert_eq!(presence.sync("demo", "node-a", std::slice::from_ref(&ana), 5000).await.unwrap(), vec![]);
        assert_eq!(presence.sync("demo", "node-b", std::slice::from_ref(&bia), 5000).await.unwrap(), vec![ana.clone()]);
        assert_eq!(presence.sync("demo", "node-a", std::slice::from_ref(&ana), 5000).await.unwrap(), vec![bia.clone()]);
        assert_eq!(presence.sync("outra", "node-a", &[], 5000).await.unwrap(), vec![], "tenants apart");
        // Ana signs off at node a: node b stops seeing her at once.
        presence.sync("demo", "node-a", &[], 5000).await.unwrap();
        assert_eq!(presence.sync("demo", "node-b", std::slice::from_ref(&bia), 5000).await.unwrap(), vec![]);
    }

    #[tokio::test]
    async fn a_node_that_stops_refreshing_its_agents_loses_them() {
        let server = RedisServer::start().expect("redis-server");
        let presence = presence_on(&server).await;
        presence.sync("demo", "node-a", &[present("vendas", "ana", 2)], 200).await.unwrap();
        assert_eq!(presence.sync("demo", "node-b", &[], 200).await.unwrap().len(), 1);
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(presence.sync("demo", "node-b", &[], 200).await.unwrap(), vec![], "node a died: ana is offline");
    }
}
