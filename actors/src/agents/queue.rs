//! QueueAgent: one per human queue. Keeps the waiting list (with positions), the online agents
//! with their capacity, and assigns by policy (`round_robin`, `least_busy`, or `manual`, where
//! agents pick). Assignments reach the conversation as `command.assign` inputs on the bus; the
//! conversation has the last word (it may have closed meanwhile and then rejects).

use crate::domain::{AgentId, ConversationId, TenantId};
use crate::event::{Envelope, Input};
use crate::metrics::HubMetrics;
use crate::ports::Clock;
use crate::sink::InputSink;
use crate::tenant::{AssignPolicy, QueuePolicy};
use actix::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;

#[derive(Debug, Default)]
struct AgentSlot {
    online: bool,
    capacity: u32,
    active: HashSet<ConversationId>,
    /// Conversations other nodes' copies of this queue assigned to the agent, as of their last
    /// report (several nodes on Redis): they count against the same capacity.
    elsewhere: u32,
}

impl AgentSlot {
    fn load(&self) -> u32 {
        (self.active.len() as u32).saturating_add(self.elsewhere)
    }

    fn has_room(&self) -> bool {
        self.online && self.load() < self.capacity
    }
}

/// One human queue of a tenant.
pub struct QueueAgent {
    tenant: TenantId,
    policy: QueuePolicy,
    waiting: VecDeque<(ConversationId, u64)>,
    agents: BTreeMap<AgentId, AgentSlot>,
    rr_cursor: usize,
    sink: Arc<dyn InputSink>,
    clock: Arc<dyn Clock>,
    metrics: Arc<HubMetrics>,
}

impl QueueAgent {
    /// An empty queue.
    pub fn new(tenant: TenantId, policy: QueuePolicy, sink: Arc<dyn InputSink>, clock: Arc<dyn Clock>) -> Self {
        let (waiting, agents, metrics) = (VecDeque::new(), BTreeMap::new(), Arc::default());
        Self { tenant, policy, waiting, agents, rr_cursor: 0, sink, clock, metrics }
    }

    /// Records waiting times (until a human takes the conversation) in `metrics`.
    pub fn measured(self, metrics: Arc<HubMetrics>) -> Self {
        Self { metrics, ..self }
    }

    /// Takes a conversation off the waiting list for `agent`; `since` is when it started waiting.
    fn hand_to(&mut self, conversation: ConversationId, since: u64, agent: AgentId) {
        let waited = self.clock.now_ms().saturating_sub(since);
        self.metrics.series.agent_took("queue", std::time::Duration::from_millis(waited));
        self.assign(conversation, agent);
    }

    fn position(&self, id: &ConversationId) -> Option<u32> {
        self.waiting.iter().position(|(c, _)| c == id).map(|p| p as u32 + 1)
    }

    fn pick_agent(&mut self) -> Option<AgentId> {
        let with_room: Vec<&AgentId> = self.agents.iter().filter(|(_, s)| s.has_room()).map(|(a, _)| a).collect();
        if with_room.is_empty() {
            return None;
        }
        match self.policy.assign {
            AssignPolicy::Manual => None,
            AssignPolicy::RoundRobin => {
                let agent = with_room[self.rr_cursor % with_room.len()].clone();
                self.rr_cursor = self.rr_cursor.wrapping_add(1);
                Some(agent)
            }
            AssignPolicy::LeastBusy => with_room.into_iter().min_by_key(|a| self.agents[*a].load()).cloned(),
        }
    }

    fn assign(&mut self, conversation: ConversationId, agent: AgentId) {
        if let Some(slot) = self.agents.get_mut(&agent) {
            slot.active.insert(conversation.clone());
        }
        tracing::info!(tenant = %self.tenant, queue = %self.policy.name, %conversation, %agent, "assigning");
        let env = Envelope::new(
            self.tenant.clone(),
            conversation,
            uuid::Uuid::now_v7().to_string(),
            self.clock.now_ms(),
            Input::Assign { queue: self.policy.name.clone(), agent },
        );
        self.sink.submit(env);
    }

    fn try_assign(&mut self) {
        while !self.waiting.is_empty() {
            let Some(agent) = self.pick_agent() else { return };
            let Some((conversation, since)) = self.waiting.pop_front() else { return };
            self.hand_to(conversation, since, agent);
        }
    }

