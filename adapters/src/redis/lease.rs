//! Partition placement on Redis: each node holds a lease per partition it runs, renewed every
//! heartbeat, and takes its fair share (`ceil(partitions / live nodes)`) of them.
//!
//! A lease is the string `{p}:lease` = `<node>:<epoch>` with a TTL; `{p}:epoch` counts owners,
//! so every new owner of `p` gets a higher epoch (the fencing token the store checks). Nodes
//! announce themselves in the sorted set `nodes` (score = Redis time of their last heartbeat).
//! A node with more than its share gives the excess up gently: the partition leaves `owned()`
//! at once, but its lease is kept alive until the hub has stopped it (`released`) or a drain
//! deadline passed, so a successor never starts a partition whose batch is still running here.

use futures_util::future::join_all;
use redis::{Script, ScriptInvocation};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use switchboard_actors::partition::stable_hash;
use switchboard_actors::ports::{Ownership, Placement};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::connection::Pool;
use super::{Keys, bounded};

/// Heartbeat of the node (`KEYS[1]` = nodes, `ARGV` = node, ttl ms): announces it, forgets nodes
/// silent for a ttl, returns how many are alive. Redis time, so the nodes' clocks do not matter.
const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', now - tonumber(ARGV[2])))
return redis.call('ZCARD', KEYS[1])
";

/// Extends the lease (`KEYS[1]`) by `ARGV[2]` ms while it is still `ARGV[1]`.
const RENEW: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0";

/// Takes a free lease (`KEYS[1]`) for node `ARGV[1]` with the next epoch (`KEYS[2]`).
const ACQUIRE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  local e = redis.call('INCR', KEYS[2])
  redis.call('SET', KEYS[1], ARGV[1] .. ':' .. e, 'PX', ARGV[2])
  return e
end
return false
";

/// Deletes the lease (`KEYS[1]`) only while it is still `ARGV[1]`.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0";

/// How long a partition being given up may take to stop before its lease is dropped anyway
/// (the store then fences whatever the slow hub still writes).
const DRAIN_DEADLINE: Duration = Duration::from_secs(10);

/// Lease timing.
#[derive(Clone, Debug)]
pub struct LeaseSettings {
    /// How long a lease (and a node's liveness) lasts without renewal: a crashed node's
    /// partitions move after about this long.
    pub ttl: Duration,
    /// Time between two renewals; well under `ttl`.
    pub heartbeat: Duration,
}

impl Default for LeaseSettings {
    fn default() -> Self {
        Self { ttl: Duration::from_secs(5), heartbeat: Duration::from_secs(1) }
    }
}

/// Lease counters since start, for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LeaseStats {
    /// Leases won.
    pub acquired: u64,
    /// Leases lost (taken over, or not renewed in time).
    pub lost: u64,
    /// Leases handed back (deleted by us).
    pub released: u64,
    /// Leases won of partitions another node (or an earlier life of this one) had run: the
    /// takeovers of a failover or a rebalance.
    pub taken_over: u64,
}

/// Where a held lease stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// In `owned()`: the hub runs it.
    Active,
    /// Out of `owned()`, renewed until the hub releases it or `deadline` passes.
    GivingUp { deadline: Instant },
    /// The hub has stopped it: the loop deletes the lease.
    Released,
}

struct Lease {
    epoch: u64,
    /// `<node>:<epoch>`, the lease's value.
    token: String,
    /// When the last successful renewal (or the acquisition) was sent: the lease lives in Redis
    /// until at least `renewed + ttl`, and no longer is it safe to assume we hold it.
    renewed: Instant,
    phase: Phase,
}

#[derive(Default)]
struct State {
    leases: BTreeMap<u32, Lease>,
    /// `shutdown` has begun: acquire nothing more.
    stopping: bool,
    /// The last heartbeat failed (logged once, not every beat).
    failing: bool,
}

/// What the loop reports: each event logs and counts, so logs and `/metrics` never drift apart.
enum LeaseEvent {
    Acquired { count: u64, owned: usize },
    Lost { count: u64, owned: usize },
    Released { count: u64, forced: u64 },
}

