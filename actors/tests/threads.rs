//! Each actor thread has its own AI agent and outboxes, with HTTP clients of their own, so a
//! conversation's model call and sends stay on its thread; the tenant's and the channel's
//! limits still hold for the whole node.

mod support;

use async_trait::async_trait;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::ThreadId;
use std::time::Duration;
use support::{MapStore, SetDedup};
use switchboard_actors::domain::{
    ChannelKind, ChannelRef, Contact, Content, ConversationId, InboundMessage, ReplyAddress, TenantId,
};
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::hub::{Backend, ChannelSetup, Hub, HubSettings, Ingested, TenantSetup};
use switchboard_actors::outbox::OutboxPolicy;
use switchboard_actors::partition::partition_of;
use switchboard_actors::ports::*;
use switchboard_actors::tenant::{Route, TenantPolicy};
use tokio::sync::{Mutex as AsyncMutex, mpsc};

const PARTITIONS: u32 = 4;

/// A bus with one queue per partition.
struct LaneBus(Vec<(mpsc::UnboundedSender<Delivery>, AsyncMutex<mpsc::UnboundedReceiver<Delivery>>)>);

impl LaneBus {
    fn new() -> Arc<Self> {
        let lanes = (0..PARTITIONS).map(|_| mpsc::unbounded_channel()).map(|(tx, rx)| (tx, AsyncMutex::new(rx)));
        Arc::new(Self(lanes.collect()))
    }
}

#[async_trait]
impl Bus for LaneBus {
    fn partitions(&self) -> u32 {
        PARTITIONS
    }
    async fn publish(&self, partition: u32, envelope: Envelope<Input>, _: bool) -> Result<(), BusError> {
        let delivery = Delivery { id: envelope.event_id.to_string(), envelope };
        self.0[partition as usize].0.send(delivery).map_err(|_| BusError::Closed)
    }
    async fn next_batch(&self, partition: u32, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut out = Vec::new();
        self.0[partition as usize].1.lock().await.recv_many(&mut out, max).await;
        Ok(out)
    }
    async fn ack(&self, _: u32, _: &[String]) -> Result<(), BusError> {
        Ok(())
    }
}

/// Which copy of a client made a call, on which thread, for whom.
type Calls = Arc<Mutex<Vec<(usize, ThreadId, String)>>>;

/// A client that numbers its copies (0: the one the hub was given) and records its calls; each
/// call takes a while, and it records how many were in flight at once across its copies.
#[derive(Clone, Default)]
struct Recorder {
    copy: usize,
    copies: Arc<AtomicUsize>,
    calls: Calls,
    in_flight: Arc<AtomicUsize>,
    most_in_flight: Arc<AtomicUsize>,
}