    fn forget(&mut self, conversation: &ConversationId) {
        self.waiting.retain(|(c, _)| c != conversation);
        for slot in self.agents.values_mut() {
            slot.active.remove(conversation);
        }
    }
}

impl Actor for QueueAgent {
    type Context = Context<Self>;
}

/// Puts a conversation at the end of the waiting list (idempotent).
#[derive(Message, Debug)]
#[rtype(result = "Enqueued")]
pub struct Enqueue(pub ConversationId);

/// Where an enqueued conversation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, MessageResponse)]
pub struct Enqueued {
    /// Position from 1 (0 when it was assigned at once).
    pub position: u32,
    /// Whether the queue is inside business hours.
    pub open: bool,
}

impl Handler<Enqueue> for QueueAgent {
    type Result = Enqueued;

    fn handle(&mut self, msg: Enqueue, _: &mut Context<Self>) -> Enqueued {
        let now = self.clock.now_ms();
        let open = self.policy.hours.as_ref().is_none_or(|h| h.is_open(now));
        if self.position(&msg.0).is_none() && !self.agents.values().any(|s| s.active.contains(&msg.0)) {
            self.waiting.push_back((msg.0.clone(), now));
        }
        let position = self.position(&msg.0).unwrap_or(0);
        self.try_assign();
        Enqueued { position, open }
    }
}

/// Removes a conversation from the queue entirely (closed, transferred, rejected an assignment).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Release(pub ConversationId);

impl Handler<Release> for QueueAgent {
    type Result = ();

    fn handle(&mut self, msg: Release, _: &mut Context<Self>) {
        self.forget(&msg.0);
        self.try_assign();
    }
}

/// An agent goes online or offline, or changes capacity.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct SetPresence {
    /// The agent.
    pub agent: AgentId,
    /// Online or not.
    pub online: bool,
    /// Maximum simultaneous conversations.
    pub capacity: u32,
}

impl Handler<SetPresence> for QueueAgent {
    type Result = ();

    fn handle(&mut self, msg: SetPresence, _: &mut Context<Self>) {
        let slot = self.agents.entry(msg.agent).or_default();
        slot.online = msg.online;
        slot.capacity = msg.capacity;
        self.try_assign();
    }
}

/// The conversations this queue has assigned, per agent (agents with none left out): what
/// other nodes' copies of the queue must count against the agents' capacity.
#[derive(Message, Debug)]
#[rtype(result = "Vec<(AgentId, u32)>")]
pub struct Loads;

impl Handler<Loads> for QueueAgent {
    type Result = Vec<(AgentId, u32)>;

    fn handle(&mut self, _: Loads, _: &mut Context<Self>) -> Self::Result {
        self.agents
            .iter()
            .filter(|(_, s)| !s.active.is_empty())
            .map(|(a, s)| (a.clone(), s.active.len() as u32))
            .collect()
    }
}

/// What other nodes' copies of this queue have assigned, per agent (an agent left out has
/// none there): replaces the previous report.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LoadsElsewhere(pub BTreeMap<AgentId, u32>);

impl Handler<LoadsElsewhere> for QueueAgent {
    type Result = ();

    fn handle(&mut self, msg: LoadsElsewhere, _: &mut Context<Self>) {
        for (agent, slot) in &mut self.agents {
            slot.elsewhere = msg.0.get(agent).copied().unwrap_or(0);
        }
        for (agent, n) in msg.0 {
            self.agents.entry(agent).or_default().elsewhere = n;
        }
        self.try_assign();
    }
}

/// Why an agent could not take a conversation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    /// Someone else was faster, or it left the queue.
    #[error("conversation is not waiting in this queue (already taken?)")]
    NotWaiting,
    /// The agent is offline or full.
    #[error("agent is offline or at capacity")]
    NoCapacity,
}

/// An agent picks a waiting conversation (manual policy, or taking one out of turn).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), AcceptError>")]
pub struct Accept {
    /// Who picks.
    pub agent: AgentId,
    /// Which conversation.
    pub conversation: ConversationId,
}

impl Handler<Accept> for QueueAgent {
    type Result = Result<(), AcceptError>;

    fn handle(&mut self, msg: Accept, _: &mut Context<Self>) -> Self::Result {
        if !self.agents.get(&msg.agent).is_some_and(AgentSlot::has_room) {
            return Err(AcceptError::NoCapacity);
        }
        let Some(pos) = self.position(&msg.conversation) else { return Err(AcceptError::NotWaiting) };
        let since = self.waiting.remove(pos as usize - 1).map_or(self.clock.now_ms(), |(_, since)| since);
        self.hand_to(msg.conversation, since, msg.agent);
        Ok(())
    }
}

