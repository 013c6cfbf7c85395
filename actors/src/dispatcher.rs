//! Dispatcher: decides where a new ticket goes (tenant entry route) and carries handoffs to the
//! right queue, falling back to the tenant's default queue for unknown names.

use crate::agents::queue::{Accept, AcceptError, Enqueue, Enqueued, QueueAgent, Reassign, Release};
use crate::domain::{AgentId, ConversationId, TenantId};
use crate::tenant::{Route, TenantPolicy};
use actix::prelude::*;
use std::collections::HashMap;
use std::sync::Arc;

/// What the dispatcher knows of one tenant.
pub struct TenantRoutes {
    /// The tenant's policy.
    pub policy: Arc<TenantPolicy>,
    /// Its queues by name.
    pub queues: HashMap<String, Addr<QueueAgent>>,
}

/// Routes conversations of all tenants of this node.
pub struct Dispatcher {
    tenants: HashMap<TenantId, TenantRoutes>,
}

impl Dispatcher {
    /// A dispatcher over these tenants.
    pub fn new(tenants: HashMap<TenantId, TenantRoutes>) -> Self {
        Self { tenants }
    }

    fn queue(&self, tenant: &TenantId, name: &str) -> Option<&Addr<QueueAgent>> {
        self.tenants.get(tenant)?.queues.get(name)
    }
}

impl Actor for Dispatcher {
    type Context = Context<Self>;
}

/// Routing failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// Tenant not configured on this node.
    #[error("unknown tenant")]
    UnknownTenant,
    /// The queue actor is gone (shutting down).
    #[error("queue unavailable")]
    QueueUnavailable,
    /// The agent cannot take the conversation.
    #[error("{0}")]
    AgentUnavailable(String),
}

/// Where does a new ticket of this tenant go?
#[derive(Message, Debug)]
#[rtype(result = "Result<Route, DispatchError>")]
pub struct RouteNew(pub TenantId);

impl Handler<RouteNew> for Dispatcher {
    type Result = Result<Route, DispatchError>;

    fn handle(&mut self, msg: RouteNew, _: &mut Context<Self>) -> Self::Result {
        let routes = self.tenants.get(&msg.0).ok_or(DispatchError::UnknownTenant)?;
        Ok(routes.policy.entry.clone())
    }
}

/// Hand a conversation to a human queue.
#[derive(Message, Debug)]
#[rtype(result = "Result<Handoff, DispatchError>")]
pub struct RequestHandoff {
    /// Tenant.
    pub tenant: TenantId,
    /// Conversation.
    pub conversation: ConversationId,
    /// Queue asked for; unknown or `None` means the default queue.
    pub queue: Option<String>,
    /// Why (logged).
    pub reason: String,
    /// Trace id of the request that caused it.
    pub trace_id: String,
}

/// Where the conversation landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handoff {
    /// The queue used.
    pub queue: String,
    /// Position and opening hours.
    pub enqueued: Enqueued,
}

impl Handler<RequestHandoff> for Dispatcher {
    type Result = ResponseFuture<Result<Handoff, DispatchError>>;

    fn handle(&mut self, msg: RequestHandoff, _: &mut Context<Self>) -> Self::Result {
        let Some(routes) = self.tenants.get(&msg.tenant) else {
            return Box::pin(async { Err(DispatchError::UnknownTenant) });
        };
        let queue = routes.policy.resolve_queue(msg.queue.as_deref());
        tracing::info!(tenant = %msg.tenant, conversation = %msg.conversation, %queue, reason = %msg.reason, trace_id = %msg.trace_id, "routing.handoff.requested");
        let addr = routes.queues.get(&queue).cloned();
        Box::pin(async move {
            let addr = addr.ok_or(DispatchError::QueueUnavailable)?;
            let enqueued = addr.send(Enqueue(msg.conversation)).await.map_err(|_| DispatchError::QueueUnavailable)?;
            Ok(Handoff { queue, enqueued })
        })
    }
}

