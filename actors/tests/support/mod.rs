//! Fakes of the ports and probes in place of neighbours, for deterministic actor tests.

#![allow(dead_code)]

use actix::prelude::*;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use switchboard_actors::agents::ai::{AiAgent, AiLimits};
use switchboard_actors::agents::queue::QueueAgent;
use switchboard_actors::agents::triage::TriageAgent;
use switchboard_actors::conversation::{ProcessResult, TenantRuntime};
use switchboard_actors::dispatcher::{Dispatcher, DispatcherPort, TenantRoutes};
use switchboard_actors::domain::*;
use switchboard_actors::event::{Envelope, Event, Input, SendOutcome};
use switchboard_actors::metrics::HubMetrics;
use switchboard_actors::outbox::SendOutbound;
use switchboard_actors::ports::*;
use switchboard_actors::query::{ConversationPage, ConversationQuery};
use switchboard_actors::registry::{ConversationRegistry, Deliver};
use switchboard_actors::sink::InputSink;
use switchboard_actors::state::ConversationState;
use switchboard_actors::tenant::TenantPolicy;

type Stored = (Arc<ConversationState>, Vec<Envelope<Event>>);

/// Store in a map.
#[derive(Default)]
pub struct MapStore(pub Mutex<HashMap<ConversationId, Stored>>);

#[async_trait]
impl ConversationStore for MapStore {
    async fn load(&self, id: &ConversationId) -> Result<Option<Arc<ConversationState>>, StoreError> {
        Ok(self.0.lock().unwrap().get(id).map(|(s, _)| s.clone()))
    }
    async fn append(&self, state: &Arc<ConversationState>, events: &[Envelope<Event>]) -> Result<(), StoreError> {
        let mut map = self.0.lock().unwrap();
        let entry = map.entry(state.id.clone()).or_insert_with(|| (state.clone(), vec![]));
        entry.0 = state.clone();
        entry.1.extend_from_slice(events);
        Ok(())
    }
    async fn journal(&self, id: &ConversationId, from: u64) -> Result<Vec<Envelope<Event>>, StoreError> {
        Ok(self
            .0
            .lock()
            .unwrap()
            .get(id)
            .map(|(_, j)| j.iter().skip(from.saturating_sub(1) as usize).cloned().collect())
            .unwrap_or_default())
    }
    async fn list(&self, query: &ConversationQuery) -> Result<ConversationPage, StoreError> {
        let map = self.0.lock().unwrap();
        Ok(query.page(map.values().filter(|(s, _)| query.matches(s)).map(|(s, _)| s.clone()).collect()))
    }
}

/// A dedup gate in a set.
#[derive(Default)]
pub struct SetDedup(Mutex<std::collections::HashSet<String>>);

#[async_trait]
impl Dedup for SetDedup {
    async fn claim(&self, key: &str) -> Result<Claim, DedupError> {
        Ok(if self.0.lock().unwrap().insert(key.to_owned()) { Claim::New } else { Claim::Done })
    }
    async fn confirm(&self, _: &str, _: Duration) -> Result<(), DedupError> {
        Ok(())
    }
    async fn forget(&self, key: &str) -> Result<(), DedupError> {
        self.0.lock().unwrap().remove(key);
        Ok(())
    }
}

/// A model that answers with a script: `echo` of the pending customer lines, after `delay`.
pub struct ScriptedLlm {
    pub delay: Duration,
    pub calls: Mutex<Vec<LlmRequest>>,
    pub action: Mutex<Option<LlmAction>>,
}

impl ScriptedLlm {
    pub fn new(delay: Duration) -> Arc<Self> {
        Arc::new(Self { delay, calls: Mutex::default(), action: Mutex::default() })
    }
    pub fn calls(&self) -> Vec<LlmRequest> {
        self.calls.lock().unwrap().clone()
    }
}

#[async_trait]
impl LlmClient for ScriptedLlm {
    async fn complete(&self, req: LlmRequest) -> Result<LlmResponse, LlmError> {
        self.calls.lock().unwrap().push(req.clone());
        tokio::time::sleep(self.delay).await;
        let pending: Vec<String> =
            req.history.iter().rev().take_while(|(s, _)| *s == Speaker::Customer).map(|(_, t)| t.clone()).collect();
        let text = pending.into_iter().rev().collect::<Vec<_>>().join("\n");
        let action = self.action.lock().unwrap().clone().unwrap_or(LlmAction::Reply(format!("echo: {text}")));
        Ok(LlmResponse { action, prompt_tokens: 1, completion_tokens: 1 })
    }
}

/// Records what conversations ask the outbox to send.
#[derive(Default)]
pub struct OutboxProbe(pub Arc<Mutex<Vec<SendOutbound>>>);

impl Actor for OutboxProbe {
    type Context = Context<Self>;
}

impl Handler<SendOutbound> for OutboxProbe {
    type Result = ();
    fn handle(&mut self, msg: SendOutbound, _: &mut Context<Self>) {
        self.0.lock().unwrap().push(msg);
    }
}

/// Records inputs the queues submit (assignments).
#[derive(Default)]
pub struct SinkProbe(pub Mutex<Vec<Envelope<Input>>>);

