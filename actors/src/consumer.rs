//! What runs a partition on this node: its consumer (take a batch, hand each event to its
//! conversation, acknowledge once persisted) while the node owns the partition, and the queues'
//! restoration from the store when a node starts.

use crate::agents::queue::{ForgetPartitions, QueueAgent, Restore};
use crate::conversation::{CommandError, Handled, Outcome};
use crate::domain::TenantId;
use crate::event::{Envelope, Input};
use crate::metrics::{HubMetrics, InMailbox};
use crate::outbox::{BusyIn, Outbox};
use crate::partition::partition_of;
use crate::ports::Clock;
use crate::ports::{Bus, BusError, ConversationStore, Delivery, Placement, Receipt, Verdicts};
use crate::query::{ConversationQuery, MAX_PAGE};
use crate::registry::{ConversationRegistry, Deliver, DrainAll, REGISTRY_MAILBOX};
use crate::state::Status;
use actix::prelude::*;
use futures_util::future::join_all;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::watch;

use crate::hub::Replies;

/// How long a partition handover may wait for model turns in flight to finish.
const DRAIN_TURNS: Duration = Duration::from_secs(5);

/// How long a handover waits, in all, for those turns and for the outboxes to report the
/// partition's sends (the placement keeps the lease alive for 10 s at most).
const HANDOVER_DEADLINE: Duration = Duration::from_secs(8);

/// How long an input may take before its conversation is reported as stuck.
const SLOW_INPUT: Duration = Duration::from_secs(10);

/// How long a partition whose events wait too long refuses new webhooks; renewed while they do.
/// Providers retry after the same span (the 503's `Retry-After`).
const HOLD: Duration = crate::ports::RETRY_AFTER;

/// What one partition's consumer works with.
pub(crate) struct PartitionRunner {
    pub partition: u32,
    pub bus: Arc<dyn Bus>,
    pub store: Arc<dyn ConversationStore>,
    pub clock: Arc<dyn Clock>,
    pub registry: Addr<ConversationRegistry>,
    pub outboxes: Arc<[Addr<Outbox>]>,
    pub replies: Arc<Replies>,
    pub batch: usize,
    pub placement: Arc<dyn Placement>,
    pub verdicts: Arc<dyn Verdicts>,
    pub metrics: Arc<HubMetrics>,
    /// Longest wait of an event in the partition before webhooks are held off (`None`: never).
    pub max_queue_delay: Option<Duration>,
    /// Until when (ms) the hold this node last asked for lasts.
    pub held_until: AtomicU64,
    /// When (ms) this node last took the partition over: events older than that waited for the
    /// failover or handover, not behind this node's backlog, and do not count as delay.
    pub owned_since: AtomicU64,
}

impl PartitionRunner {
    /// Runs the partition whenever this node owns it, until shutdown. On taking it, the
    /// conversations a previous owner left owing work are woken. When ownership goes (a node
    /// joined, the hub stops, or the lease was lost), the batch in hand is finished and
    /// acknowledged, model turns in flight finish, the partition's sends are reported, and the
    /// placement is told it may let go.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let p = self.partition;
        let mut owned = self.placement.owned();
        loop {
            tokio::select! {
                _ = shutdown.changed() => return,
                // A bool, not the watch's guard: nothing that borrows the value lives across awaits.
                got = async { owned.wait_for(|o| o.owns(p)).await.is_ok() } => if !got { return },
            }
            let epoch = owned.borrow().0.get(&p).copied().unwrap_or_default();
            self.owned_since.store(self.clock.now_ms(), Ordering::Relaxed);
            if let Err(e) = self.take_over(epoch).await {
                tracing::warn!(partition = p, error = %e, "could not take the partition over");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            tracing::debug!(partition = p, "running partition");
            let stop = self.consume(&mut owned, &mut shutdown, epoch).await;
            self.hand_over().await;
            self.placement.released(p);
            if stop {
                return;
            }
        }
    }