/// A conversation leaves a queue (closed, transferred, refused an assignment).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LeaveQueue {
    /// Tenant.
    pub tenant: TenantId,
    /// Queue.
    pub queue: String,
    /// Conversation.
    pub conversation: ConversationId,
}

impl Handler<LeaveQueue> for Dispatcher {
    type Result = ();

    fn handle(&mut self, msg: LeaveQueue, _: &mut Context<Self>) {
        if let Some(q) = self.queue(&msg.tenant, &msg.queue) {
            q.do_send(Release(msg.conversation));
        }
    }
}

/// A conversation moves to a given agent of its queue.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), DispatchError>")]
pub struct MoveToAgent {
    /// Tenant.
    pub tenant: TenantId,
    /// Queue.
    pub queue: String,
    /// Conversation.
    pub conversation: ConversationId,
    /// New owner.
    pub agent: AgentId,
}

impl Handler<MoveToAgent> for Dispatcher {
    type Result = ResponseFuture<Result<(), DispatchError>>;

    fn handle(&mut self, msg: MoveToAgent, _: &mut Context<Self>) -> Self::Result {
        let queue = self.queue(&msg.tenant, &msg.queue).cloned();
        Box::pin(async move {
            let queue = queue.ok_or(DispatchError::QueueUnavailable)?;
            let agent = msg.agent.clone();
            let moved = queue.send(Reassign { conversation: msg.conversation, agent: msg.agent }).await;
            match moved {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(DispatchError::AgentUnavailable(format!("{agent} in {}: {e}", msg.queue))),
                Err(_) => Err(DispatchError::QueueUnavailable),
            }
        })
    }
}

/// An agent takes a conversation waiting in its queue (the console's accept, on the node that
/// runs the conversation: that node's queue holds it in its waiting list).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), TakeError>")]
pub struct TakeWaiting {
    /// Tenant.
    pub tenant: TenantId,
    /// Queue.
    pub queue: String,
    /// Conversation.
    pub conversation: ConversationId,
    /// Who takes it.
    pub agent: AgentId,
}

/// Why an agent could not take a waiting conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TakeError {
    /// The queue refused (already taken, agent offline or full).
    #[error(transparent)]
    Refused(#[from] AcceptError),
    /// The queue is not there.
    #[error("queue unavailable")]
    QueueUnavailable,
}

impl Handler<TakeWaiting> for Dispatcher {
    type Result = ResponseFuture<Result<(), TakeError>>;

    fn handle(&mut self, msg: TakeWaiting, _: &mut Context<Self>) -> Self::Result {
        let queue = self.queue(&msg.tenant, &msg.queue).cloned();
        Box::pin(async move {
            let queue = queue.ok_or(TakeError::QueueUnavailable)?;
            let taken = queue.send(Accept { agent: msg.agent, conversation: msg.conversation }).await;
            taken.map_err(|_| TakeError::QueueUnavailable)?.map_err(TakeError::from)
        })
    }
}

/// The dispatcher as its neighbours see it: one recipient per message, so a test can put a probe
/// in its place.
#[derive(Clone)]
pub struct DispatcherPort {
    /// Entry routing.
    pub route: Recipient<RouteNew>,
    /// Handoffs to queues.
    pub handoff: Recipient<RequestHandoff>,
    /// Leaving a queue.
    pub leave: Recipient<LeaveQueue>,
    /// Moving to another agent.
    pub move_to_agent: Recipient<MoveToAgent>,
    /// An agent taking a waiting conversation.
    pub take: Recipient<TakeWaiting>,
}

impl From<&Addr<Dispatcher>> for DispatcherPort {
    fn from(addr: &Addr<Dispatcher>) -> Self {
        Self {
            route: addr.clone().recipient(),
            handoff: addr.clone().recipient(),
            leave: addr.clone().recipient(),
            move_to_agent: addr.clone().recipient(),
            take: addr.clone().recipient(),
        }
    }
}