/// Moves a conversation of this queue to a given agent (who must be online with room).
#[derive(Message, Debug)]
#[rtype(result = "Result<(), AcceptError>")]
pub struct Reassign {
    /// The conversation.
    pub conversation: ConversationId,
    /// New owner.
    pub agent: AgentId,
}

impl Handler<Reassign> for QueueAgent {
    type Result = Result<(), AcceptError>;

    fn handle(&mut self, msg: Reassign, _: &mut Context<Self>) -> Self::Result {
        let already_theirs = self.agents.get(&msg.agent).is_some_and(|s| s.active.contains(&msg.conversation));
        if already_theirs {
            return Ok(());
        }
        if !self.agents.get(&msg.agent).is_some_and(AgentSlot::has_room) {
            return Err(AcceptError::NoCapacity);
        }
        // Frees the previous agent's slot (or the waiting-list place) first.
        self.forget(&msg.conversation);
        if let Some(slot) = self.agents.get_mut(&msg.agent) {
            slot.active.insert(msg.conversation);
        }
        self.try_assign();
        Ok(())
    }
}

/// Puts back what the queue held before this node started (its state lives only in this actor;
/// the conversations' own states in the store say who waits and who is assigned). Idempotent.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub enum Restore {
    /// Waiting since `since_ms` (the conversation's last change).
    Waiting {
        /// The conversation.
        conversation: ConversationId,
        /// When it started waiting, as far as the store knows.
        since_ms: u64,
    },
    /// Assigned to `agent` (who counts it against its capacity once online).
    Assigned {
        /// The conversation.
        conversation: ConversationId,
        /// Its agent.
        agent: AgentId,
    },
}

impl Handler<Restore> for QueueAgent {
    type Result = ();

    fn handle(&mut self, msg: Restore, _: &mut Context<Self>) {
        match msg {
            Restore::Waiting { conversation, since_ms } => {
                let known = self.position(&conversation).is_some()
                    || self.agents.values().any(|s| s.active.contains(&conversation));
                if !known {
                    // Oldest first: restored entries arrive in waiting order, new ones after.
                    let at = self.waiting.iter().position(|(_, t)| *t > since_ms).unwrap_or(self.waiting.len());
                    self.waiting.insert(at, (conversation, since_ms));
                }
            }
            Restore::Assigned { conversation, agent } => {
                self.agents.entry(agent).or_default().active.insert(conversation);
            }
        }
        self.try_assign();
    }
}

/// The node let these partitions go: their conversations wait in (and count against agents
/// at) the queue of the partitions' new owner, which restores them from the store.
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ForgetPartitions {
    /// Partitions let go.
    pub partitions: std::collections::BTreeSet<u32>,
    /// Partitions in all (to place a conversation).
    pub of: u32,
}

impl Handler<ForgetPartitions> for QueueAgent {
    type Result = ();

    fn handle(&mut self, msg: ForgetPartitions, _: &mut Context<Self>) {
        let gone = |c: &ConversationId| msg.partitions.contains(&crate::partition::partition_of(c.as_str(), msg.of));
        self.waiting.retain(|(c, _)| !gone(c));
        for slot in self.agents.values_mut() {
            slot.active.retain(|c| !gone(c));
        }
        self.try_assign();
    }
}

/// Asks for the queue's current state.
#[derive(Message, Debug)]
#[rtype(result = "QueueSnapshot")]
pub struct GetQueueSnapshot;

/// A queue's state, for consoles and tests.
#[derive(Debug, Clone, Serialize, MessageResponse)]
pub struct QueueSnapshot {
    /// Queue name.
    pub queue: String,
    /// Waiting conversations in order, with how long they have waited (ms).
    pub waiting: Vec<(ConversationId, u64)>,
    /// Agents: id, online, capacity, active conversations.
    pub agents: Vec<(AgentId, bool, u32, usize)>,
}

impl Handler<GetQueueSnapshot> for QueueAgent {
    type Result = QueueSnapshot;

