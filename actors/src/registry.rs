//! ConversationRegistry: one per partition. Spawns conversation actors lazily (they rehydrate
//! from the store), routes inputs to them, and stops idle ones only when nothing is in flight.

use crate::conversation::{
    CheckIdle, CommandError, ConversationActor, Drain, Handled, IdleReport, Inspect, Passivate, Process, TenantRuntime,
};
use crate::domain::{ConversationId, TenantId};
use crate::event::{Envelope, Input};
use crate::ports::Receipt;
use crate::state::ConversationState;
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Mailbox bound of a registry; the partition consumer never has more than one batch in flight.
pub const REGISTRY_MAILBOX: usize = 1024;

struct Live {
    addr: Addr<ConversationActor>,
    delivered: u64,
    last_delivery: Instant,
    idle_timeout: Duration,
}

/// The conversations of one partition on this node.
pub struct ConversationRegistry {
    partition: u32,
    tenants: Arc<HashMap<TenantId, Arc<TenantRuntime>>>,
    live: HashMap<ConversationId, Live>,
}

impl ConversationRegistry {
    /// An empty registry for `partition`.
    pub fn new(partition: u32, tenants: Arc<HashMap<TenantId, Arc<TenantRuntime>>>) -> Self {
        Self { partition, tenants, live: HashMap::new() }
    }

    fn get_or_spawn(&mut self, id: &ConversationId, tenant: &TenantId, ctx: &mut Context<Self>) -> Option<&mut Live> {
        let rt = self.tenants.get(tenant)?.clone();
        let stale = self.live.get(id).is_some_and(|l| !l.addr.connected());
        if stale {
            self.live.remove(id);
        }
        let registry = ctx.address().recipient();
        Some(self.live.entry(id.clone()).or_insert_with(|| {
            let idle_timeout = rt.policy.idle_timeout;
            let actor = ConversationActor::new(id.clone(), tenant.clone(), rt, registry);
            Live { addr: actor.start(), delivered: 0, last_delivery: Instant::now(), idle_timeout }
        }))
    }
}

impl ConversationRegistry {
    /// Asks conversations that have had no delivery for their idle timeout whether they are idle.
    fn sweep(&mut self) {
        for live in self.live.values() {
            if live.last_delivery.elapsed() >= live.idle_timeout {
                live.addr.do_send(CheckIdle);
            }
        }
    }
}

impl Actor for ConversationRegistry {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(REGISTRY_MAILBOX);
        let shortest = self.tenants.values().map(|rt| rt.policy.idle_timeout).min().unwrap_or(Duration::from_secs(60));
        let tick = (shortest / 2).clamp(Duration::from_millis(10), Duration::from_secs(30));
        ctx.run_interval(tick, |act, _| act.sweep());
        tracing::debug!(partition = self.partition, "registry started");
    }
}

/// Hand an input to its conversation (spawning or rehydrating it).
#[derive(Message, Debug)]
#[rtype(result = "Handled")]
pub struct Deliver {
    /// The input.
    pub envelope: Envelope<Input>,
    /// Its bus entry (see [`Process::receipt`]).
    pub receipt: Option<Receipt>,
    /// Only to a conversation already running here; refused (`Unavailable`) otherwise. For an
    /// input that does not come from the bus: a conversation not running here may run at
    /// another node, or this partition may be on its way out.
    pub live_only: bool,
}

impl Handler<Deliver> for ConversationRegistry {
    type Result = ResponseFuture<Handled>;

    fn handle(&mut self, msg: Deliver, ctx: &mut Context<Self>) -> Self::Result {
        let Deliver { envelope, receipt, live_only } = msg;
        if live_only && !self.live.get(&envelope.conversation_id).is_some_and(|l| l.addr.connected()) {
            let result = Err(CommandError::Unavailable("conversation not running here".into()));
            return Box::pin(async { Handled { result, acked: false } });
        }
        let Some(live) = self.get_or_spawn(&envelope.conversation_id, &envelope.tenant_id, ctx) else {
            return Box::pin(async { Handled { result: Err(CommandError::UnknownTenant), acked: false } });
        };
        live.delivered += 1;
        live.last_delivery = Instant::now();
        let request = live.addr.send(Process { envelope, receipt });
        Box::pin(async move {
            request.await.unwrap_or_else(|e| Handled {
                result: Err(CommandError::Unavailable(format!("conversation stopped: {e}"))),
                acked: false,
            })
        })
    }
}

impl Handler<IdleReport> for ConversationRegistry {
    type Result = ();

    fn handle(&mut self, msg: IdleReport, _: &mut Context<Self>) {
        if self.live.get(&msg.id).is_some_and(|l| l.delivered == msg.processed)
            && let Some(live) = self.live.remove(&msg.id)
        {
            live.addr.do_send(Passivate);
        }
    }
}

/// Current state of a conversation (live actor, or the store if passivated).
#[derive(Message, Debug)]
#[rtype(result = "Option<ConversationState>")]
pub struct InspectConversation {
    /// Tenant.
    pub tenant: TenantId,
    /// Conversation.
    pub id: ConversationId,
}

impl Handler<InspectConversation> for ConversationRegistry {
    type Result = ResponseFuture<Option<ConversationState>>;

    fn handle(&mut self, msg: InspectConversation, _: &mut Context<Self>) -> Self::Result {
        if let Some(live) = self.live.get(&msg.id).filter(|l| l.addr.connected()) {
            let request = live.addr.send(Inspect);
            return Box::pin(async move { request.await.ok() });
        }
        let store = self.tenants.get(&msg.tenant).map(|rt| rt.store.clone());
        Box::pin(async move { store?.load(&msg.id).await.ok().flatten().map(Arc::unwrap_or_clone) })
    }
}

/// The partition is handed over: every live conversation finishes its model turn in flight (its
/// reply persisted while the lease is still ours) and stops; those not done within `deadline`
/// are stopped anyway (the next owner redoes their turn: they are in the store's owed set).
/// Returns how many were live.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct DrainAll {
    /// How long to wait for model turns.
    pub deadline: Duration,
}

impl Handler<DrainAll> for ConversationRegistry {
    type Result = ResponseFuture<usize>;

    fn handle(&mut self, msg: DrainAll, _: &mut Context<Self>) -> Self::Result {
        let addrs: Vec<Addr<ConversationActor>> = self.live.drain().map(|(_, live)| live.addr).collect();
        Box::pin(async move {
            let drains = futures_util::future::join_all(addrs.iter().map(|a| a.send(Drain)));
            if tokio::time::timeout(msg.deadline, drains).await.is_err() {
                tracing::warn!("model turns still running at the handover deadline; the next owner redoes them");
                for addr in &addrs {
                    addr.do_send(Passivate);
                }
            }
            addrs.len()
        })
    }
}

/// Number of live conversation actors in this partition.
#[derive(Message, Debug)]
#[rtype(result = "usize")]
pub struct LiveCount;

impl Handler<LiveCount> for ConversationRegistry {
    type Result = usize;

    fn handle(&mut self, _: LiveCount, _: &mut Context<Self>) -> usize {
        self.live.len()
    }
}