struct Shared {
    pool: Pool,
    keys: Keys,
    node: String,
    partitions: u32,
    settings: LeaseSettings,
    state: Mutex<State>,
    owned: watch::Sender<Ownership>,
    /// Wakes the loop to delete released leases without waiting for the next heartbeat.
    wake: Notify,
    /// Tells `shutdown` that a partition was released.
    released: Notify,
    /// [`HEARTBEAT`], [`RENEW`], [`ACQUIRE`], [`RELEASE`].
    scripts: [Script; 4],
    counters: Counters,
}

#[derive(Default)]
struct Counters {
    acquired: AtomicU64,
    lost: AtomicU64,
    released: AtomicU64,
    taken_over: AtomicU64,
}

/// Partition leases with fencing epochs: the [`Placement`] of a cluster of nodes on Redis.
pub struct RedisPlacement {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl RedisPlacement {
    /// Starts the lease loop of `node` (a name unique in the cluster) over `0..partitions`; the
    /// first heartbeat runs at once, in the background.
    pub fn start(pool: Pool, keys: Keys, node: String, partitions: u32, settings: LeaseSettings) -> Arc<Self> {
        if settings.heartbeat * 2 > settings.ttl {
            tracing::warn!(ttl = ?settings.ttl, heartbeat = ?settings.heartbeat, "lease heartbeat too slow for its ttl");
        }
        let shared = Arc::new(Shared {
            pool,
            keys,
            node,
            partitions: partitions.max(1),
            settings,
            state: Mutex::default(),
            owned: watch::channel(Ownership::default()).0,
            wake: Notify::new(),
            released: Notify::new(),
            scripts: [HEARTBEAT, RENEW, ACQUIRE, RELEASE].map(Script::new),
            counters: Counters::default(),
        });
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(run(shared.clone(), stopped));
        Arc::new(Self { shared, stop, task: Mutex::new(Some(task)) })
    }

    /// `<node>:<epoch>` while `partition` is ours (owned, or being given up and not yet released):
    /// what the store compares with the lease before it writes.
    pub fn token(&self, partition: u32) -> Option<String> {
        let state = self.shared.lock();
        let lease = state.leases.get(&partition)?;
        (lease.phase != Phase::Released).then(|| lease.token.clone())
    }

    /// Counters since start.
    pub fn stats(&self) -> LeaseStats {
        let c = &self.shared.counters;
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let (acquired, lost, released, taken_over) =
            (get(&c.acquired), get(&c.lost), get(&c.released), get(&c.taken_over));
        LeaseStats { acquired, lost, released, taken_over }
    }

    /// Graceful handover: gives every partition up, waits (at most `deadline`) until the hub has
    /// released them all, deletes our leases so that other nodes take over at once, and leaves.
    pub async fn shutdown(&self, deadline: Duration) {
        let until = Instant::now() + deadline;
        tracing::info!(node = %self.shared.node, "leaving: handing every partition over");
        {
            let mut state = self.shared.lock();
            state.stopping = true;
            for lease in state.leases.values_mut().filter(|l| l.phase == Phase::Active) {
                lease.phase = Phase::GivingUp { deadline: until };
            }
        }
        self.shared.publish();
        loop {
            let released = self.shared.released.notified();
            tokio::pin!(released);
            released.as_mut().enable();
            if self.shared.lock().leases.values().all(|l| l.phase == Phase::Released) {
                break;
            }
            if tokio::time::timeout_at(until, released).await.is_err() {
                tracing::warn!(node = %self.shared.node, "partitions not released before the shutdown deadline");
                break;
            }
        }
        self.stop.send_replace(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        let leases: Vec<(u32, String)> =
            std::mem::take(&mut self.shared.lock().leases).into_iter().map(|(p, lease)| (p, lease.token)).collect();
        let count = self.shared.delete(leases).await;
        LeaseEvent::Released { count, forced: 0 }.emit(&self.shared);
        let leave = redis::cmd("ZREM").arg(self.shared.keys.nodes()).arg(&self.shared.node).to_owned();
        let left = bounded(async {
            let mut conn = super::checkout(&self.shared.pool).await?;
            leave.query_async::<u64>(&mut conn).await.map_err(|e| e.to_string())
        });
        if let Err(e) = left.await {
            tracing::warn!(node = %self.shared.node, error = %e, "could not leave the node set");
        }
    }

    /// Stops the loop at once and leaves the leases to expire, as a crash would (for tests).
    pub fn abort(&self) {
        if let Some(task) = self.task.lock().unwrap_or_else(|e| e.into_inner()).take() {
            task.abort();
        }
    }
}

impl Drop for RedisPlacement {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Placement for RedisPlacement {
    fn owned(&self) -> watch::Receiver<Ownership> {
        self.shared.owned.subscribe()
    }

