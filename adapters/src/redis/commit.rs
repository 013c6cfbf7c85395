//! Group commit of conversation steps. Every step (journal entries, maybe a snapshot, the owed
//! set, the bus entries it acknowledges) is one atomic unit, checked against the partition's
//! lease. Steps that arrive while an earlier write is on its way to Redis wait, and then go
//! together in one script call (see `batch`). Each step keeps its own lease check and result.
//!
//! Why: a message costs about three steps (its receipt, the model's turn, the send's result).

use super::batch::Batcher;
use super::shared::Shared;

/// At most this many steps in one script call: bounds one request's size and Redis's time in it.
const MAX_STEPS: usize = 128;

/// Applies steps in order. KEYS: five per step (journal, snapshot, lease, owed set, the
/// partition's bus stream). ARGV[1]: the bus's consumer group; then per step: the writer's token
/// ("" when unfenced), the snapshot ("" when this step writes none), "1" if the conversation owes
/// work, its owed-set member, the number of bus entries to acknowledge and of events, then those
/// entry ids and the events. Returns per step 1 (applied) or 0 (refused: the token is not the
/// lease's). A step refused applies nothing, and a fenced writer acknowledges nothing.
const APPEND: &str = r"
local results, tokens, a = {}, {}, 2
for s = 0, #KEYS / 5 - 1 do
  local k = s * 5
  local token, snapshot, owes, member = ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3]
  local acks, events = tonumber(ARGV[a + 4]), tonumber(ARGV[a + 5])
  a = a + 6
  local lease, held = KEYS[k + 3], true
  if token ~= '' then
    if tokens[lease] == nil then tokens[lease] = redis.call('GET', lease) end
    held = tokens[lease] == token
  end
  if held then
    if acks > 0 then redis.call('XACK', KEYS[k + 5], ARGV[1], unpack(ARGV, a, a + acks - 1)) end
    if events > 0 then redis.call('RPUSH', KEYS[k + 1], unpack(ARGV, a + acks, a + acks + events - 1)) end
    if snapshot ~= '' then redis.call('SET', KEYS[k + 2], snapshot) end
    if owes == '1' then redis.call('SADD', KEYS[k + 4], member) else redis.call('SREM', KEYS[k + 4], member) end
    results[s + 1] = 1
  else
    results[s + 1] = 0
  end
  a = a + acks + events
end
return results
";

static APPEND_SCRIPT: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| redis::Script::new(APPEND));

/// One conversation's step, encoded.
pub(super) struct Step {
    pub partition: u32,
    /// Journal, snapshot, lease, owed set, bus stream.
    pub keys: [String; 5],
    /// The writer's lease token, empty when unfenced.
    pub token: String,
    /// The snapshot's JSON, empty when this step writes none.
    pub snapshot: Vec<u8>,
    pub owes_work: bool,
    pub owed_member: String,
    /// The bus entry whose handling this step completes.
    pub ack: Option<String>,
    /// The events' JSON, in sequence order.
    pub entries: Vec<Vec<u8>>,
}

/// What became of a step.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Committed {
    Applied,
    /// The token was not the partition's lease: nothing was written.
    Fenced,
}

/// The store's queue of steps waiting for their write (see [`Batcher`]).
pub(super) struct Committer {
    batcher: Batcher<Step, Committed>,
}

impl Committer {
    /// Writes through `conn`. The task that writes ends when the committer is dropped.
    pub fn start(conn: Shared, group: &'static str) -> Self {
        let batcher =
            Batcher::start(conn, MAX_STEPS, |s: &Step| s.partition, move |conn, steps| write(conn, group, steps));
        Self { batcher }
    }

    /// Writes `step` with whatever else waits, and returns once Redis answered for it.
    pub async fn commit(&self, step: Step) -> Result<Committed, String> {
        self.batcher.submit(step).await
    }
}

/// One script call for `steps`: each step's result, in order.
async fn write(conn: Shared, group: &str, steps: Vec<Step>) -> Result<Vec<Committed>, String> {
    let mut call = APPEND_SCRIPT.prepare_invoke();
    call.arg(group);
    for step in &steps {
        for key in &step.keys {
            call.key(key);
        }
        call.arg(&step.token).arg(&step.snapshot).arg(if step.owes_work { "1" } else { "0" }).arg(&step.owed_member);
        call.arg(usize::from(step.ack.is_some())).arg(step.entries.len());
        if let Some(ack) = &step.ack {
            call.arg(ack);
        }
        for entry in &step.entries {
            call.arg(entry);
        }
    }
    let mut conn = conn.get().await?;
    let applied: Vec<i64> = call.invoke_async(&mut conn).await.map_err(|e| e.to_string())?;
    Ok(applied.into_iter().map(|a| if a == 1 { Committed::Applied } else { Committed::Fenced }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::{Keys, test_pool};
    use futures_util::future::join_all;
    use switchboard_load_tests::redis_server::RedisServer;

    #[tokio::test]
    async fn steps_written_together_keep_their_order_and_their_own_lease_check() {
        let server = RedisServer::start().unwrap();
        let pool = test_pool(&server).await;
        let keys = Keys::new(server.prefix());
        let committer = Committer::start(Shared::new(pool.clone()), "hub");
        let mut conn = pool.get().await.unwrap();
        // This node holds partition 0; partition 1 went to node b.
        for (p, holder) in [(0, "node-a:1"), (1, "node-b:2")] {
            redis::cmd("SET").arg(keys.lease(p)).arg(holder).query_async::<()>(&mut conn).await.unwrap();
        }
        // Conversations c0..c3 (even ones in partition 0), ten steps each, all sent at once.
        let step = |i: usize| {
            let (p, c, n) = ((i % 2) as u32, format!("c{}", i % 4), i / 4);
            Step {
                partition: p,
                keys: [keys.journal(p, &c), keys.snapshot(p, &c), keys.lease(p), keys.owed(p), keys.stream(p)],
                token: "node-a:1".into(),
                snapshot: if n == 0 { b"{}".to_vec() } else { Vec::new() },
                owes_work: n == 9,
                owed_member: c.clone(),
                ack: None,
                entries: vec![format!("{c}/{n}").into_bytes()],
            }
        };
        let results = join_all((0..40).map(|i| committer.commit(step(i)))).await;
        for (i, result) in results.into_iter().enumerate() {
            let expected = if i % 2 == 0 { Committed::Applied } else { Committed::Fenced };
            assert_eq!(result.unwrap(), expected, "step {i}");
        }
        for c in 0..4u32 {
            let p = c % 2;
            let journal: Vec<String> = redis::cmd("LRANGE")
                .arg(keys.journal(p, &format!("c{c}")))
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap();
            let snapshot: bool =
                redis::cmd("EXISTS").arg(keys.snapshot(p, &format!("c{c}"))).query_async(&mut conn).await.unwrap();
            if p == 0 {
                assert_eq!(journal, (0..10).map(|n| format!("c{c}/{n}")).collect::<Vec<_>>(), "in order");
                assert!(snapshot);
            } else {
                assert!(journal.is_empty() && !snapshot, "a refused step writes nothing: {journal:?}");
            }
        }
        let mut owed: Vec<String> = redis::cmd("SMEMBERS").arg(keys.owed(0)).query_async(&mut conn).await.unwrap();
        owed.sort();
        assert_eq!(owed, ["c0", "c2"]);
        let none: Vec<String> = redis::cmd("SMEMBERS").arg(keys.owed(1)).query_async(&mut conn).await.unwrap();
        assert!(none.is_empty());
    }
}