impl InputSink for SinkProbe {
    fn submit(&self, envelope: Envelope<Input>) {
        self.0.lock().unwrap().push(envelope);
    }
}

pub struct Rig {
    pub registry: Addr<ConversationRegistry>,
    pub queues: HashMap<String, Addr<QueueAgent>>,
    pub sent: Arc<Mutex<Vec<SendOutbound>>>,
    pub llm: Arc<ScriptedLlm>,
    pub sink: Arc<SinkProbe>,
    pub metrics: Arc<HubMetrics>,
    pub store: Arc<MapStore>,
    pub clock: Arc<ManualClock>,
    pub policy: Arc<TenantPolicy>,
}

pub fn channel() -> ChannelRef {
    ChannelRef::new(ChannelKind::WhatsApp, "main")
}

/// Neighbours a test replaces with probes.
#[derive(Default)]
pub struct Probes {
    pub ai: Option<Recipient<switchboard_actors::agents::ai::Generate>>,
    pub handoff: Option<Recipient<switchboard_actors::dispatcher::RequestHandoff>>,
}

/// Everything on the current (test) thread, so `tokio::time::pause` controls all timers.
pub fn rig(policy: TenantPolicy, llm_delay: Duration) -> Rig {
    rig_with(policy, llm_delay, Probes::default())
}

/// [`rig`] with some neighbours replaced by probes.
pub fn rig_with(policy: TenantPolicy, llm_delay: Duration, probes: Probes) -> Rig {
    let policy = Arc::new(policy);
    let clock = Arc::new(ManualClock::at(1_800_000_000_000));
    let metrics = Arc::new(HubMetrics::default());
    let sink = Arc::new(SinkProbe::default());
    let store = Arc::new(MapStore::default());
    let llm = ScriptedLlm::new(llm_delay);
    let queues: HashMap<String, Addr<QueueAgent>> = policy
        .queues
        .iter()
        .map(|q| (q.name.clone(), QueueAgent::new(policy.id.clone(), q.clone(), sink.clone(), clock.clone()).start()))
        .collect();
    let routes = HashMap::from([(policy.id.clone(), TenantRoutes { policy: policy.clone(), queues: queues.clone() })]);
    let dispatcher = Dispatcher::new(routes).start();
    let sent = Arc::new(Mutex::new(Vec::new()));
    let outbox = OutboxProbe(sent.clone()).start();
    let rt = TenantRuntime {
        policy: policy.clone(),
        dispatcher: {
            let mut port = DispatcherPort::from(&dispatcher);
            if let Some(handoff) = probes.handoff {
                port.handoff = handoff;
            }
            port
        },
        ai: probes.ai.unwrap_or_else(|| {
            let limits = AiLimits::new(&policy, &metrics);
            AiAgent::new(limits, policy.clone(), Some(llm.clone()), metrics.clone()).start().recipient()
        }),
        triage: TriageAgent::new(policy.clone()).start().recipient(),
        feed: Default::default(),
        outboxes: HashMap::from([(channel(), outbox.recipient())]),
        store: store.clone(),
        clock: clock.clone(),
        metrics: metrics.clone(),
    };
    let tenants = Arc::new(HashMap::from([(policy.id.clone(), Arc::new(rt))]));
    let registry = ConversationRegistry::new(0, tenants).start();
    Rig { registry, queues, sent, llm, sink, metrics, store, clock, policy }
}

impl Rig {
    pub fn conversation(&self) -> ConversationId {
        ConversationId::new("t:whatsapp.main:5511900000000")
    }

    pub async fn deliver(&self, input: Input) -> ProcessResult {
        let env = Envelope::new(self.policy.id.clone(), self.conversation(), "trace-1", self.clock.now_ms(), input);
        self.registry.send(Deliver { envelope: env, receipt: None, live_only: false }).await.unwrap().result
    }

    /// The outbox reports every send so far as accepted by the provider.
    pub async fn report_sent(&self) {
        let ids: Vec<u64> = self.sent.lock().unwrap().iter().map(|m| m.local_id).collect();
        for local_id in ids {
            let outcome = SendOutcome::Sent { provider_message_id: format!("wamid.{local_id}") };
            self.deliver(Input::OutboundResult { local_id, outcome }).await.unwrap();
        }
    }

    pub async fn customer(&self, id: &str, text: &str) -> ProcessResult {
        self.deliver(Input::MessageReceived(InboundMessage {
            provider_id: id.into(),
            contact: Contact { key: "5511900000000".into(), name: None },
            reply_to: ReplyAddress { channel: channel(), recipient: "5511900000000".into() },
            content: Content::Text { body: text.into() },
            sent_at_ms: 0,
            callback_query_id: None,
        }))
        .await
    }

    pub fn queue(&self, name: &str) -> &Addr<QueueAgent> {
        &self.queues[name]
    }

    pub fn sent_texts(&self) -> Vec<String> {
        self.sent.lock().unwrap().iter().map(|s| s.message.content.body().to_owned()).collect()
    }

    pub fn state(&self) -> ConversationState {
        ConversationState::clone(&self.store.0.lock().unwrap().get(&self.conversation()).unwrap().0)
    }
}

/// Lets spawned actor work run (paused time auto-advances only when everything is idle).
pub async fn settle(d: Duration) {
    tokio::time::sleep(d).await;
}
