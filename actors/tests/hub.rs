//! Hub ingress: a full bus sheds load with `Busy` and forgets the dedup mark, so the provider's
//! retry is accepted rather than mistaken for a duplicate. The tenant feed shows what was persisted.

mod support;

use async_trait::async_trait;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{MapStore, SetDedup};
use switchboard_actors::domain::{
    ChannelKind, ChannelRef, Contact, Content, ConversationId, DeliveryState, DeliveryUpdate, InboundMessage,
    ReplyAddress, TenantId,
};
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::hub::{Backend, Hub, HubSettings, IngestError, Ingested, TenantSetup};
use switchboard_actors::ports::*;
use switchboard_actors::tenant::{Route, TenantPolicy};
use tokio::sync::mpsc;

/// A one-partition bus that can be made to refuse; records the holds the consumer asks for.
struct ValveBus {
    open: AtomicBool,
    tx: mpsc::Sender<Delivery>,
    rx: tokio::sync::Mutex<mpsc::Receiver<Delivery>>,
    holds: Mutex<Vec<Duration>>,
}

impl ValveBus {
    fn new(open: bool) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(16);
        Arc::new(Self { open: AtomicBool::new(open), tx, rx: tokio::sync::Mutex::new(rx), holds: Mutex::default() })
    }
}

#[async_trait]
impl Bus for ValveBus {
    fn partitions(&self) -> u32 {
        1
    }
    async fn publish(&self, partition: u32, envelope: Envelope<Input>, _wait: bool) -> Result<(), BusError> {
        if !self.open.load(Ordering::SeqCst) {
            return Err(BusError::Full { partition });
        }
        self.tx.send(Delivery { id: "1".into(), envelope }).await.map_err(|_| BusError::Closed)
    }
    async fn next_batch(&self, _: u32, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut out = Vec::new();
        self.rx.lock().await.recv_many(&mut out, max).await;
        Ok(out)
    }
    async fn ack(&self, _: u32, _: &[String]) -> Result<(), BusError> {
        Ok(())
    }
    async fn hold_off(&self, _: u32, span: Duration) -> Result<(), BusError> {
        self.holds.lock().unwrap().push(span);
        Ok(())
    }
}

#[actix::test]
async fn full_bus_answers_busy_and_the_retry_is_accepted() {
    let bus = ValveBus::new(false);
    let backend = Backend {
        bus: bus.clone(),
        dedup: Arc::new(SetDedup::default()),
        store: Arc::new(MapStore::default()),
        clock: Arc::new(SystemClock),
        placement: Arc::new(AllPartitions::new(bus.partitions())),
        verdicts: Arc::new(LocalVerdicts),
    };
    let tenant = TenantSetup { policy: TenantPolicy::example("t", Route::Ai), llm: None, channels: vec![] };
    let hub = Hub::start(backend, vec![tenant], HubSettings::default());
    let status = Input::StatusReceived(DeliveryUpdate {
        provider_message_id: "wamid.X".into(),
        state: DeliveryState::Read,
        error: None,
        recipient: "1".into(),
    });
    let env = || Envelope::new(TenantId::new("t"), ConversationId::new("t:c"), "trace", 0, status.clone());
    let busy = hub.ingest(env(), Some("t:wamid.X:read".into())).await;
    assert!(matches!(busy, Err(IngestError::Busy)), "{busy:?}");
    bus.open.store(true, Ordering::SeqCst);
    assert_eq!(hub.ingest(env(), Some("t:wamid.X:read".into())).await.unwrap(), Ingested::Accepted, "not a duplicate");
    assert_eq!(hub.ingest(env(), Some("t:wamid.X:read".into())).await.unwrap(), Ingested::Duplicate);
}

