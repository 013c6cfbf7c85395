//! A tenant's conversation indexes, so that listing reads one sorted set instead of scanning
//! every snapshot. All of them live under `Keys::index(tenant, …)`, one Cluster slot per tenant:
//!
//! | name | type | holds |
//! |---|---|---|
//! | `all` | sorted set | every conversation of the tenant, scored by `updated_at` (ms) |
//! | `status:<name>` | sorted set | those in status `bot`, `triage`, `queued`, `assigned` or `closed` |
//! | `queue:<queue>` | sorted set | those waiting in or assigned through the queue |
//! | `agent:<agent>` | sorted set | those assigned to the agent |
//! | `where` | hash | conversation → `{"seq":…,"names":[…]}`, the sets it is in now |
//!
//! `where` exists so that a move (queued → assigned) can leave its old sets without the caller
//! knowing where the conversation was before. The indexes are derived data: the snapshots are
//! the truth, and an index that fell out of step (see `RedisStore::append`) can be rebuilt from
//! them. No rebuild command exists yet.

use super::Keys;
use std::sync::LazyLock;
use switchboard_actors::query::ConversationQuery;
use switchboard_actors::state::{ConversationState, Status};

/// Moves one conversation to its current sets, atomically. Keys it removes from are built from
/// the prefix in `ARGV[4]` (they are only known from `where`); they carry the same hash tag as
/// `KEYS`, so they are in the same slot on Redis Cluster.
///
/// `seq` makes the update monotonic: after a takeover, a late update from the previous owner
/// must not put a conversation back where it was.
static MOVE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
-- KEYS[1]: the `where` hash; KEYS[2..]: the sets the conversation belongs to now.
-- ARGV: conversation id, score, seq, index key prefix, then the names of KEYS[2..].
local id, score, seq, prefix = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local now = {}
for i = 5, #ARGV do now[ARGV[i]] = true end
local old = redis.call('HGET', KEYS[1], id)
if old then
  local was = cjson.decode(old)
  if was.seq > seq then return 0 end
  for _, name in ipairs(was.names) do
    if not now[name] then redis.call('ZREM', prefix .. name, id) end
  end
end
for i = 2, #KEYS do redis.call('ZADD', KEYS[i], score, id) end
redis.call('HSET', KEYS[1], id, cjson.encode({seq = seq, names = {unpack(ARGV, 5)}}))
return 1
",
    )
});

/// The index names a conversation belongs to in `state`.
pub(super) fn memberships(state: &ConversationState) -> Vec<String> {
    let mut names = vec!["all".to_owned(), format!("status:{}", state.status.name())];
    if let Some(queue) = state.status.queue() {
        names.push(format!("queue:{queue}"));
    }
    if let Status::Assigned { agent, .. } = &state.status {
        names.push(format!("agent:{}", agent.as_str()));
    }
    names
}

/// The smallest index that holds every match of `query`: an agent has fewer conversations than
/// a queue, a queue fewer than a status. The other filters are applied to the snapshots.
pub(super) fn index_for(keys: &Keys, query: &ConversationQuery) -> String {
    let name = match (&query.agent, &query.queue, &query.status) {
        (Some(agent), _, _) => format!("agent:{}", agent.as_str()),
        (None, Some(queue), _) => format!("queue:{queue}"),
        (None, None, Some(status)) => format!("status:{status}"),
        (None, None, None) => "all".to_owned(),
    };
    keys.index(query.tenant.as_str(), &name)
}

/// The script invocation that moves `state` into its current sets.
pub(super) fn update(keys: &Keys, state: &ConversationState) -> redis::ScriptInvocation<'static> {
    let tenant = state.tenant.as_str();
    let names = memberships(state);
    let mut call = MOVE.prepare_invoke();
    call.key(keys.index(tenant, "where"));
    for name in &names {
        call.key(keys.index(tenant, name));
    }
    call.arg(state.id.as_str()).arg(state.updated_at).arg(state.seq).arg(keys.index(tenant, "")).arg(names);
    call
}
