//! The bus on Redis Streams: one stream per partition (`keys.stream(p)`), read through the
//! consumer group `hub`. An entry stays in the group's pending list from delivery to `ack`, so
//! what a crashed node took but never acknowledged is delivered again to its successor (same
//! consumer name). Acknowledged entries are trimmed away every `trim_every` acks. An entry that
//! keeps failing is moved to the partition's dead-letter stream (see `dlq` for what counts as a
//! failed delivery), and a stream at its bound (`max_len`) refuses new entries.

use async_trait::async_trait;
use redis::RedisError;
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::streams::StreamReadReply;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::ports::{Bus, BusError, Claim, Delivery};
use tokio::sync::Mutex;

use super::connection::Pool;
use super::dlq::{self, Read};
use super::shared::Shared;
use super::{Keys, OP_TIMEOUT, bounded, millis, within};

/// The consumer group every node reads through.
pub(super) const GROUP: &str = "hub";
/// Trims everything older than the oldest entry still pending in group ARGV[2] or, when nothing
/// is pending, older than the last acknowledged one (ARGV[1]). One script, so no entry can
/// become pending between the look and the cut. Exact (`=`) trimming: `~` only drops whole
/// radix-tree nodes (100 entries), which would leave small streams untouched. Sent with `EVAL`:
/// it runs once every `trim_every` acks, too rarely for script caching to matter.
const TRIM: &str = r"
local pending = redis.call('XPENDING', KEYS[1], ARGV[2])
local min = pending[2] or ARGV[1]
return redis.call('XTRIM', KEYS[1], 'MINID', '=', min)
";

/// Appends to a stream below its bound (KEYS: stream, and optionally an ingress mark and the
/// partition's hold; ARGV: bound, group, payload, and the mark's TTL in ms); returns the new id,
/// or nil when the stream is full. With a mark, a webhook's dedup gate and its append are one
/// step: `DUP` (nothing appended) when the mark says the provider's message is already on the
/// bus, `PENDING` when an older two-step gate is at it, `HELD` while the partition's owner is
/// behind (`hold_off`), else the append and the mark together. At the bound it first trims what the group has
/// acknowledged (everything older than the oldest pending entry or, when nothing is pending, up
/// to the last delivered one): the periodic trim runs only every `trim_every` acks, and a stream
/// full of acknowledged entries must not refuse forever. Undelivered and pending entries are
/// never trimmed. One script, so no publish slips in between the check and the append.
static PUBLISH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if KEYS[2] then
  local mark = redis.call('GET', KEYS[2])
  if mark == 'd' then return 'DUP' end
  if mark then return 'PENDING' end
  if KEYS[3] and redis.call('EXISTS', KEYS[3]) == 1 then return 'HELD' end
end
local bound = tonumber(ARGV[1])
if redis.call('XLEN', KEYS[1]) >= bound then
  local last
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
    local name, delivered
    for j = 1, #g, 2 do
      if g[j] == 'name' then name = g[j + 1] elseif g[j] == 'last-delivered-id' then delivered = g[j + 1] end
    end
    if name == ARGV[2] then last = delivered end
  end
  if last then
    local min = redis.call('XPENDING', KEYS[1], ARGV[2])[2]
    if not min then
      local ms, seq = string.match(last, '^(%d+)-(%d+)$')
      min = ms .. '-' .. (tonumber(seq) + 1)
    end
    redis.call('XTRIM', KEYS[1], 'MINID', '=', min)
  end
  if redis.call('XLEN', KEYS[1]) >= bound then return false end
end
local id = redis.call('XADD', KEYS[1], '*', 'e', ARGV[3])
if KEYS[2] then redis.call('SET', KEYS[2], 'd', 'PX', ARGV[4]) end
return id
",
    )
});

/// How long an internal event (`wait`) waits for room in a full stream before it is written past
/// the bound: it must not be lost, and the partition's own consumer may be the one waiting (a
/// new owner queues its wake-ups before it reads).
const WAIT_FOR_ROOM: Duration = Duration::from_secs(30);

/// How partitions are read and cleaned.
#[derive(Clone, Debug)]
pub struct StreamSettings {
    /// How long one `XREADGROUP` blocks; `next_batch` keeps waiting across these rounds.
    pub block: Duration,
    /// Upper bound on entries taken at once, whatever the caller asks for.
    pub max_batch: usize,
    /// Acks on a partition between two trims of its stream.
    pub trim_every: u64,
    /// Failed deliveries after which an entry is moved to the dead-letter stream.
    pub dlq_after: u64,
    /// Entries a partition stream may hold (acknowledged ones not yet trimmed included); publishing
    /// at the bound fails with `Full` (webhooks answer 503 + Retry-After).
    pub max_len: u64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        Self { block: Duration::from_secs(2), max_batch: 256, trim_every: 512, dlq_after: 5, max_len: 100_000 }
    }
}

