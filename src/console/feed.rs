//! What consoles are pushed, per tenant: the hub's feed of persisted events kept in a ring of
//! the latest ones (so a reconnect with `since=` can replay what it missed), plus ephemeral
//! frames (typing, presence) that are never replayed. Each frame is serialized once, whatever the
//! number of consoles; a session only decides whether its account may see it.

use super::presence::{Presence, SharedPresence};
use super::relay::{self, Wire};
use crate::routes::api::render::summary;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_actors::domain::TenantId;
use switchboard_actors::feed::FeedBatch;
use switchboard_actors::hub::Hub;
use switchboard_actors::state::Status;
use switchboard_adapters::redis::RedisFeedLog;
use tokio::sync::{Notify, broadcast, mpsc};
use uuid::Uuid;

/// Events of one tenant a reconnecting console can catch up on.
pub const RING_CAPACITY: usize = 20_000;
/// Frames a console may fall behind before it must start over from a snapshot.
const SESSION_BACKLOG: usize = 8192;

/// Who may see a frame: anyone working on a conversation in one of these statuses.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Audience {
    /// Every console of the tenant.
    Everyone,
    /// Accounts that may work on the conversation in one of these statuses.
    Statuses(Vec<Status>),
}

/// One journal event as consoles receive it.
#[derive(Debug)]
pub struct RingEvent {
    /// The event's id (the `since=` of a reconnect).
    pub id: Uuid,
    /// The `event` frame, serialized once.
    pub frame: String,
    /// Where the conversation stood before and after.
    pub audience: Audience,
}

/// What a console session receives.
#[derive(Debug, Clone)]
pub enum Push {
    /// A journal event (kept in the ring).
    Event(Arc<RingEvent>),
    /// Typing or presence: for live sessions only.
    Ephemeral {
        /// The frame.
        frame: Arc<str>,
        /// Who may see it.
        audience: Arc<Audience>,
    },
    /// The ring lost events (the hub's feed overran it): every session starts over.
    Resync,
}

/// A session's start: live pushes from now on, plus either what it missed or the id its
/// snapshot reflects.
pub struct Attached {
    /// Live pushes.
    pub rx: broadcast::Receiver<Push>,
    /// Events after `since`, when `since` is still in the ring.
    pub replay: Option<Vec<Arc<RingEvent>>>,
    /// The newest event so far (what a snapshot taken now reflects).
    pub last_id: Option<Uuid>,
}

/// One tenant's console feed.
pub struct TenantFeed {
    ring: Mutex<VecDeque<Arc<RingEvent>>>,
    tx: broadcast::Sender<Push>,
    /// With several nodes: where this node's frames go to reach every node's consoles (this
    /// node's included: the ring is filled from the shared stream only).
    relay: Option<mpsc::Sender<Wire>>,
    /// With several nodes: whether a console anywhere watches, so that the relay runs.
    watch: Watch,
}

/// Whether a console of the tenant is open at any node. The relay costs every persisted step a
/// frame on the shared stream, so it runs only while someone watches, and a little longer.
#[derive(Default)]
pub(super) struct Watch {
    /// A console was open here or elsewhere until this instant (ms on `CLOCK`) at least.
    until: AtomicU64,
    /// Rings the relay when a console asks for it.
    wake: Notify,
    /// This node's relay is on and its start marker came back through the shared stream: what
    /// a console snapshots from now on, it sees every change after.
    live: AtomicBool,
    became_live: Notify,
}

/// How long the relay keeps running after the last console anywhere closed: consoles that
/// reconnect (a page reload) find it running, without the resync a start costs.
const LINGER: Duration = Duration::from_secs(10);

/// How long a console waits for the relay to start before it takes its snapshot anyway (Redis
/// slow or away: the relay's gap marker makes it resync later).
const START_WAIT: Duration = Duration::from_secs(2);

static CLOCK: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

fn now_ms() -> u64 {
    u64::try_from(CLOCK.elapsed().as_millis()).unwrap_or(u64::MAX)
}

impl TenantFeed {
    fn new(relay: Option<mpsc::Sender<Wire>>) -> Self {
        Self {
            ring: Mutex::new(VecDeque::new()),
            tx: broadcast::channel(SESSION_BACKLOG).0,
            relay,
            watch: Watch::default(),
        }
    }

    /// A feed whose ephemeral frames go through the shared stream (see `relay`).
    pub(super) fn new_shared(relay: mpsc::Sender<Wire>) -> Self {
        Self::new(Some(relay))
    }