#[actix::test]
async fn the_tenant_feed_carries_persisted_events_in_order_and_only_to_that_tenant() {
    let bus = ValveBus::new(true);
    let store = Arc::new(MapStore::default());
    let backend = Backend {
        placement: Arc::new(AllPartitions::new(bus.partitions())),
        verdicts: Arc::new(LocalVerdicts),
        bus,
        dedup: Arc::new(SetDedup::default()),
        store: store.clone(),
        clock: Arc::new(SystemClock),
    };
    let queued = |id: &str| TenantSetup {
        policy: TenantPolicy::example(id, Route::Queue("sales".into())),
        llm: None,
        channels: vec![],
    };
    let hub = Hub::start(backend, vec![queued("t"), queued("u")], HubSettings::default());
    let mut feed = hub.subscribe(&TenantId::new("t")).unwrap();
    let mut other = hub.subscribe(&TenantId::new("u")).unwrap();
    assert!(hub.subscribe(&TenantId::new("nobody")).is_err());
    let message = Input::MessageReceived(InboundMessage {
        provider_id: "wamid.F1".into(),
        contact: Contact { key: "5511900000001".into(), name: None },
        reply_to: ReplyAddress {
            channel: ChannelRef::new(ChannelKind::WhatsApp, "main"),
            recipient: "5511900000001".into(),
        },
        content: Content::Text { body: "oi".into() },
        sent_at_ms: 0,
        callback_query_id: None,
    });
    let conversation = ConversationId::new("t:whatsapp.main:5511900000001");
    let env = Envelope::new(TenantId::new("t"), conversation.clone(), "trace-feed", 0, message);
    assert_eq!(hub.ingest(env, Some("t:wamid.F1".into())).await.unwrap(), Ingested::Accepted);

    let mut kinds = Vec::new();
    let mut statuses = Vec::new();
    while !kinds.contains(&"conversation.queued".to_owned()) {
        let batch = tokio::time::timeout(Duration::from_secs(5), feed.recv()).await.expect("a batch").unwrap();
        assert_eq!(batch.state.id, conversation);
        statuses.push((batch.before.name(), batch.state.status.name()));
        for event in &batch.events {
            assert_eq!(event.conversation_id, conversation);
            assert_eq!(event.trace_id, "trace-feed");
            kinds.push(serde_json::to_value(event).unwrap()["type"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(
        kinds[..4],
        ["conversation.opened", "inbox.message.received", "routing.handoff.requested", "conversation.queued"]
    );
    assert_eq!(statuses.first(), Some(&("closed", "queued")), "each batch says where it stood before and after");
    let journal = store.journal(&conversation, 1).await.unwrap();
    assert!(journal.len() >= kinds.len(), "everything on the feed is in the journal first");
    assert!(other.try_recv().is_err(), "another tenant's subscriber sees nothing");
}

/// A placement the test moves by hand, recording what the hub released.
struct HandPlacement {
    tx: tokio::sync::watch::Sender<Ownership>,
    released: Mutex<Vec<u32>>,
}

impl Placement for HandPlacement {
    fn owned(&self) -> tokio::sync::watch::Receiver<Ownership> {
        self.tx.subscribe()
    }
    fn released(&self, partition: u32) {
        self.released.lock().unwrap().push(partition);
    }
}

fn whatsapp_text(n: u32) -> Envelope<Input> {
    let message = Input::MessageReceived(InboundMessage {
        provider_id: format!("wamid.H{n}"),
        contact: Contact { key: "5511900000002".into(), name: None },
        reply_to: ReplyAddress {
            channel: ChannelRef::new(ChannelKind::WhatsApp, "main"),
            recipient: "5511900000002".into(),
        },
        content: Content::Text { body: format!("mensagem {n}") },
        sent_at_ms: 0,
        callback_query_id: None,
    });
    Envelope::new(TenantId::new("t"), ConversationId::new("t:whatsapp.main:5511900000002"), "trace-h", 0, message)
}

/// A hub whose placement the test moves by hand, owning partition 0 at epoch 1, with its store.
fn hub_on_partition_0() -> (Hub, Arc<MapStore>, Arc<HandPlacement>) {
    let bus = ValveBus::new(true);
    let store = Arc::new(MapStore::default());
    let placement = Arc::new(HandPlacement {
        tx: tokio::sync::watch::channel(Ownership([(0, 1)].into())).0,
        released: Mutex::default(),
    });
    let backend = Backend {
        bus,
        dedup: Arc::new(SetDedup::default()),
        store: store.clone(),
        clock: Arc::new(SystemClock),
        placement: placement.clone(),
        verdicts: Arc::new(LocalVerdicts),
    };
    let tenant =
        TenantSetup { policy: TenantPolicy::example("t", Route::Queue("sales".into())), llm: None, channels: vec![] };
    (Hub::start(backend, vec![tenant], HubSettings::default()), store, placement)
}

#[actix::test]
async fn a_partition_given_up_is_finished_passivated_released_and_runs_again_when_given_back() {
    let (hub, store, placement) = hub_on_partition_0();
    let id = ConversationId::new("t:whatsapp.main:5511900000002");
    let seq = || async { store.load(&id).await.unwrap().map_or(0, |s| s.seq) };
    let settle = |what: &'static str, ok: Box<dyn Fn() -> bool>| async move {
        for _ in 0..250 {
            if ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{what}");
    };

    hub.ingest(whatsapp_text(1), Some("H1".into())).await.unwrap();
    for _ in 0..250 {
        if seq().await > 0 && hub.live_conversations().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = seq().await;
    assert!(first > 0, "the owner ran the message");

    // Another node is to take the partition: the hub stops it, passivates, and lets go.
    placement.tx.send_replace(Ownership::default());
    let p = placement.clone();
    settle("the partition is released", Box::new(move || p.released.lock().unwrap().as_slice() == [0])).await;
    assert_eq!(hub.live_conversations().await, 0, "its conversations were passivated");
    hub.ingest(whatsapp_text(2), Some("H2".into())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(seq().await, first, "a partition this node does not own is not run");

    // Given back (a new epoch): the waiting message runs, on a rehydrated conversation.
    placement.tx.send_replace(Ownership([(0, 2)].into()));
    for _ in 0..250 {
        if seq().await > first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seq().await > first, "the partition runs again");
    assert!(hub.metrics().counters().into_iter().any(|(name, _, n)| name == "rehydrations" && n >= 1));
}

/// The lease was lost and won back while the consumer was busy: the partition's ownership moves
/// from one epoch to the next without the hub ever seeing it unowned. The hub must still treat it
/// as a new take-over (hand over, rehydrate, wake conversations owing work): a write refused in
/// between left work that only a take-over wakes, and another node may have written meanwhile.
#[actix::test]
async fn a_partition_won_back_at_a_new_epoch_is_taken_over_again() {
    let (hub, store, placement) = hub_on_partition_0();
    let id = ConversationId::new("t:whatsapp.main:5511900000002");
    let seq = || async { store.load(&id).await.unwrap().map_or(0, |s| s.seq) };
    hub.ingest(whatsapp_text(1), Some("H1".into())).await.unwrap();
    for _ in 0..250 {
        if seq().await > 0 && hub.live_conversations().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let first = seq().await;
    assert!(first > 0, "the owner ran the message");

    placement.tx.send_replace(Ownership([(0, 2)].into()));
    for _ in 0..250 {
        if !placement.released.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(placement.released.lock().unwrap().as_slice(), [0], "the run at epoch 1 ended");
    hub.ingest(whatsapp_text(2), Some("H2".into())).await.unwrap();
    for _ in 0..250 {
        if seq().await > first {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seq().await > first, "the partition runs at epoch 2");
    assert!(
        hub.metrics().counters().into_iter().any(|(name, _, n)| name == "rehydrations" && n >= 1),
        "the conversation was reloaded from the store, not trusted from memory"
    );
}

/// A hub on `bus` that holds off webhooks after events waited `max_queue_delay`.
fn hub_watching_delay(bus: Arc<ValveBus>, max_queue_delay: Option<Duration>) -> Hub {
    let backend = Backend {
        bus: bus.clone(),
        dedup: Arc::new(SetDedup::default()),
        store: Arc::new(MapStore::default()),
        clock: Arc::new(SystemClock),
        placement: Arc::new(AllPartitions::new(1)),
        verdicts: Arc::new(LocalVerdicts),
    };
    let tenant =
        TenantSetup { policy: TenantPolicy::example("t", Route::Queue("sales".into())), llm: None, channels: vec![] };
    Hub::start(backend, vec![tenant], HubSettings { max_queue_delay, ..HubSettings::default() })
}

/// Puts message `n`, received `age_ms` ago, on the bus and waits until the consumer took it.
async fn queued_for(bus: &ValveBus, n: u32, age_ms: u64) {
    let mut env = whatsapp_text(n);
    env.occurred_at = SystemClock.now_ms() - age_ms;
    bus.tx.send(Delivery { id: n.to_string(), envelope: env }).await.unwrap();
    for _ in 0..200 {
        if bus.tx.capacity() == bus.tx.max_capacity() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[actix::test]
async fn a_partition_whose_events_waited_too_long_holds_off_webhooks_and_renews_the_hold_sparingly() {
    let bus = ValveBus::new(true);
    let _hub = hub_watching_delay(bus.clone(), Some(Duration::from_millis(200)));
    queued_for(&bus, 1, 5_000).await;
    assert!(bus.holds.lock().unwrap().is_empty(), "queued before this node took the partition: catching up");
    tokio::time::sleep(Duration::from_millis(500)).await;
    queued_for(&bus, 2, 50).await;
    assert!(bus.holds.lock().unwrap().is_empty(), "a short wait is no reason to push back");
    queued_for(&bus, 3, 400).await;
    assert_eq!(*bus.holds.lock().unwrap(), [Duration::from_secs(1)], "past the bound: held off for a second");
    queued_for(&bus, 4, 400).await;
    assert_eq!(bus.holds.lock().unwrap().len(), 1, "the hold in force is not rewritten on every batch");
    tokio::time::sleep(Duration::from_millis(500)).await;
    queued_for(&bus, 5, 400).await;
    assert_eq!(bus.holds.lock().unwrap().len(), 2, "renewed halfway through while the delay lasts");

    let quiet = ValveBus::new(true);
    let _hub = hub_watching_delay(quiet.clone(), None);
    tokio::time::sleep(Duration::from_millis(500)).await;
    queued_for(&quiet, 1, 400).await;
    assert!(quiet.holds.lock().unwrap().is_empty(), "turned off: never held");
}