    fn handle(&mut self, _: GetQueueSnapshot, _: &mut Context<Self>) -> QueueSnapshot {
        let now = self.clock.now_ms();
        QueueSnapshot {
            queue: self.policy.name.clone(),
            waiting: self.waiting.iter().map(|(c, t)| (c.clone(), now.saturating_sub(*t))).collect(),
            agents: self.agents.iter().map(|(a, s)| (a.clone(), s.online, s.capacity, s.active.len())).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ManualClock;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Probe(Mutex<Vec<(String, Input)>>);
    impl InputSink for Probe {
        fn submit(&self, e: Envelope<Input>) {
            self.0.lock().unwrap().push((e.conversation_id.to_string(), e.body));
        }
    }

    fn queue(assign: AssignPolicy) -> (Addr<QueueAgent>, Arc<Probe>) {
        let probe = Arc::new(Probe::default());
        let policy = QueuePolicy { name: "sales".into(), assign, hours: None };
        let agent = QueueAgent::new(TenantId::new("t"), policy, probe.clone(), Arc::new(ManualClock::at(0)));
        (agent.start(), probe)
    }

    fn assigned(probe: &Probe) -> Vec<(String, String)> {
        probe
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(c, i)| match i {
                Input::Assign { agent, .. } => (c.clone(), agent.to_string()),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    fn online(agent: &str, capacity: u32) -> SetPresence {
        SetPresence { agent: AgentId::new(agent), online: true, capacity }
    }

    #[actix::test]
    async fn waiting_list_positions_then_round_robin_within_capacity() {
        let (q, probe) = queue(AssignPolicy::RoundRobin);
        for (i, c) in ["c1", "c2", "c3"].iter().enumerate() {
            let e = q.send(Enqueue(ConversationId::new(c))).await.unwrap();
            assert_eq!(e.position, i as u32 + 1);
        }
        assert_eq!(q.send(Enqueue(ConversationId::new("c2"))).await.unwrap().position, 2, "idempotent");
        q.send(online("ana", 1)).await.unwrap();
        q.send(online("bia", 1)).await.unwrap();
        assert_eq!(assigned(&probe), vec![("c1".into(), "ana".into()), ("c2".into(), "bia".into())]);
        let snap = q.send(GetQueueSnapshot).await.unwrap();
        assert_eq!(snap.waiting.len(), 1, "c3 waits: both agents are full");
        q.send(Release(ConversationId::new("c1"))).await.unwrap();
        assert_eq!(assigned(&probe)[2], ("c3".into(), "ana".into()), "freed capacity is used");
    }

    #[actix::test]
    async fn what_other_nodes_gave_an_agent_counts_against_her_capacity() {
        let (q, probe) = queue(AssignPolicy::RoundRobin);
        q.send(online("ana", 2)).await.unwrap();
        q.send(LoadsElsewhere([(AgentId::new("ana"), 1)].into())).await.unwrap();
        for c in ["c1", "c2"] {
            q.send(Enqueue(ConversationId::new(c))).await.unwrap();
        }
        assert_eq!(assigned(&probe), [("c1".to_owned(), "ana".to_owned())], "one place left of two");
        assert_eq!(q.send(Loads).await.unwrap(), [(AgentId::new("ana"), 1)], "what this node gave her");
        q.send(LoadsElsewhere(BTreeMap::new())).await.unwrap();
        assert_eq!(assigned(&probe).len(), 2, "the other node's conversation ended: c2 goes to her");
    }

    #[actix::test]
    async fn least_busy_prefers_the_emptier_agent() {
        let (q, probe) = queue(AssignPolicy::LeastBusy);
        q.send(online("ana", 5)).await.unwrap();
        q.send(Enqueue(ConversationId::new("c1"))).await.unwrap();
        q.send(Enqueue(ConversationId::new("c2"))).await.unwrap();
        q.send(online("bia", 5)).await.unwrap();
        q.send(Enqueue(ConversationId::new("c3"))).await.unwrap();
        assert_eq!(assigned(&probe).last().unwrap().1, "bia");
    }

    #[actix::test]
    async fn manual_queue_waits_for_an_accept_and_only_one_agent_wins() {
        let (q, probe) = queue(AssignPolicy::Manual);
        q.send(online("ana", 2)).await.unwrap();
        q.send(online("bia", 2)).await.unwrap();
        q.send(Enqueue(ConversationId::new("c1"))).await.unwrap();
        assert!(assigned(&probe).is_empty(), "manual: nobody is assigned automatically");
        let a = q.send(Accept { agent: AgentId::new("ana"), conversation: ConversationId::new("c1") });
        let b = q.send(Accept { agent: AgentId::new("bia"), conversation: ConversationId::new("c1") });
        let (a, b) = (a.await.unwrap(), b.await.unwrap());
        assert!(a.is_ok() ^ b.is_ok(), "exactly one wins: {a:?} {b:?}");
        assert_eq!(assigned(&probe).len(), 1);
    }

    #[actix::test]
    async fn out_of_hours_is_reported_but_the_customer_still_waits() {
        use crate::tenant::BusinessHours;
        let hours = BusinessHours {
            utc_offset_minutes: -180,
            days: vec![0, 1, 2, 3, 4],
            open_minute: 9 * 60,
            close_minute: 18 * 60,
        };
        let policy = QueuePolicy { name: "support".into(), assign: AssignPolicy::RoundRobin, hours: Some(hours) };
        let monday_9am_sao_paulo = 1_795_435_200_000;
        let clock = Arc::new(ManualClock::at(monday_9am_sao_paulo));
        let q = QueueAgent::new(TenantId::new("t"), policy, Arc::new(Probe::default()), clock.clone()).start();
        assert!(q.send(Enqueue(ConversationId::new("c1"))).await.unwrap().open);
        clock.advance(std::time::Duration::from_secs(5 * 86_400)); // Saturday
        let late = q.send(Enqueue(ConversationId::new("c2"))).await.unwrap();
        assert_eq!((late.open, late.position), (false, 2));
    }
    #[actix::test]
    async fn a_restored_queue_keeps_the_waiting_order_and_the_agents_load() {
        let probe = Arc::new(Probe::default());
        let policy = QueuePolicy { name: "sales".into(), assign: AssignPolicy::Manual, hours: None };
        let clock = Arc::new(ManualClock::at(10_000));
        let queue = QueueAgent::new(TenantId::new("t"), policy, probe.clone(), clock).start();
        queue.send(Enqueue(ConversationId::new("new"))).await.unwrap();
        for (id, since) in [("waited-long", 1_000), ("waited-less", 5_000)] {
            queue.send(Restore::Waiting { conversation: ConversationId::new(id), since_ms: since }).await.unwrap();
        }
        let busy = Restore::Assigned { conversation: ConversationId::new("busy"), agent: AgentId::new("ana") };
        queue.send(busy).await.unwrap();
        // Restoring twice changes nothing.
        queue.send(Restore::Waiting { conversation: ConversationId::new("new"), since_ms: 0 }).await.unwrap();

        let snap = queue.send(GetQueueSnapshot).await.unwrap();
        let order: Vec<&str> = snap.waiting.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(order, ["waited-long", "waited-less", "new"]);
        queue.send(SetPresence { agent: AgentId::new("ana"), online: true, capacity: 1 }).await.unwrap();
        let accept = queue.send(Accept { agent: AgentId::new("ana"), conversation: ConversationId::new("new") });
        assert_eq!(accept.await.unwrap(), Err(AcceptError::NoCapacity), "the restored conversation counts");
        assert!(probe.0.lock().unwrap().is_empty(), "restoring sends nothing to conversations");
    }

    #[actix::test]
    async fn a_queue_forgets_the_conversations_of_partitions_its_node_let_go() {
        let (q, probe) = queue(AssignPolicy::Manual);
        let of = 8;
        let ids: Vec<ConversationId> = (0..16).map(|n| ConversationId::new(format!("c{n}"))).collect();
        let part = |c: &ConversationId| crate::partition::partition_of(c.as_str(), of);
        let gone = part(&ids[0]);
        for id in &ids[1..] {
            q.send(Enqueue(id.clone())).await.unwrap();
        }
        let busy = Restore::Assigned { conversation: ids[0].clone(), agent: AgentId::new("ana") };
        q.send(busy).await.unwrap();
        q.send(ForgetPartitions { partitions: [gone].into(), of }).await.unwrap();

        let snap = q.send(GetQueueSnapshot).await.unwrap();
        let waiting: Vec<&ConversationId> = snap.waiting.iter().map(|(c, _)| c).collect();
        let kept: Vec<&ConversationId> = ids[1..].iter().filter(|c| part(c) != gone).collect();
        assert!(kept.len() < ids.len() - 1, "some conversations were in the partition let go");
        assert_eq!(waiting, kept, "the others wait in their order");
        assert_eq!(snap.agents, vec![(AgentId::new("ana"), false, 0, 0)], "ana's conversation no longer counts here");
        assert!(assigned(&probe).is_empty());
    }
}