/// Wait before delivering again what the consumer could not handle.
const REDELIVERY_PAUSE: Duration = Duration::from_millis(500);

/// The reading side of one partition.
struct Reader {
    /// Taken out of the pool for good: a blocked `XREADGROUP` holds its connection.
    conn: Option<MultiplexedConnection>,
    group_ready: bool,
    /// `Some(id)`: next read replays this consumer's pending entries after `id` instead of
    /// reading new ones. Starts at `0` (a crashed predecessor's leftovers) and is set before each
    /// new read, so a read that was cancelled or failed after Redis had delivered is replayed.
    replay_after: Option<String>,
    /// Last id handed to the caller.
    last_delivered: String,
    /// Redis's id of `conn`'s client, to unblock a read that was abandoned (see `quiesce`).
    client_id: Option<i64>,
    /// Reads sent since the last one whose reply was handled: Redis may have served them (and
    /// counted a delivery of their entries) without the hub ever seeing the entries, so the next
    /// read takes that many deliveries back off its entries' counters.
    unseen: u64,
    /// On a Redis Cluster, the node (`host:port`) `conn` is connected to: the id is its.
    node: Option<String>,
}

/// Acks since the last trim, and the newest acked id (the trim point when nothing is pending).
#[derive(Default)]
struct Acks {
    since_trim: u64,
    newest: Option<(u64, u64)>,
    /// The consumer could not handle some entries (`nack`): deliver them again first.
    redeliver: bool,
    /// Entries whose last delivery must not count as failed (given back by `nack`, or
    /// acknowledged without Redis confirming it): taken off their counters before the next read.
    excuse: Vec<String>,
}

struct Partition {
    key: String,
    dead_letters: String,
    reader: Mutex<Reader>,
    acks: std::sync::Mutex<Acks>,
}

/// The bus on Redis Streams.
pub struct RedisBus {
    pool: Pool,
    keys: Keys,
    /// Non-blocking commands (publish, ack, trim, claim).
    shared: Shared,
    consumer: String,
    settings: StreamSettings,
    partitions: Vec<Partition>,
    /// Entries this node moved to dead-letter streams (`switchboard_dead_lettered_total`).
    dead_lettered: Arc<AtomicU64>,
}

impl RedisBus {
    /// A bus of `partitions` streams, read as `consumer` (stable across restarts of one node, so
    /// that its successor finds what it left pending).
    pub fn new(pool: Pool, keys: Keys, partitions: u32, consumer: String, settings: StreamSettings) -> Self {
        let partitions = (0..partitions.max(1))
            .map(|p| Partition {
                key: keys.stream(p),
                dead_letters: keys.dead_letters(p),
                reader: Mutex::new(Reader {
                    conn: None,
                    group_ready: false,
                    replay_after: Some("0".into()),
                    last_delivered: "0".into(),
                    client_id: None,
                    unseen: 0,
                    node: None,
                }),
                acks: std::sync::Mutex::default(),
            })
            .collect();
        let dead_lettered = Arc::default();
        Self { shared: Shared::new(pool.clone()), pool, keys, consumer, settings, partitions, dead_lettered }
    }

    /// Entries this node has moved to dead-letter streams so far.
    pub fn dead_lettered(&self) -> Arc<AtomicU64> {
        self.dead_lettered.clone()
    }

    fn partition(&self, p: u32) -> Result<&Partition, BusError> {
        self.partitions.get(p as usize).ok_or(BusError::Closed)
    }

    /// One `PUBLISH` script: the new entry's id (or `DUP`/`PENDING`), `None` at the bound.
    async fn run_publish(&self, append: &redis::ScriptInvocation<'_>) -> Result<Option<String>, BusError> {
        bounded(async {
            let mut conn = self.shared.get().await?;
            append.invoke_async::<Option<String>>(&mut conn).await.map_err(|e| e.to_string())
        })
        .await
        .map_err(BusError::Unavailable)
    }

    /// Entries to deliver again before newer ones; `excused`: their last delivery does not count
    /// as a failed one (see `dlq`).
    fn give_back(&self, partition: u32, ids: &[String], excused: bool) -> Result<(), BusError> {
        if ids.is_empty() {
            return Ok(());
        }
        let part = self.partition(partition)?;
        let mut acks = part.acks.lock().map_err(|_| BusError::Unavailable("ack counter poisoned".into()))?;
        acks.redeliver = true;
        if excused {
            acks.excuse.extend_from_slice(ids);
        }
        Ok(())
    }