    /// Console sessions open at this node.
    pub(super) fn sessions_here(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Whether a console watches here, or did elsewhere lately (then the relay must run).
    pub(super) fn watched(&self) -> bool {
        if self.sessions_here() {
            self.watch.until.fetch_max(now_ms() + LINGER.as_millis() as u64, Ordering::Relaxed);
            return true;
        }
        now_ms() < self.watch.until.load(Ordering::Relaxed)
    }

    /// A console is open, here or elsewhere: the relay runs for at least [`LINGER`] more.
    pub(super) fn mark_watched(&self) {
        self.watch.until.fetch_max(now_ms() + LINGER.as_millis() as u64, Ordering::Relaxed);
        self.watch.wake.notify_one();
    }

    /// Waits for a reason to check `watched` again (a console asked, or a while passed).
    pub(super) async fn woken(&self, within: Duration) {
        let _ = tokio::time::timeout(within, self.watch.wake.notified()).await;
    }

    pub(super) fn set_live(&self, live: bool) {
        self.watch.live.store(live, Ordering::SeqCst);
        if live {
            self.watch.became_live.notify_waiters();
        }
    }

    /// Before a console takes its snapshot: with several nodes, starts this node's relay if it
    /// was off and waits until its start marker came back (at most [`START_WAIT`]), so that no
    /// change this node persists after the snapshot misses the console. Other nodes start their
    /// relays when they see the marker; each start makes consoles resync once, which covers
    /// what those nodes persisted while their relays were off.
    pub async fn ready(&self) {
        if self.relay.is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + START_WAIT;
        loop {
            let became_live = self.watch.became_live.notified();
            if self.watch.live.load(Ordering::SeqCst) {
                return;
            }
            self.mark_watched();
            if tokio::time::timeout_at(deadline, became_live).await.is_err() {
                tracing::warn!("console relay did not start in time; the console will resync when it does");
                return;
            }
        }
    }

    /// Joins the feed. Done under the ring's lock, so that no event falls between the replay
    /// (or the snapshot's `last_id`) and the live pushes, and none comes twice.
    pub fn attach(&self, since: Option<Uuid>) -> Attached {
        let ring = self.lock();
        let rx = self.tx.subscribe();
        let last_id = ring.back().map(|e| e.id);
        let replay = since.and_then(|id| {
            let at = ring.iter().rposition(|e| e.id == id)?;
            Some(ring.iter().skip(at + 1).cloned().collect())
        });
        Attached { rx, replay, last_id }
    }

    /// Pushes a frame that is not kept (typing, presence).
    pub fn push_ephemeral(&self, frame: String, audience: Audience) {
        match &self.relay {
            // A full relay drops it: typing and presence are best effort.
            Some(relay) => drop(relay.try_send(Wire::Ephemeral { frame, audience })),
            None => self.show_ephemeral(frame, audience),
        }
    }

    pub(super) fn show_ephemeral(&self, frame: String, audience: Audience) {
        let _ = self.tx.send(Push::Ephemeral { frame: frame.into(), audience: Arc::new(audience) });
    }

    /// Keeps events in the ring and pushes them to the sessions.
    pub(super) fn keep(&self, events: impl IntoIterator<Item = RingEvent>) {
        let mut ring = self.lock();
        for event in events {
            let item = Arc::new(event);
            if ring.len() == RING_CAPACITY {
                ring.pop_front();
            }
            ring.push_back(item.clone());
            let _ = self.tx.send(Push::Event(item));
        }
    }

    pub(super) fn lost_events(&self) {
        let mut ring = self.lock();
        // A resume from before the gap would miss events: make every `since` unknown.
        ring.clear();
        let _ = self.tx.send(Push::Resync);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<RingEvent>>> {
        self.ring.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The console frames of what one conversation persisted, each serialized once.
pub(super) fn frames(batch: &FeedBatch) -> impl Iterator<Item = RingEvent> + '_ {
    let conversation = summary(&batch.state);
    let audience = Audience::Statuses(vec![batch.before.clone(), batch.state.status.clone()]);
    batch.events.iter().map(move |event| {
        let frame = json!({ "type": "event", "id": event.event_id, "event": event, "conversation": conversation });
        RingEvent { id: event.event_id, frame: frame.to_string(), audience: audience.clone() }
    })
}

/// Availability of an agent as consoles set it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Availability {
    /// Taking conversations.
    pub available: bool,
    /// At most this many at once.
    pub capacity: u32,
}

impl Default for Availability {
    fn default() -> Self {
        Self { available: false, capacity: DEFAULT_CAPACITY }
    }
}

/// Capacity of an agent who never set one.
pub const DEFAULT_CAPACITY: u32 = 5;

#[derive(Debug, Default)]
struct AgentDesk {
    sessions: usize,
    availability: Availability,
}

/// What links the consoles of one node to the other nodes' (Redis backend).
pub struct AcrossNodes {
    /// The tenants' streams of every node's console frames.
    pub feed: RedisFeedLog,
    /// The tenants' online agents, every node's.
    pub presence: SharedPresence,
}

/// Every tenant's console feed, and the agents' console sessions and availability.
///
/// One node alone starts a tenant's feed on its first console, from the hub's own feed. With
/// several nodes (Redis), every tenant's feed starts at once and is filled from the tenant's
/// shared stream, to which every node relays what its conversations persist: a console sees the
/// conversations of every node, in the same order on every node.
pub struct ConsoleFeeds {
    /// Agents' presence in their queues (every node's, with Redis).
    pub presence: Arc<Presence>,
    hub: Hub,
    tenants: Mutex<HashMap<TenantId, Arc<TenantFeed>>>,
    agents: Mutex<HashMap<(TenantId, String), AgentDesk>>,
}

impl ConsoleFeeds {
    /// Feeds over `hub`'s tenants; `shared` links them to the other nodes (Redis).
    pub async fn new(hub: Hub, shared: Option<AcrossNodes>) -> Self {
        let mut tenants = HashMap::new();
        let mut presence = None;
        if let Some(AcrossNodes { feed, presence: shared }) = shared {
            for tenant in hub.tenants() {
                let (hub, name) = (hub.clone(), tenant.clone());
                let subscribe = move || hub.subscribe(&name).ok();
                tenants.insert(tenant.clone(), relay::start(tenant, subscribe, feed.clone()).await);
            }
            presence = Some(shared);
        }
        let presence = Presence::new(hub.clone(), presence, tenants.clone());
        Self { presence, hub, tenants: Mutex::new(tenants), agents: Mutex::default() }
    }

    /// The tenant's feed; with one node, the first call subscribes to the hub and starts the
    /// task that fills the ring (it runs as long as the hub does).
    pub fn tenant(&self, tenant: &TenantId) -> Option<Arc<TenantFeed>> {
        let mut tenants = self.tenants.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(feed) = tenants.get(tenant) {
            return Some(feed.clone());
        }
        let mut rx = self.hub.subscribe(tenant).ok()?;
        let feed = Arc::new(TenantFeed::new(None));
        let filler = feed.clone();
        let name = tenant.clone();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(batch) => filler.keep(frames(&batch)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(tenant = %name, missed, "console feed fell behind the hub; consoles resync");
                        filler.lost_events();
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
        tenants.insert(tenant.clone(), feed.clone());
        Some(feed)
    }

    /// A console session of `agent` opened; returns its availability.
    pub fn session_opened(&self, tenant: &TenantId, agent: &str) -> Availability {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let desk = agents.entry((tenant.clone(), agent.to_owned())).or_default();
        desk.sessions += 1;
        desk.availability
    }

    /// A console session closed; returns the availability to drop when it was the agent's last
    /// session and the agent was available (the caller takes the agent off its queues).
    pub fn session_closed(&self, tenant: &TenantId, agent: &str) -> Option<Availability> {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        let desk = agents.get_mut(&(tenant.clone(), agent.to_owned()))?;
        desk.sessions = desk.sessions.saturating_sub(1);
        if desk.sessions > 0 || !desk.availability.available {
            return None;
        }
        desk.availability.available = false;
        Some(desk.availability)
    }

    /// Records an agent's availability.
    pub fn set_availability(&self, tenant: &TenantId, agent: &str, availability: Availability) {
        let mut agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        agents.entry((tenant.clone(), agent.to_owned())).or_default().availability = availability;
    }

    /// An agent's availability.
    pub fn availability(&self, tenant: &TenantId, agent: &str) -> Availability {
        let agents = self.agents.lock().unwrap_or_else(|p| p.into_inner());
        agents.get(&(tenant.clone(), agent.to_owned())).map(|d| d.availability).unwrap_or_default()
    }

    /// Open console sessions, for `/metrics`.
    pub fn open_sessions(&self) -> usize {
        self.agents.lock().unwrap_or_else(|p| p.into_inner()).values().map(|d| d.sessions).sum()
    }
}
