//! Dead letters: bus entries the hub could not handle, moved out of their partition's stream into
//! the partition's dead-letter stream `<prefix>{p}:dlq` (same hash tag, same Cluster slot) so the
//! partition flows on; listed and put back (`switchboard dlq list` / `replay`) from here.
//!
//! What counts as a failed delivery (the rule, also in the README): an entry the bus handed to
//! the hub that the hub did not acknowledge because it crashed, hung or lost the partition while
//! holding it, so that the entry is delivered again (after a restart or to the next owner).
//! Redis counts these itself (the delivery counter of the group's pending list, kept across
//! restarts and takeovers). What does not count: an entry the hub gave back (`nack`: the store
//! was down or too slow, which is not the entry's fault), and a delivery the hub never saw (a
//! read whose reply was lost in an outage or cut by a handover): the bus takes those back off
//! the counter. An entry that does not decode is dead-lettered at once. An entry whose handling
//! fails without a crash counts too when Redis answers a `PING` right after (`reject`: its
//! conversation cannot be loaded or written, say), and is given back uncounted when it does not
//! (an outage). So no outage, however long, dead-letters anything, and a poison message leaves
//! its partition after `dlq_after` tries either way.

use super::connection::Pool;
use redis::Script;
use redis::aio::ConnectionLike;
use serde::Serialize;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::shared::Shared;
use super::{Keys, bounded};

/// Settles the entries of one read, in order (KEYS: stream, dead-letter stream; ARGV: group,
/// consumer, dlq_after, excuse (how many reads before this one may have been served without
/// their reply reaching the hub: every entry's delivery counter is that much too high), now in
/// ms, partition, then `id reason` pairs, reason `''` for a decoded entry). An entry whose failed deliveries (its counter minus the delivery in
/// hand) reached `dlq_after`, or that has a reason, is moved to the dead-letter stream and
/// acknowledged. A *suspect* (failed at least once: it may be what brought the node down) is
/// handed over alone, so that a crash it causes counts against it only: the read is cut before
/// it (or after it when it comes first), and the entries after the cut are taken off the counter
/// (they are read again). Returns `[cut id or '', dead-lettered id…]`. No `XDEL`: the bus trims
/// acknowledged entries (`XTRIM MINID`), and a moved entry goes with them.
static SETTLE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local group, consumer, after = ARGV[1], ARGV[2], tonumber(ARGV[3])
local moved, cut, handed, alone = {}, '', 0, false
for i = 7, #ARGV, 2 do
  local id, reason = ARGV[i], ARGV[i + 1]
  if alone and cut == '' then cut = id end
  local pending = redis.call('XPENDING', KEYS[1], group, id, id, 1)[1]
  if pending then
    local count, back, gone = pending[4], tonumber(ARGV[4]), false
    if cut == '' then
      local failed = math.max(count - back - 1, 0)
      if reason ~= '' or failed >= after then
        local deliveries = failed
        if reason == '' then
          reason = 'not handled after ' .. failed .. ' deliveries'
        else
          deliveries = math.max(count - back, 1)
        end
        local payload = ''
        local entry = redis.call('XRANGE', KEYS[1], id, id)[1]
        if entry then
          for j = 1, #entry[2], 2 do
            if entry[2][j] == 'e' then payload = entry[2][j + 1] end
          end
        end
        redis.call('XADD', KEYS[2], '*', 'partition', ARGV[6], 'id', id, 'payload', payload,
          'reason', reason, 'deliveries', deliveries, 'time', ARGV[5])
        redis.call('XACK', KEYS[1], group, id)
        moved[#moved + 1] = id
        gone = true
      elseif failed > 0 and handed > 0 then
        cut = id
        back = back + 1
      else
        handed = handed + 1
        alone = failed > 0
      end
    else
      back = back + 1
    end
    if back > 0 and not gone then
      redis.call('XCLAIM', KEYS[1], group, consumer, 0, id, 'RETRYCOUNT', math.max(count - back, 0), 'JUSTID')
    end
  end
end
table.insert(moved, 1, cut)
return moved
",
    )
});

/// Takes one delivery off the counter of each pending entry given (ARGV: group, consumer, ids):
/// the hub gave them back, or acknowledged them without Redis confirming it.
static EXCUSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)[1]
  if pending and pending[4] > 0 then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'RETRYCOUNT', pending[4] - 1, 'JUSTID')
  end
end
return 0
",
    )
});