    /// Counts acknowledged entries, and trims the stream behind them every `trim_every`.
    async fn count_acks(&self, partition: u32, ids: &[String]) -> Result<(), BusError> {
        let part = self.partition(partition)?;
        let due = {
            let mut acks = part.acks.lock().map_err(|_| BusError::Unavailable("ack counter poisoned".into()))?;
            acks.since_trim += ids.len() as u64;
            acks.newest = ids.iter().map(|id| parse_id(id)).chain(acks.newest).max();
            if acks.since_trim < self.settings.trim_every.max(1) {
                None
            } else {
                acks.since_trim = 0;
                acks.newest
            }
        };
        if let Some((ms, seq)) = due {
            let trim =
                redis::cmd("EVAL").arg(TRIM).arg(1).arg(&part.key).arg(format!("{ms}-{seq}")).arg(GROUP).to_owned();
            let trimmed: u64 = self.pooled(&trim).await?;
            tracing::debug!(partition, trimmed, "bus stream trimmed");
        }
        Ok(())
    }

    /// One `XREADGROUP` round: pending entries while replaying, else new ones (blocking).
    /// Returns nothing after a block timeout or when every entry was unreadable.
    async fn read(&self, p: u32, reader: &mut Reader, count: usize) -> Result<Vec<Delivery>, String> {
        let part = &self.partitions[p as usize];
        let mut conn = match reader.conn.take() {
            Some(conn) => conn,
            None => {
                let (conn, id, node) = bounded(async {
                    let (mut conn, node) = self.pool.blocking(&part.key).await?;
                    let id: i64 = query(&mut conn, &redis::cmd("CLIENT").arg("ID").to_owned()).await?;
                    Ok((conn, id, node))
                })
                .await?;
                reader.client_id = Some(id);
                reader.node = node;
                conn
            }
        };
        if !reader.group_ready {
            bounded(create_group(&mut conn, &part.key)).await?;
            reader.group_ready = true;
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP").arg(GROUP).arg(&self.consumer).arg("COUNT").arg(count);
        let excuse = reader.unseen;
        reader.unseen += 1;
        let replaying = reader.replay_after.is_some();
        let reply: StreamReadReply = match reader.replay_after.clone() {
            Some(after) => {
                cmd.arg("STREAMS").arg(&part.key).arg(after);
                let reply: StreamReadReply = bounded(query(&mut conn, &cmd)).await?;
                if reply.keys.iter().all(|k| k.ids.is_empty()) {
                    reader.replay_after = None;
                }
                reply
            }
            None => {
                let block = self.settings.block;
                cmd.arg("BLOCK").arg(block.as_millis().max(1) as u64).arg("STREAMS").arg(&part.key).arg(">");
                reader.replay_after = Some(reader.last_delivered.clone());
                let reply = within(block + OP_TIMEOUT, query(&mut conn, &cmd)).await?;
                reader.replay_after = None;
                reply
            }
        };
        reader.conn = Some(conn);
        let entries = parse(reply);
        let unreadable = entries.iter().any(|(_, e)| e.is_err());
        // Only replays can hold entries delivered before (new entries were never delivered).
        let settled = if !entries.is_empty() && (replaying || unreadable || excuse > 0) {
            let read = Read {
                keys: (&part.key, &part.dead_letters),
                group: GROUP,
                consumer: &self.consumer,
                partition: p,
                dlq_after: self.settings.dlq_after,
                excuse,
                entries: entries.iter().map(|(id, e)| (id.as_str(), e.as_ref().err().cloned())).collect(),
            };
            let settle = async {
                let mut conn = self.shared.get().await?;
                dlq::settle(&mut conn, read).await
            };
            match bounded(settle).await {
                Ok(settled) => settled,
                Err(e) => {
                    // Delivered but not handed over: read them again (as unseen ones).
                    reader.replay_after.get_or_insert_with(|| reader.last_delivered.clone());
                    return Err(e);
                }
            }
        } else {
            dlq::Settled { cut: None, moved: Vec::new() }
        };
        reader.unseen = 0;
        let mut deliveries = Vec::with_capacity(entries.len());
        let mut last = None;
        for (id, entry) in entries {
            if settled.cut.as_ref() == Some(&id) {
                break;
            }
            if settled.moved.contains(&id) {
                let reason = entry.as_ref().err().map_or("failed deliveries", String::as_str);
                dlq::EntryDeadLettered { partition: p, id: &id, reason }.emit(&self.dead_lettered);
            } else if let Ok(envelope) = entry {
                deliveries.push(Delivery { id: id.clone(), envelope });
            }
            last = Some(id);
        }
        if let Some(last) = last {
            if parse_id(&last) > parse_id(&reader.last_delivered) {
                reader.last_delivered.clone_from(&last);
            }
            if reader.replay_after.is_some() || settled.cut.is_some() {
                reader.replay_after = Some(last);
            }
        }
        Ok(deliveries)
    }

    /// One command on a pooled connection.
    async fn pooled<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, BusError> {
        let op = async {
            let mut conn = self.shared.get().await?;
            query(&mut conn, cmd).await
        };
        bounded(op).await.map_err(BusError::Unavailable)
    }
}

/// `XAUTOCLAIM … JUSTID` answers `[next cursor, [ids], [deleted ids]]` (the third since Redis
/// 7): the cursor and how many were claimed.
fn autoclaim_reply(reply: redis::Value) -> Result<(String, usize), String> {
    let redis::Value::Array(parts) = reply else { return Err(format!("unexpected XAUTOCLAIM reply {reply:?}")) };
    let cursor = match parts.first() {
        Some(redis::Value::BulkString(b)) => String::from_utf8_lossy(b).into_owned(),
        Some(redis::Value::SimpleString(s)) => s.clone(),
        other => return Err(format!("unexpected XAUTOCLAIM cursor {other:?}")),
    };
    let claimed = match parts.get(1) {
        Some(redis::Value::Array(ids)) => ids.len(),
        _ => 0,
    };
    Ok((cursor, claimed))
}

/// `XGROUP CREATE … MKSTREAM` from the start of the stream; an existing group is fine.
async fn create_group(conn: &mut impl ConnectionLike, key: &str) -> Result<(), String> {
    let created: Result<(), RedisError> =
        redis::cmd("XGROUP").arg("CREATE").arg(key).arg(GROUP).arg("0").arg("MKSTREAM").query_async(conn).await;
    match created {
        Err(e) if e.code() != Some("BUSYGROUP") => Err(e.to_string()),
        _ => Ok(()),
    }
}

async fn query<T: redis::FromRedisValue>(conn: &mut impl ConnectionLike, cmd: &redis::Cmd) -> Result<T, String> {
    cmd.query_async(conn).await.map_err(|e| e.to_string())
}

/// A reply's entries in order, each decoded or with the reason it cannot be.
fn parse(reply: StreamReadReply) -> Vec<(String, Result<Envelope<Input>, String>)> {
    let entries = reply.keys.into_iter().flat_map(|k| k.ids);
    entries
        .map(|entry| {
            let json = entry.get::<String>("e").unwrap_or_default();
            let envelope = serde_json::from_str(&json).map_err(|e| format!("unreadable: {e}"));
            (entry.id, envelope)
        })
        .collect()
}

/// `ms-seq` as numbers, for ordering; unparsable ids sort first.
fn parse_id(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

#[async_trait]
impl Bus for RedisBus {
    fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    /// Returns once Redis has the entry (as durable as its AOF setting). At the stream's bound:
    /// `Full`, or with `wait` a retry until there is room (see [`WAIT_FOR_ROOM`]).
    /// The dedup mark lives in the partition's slot (`Keys::ingress`), so one script checks it,
    /// appends and marks: one round trip per webhook instead of three.
    async fn publish_unique(
        &self,
        partition: u32,
        envelope: &Envelope<Input>,
        key: &str,
        ttl: Duration,
    ) -> Option<Result<Claim, BusError>> {
        let once = async {
            let stream = &self.partition(partition)?.key;
            let json = serde_json::to_string(envelope).map_err(|e| BusError::Unavailable(e.to_string()))?;
            let mut append = PUBLISH.key(stream);
            append.key(self.keys.ingress(partition, key)).key(self.keys.hold(partition));
            append.arg(self.settings.max_len).arg(GROUP).arg(&json).arg(millis(ttl));
            match self.run_publish(&append).await?.as_deref() {
                None | Some("HELD") => Err(BusError::Full { partition }),
                Some("DUP") => Ok(Claim::Done),
                Some("PENDING") => Ok(Claim::Pending),
                Some(_) => Ok(Claim::New),
            }
        };
        Some(once.await)
    }

    async fn hold_off(&self, partition: u32, span: Duration) -> Result<(), BusError> {
        let hold = redis::cmd("SET").arg(self.keys.hold(partition)).arg(1).arg("PX").arg(millis(span)).to_owned();
        self.pooled::<()>(&hold).await
    }

    async fn publish(&self, partition: u32, envelope: Envelope<Input>, wait: bool) -> Result<(), BusError> {
        let key = &self.partition(partition)?.key;
        let json = serde_json::to_string(&envelope).map_err(|e| BusError::Unavailable(e.to_string()))?;
        let give_up = tokio::time::Instant::now() + WAIT_FOR_ROOM;
        let mut pause = Duration::from_millis(20);
        loop {
            let past_deadline = tokio::time::Instant::now() >= give_up;
            let bound = if wait && past_deadline { u64::MAX } else { self.settings.max_len };
            let mut append = PUBLISH.key(key);
            append.arg(bound).arg(GROUP).arg(&json);
            match self.run_publish(&append).await? {
                Some(_) if bound == u64::MAX => {
                    tracing::warn!(partition, "internal event written past the stream bound after waiting for room");
                    return Ok(());
                }
                Some(_) => return Ok(()),
                None if !wait => return Err(BusError::Full { partition }),
                None => {
                    tracing::debug!(partition, "partition stream full; internal event waits for room");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
            }
        }
    }

    /// Waits until there are entries: empty block rounds are not returned. Cancelling the call
    /// (the hub's shutdown does) loses nothing: what Redis delivered meanwhile is replayed first
    /// on the next call.
    async fn next_batch(&self, partition: u32, max: usize) -> Result<Vec<Delivery>, BusError> {
        let part = self.partition(partition)?;
        let mut reader = part.reader.lock().await;
        let count = max.clamp(1, self.settings.max_batch.max(1));
        let redeliver = {
            let mut acks = part.acks.lock().map_err(|_| BusError::Unavailable("ack counter poisoned".into()))?;
            std::mem::take(&mut acks.redeliver)
        };
        if redeliver {
            // From this consumer's pending entries, before anything newer; after a pause, so that
            // an outage (the store down) is not retried in a tight loop.
            tokio::time::sleep(REDELIVERY_PAUSE).await;
            reader.replay_after = Some("0".into());
        }
        let excuse = {
            let acks = part.acks.lock().map_err(|_| BusError::Unavailable("ack counter poisoned".into()))?;
            acks.excuse.clone()
        };
        if !excuse.is_empty() {
            let taken_back = async {
                let mut conn = self.shared.get().await?;
                dlq::excuse(&mut conn, &part.key, GROUP, &self.consumer, &excuse).await
            };
            bounded(taken_back).await.map_err(BusError::Unavailable)?;
            let mut acks = part.acks.lock().map_err(|_| BusError::Unavailable("ack counter poisoned".into()))?;
            acks.excuse.retain(|id| !excuse.contains(id));
        }
        loop {
            match self.read(partition, &mut reader, count).await {
                Ok(batch) if batch.is_empty() => continue,
                Ok(batch) => return Ok(batch),
                Err(e) => {
                    // A fresh connection next time; the group may be gone too (stream deleted).
                    reader.conn = None;
                    reader.group_ready = false;
                    return Err(BusError::Unavailable(e));
                }
            }
        }
    }

    async fn ack(&self, partition: u32, ids: &[String]) -> Result<(), BusError> {
        let part = self.partition(partition)?;
        if ids.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.pooled::<u64>(redis::cmd("XACK").arg(&part.key).arg(GROUP).arg(ids)).await {
            // Handled, but maybe still pending: delivered again later, which is not their fault.
            if let Ok(mut acks) = part.acks.lock() {
                acks.excuse.extend_from_slice(ids);
            }
            return Err(e);
        }
        self.count_acks(partition, ids).await
    }

    async fn acked_elsewhere(&self, partition: u32, ids: &[String]) -> Result<(), BusError> {
        self.count_acks(partition, ids).await
    }

    /// Claims (XAUTOCLAIM, any idle time: the lease says the previous owner is gone or fenced)
    /// every entry other consumers of the group were given and did not acknowledge, then makes
    /// the next read replay this consumer's pending entries, oldest first, before new ones.
    async fn adopt(&self, partition: u32) -> Result<(), BusError> {
        let part = self.partition(partition)?;
        let mut reader = part.reader.lock().await;
        let key = part.key.clone();
        let claim = async {
            let mut conn = super::checkout(&self.pool).await?;
            create_group(&mut conn, &key).await?;
            let mut cursor = "0-0".to_owned();
            let mut claimed = 0usize;
            loop {
                let mut cmd = redis::cmd("XAUTOCLAIM");
                cmd.arg(&key).arg(GROUP).arg(&self.consumer).arg(0).arg(&cursor).arg("COUNT").arg(1000).arg("JUSTID");
                let reply: redis::Value = query(&mut conn, &cmd).await?;
                let (next, ids) = autoclaim_reply(reply)?;
                claimed += ids;
                if next == "0-0" {
                    return Ok::<usize, String>(claimed);
                }
                cursor = next;
            }
        };
        let claimed = within(OP_TIMEOUT * 5, claim).await.map_err(BusError::Unavailable)?;
        if claimed > 0 {
            tracing::info!(partition, claimed, "took over events a previous owner had not acknowledged");
        }
        reader.group_ready = true;
        reader.replay_after = Some("0".into());
        Ok(())
    }

    /// A blocking `XREADGROUP` abandoned by a cancelled `next_batch` stays blocked on the server
    /// until its connection closes, which is not at once (and the command may even still be on
    /// its way there): an entry arriving meanwhile (a webhook, an outbox result, the next owner's
    /// wake-up) would be delivered to this node after it let go, and sit unprocessed in its
    /// pending list. `CLIENT KILL ID` closes the reader's connection on the server now, so no
    /// read of it is served any more; whatever it was given before is pending here, and the next
    /// owner claims it.
    async fn quiesce(&self, partition: u32) -> Result<(), BusError> {
        let part = self.partition(partition)?;
        let mut reader = part.reader.lock().await;
        reader.conn = None;
        if let Some(id) = reader.client_id.take() {
            let kill = redis::cmd("CLIENT").arg("KILL").arg("ID").arg(id).to_owned();
            match reader.node.take() {
                // On a Cluster the client lives on the node that serves the stream.
                Some(node) => {
                    bounded(self.pool.on_node(&node, &kill)).await.map(drop).map_err(BusError::Unavailable)?
                }
                None => self.pooled::<i64>(&kill).await.map(drop)?,
            }
        }
        Ok(())
    }

    async fn nack(&self, partition: u32, ids: &[String]) -> Result<(), BusError> {
        if !ids.is_empty() {
            tracing::debug!(partition, left = ids.len(), "entries left for redelivery");
        }
        // Given back because something else was down: their next delivery is no failed one.
        self.give_back(partition, ids, true)
    }

    async fn reject(&self, partition: u32, ids: &[String]) -> Result<(), BusError> {
        if !ids.is_empty() {
            tracing::warn!(partition, entries = ?ids, "handling failed while Redis answered; counted as failed deliveries");
        }
        self.give_back(partition, ids, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::test_pool;
    use std::sync::Arc;
    use switchboard_actors::domain::{AgentId, ConversationId, TenantId};
    use switchboard_load_tests::redis_server::RedisServer;
    use tokio::time::timeout;

    const SOON: Duration = Duration::from_secs(5);

    /// A throwaway server and a pool on it.
    async fn start() -> (RedisServer, Pool) {
        let server = RedisServer::start().unwrap();
        let pool = test_pool(&server).await;
        (server, pool)
    }

    /// A bus as node `node-a`: a second one over the same server is that node restarted.
    fn node(pool: &Pool, server: &RedisServer, settings: StreamSettings) -> RedisBus {
        RedisBus::new(pool.clone(), Keys::new(server.prefix()), 4, "node-a".into(), settings)
    }

    fn env(n: u64) -> Envelope<Input> {
        let body = Input::AgentReply { agent: AgentId::new("a"), body: n.to_string() };
        Envelope::new(TenantId::new("t"), ConversationId::new(format!("c{n}")), "trace", n, body)
    }

    /// Reads until `n` deliveries arrived; returns their `occurred_at` and ids.
    async fn take(bus: &RedisBus, p: u32, n: usize) -> (Vec<u64>, Vec<String>) {
        let (mut seen, mut ids) = (Vec::new(), Vec::new());
        while seen.len() < n {
            let batch = timeout(SOON, bus.next_batch(p, 32)).await.expect("entries arrive").unwrap();
            seen.extend(batch.iter().map(|d| d.envelope.occurred_at));
            ids.extend(batch.into_iter().map(|d| d.id));
        }
        (seen, ids)
    }

    async fn xlen(pool: &Pool, server: &RedisServer, p: u32) -> u64 {
        let mut conn = pool.get().await.unwrap();
        redis::cmd("XLEN").arg(Keys::new(server.prefix()).stream(p)).query_async(&mut conn).await.unwrap()
    }

    #[tokio::test]
    async fn keeps_order_within_a_partition_and_partitions_apart() {
        let (server, pool) = start().await;
        let bus = node(&pool, &server, StreamSettings::default());
        for n in 0..200 {
            bus.publish((n % 2) as u32, env(n), false).await.unwrap();
        }
        let (even, _) = take(&bus, 0, 100).await;
        let (odd, _) = take(&bus, 1, 100).await;
        assert_eq!(even, (0..200).step_by(2).collect::<Vec<_>>(), "100 in order, none of partition 1");
        assert_eq!(odd, (1..200).step_by(2).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_provider_message_is_appended_once_and_its_mark_expires() {
        let (server, pool) = start().await;
        let settings = StreamSettings { max_len: 3, ..StreamSettings::default() };
        let bus = node(&pool, &server, settings);
        let ttl = Duration::from_millis(300);
        let once = |n: u64, key: &'static str| {
            let bus = &bus;
            async move { bus.publish_unique(1, &env(n), key, ttl).await.expect("supported") }
        };
        let (a, b) = tokio::join!(once(1, "wamid.A"), once(2, "wamid.A"));
        let mut claims = [a.unwrap(), b.unwrap()];
        claims.sort_by_key(|c| *c != Claim::New);
        assert_eq!(claims, [Claim::New, Claim::Done], "two concurrent copies: one appended");
        assert_eq!(xlen(&pool, &server, 1).await, 1);
        assert_eq!(once(3, "wamid.B").await.unwrap(), Claim::New, "another message passes");
        bus.publish(1, env(4), false).await.unwrap();
        assert!(matches!(once(5, "wamid.C").await, Err(BusError::Full { partition: 1 })), "at the bound");
        assert_eq!(once(6, "wamid.A").await.unwrap(), Claim::Done, "a repeat is answered even when full");
        let (_, ids) = take(&bus, 1, 3).await;
        bus.ack(1, &ids).await.unwrap();
        assert_eq!(
            once(7, "wamid.C").await.unwrap(),
            Claim::New,
            "refused at the bound, so not marked: the retry passes"
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(once(8, "wamid.A").await.unwrap(), Claim::New, "after the TTL the id is forgotten");
        let (seen, _) = take(&bus, 1, 2).await;
        assert_eq!(seen, [7, 8]);
    }

    #[tokio::test]
    async fn a_held_partition_refuses_new_webhooks_only_and_only_for_the_span() {
        let (server, pool) = start().await;
        let bus = node(&pool, &server, StreamSettings::default());
        let ttl = Duration::from_secs(60);
        let once = |n: u64, key: &'static str| {
            let bus = &bus;
            async move { bus.publish_unique(1, &env(n), key, ttl).await.expect("supported") }
        };
        assert_eq!(once(1, "wamid.A").await.unwrap(), Claim::New);
        bus.hold_off(1, Duration::from_millis(400)).await.unwrap();
        assert!(matches!(once(2, "wamid.B").await, Err(BusError::Full { partition: 1 })), "new message held off");
        assert_eq!(once(3, "wamid.A").await.unwrap(), Claim::Done, "a repeat is still recognised");
        bus.publish(1, env(4), false).await.unwrap();
        assert_eq!(once(5, "wamid.C").await.unwrap_err().to_string(), "bus partition 1 is full");
        assert_eq!(
            bus.publish_unique(2, &env(6), "wamid.D", ttl).await.unwrap().unwrap(),
            Claim::New,
            "other partitions take webhooks"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(once(7, "wamid.B").await.unwrap(), Claim::New, "refused, so not marked: the retry passes");
        let (seen, _) = take(&bus, 1, 3).await;
        assert_eq!(seen, [1, 4, 7], "only the accepted message and the internal event are on the bus");
    }

    #[tokio::test]
    async fn what_a_crashed_node_left_unacked_is_delivered_again_and_nothing_else() {
        let (server, pool) = start().await;
        let first = node(&pool, &server, StreamSettings::default());
        for n in 0..5 {
            first.publish(2, env(n), false).await.unwrap();
        }
        let (_, ids) = take(&first, 2, 5).await;
        first.ack(2, &ids[..2]).await.unwrap();
        drop(first);
        let second = node(&pool, &server, StreamSettings::default());
        second.publish(2, env(5), false).await.unwrap();
        let (seen, _) = take(&second, 2, 4).await;
        assert_eq!(seen, vec![2, 3, 4, 5], "the unacked three first, then new ones; acked ones never");
    }

    #[tokio::test]
    async fn a_new_owner_adopts_what_a_dead_node_left_unacked_before_new_entries() {
        let (server, pool) = start().await;
        let dead = node(&pool, &server, StreamSettings::default());
        for n in 0..4 {
            dead.publish(2, env(n), false).await.unwrap();
        }
        let (_, ids) = take(&dead, 2, 4).await;
        dead.ack(2, &ids[..1]).await.unwrap();
        drop(dead);
        let heir =
            RedisBus::new(pool.clone(), Keys::new(server.prefix()), 4, "node-b".into(), StreamSettings::default());
        heir.publish(2, env(4), false).await.unwrap();
        heir.adopt(2).await.unwrap();
        let (seen, ids) = take(&heir, 2, 4).await;
        assert_eq!(seen, vec![1, 2, 3, 4], "the dead node's three, in order, then the new one");
        heir.ack(2, &ids).await.unwrap();
        heir.adopt(2).await.unwrap();
        heir.publish(2, env(5), false).await.unwrap();
        assert_eq!(take(&heir, 2, 1).await.0, vec![5], "adopting again brings nothing back");
    }

    #[tokio::test]
    async fn a_node_that_let_go_gets_nothing_more_from_a_read_it_abandoned() {
        let (server, pool) = start().await;
        let old = node(&pool, &server, StreamSettings::default());
        old.adopt(1).await.unwrap();
        // The old owner's read was cancelled when it handed the partition over, but the server
        // still holds the blocked XREADGROUP (the connection has not closed yet): made here by
        // hand on the reader's own connection.
        let key = Keys::new(server.prefix()).stream(1);
        let (mut ghost, _) = pool.blocking(&key).await.unwrap();
        let id: i64 = redis::cmd("CLIENT").arg("ID").query_async(&mut ghost).await.unwrap();
        old.partitions[1].reader.lock().await.client_id = Some(id);
        let mut read = redis::cmd("XREADGROUP");
        read.arg("GROUP").arg(GROUP).arg("node-a").arg("BLOCK").arg(30_000).arg("STREAMS").arg(&key).arg(">");
        let blocked = tokio::spawn(async move { read.query_async::<redis::Value>(&mut ghost).await });
        tokio::time::sleep(Duration::from_millis(100)).await;

        old.quiesce(1).await.unwrap();
        let heir =
            RedisBus::new(pool.clone(), Keys::new(server.prefix()), 4, "node-b".into(), StreamSettings::default());
        heir.adopt(1).await.unwrap();
        heir.publish(1, env(7), false).await.unwrap();
        assert_eq!(take(&heir, 1, 1).await.0, vec![7], "the entry goes to the new owner, not to the old read");
        assert!(blocked.await.unwrap().is_err(), "the abandoned read was ended without an entry");
    }

    #[tokio::test]
    async fn what_the_node_itself_left_unacked_comes_again_before_newer_entries() {
        let (server, pool) = start().await;
        let bus = node(&pool, &server, StreamSettings::default());
        for n in 0..3 {
            bus.publish(1, env(n), false).await.unwrap();
        }
        let (_, ids) = take(&bus, 1, 3).await;
        // The hub could not handle the last two (the store was down): it acks only the first.
        bus.ack(1, &ids[..1]).await.unwrap();
        bus.nack(1, &ids[1..]).await.unwrap();
        bus.publish(1, env(3), false).await.unwrap();
        let (seen, ids) = take(&bus, 1, 3).await;
        assert_eq!(seen, vec![1, 2, 3], "the two left over first, then the new one");
        bus.ack(1, &ids).await.unwrap();
        bus.publish(1, env(4), false).await.unwrap();
        assert_eq!(take(&bus, 1, 1).await.0, vec![4], "once acknowledged, never again");
    }

    #[tokio::test]
    async fn acked_entries_are_trimmed_and_unacked_ones_survive() {
        let (server, pool) = start().await;
        let every_ten = StreamSettings { trim_every: 10, ..StreamSettings::default() };
        let bus = node(&pool, &server, every_ten.clone());
        for n in 0..30 {
            bus.publish(3, env(n), false).await.unwrap();
        }
        let (_, ids) = take(&bus, 3, 30).await;
        bus.ack(3, &ids[..20]).await.unwrap();
        assert_eq!(xlen(&pool, &server, 3).await, 10, "the ten unacked entries are kept");
        drop(bus);
        let restarted = node(&pool, &server, every_ten);
        let (seen, ids) = take(&restarted, 3, 10).await;
        assert_eq!(seen, (20..30).collect::<Vec<_>>());
        restarted.ack(3, &ids).await.unwrap();
        assert!(xlen(&pool, &server, 3).await <= 1, "only the newest acked entry may remain");
    }

    #[tokio::test]
    async fn a_blocked_read_on_one_partition_does_not_delay_another() {
        let (server, pool) = start().await;
        let bus =
            Arc::new(node(&pool, &server, StreamSettings { block: Duration::from_secs(30), ..Default::default() }));
        let waiting = tokio::spawn({
            let bus = bus.clone();
            async move { bus.next_batch(0, 10).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let other = async {
            bus.publish(1, env(7), false).await.unwrap();
            bus.next_batch(1, 10).await.unwrap()
        };
        let batch = timeout(Duration::from_secs(1), other).await.expect("partition 1 is not held up");
        assert_eq!(batch[0].envelope.occurred_at, 7);
        bus.publish(0, env(8), false).await.unwrap();
        let batch = timeout(SOON, waiting).await.expect("the blocked read wakes up").unwrap().unwrap();
        assert_eq!(batch[0].envelope.occurred_at, 8);
    }

    #[tokio::test]
    async fn waiting_spans_block_rounds_and_cancelling_loses_nothing() {
        let (server, pool) = start().await;
        let bus = node(&pool, &server, StreamSettings { block: Duration::from_millis(50), ..Default::default() });
        assert!(timeout(Duration::from_millis(300), bus.next_batch(0, 10)).await.is_err(), "no empty batches");
        // The cancelled read's last round may have been answered too late: Redis delivered
        // entry 1 to this consumer, but nobody saw it. Simulated by reading it by hand.
        bus.publish(0, env(1), false).await.unwrap();
        let mut conn = pool.get().await.unwrap();
        let lost: StreamReadReply = redis::cmd("XREADGROUP")
            .arg(&["GROUP", GROUP, "node-a", "STREAMS", &Keys::new(server.prefix()).stream(0), ">"])
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(lost.keys[0].ids.len(), 1);
        bus.publish(0, env(2), false).await.unwrap();
        let (seen, _) = take(&bus, 0, 2).await;
        assert_eq!(seen, vec![1, 2], "the entry of the cancelled read comes first");
    }
}