    /// Claims what earlier owners were given and did not acknowledge, then queues a `Resume`
    /// behind it for every conversation left owing work: it comes after any result the previous
    /// owner put on the bus before letting go.
    async fn take_over(&self, epoch: u64) -> Result<(), String> {
        let p = self.partition;
        self.bus.adopt(p).await.map_err(|e| e.to_string())?;
        let owed = self.store.owed(p).await.map_err(|e| e.to_string())?;
        if !owed.is_empty() {
            tracing::info!(partition = p, conversations = owed.len(), "waking conversations that owe work");
        }
        for (tenant, id) in owed {
            let env = Envelope::new(tenant, id, String::new(), self.clock.now_ms(), Input::Resume { epoch });
            self.bus.publish(p, env, true).await.map_err(|e| e.to_string())?;
            self.metrics.series.published(p);
        }
        Ok(())
    }

    /// Lets model turns in flight finish, then waits for the outboxes to report the partition's
    /// sends, so the next owner neither redoes a turn nor sends a reply twice. Past the deadline
    /// it lets go anyway: the next owner redoes what is owed.
    async fn hand_over(&self) {
        let p = self.partition;
        let started = tokio::time::Instant::now();
        let until = started + HANDOVER_DEADLINE;
        if let Err(e) = self.bus.quiesce(p).await {
            tracing::warn!(partition = p, error = %e, "could not end this node's read of the partition");
        }
        let drained = self.registry.send(DrainAll { deadline: DRAIN_TURNS }).await.unwrap_or(0);
        let turns_ms = started.elapsed().as_millis() as u64;
        let partitions = self.bus.partitions();
        loop {
            let busy = join_all(self.outboxes.iter().map(|o| o.send(BusyIn { partition: p, partitions }))).await;
            let busy: usize = busy.into_iter().map(|b| b.unwrap_or(0)).sum();
            if busy == 0 {
                break;
            }
            if tokio::time::Instant::now() >= until {
                tracing::warn!(partition = p, conversations = busy, "sends still unreported at the handover deadline");
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let took_ms = started.elapsed().as_millis() as u64;
        tracing::info!(partition = p, conversations = drained, turns_ms, took_ms, "partition handed over");
    }

    /// Consumes while owned at `epoch`; `true` when the hub shuts down, `false` when ownership
    /// went (or came back at another epoch).
    async fn consume(
        &self,
        owned: &mut watch::Receiver<crate::ports::Ownership>,
        shutdown: &mut watch::Receiver<bool>,
        epoch: u64,
    ) -> bool {
        let p = self.partition;
        let batch = self.batch.min(REGISTRY_MAILBOX / 2);
        loop {
            let deliveries = tokio::select! {
                _ = shutdown.changed() => return true,
                // Ownership at this epoch ended, even if the lease was lost and won back (a new
                // epoch) while a batch was in hand and the loss itself went unseen: the
                // conversations' state may be stale and those a refused write left owing work
                // must be woken by a new take-over.
                _ = async { owned.wait_for(|o| o.0.get(&p) != Some(&epoch)).await.is_ok() } => return false,
                next = self.bus.next_batch(p, batch) => match next {
                    Ok(d) => d,
                    Err(BusError::Closed) => return true,
                    Err(e) => {
                        tracing::warn!(partition = p, error = %e, "bus read failed");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                        continue;
                    }
                },
            };
            self.handle(deliveries, epoch).await;
        }
    }

    /// Holds off new webhooks while the oldest event of a batch has waited longer than
    /// `max_queue_delay`, counted from ingress to when the batch is taken and again to when it
    /// is handled: the backlog of a node past its capacity sits in its conversations' mailboxes
    /// more than in the stream, so a slow batch counts as much as a long stream. Taking more
    /// would only make every customer wait longer (and, past Redis's command limit, make the
    /// node redo work). The hold is renewed halfway through, so one write per half second at most.
    async fn hold_off_when_behind(&self, oldest: Option<u64>) {
        let (Some(bound), Some(oldest)) = (self.max_queue_delay, oldest) else {
            return;
        };
        let now = self.clock.now_ms();
        let waited_ms = now.saturating_sub(oldest);
        let (hold_ms, held_until) = (HOLD.as_millis() as u64, self.held_until.load(Ordering::Relaxed));
        if waited_ms <= bound.as_millis() as u64 || now + hold_ms / 2 < held_until {
            return;
        }
        let p = self.partition;
        match self.bus.hold_off(p, HOLD).await {
            Ok(()) => {
                self.held_until.store(now + hold_ms, Ordering::Relaxed);
                if now >= held_until {
                    tracing::warn!(
                        partition = p,
                        waited_ms,
                        "partition behind: new webhooks answered 503 while it catches up"
                    );
                }
            }
            Err(e) => tracing::warn!(partition = p, error = %e, "could not hold off webhooks"),
        }
    }

    /// Hands a batch to its conversations (in order: sends are queued in batch order) and
    /// acknowledges what they persisted.
    async fn handle(&self, deliveries: Vec<Delivery>, epoch: u64) {
        // Replaying what a previous owner left (after a crash, entries seconds old) is catching
        // up, not overload: holding webhooks then would only make providers retry out of order.
        let since = self.owned_since.load(Ordering::Relaxed);
        let oldest = deliveries.iter().map(|d| d.envelope.occurred_at).filter(|&at| at >= since).min();
        self.hold_off_when_behind(oldest).await;
        let (partition, bus, registry, replies) = (self.partition, &self.bus, &self.registry, &self.replies);
        let mut ids = Vec::with_capacity(deliveries.len());
        let mut pending = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            if let Input::Resume { epoch: queued_by } = d.envelope.body
                && queued_by != epoch
            {
                tracing::debug!(partition, conversation = %d.envelope.conversation_id, queued_by, epoch, "wake-up of an earlier owner dropped");
                ids.push(d.id);
                continue;
            }
            let (kind, conversation, event_id) =
                (d.envelope.body.type_name(), d.envelope.conversation_id.clone(), d.envelope.event_id);
            let reply_to = d.envelope.reply_to.clone();
            let receipt = Some(Receipt { partition, id: d.id.clone() });
            let request = registry.send(Deliver { envelope: d.envelope, receipt, live_only: false });
            let in_mailbox = InMailbox::enter(&self.metrics.series);
            // A conversation that does not answer holds its whole partition: say so.
            let watched = async move {
                let _in_mailbox = in_mailbox;
                tokio::pin!(request);
                match tokio::time::timeout(SLOW_INPUT, &mut request).await {
                    Ok(result) => result,
                    Err(_) => {
                        tracing::warn!(partition, %conversation, kind, "input still not handled after {SLOW_INPUT:?}");
                        request.await
                    }
                }
            };
            pending.push((d.id, event_id, reply_to, watched));
        }
        self.metrics.series.consumed(partition, pending.len() as u64);
        let mut requests = Vec::with_capacity(pending.len());
        let mut keys = Vec::with_capacity(pending.len());
        for (id, event_id, reply_to, request) in pending {
            keys.push((id, event_id, reply_to));
            requests.push(request);
        }
        let results = join_all(requests).await;
        let mut retry = Vec::new();
        let mut remote = Vec::new();
        // Acknowledged by the conversation's own write, in the same step as its journal.
        let mut acked = Vec::new();
        for ((id, event_id, reply_to), handled) in keys.into_iter().zip(results) {
            let (result, acked_by_write) = match handled {
                Ok(Handled { result, acked }) => (result, acked),
                Err(e) => (Err(CommandError::Unavailable(e.to_string())), false),
            };
            let waiter = replies.lock().ok().and_then(|mut r| r.remove(&event_id));
            // A caller on another node waits for this one (its node is not ours).
            let elsewhere = reply_to.filter(|_| waiter.is_none());
            match &result {
                _ if acked_by_write => acked.push(id),
                // Not handled (store down, actor stopped) and nobody told: the bus delivers it
                // again. A waiting caller is told it failed instead, and that is final: its
                // command must not take effect after it was answered "try again".
                Err(CommandError::Unavailable(e)) if waiter.is_none() && elsewhere.is_none() => {
                    tracing::warn!(partition, %event_id, error = %e, "input not handled; left for redelivery");
                    retry.push(id);
                }
                Err(e) => {
                    tracing::debug!(partition, %event_id, error = %e, "input refused");
                    ids.push(id);
                }
                Ok(_) => ids.push(id),
            }
            if let Some(tx) = waiter {
                let _ = tx.send(result);
            } else if let Some(origin) = elsewhere {
                remote.push((origin, (event_id, result)));
            } else if matches!(result, Ok(Outcome::Applied)) {
                tracing::trace!(partition, %event_id, "applied");
            }
        }
        for (origin, verdict) in &remote {
            self.verdicts.send(origin, verdict).await;
        }
        // An input that fails while the store answers is at fault itself: counted, so that it
        // is dead-lettered after a few tries instead of holding up its partition for ever.
        let given_back = if retry.is_empty() || !self.store.reachable().await {
            bus.nack(partition, &retry).await
        } else {
            bus.reject(partition, &retry).await
        };
        if let Err(e) = given_back {
            tracing::warn!(partition, error = %e, "nack failed");
        }
        if let Err(e) = bus.ack(partition, &ids).await {
            tracing::warn!(partition, error = %e, "ack failed");
        }
        if let Err(e) = bus.acked_elsewhere(partition, &acked).await {
            tracing::warn!(partition, error = %e, "trimming behind acknowledged entries failed");
        }
        self.hold_off_when_behind(oldest).await;
    }
}

/// Keeps a queue actor to the partitions this node owns: a conversation waits in the queue of
/// the node that runs it. Partitions gained are restored from the store; partitions let go are
/// forgotten (their new owner restores them). Without this a restarted node would forget who
/// waits, and with several nodes a queue would keep offering conversations another node runs.
pub(crate) async fn follow_ownership(
    store: Arc<dyn ConversationStore>,
    placement: Arc<dyn Placement>,
    partitions: u32,
    tenant: TenantId,
    queue: String,
    addr: Addr<QueueAgent>,
) {
    let mut owned = placement.owned();
    let mut held: BTreeSet<u32> = BTreeSet::new();
    loop {
        let now: BTreeSet<u32> = owned.borrow_and_update().0.keys().copied().collect();
        let lost: BTreeSet<u32> = held.difference(&now).copied().collect();
        if !lost.is_empty() {
            addr.do_send(ForgetPartitions { partitions: lost, of: partitions });
        }
        let gained: BTreeSet<u32> = now.difference(&held).copied().collect();
        held.retain(|p| now.contains(p));
        let restored = gained.is_empty() || restore_queue(&*store, &tenant, &queue, &addr, &gained, partitions).await;
        if restored {
            held.extend(gained);
        }
        // A restore that failed (store away) is tried again shortly, or at the next change.
        let retry = async {
            if restored {
                std::future::pending::<()>().await
            }
            tokio::time::sleep(Duration::from_secs(1)).await
        };
        tokio::select! {
            changed = owned.changed() => if changed.is_err() { return },
            () = retry => {}
        }
    }
}

/// Refills a queue actor from the store with the conversations of `owned` partitions waiting in
/// it (oldest first) and those assigned through it; `false` when the store failed.
async fn restore_queue(
    store: &dyn ConversationStore,
    tenant: &TenantId,
    queue: &str,
    addr: &Addr<QueueAgent>,
    owned: &BTreeSet<u32>,
    partitions: u32,
) -> bool {
    let mut restored = 0;
    for status in ["queued", "assigned"] {
        let mut query = ConversationQuery::tenant(tenant.clone());
        query.status = Some(status.into());
        query.queue = Some(queue.to_owned());
        query.limit = MAX_PAGE;
        let mut found = Vec::new();
        loop {
            match store.list(&query).await {
                Ok(page) => {
                    let done = page.items.len() < MAX_PAGE;
                    found.extend(page.items);
                    if done {
                        break;
                    }
                    query.offset += MAX_PAGE;
                }
                Err(e) => {
                    tracing::error!(%tenant, %queue, error = %e, "could not restore the queue from the store");
                    return false;
                }
            }
        }
        found.retain(|s| owned.contains(&partition_of(s.id.as_str(), partitions)));
        found.sort_by_key(|s| s.updated_at);
        for state in found {
            let restore = match &state.status {
                Status::Queued { .. } => {
                    Restore::Waiting { conversation: state.id.clone(), since_ms: state.updated_at }
                }
                Status::Assigned { agent, .. } => {
                    Restore::Assigned { conversation: state.id.clone(), agent: agent.clone() }
                }
                _ => continue,
            };
            addr.do_send(restore);
            restored += 1;
        }
    }
    if restored > 0 {
        tracing::info!(%tenant, %queue, restored, "queue restored from the store");
    }
    true
}