/// Puts a dead letter back on its partition stream and deletes it from the dead-letter stream
/// (KEYS: dead-letter stream, stream; ARGV: dead letter id, the stream's bound). Returns the new
/// entry's id, or `!notfound` / `!full` (no stream id starts with `!`).
static REPLAY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])[1]
if not entry then return '!notfound' end
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[2]) then return '!full' end
local payload = ''
for j = 1, #entry[2], 2 do
  if entry[2][j] == 'payload' then payload = entry[2][j + 1] end
end
local id = redis.call('XADD', KEYS[2], '*', 'e', payload)
redis.call('XDEL', KEYS[1], ARGV[1])
return id
",
    )
});

/// What one read of a partition leaves to do after [`settle`].
pub(super) struct Settled {
    /// The first entry not handed over now (read again next time), if the read was cut.
    pub cut: Option<String>,
    /// The entries moved to the dead-letter stream.
    pub moved: Vec<String>,
}

/// One read's entries in order, each with `Some(reason)` when it cannot be handed over at all.
pub(super) struct Read<'a> {
    /// Stream, dead-letter stream.
    pub keys: (&'a str, &'a str),
    pub group: &'a str,
    pub consumer: &'a str,
    pub partition: u32,
    pub dlq_after: u64,
    /// Reads before this one whose reply was lost.
    pub excuse: u64,
    pub entries: Vec<(&'a str, Option<String>)>,
}

/// Runs [`SETTLE`] for one read.
pub(super) async fn settle(conn: &mut impl ConnectionLike, read: Read<'_>) -> Result<Settled, String> {
    let mut invocation = SETTLE.key(read.keys.0);
    invocation.key(read.keys.1).arg(read.group).arg(read.consumer).arg(read.dlq_after.max(1));
    invocation.arg(read.excuse).arg(now_ms()).arg(read.partition);
    for (id, reason) in &read.entries {
        invocation.arg(*id).arg(reason.as_deref().unwrap_or(""));
    }
    let mut reply: Vec<String> = invocation.invoke_async(conn).await.map_err(|e| e.to_string())?;
    let cut = if reply.is_empty() { String::new() } else { reply.remove(0) };
    Ok(Settled { cut: (!cut.is_empty()).then_some(cut), moved: reply })
}

/// Runs [`EXCUSE`] on `ids` of `stream`.
pub(super) async fn excuse(
    conn: &mut impl ConnectionLike,
    stream: &str,
    group: &str,
    consumer: &str,
    ids: &[String],
) -> Result<(), String> {
    let mut invocation = EXCUSE.key(stream);
    invocation.arg(group).arg(consumer).arg(ids);
    invocation.invoke_async::<i64>(conn).await.map(drop).map_err(|e| e.to_string())
}

/// An entry was moved to its partition's dead-letter stream: logs and counts.
pub(super) struct EntryDeadLettered<'a> {
    pub partition: u32,
    pub id: &'a str,
    pub reason: &'a str,
}

impl EntryDeadLettered<'_> {
    pub fn emit(self, counter: &AtomicU64) {
        tracing::error!(
            partition = self.partition,
            id = self.id,
            reason = self.reason,
            "bus entry moved to the dead-letter stream"
        );
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// One entry of a dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    /// Its id in the dead-letter stream (what `replay` takes).
    pub id: String,
    /// The partition it came from.
    pub partition: u32,
    /// Its id in the partition stream.
    pub original_id: String,
    /// Why it was moved.
    pub reason: String,
    /// Deliveries that did not get it handled.
    pub deliveries: u64,
    /// When it was moved (ms since the epoch).
    pub time_ms: u64,
    /// The entry's payload, verbatim (an event envelope as JSON, unless it was unreadable).
    pub payload: String,
}

/// A dead letter put back on its partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replayed {
    /// The partition.
    pub partition: u32,
    /// The dead letter's id (now deleted).
    pub dead_letter: String,
    /// The new entry's id in the partition stream.
    pub entry: String,
}

/// Why a dead-letter operation failed.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    /// Redis did not answer.
    #[error("redis unavailable: {0}")]
    Unavailable(String),
    /// No dead-letter stream holds this id.
    #[error("no dead letter with id {0}")]
    NotFound(String),
    /// The id is in several partitions' dead-letter streams.
    #[error("dead letter {id} is in partitions {partitions:?}: pass --partition")]
    Ambiguous {
        /// The id.
        id: String,
        /// Where it is.
        partitions: Vec<u32>,
    },
    /// The partition stream is at its bound.
    #[error("partition {0}'s stream is full; try again once the hub has worked it off")]
    Full(u32),
}

/// The dead-letter streams of every partition.
#[derive(Clone)]
pub struct DeadLetters {
    conn: Shared,
    keys: Keys,
    partitions: u32,
    /// The partition streams' bound (a replay respects it too).
    max_len: u64,
}

