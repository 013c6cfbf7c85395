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

/// A client that numbers its copies (0: the one the hub was given) and records its calls; its
/// sends take a while, and it records how many were in flight at once.
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
    fn record(&self, whom: &str) {
        self.calls.lock().unwrap().push((self.copy, std::thread::current().id(), whom.to_owned()));
    }
}

#[async_trait]
impl Outbound for Recorder {
    async fn send(&self, msg: &OutboundMessage) -> Result<String, SendError> {
        self.record(&msg.to.recipient);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
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
        self.record(&last);
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
async fn a_conversations_model_call_and_send_stay_on_its_thread_and_the_channel_limit_holds_for_all() {
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
    let tenant = TenantSetup {
        policy: TenantPolicy::example("t", Route::Ai),
        llm: Some(Arc::new(model.clone())),
        channels: vec![channel],
    };
    let hub = Hub::start(backend, vec![tenant], HubSettings { workers: 2, ..HubSettings::default() });

    let customers: Vec<String> = (0..24).map(|n| format!("55119000000{n:02}")).collect();
    let partitions: HashSet<u32> =
        customers.iter().map(|c| partition_of(&format!("t:whatsapp.main:{c}"), PARTITIONS) % 2).collect();
    assert_eq!(partitions.len(), 2, "the customers' conversations live on both actor threads");
    for customer in &customers {
        assert_eq!(hub.ingest(message(customer), Some(format!("t:{customer}"))).await.unwrap(), Ingested::Accepted);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while sender.calls.lock().unwrap().len() < customers.len() {
        assert!(tokio::time::Instant::now() < deadline, "not every customer was answered");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (sends, turns) = (sender.calls.lock().unwrap().clone(), model.calls.lock().unwrap().clone());
    assert_eq!(sends.len(), customers.len(), "one answer each");
    let (send_threads, model_threads) = (thread_of_each_copy(&sends), thread_of_each_copy(&turns));
    assert_eq!(send_threads.len(), 2, "one copy of the sender per actor thread, and only those send");
    assert_eq!(model_threads.len(), 2, "one copy of the model per actor thread, and only those call");
    assert!(!send_threads.contains_key(&0) && !model_threads.contains_key(&0), "the hub's own copy is left idle");
    assert_ne!(send_threads[&1], send_threads[&2], "the two senders run on different threads");
    for customer in &customers {
        let sent_on = sends.iter().find(|(_, _, to)| to == customer).map(|(copy, ..)| send_threads[copy]);
        let asked_on =
            turns.iter().find(|(_, _, text)| text.ends_with(customer.as_str())).map(|(copy, ..)| model_threads[copy]);
        assert_eq!(sent_on, asked_on, "{customer}: the model call and the send ran on the same thread");
    }
    assert_eq!(
        sender.most_in_flight.load(Ordering::SeqCst),
        1,
        "the channel's bound of one send at a time holds across threads"
    );
}