    fn released(&self, partition: u32) {
        let mut state = self.shared.lock();
        if let Some(lease) = state.leases.get_mut(&partition)
            && matches!(lease.phase, Phase::GivingUp { .. })
        {
            lease.phase = Phase::Released;
            drop(state);
            self.shared.wake.notify_one();
            self.shared.released.notify_waiters();
        }
    }
}

/// The lease loop: a heartbeat every tick, the deletion of released leases as soon as asked.
async fn run(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.settings.heartbeat.max(Duration::from_millis(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            // The `Ref` it returns is not `Send`: drop it inside.
            _ = async { stop.wait_for(|stop| *stop).await.map(drop) } => return,
            _ = tick.tick() => shared.beat().await,
            () = shared.wake.notified() => shared.release_due().await,
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state stays consistent across a panic elsewhere: every update is a single step.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// One heartbeat: liveness, renewals, hand-backs, then the fair share.
    async fn beat(&self) {
        let live = self.heartbeat().await;
        let renewed = self.renew().await;
        let failed = live.as_ref().err().or(renewed.as_ref().err());
        // Logged when it starts and when it ends, not at every beat.
        match (failed, std::mem::replace(&mut self.lock().failing, failed.is_some())) {
            (Some(e), false) => tracing::warn!(node = %self.node, error = %e, "lease heartbeat failed"),
            (None, true) => tracing::info!(node = %self.node, "lease heartbeats work again"),
            _ => {}
        }
        self.release_due().await;
        if let Ok(live) = live {
            let share = self.partitions.div_ceil(live.max(1));
            self.give_up_excess(share);
            self.acquire(share).await;
        }
        self.publish();
    }

    /// One script call on a pooled connection, within [`super::OP_TIMEOUT`].
    async fn eval<T: redis::FromRedisValue>(&self, invocation: redis::ScriptInvocation<'_>) -> Result<T, String> {
        bounded(async {
            let mut conn = super::checkout(&self.pool).await?;
            invocation.invoke_async(&mut conn).await.map_err(|e| e.to_string())
        })
        .await
    }

    /// Script calls at once, pipelined on one connection, within one [`super::OP_TIMEOUT`]; a
    /// result per call, in order. One after another, the calls of a beat took a round trip each:
    /// on a busy node (tens of milliseconds a trip) renewing 64 leases took longer than a lease
    /// lives, and the node lost partitions it was running.
    async fn eval_all<T: redis::FromRedisValue>(
        &self,
        invocations: Vec<ScriptInvocation<'_>>,
    ) -> Vec<Result<T, String>> {
        let count = invocations.len();
        if count == 0 {
            return Vec::new();
        }
        let all = bounded(async {
            let conn = super::checkout(&self.pool).await?;
            let calls = invocations.into_iter().map(|invocation| {
                let mut conn = conn.clone();
                async move { invocation.invoke_async::<T>(&mut conn).await.map_err(|e| e.to_string()) }
            });
            Ok(join_all(calls).await)
        });
        all.await.unwrap_or_else(|e| (0..count).map(|_| Err(e.clone())).collect())
    }

    /// Announces this node; the number of live nodes.
    async fn heartbeat(&self) -> Result<u32, String> {
        let mut invocation = self.scripts[0].key(self.keys.nodes());
        invocation.arg(&self.node).arg(millis(self.settings.ttl));
        self.eval(invocation).await
    }

    /// Renews every lease we hold; drops the ones lost (taken, or unconfirmed for a ttl).
    async fn renew(&self) -> Result<(), String> {
        let held: Vec<(u32, String)> = self.lock().leases.iter().map(|(p, l)| (*p, l.token.clone())).collect();
        let sent = Instant::now();
        let invocations = held.iter().map(|(p, token)| {
            let mut invocation = self.scripts[1].key(self.keys.lease(*p));
            invocation.arg(token).arg(millis(self.settings.ttl));
            invocation
        });
        let results = self.eval_all::<i64>(invocations.collect()).await;
        let failure = results.iter().find_map(|r| r.as_ref().err()).cloned();
        let mut lost = 0;
        let mut state = self.lock();
        for ((p, token), renewed) in held.into_iter().zip(results) {
            let Some(lease) = state.leases.get_mut(&p).filter(|l| l.token == token) else { continue };
            match renewed {
                Ok(1) => lease.renewed = sent,
                // Unconfirmed, but it cannot have expired yet.
                Err(_) if lease.renewed.elapsed() < self.settings.ttl => {}
                _ => {
                    state.leases.remove(&p);
                    lost += 1;
                }
            }
        }
        drop(state);
        if lost > 0 {
            LeaseEvent::Lost { count: lost, owned: self.active() }.emit(self);
            // A shutdown waiting for this partition's release need not wait any longer.
            self.released.notify_waiters();
        }
        failure.map_or(Ok(()), Err)
    }

    /// Deletes the leases the hub released and the ones whose drain deadline passed.
    async fn release_due(&self) {
        let now = Instant::now();
        let (due, forced) = {
            let mut state = self.lock();
            // During a shutdown, `shutdown` itself ends the drain.
            let force = !state.stopping;
            let due = state.leases.extract_if(.., |_, l| match l.phase {
                Phase::Released => true,
                Phase::GivingUp { deadline } => force && deadline <= now,
                Phase::Active => false,
            });
            let due: Vec<(u32, Lease)> = due.collect();
            let forced = due.iter().filter(|(_, l)| l.phase != Phase::Released).count() as u64;
            (due.into_iter().map(|(p, l)| (p, l.token)).collect::<Vec<_>>(), forced)
        };
        if due.is_empty() {
            return;
        }
        if forced > 0 {
            tracing::warn!(node = %self.node, partitions = forced, "partitions not released in time, leases dropped");
        }
        let count = self.delete(due).await;
        LeaseEvent::Released { count, forced }.emit(self);
    }

    /// Compare-and-delete of leases; how many were still ours.
    async fn delete(&self, leases: Vec<(u32, String)>) -> u64 {
        let invocations = leases.iter().map(|(p, token)| {
            let mut invocation = self.scripts[3].key(self.keys.lease(*p));
            invocation.arg(token);
            invocation
        });
        let results = self.eval_all::<u64>(invocations.collect()).await;
        let mut deleted = 0;
        for ((p, _), result) in leases.iter().zip(results) {
            match result {
                Ok(n) => deleted += n,
                // It expires by itself within a ttl.
                Err(e) => tracing::warn!(node = %self.node, partition = p, error = %e, "could not delete a lease"),
            }
        }
        deleted
    }

    /// Active leases beyond `share`, highest partitions first, start being given up.
    fn give_up_excess(&self, share: u32) {
        let mut state = self.lock();
        let active: Vec<u32> = state.leases.iter().filter(|(_, l)| l.phase == Phase::Active).map(|(p, _)| *p).collect();
        let excess = active.len().saturating_sub(share as usize);
        if excess == 0 {
            return;
        }
        let deadline = Instant::now() + DRAIN_DEADLINE;
        for p in active.iter().rev().take(excess) {
            if let Some(lease) = state.leases.get_mut(p) {
                lease.phase = Phase::GivingUp { deadline };
            }
        }
        tracing::info!(node = %self.node, partitions = excess, share, "handing partitions over");
    }

    /// Takes free partitions until this node holds `share`, starting at a node-specific offset so
    /// that nodes do not all race for the same ones.
    async fn acquire(&self, share: u32) {
        let (mut wanted, held): (usize, Vec<u32>) = {
            let state = self.lock();
            if state.stopping {
                return;
            }
            let active = state.leases.values().filter(|l| l.phase == Phase::Active).count();
            ((share as usize).saturating_sub(active), state.leases.keys().copied().collect())
        };
        if wanted == 0 {
            return;
        }
        let offset = (stable_hash(&self.node) % u64::from(self.partitions)) as u32;
        let mut candidates = (0..self.partitions).map(|i| (offset + i) % self.partitions).filter(|p| !held.contains(p));
        let mut won = 0;
        // In rounds of as many partitions as are still wanted, each round's calls at once (see
        // `eval_all`): taken one by one, the first leases could expire before the last was won.
        while wanted > 0 {
            let round: Vec<u32> = candidates.by_ref().take(wanted).collect();
            if round.is_empty() {
                break;
            }
            let sent = Instant::now();
            let invocations = round.iter().map(|p| {
                let mut invocation = self.scripts[2].key(self.keys.lease(*p));
                invocation.key(self.keys.epoch(*p)).arg(&self.node).arg(millis(self.settings.ttl));
                invocation
            });
            let results = self.eval_all::<Option<u64>>(invocations.collect()).await;
            let mut failed = false;
            for (p, result) in round.into_iter().zip(results) {
                match result {
                    Ok(Some(epoch)) => {
                        // Epochs count a partition's owners: past the first, someone ran it before.
                        if epoch > 1 {
                            self.counters.taken_over.fetch_add(1, Ordering::Relaxed);
                        }
                        let mut state = self.lock();
                        // Shutdown began meanwhile: the hub never sees it, delete it at once.
                        let phase = if state.stopping { Phase::Released } else { Phase::Active };
                        let token = format!("{}:{epoch}", self.node);
                        state.leases.insert(p, Lease { epoch, token, renewed: sent, phase });
                        wanted -= 1;
                        won += 1;
                    }
                    Ok(None) => {}
                    Err(e) => {
                        tracing::debug!(node = %self.node, partition = p, error = %e, "lease acquisition failed");
                        failed = true;
                    }
                }
            }
            if failed {
                break;
            }
        }
        if won > 0 {
            LeaseEvent::Acquired { count: won, owned: self.active() }.emit(self);
        }
    }

    fn active(&self) -> usize {
        self.lock().leases.values().filter(|l| l.phase == Phase::Active).count()
    }

    /// Publishes the active partitions, only when they changed.
    fn publish(&self) {
        let now = Ownership(
            self.lock().leases.iter().filter(|(_, l)| l.phase == Phase::Active).map(|(p, l)| (*p, l.epoch)).collect(),
        );
        self.owned.send_if_modified(|current| {
            let changed = *current != now;
            if changed {
                *current = now;
            }
            changed
        });
    }
}

impl LeaseEvent {
    fn emit(&self, shared: &Shared) {
        let node = &shared.node;
        match *self {
            Self::Acquired { count, owned } => {
                shared.counters.acquired.fetch_add(count, Ordering::Relaxed);
                tracing::info!(%node, acquired = count, owned, "partition leases acquired");
            }
            Self::Lost { count, owned } => {
                shared.counters.lost.fetch_add(count, Ordering::Relaxed);
                tracing::warn!(%node, lost = count, owned, "partition leases lost");
            }
            Self::Released { count, forced } => {
                shared.counters.released.fetch_add(count, Ordering::Relaxed);
                if count > 0 {
                    tracing::info!(%node, released = count, forced, "partition leases released");
                }
            }
        }
    }
}

/// `PX` wants whole milliseconds, at least one.
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