impl DeadLetters {
    /// The dead letters of `partitions` partitions under `keys`.
    pub fn new(pool: Pool, keys: Keys, partitions: u32, max_len: u64) -> Self {
        Self { conn: Shared::new(pool), keys, partitions: partitions.max(1), max_len }
    }

    /// One command per partition, pipelined.
    async fn each_partition<T: redis::FromRedisValue>(
        &self,
        cmd: impl Fn(String) -> redis::Cmd,
    ) -> Result<Vec<T>, DeadLetterError> {
        let mut pipe = redis::pipe();
        for p in 0..self.partitions {
            pipe.add_command(cmd(self.keys.dead_letters(p)));
        }
        bounded(async {
            let mut conn = self.conn.get().await?;
            pipe.query_async(&mut conn).await.map_err(|e| e.to_string())
        })
        .await
        .map_err(DeadLetterError::Unavailable)
    }

    /// Entries in all dead-letter streams.
    pub async fn count(&self) -> Result<u64, DeadLetterError> {
        let lens: Vec<u64> = self.each_partition(|key| redis::cmd("XLEN").arg(key).to_owned()).await?;
        Ok(lens.iter().sum())
    }

    /// Every dead letter, by partition, oldest first.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, DeadLetterError> {
        let streams: Vec<redis::streams::StreamRangeReply> =
            self.each_partition(|key| redis::cmd("XRANGE").arg(key).arg("-").arg("+").to_owned()).await?;
        let mut out = Vec::new();
        for (p, stream) in (0u32..).zip(streams) {
            for entry in stream.ids {
                let text = |field: &str| entry.get::<String>(field).unwrap_or_default();
                out.push(DeadLetter {
                    partition: text("partition").parse().unwrap_or(p),
                    original_id: text("id"),
                    reason: text("reason"),
                    deliveries: text("deliveries").parse().unwrap_or(0),
                    time_ms: text("time").parse().unwrap_or(0),
                    payload: text("payload"),
                    id: entry.id,
                });
            }
        }
        Ok(out)
    }

    /// Puts dead letter `id` back at the end of its partition stream (in `partition`, or found
    /// in whichever dead-letter stream holds it), removing it from the dead letters, in one script.
    pub async fn replay(&self, id: &str, partition: Option<u32>) -> Result<Replayed, DeadLetterError> {
        if !is_stream_id(id) {
            return Err(DeadLetterError::NotFound(id.to_owned()));
        }
        let partition = match partition {
            Some(p) if p < self.partitions => p,
            Some(_) => return Err(DeadLetterError::NotFound(id.to_owned())),
            None => self.holder(id).await?,
        };
        let mut invocation = REPLAY.key(self.keys.dead_letters(partition));
        invocation.key(self.keys.stream(partition)).arg(id).arg(self.max_len);
        let outcome = bounded(async {
            let mut conn = self.conn.get().await?;
            invocation.invoke_async::<String>(&mut conn).await.map_err(|e| e.to_string())
        })
        .await
        .map_err(DeadLetterError::Unavailable)?;
        let entry = match outcome.as_str() {
            "!notfound" => return Err(DeadLetterError::NotFound(id.to_owned())),
            "!full" => return Err(DeadLetterError::Full(partition)),
            _ => outcome,
        };
        Ok(Replayed { partition, dead_letter: id.to_owned(), entry })
    }

    /// The one partition whose dead-letter stream holds `id`.
    async fn holder(&self, id: &str) -> Result<u32, DeadLetterError> {
        let found: Vec<redis::streams::StreamRangeReply> =
            self.each_partition(|key| redis::cmd("XRANGE").arg(key).arg(id).arg(id).to_owned()).await?;
        let holders: Vec<u32> = (0u32..).zip(found).filter(|(_, s)| !s.ids.is_empty()).map(|(p, _)| p).collect();
        match holders.as_slice() {
            [] => Err(DeadLetterError::NotFound(id.to_owned())),
            [p] => Ok(*p),
            _ => Err(DeadLetterError::Ambiguous { id: id.to_owned(), partitions: holders }),
        }
    }
}

/// `ms-seq` with digits only: anything else is no stream id (and would be a Redis syntax error).
fn is_stream_id(id: &str) -> bool {
    let Some((ms, seq)) = id.split_once('-') else { return false };
    !ms.is_empty() && !seq.is_empty() && ms.bytes().chain(seq.bytes()).all(|b| b.is_ascii_digit())
}

#[cfg(test)]
#[path = "dlq_tests.rs"]
mod tests;