impl Recorder {
    fn copied(&self) -> Self {
        Self { copy: self.copies.fetch_add(1, Ordering::SeqCst) + 1, ..self.clone() }
    }
    async fn call(&self, whom: &str) {
        self.calls.lock().unwrap().push((self.copy, std::thread::current().id(), whom.to_owned()));
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

#[async_trait]
impl Outbound for Recorder {
    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        self.call(&msg.to.recipient).await;
        Ok(format!("wamid.OUT{}", self.calls.lock().unwrap().len()))
    }
    fn with_own_connections(&self) -> Option<Arc<dyn Outbound>> {
        Some(Arc::new(self.copied()))
    }
}

#[async_trait]
impl LlmClient for Recorder {
    async fn complete(&self, req: LlmRequest) -> Result<LlmResponse, LlmError> {
        let last = req.history.last().map(|(_, text)| text.clone()).unwrap_or_default();
        self.call(&last).await;
        Ok(LlmResponse { action: LlmAction::Reply(format!("echo: {last}")), prompt_tokens: 1, completion_tokens: 1 })
    }
    fn with_own_connections(&self) -> Option<Arc<dyn LlmClient>> {
        Some(Arc::new(self.copied()))
    }
}

fn message(customer: &str) -> Envelope<Input> {
    let input = Input::MessageReceived(InboundMessage {
        provider_id: format!("wamid.IN{customer}"),
        contact: Contact { key: customer.into(), name: None },
        reply_to: ReplyAddress { channel: ChannelRef::new(ChannelKind::WhatsApp, "main"), recipient: customer.into() },
        content: Content::Text { body: format!("oi de {customer}") },
        sent_at_ms: 0,
        callback_query_id: None,
    });
    let conversation = ConversationId::new(format!("t:whatsapp.main:{customer}"));
    Envelope::new(TenantId::new("t"), conversation, "trace-threads", 0, input)
}

/// The thread each copy ran on; panics if a copy ran on two.
fn thread_of_each_copy(calls: &[(usize, ThreadId, String)]) -> HashMap<usize, ThreadId> {
    let mut threads = HashMap::new();
    for (copy, thread, _) in calls {
        assert_eq!(*threads.entry(*copy).or_insert(*thread), *thread, "copy {copy} ran on two threads");
    }
    threads
}

#[actix::test]
async fn a_conversations_model_call_and_send_stay_on_its_thread_and_the_limits_hold_for_all_threads() {
    let bus = LaneBus::new();
    let backend = Backend {
        placement: Arc::new(AllPartitions::new(PARTITIONS)),
        verdicts: Arc::new(LocalVerdicts),
        bus,
        dedup: Arc::new(SetDedup::default()),
        store: Arc::new(MapStore::default()),
        clock: Arc::new(SystemClock),
    };
    let (model, sender) = (Recorder::default(), Recorder::default());
    let channel = ChannelSetup {
        channel: ChannelRef::new(ChannelKind::WhatsApp, "main"),
        outbound: Arc::new(sender.clone()),
        policy: OutboxPolicy { per_second: 10_000, max_in_flight: 1, ..OutboxPolicy::default() },
    };
    let mut policy = TenantPolicy::example("t", Route::Ai);
    policy.ai.max_in_flight = 1;
    let tenant = TenantSetup { policy, llm: Some(Arc::new(model.clone())), channels: vec![channel] };
    let hub = Hub::start(backend, vec![tenant], HubSettings { workers: 2, ..HubSettings::default() });

    let customers: Vec<String> = (0..24).map(|n| format!("55119000000{n:02}")).collect();
    // Partition p runs on actor thread p % 2.
    let thread_of = |c: &str| partition_of(&format!("t:whatsapp.main:{c}"), PARTITIONS) % 2;
    let used: HashSet<u32> = customers.iter().map(|c| thread_of(c)).collect();
    assert_eq!(used.len(), 2, "the customers' conversations live on both actor threads");
    for customer in &customers {
        assert_eq!(hub.ingest(message(customer), Some(format!("t:{customer}"))).await.unwrap(), Ingested::Accepted);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sender.calls.lock().unwrap().len() < customers.len() {
        assert!(tokio::time::Instant::now() < deadline, "not every customer was answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    tokio::time::sleep(Duration::from_millis(100)).await;
    let (sends, turns) = (sender.calls.lock().unwrap().clone(), model.calls.lock().unwrap().clone());
    assert_eq!(sends.len(), customers.len(), "one answer each, and no more");
    let (send_threads, model_threads) = (thread_of_each_copy(&sends), thread_of_each_copy(&turns));
    assert_eq!(send_threads.len(), 2, "one copy of the sender per actor thread, and only those send");
    assert_eq!(model_threads.len(), 2, "one copy of the model per actor thread, and only those call");
    assert!(!send_threads.contains_key(&0) && !model_threads.contains_key(&0), "the hub's own copy is left idle");
    assert_ne!(send_threads[&1], send_threads[&2], "the two senders run on different threads");
    let mut threads_by_actor_thread: HashMap<u32, HashSet<ThreadId>> = HashMap::new();
    for customer in &customers {
        let sent = sends.iter().find(|(_, _, to)| to == customer).expect("sent");
        let asked = turns.iter().find(|(_, _, text)| text.ends_with(customer.as_str())).expect("asked the model");
        assert_eq!(send_threads[&sent.0], model_threads[&asked.0], "{customer}: model call and send on one thread");
        threads_by_actor_thread.entry(thread_of(customer)).or_default().insert(send_threads[&sent.0]);
    }
    let (even, odd) = (&threads_by_actor_thread[&0], &threads_by_actor_thread[&1]);
    assert!(even.len() == 1 && odd.len() == 1 && even != odd, "each partition's conversations on its thread");
    assert_eq!(sender.most_in_flight.load(Ordering::SeqCst), 1, "the channel's one send at a time, across threads");
    assert_eq!(model.most_in_flight.load(Ordering::SeqCst), 1, "the tenant's one model call at a time, across threads");
}
