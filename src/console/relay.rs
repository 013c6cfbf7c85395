//! The console feed across nodes (Redis backend): each node relays the frames of what its own
//! conversations persist (and its typing and presence frames) to the tenant's shared stream, and
//! fills its consoles' ring from that stream only, its own frames included. So every console of
//! a tenant sees every node's conversations, in one order.
//!
//! A relay runs only while a console of the tenant is open at some node (and `LINGER` after):
//! without consoles, turning every step into frames on a shared stream is most of what the hub
//! sends Redis. A relay that starts appends an `On` marker first: every node that reads it
//! starts its own relay, and every console resyncs from a snapshot, since what was persisted
//! while relays were off never reached the stream. A console waits for its own node's marker
//! before its first snapshot (`TenantFeed::ready`).

use super::feed::{Audience, RingEvent, TenantFeed, frames};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use switchboard_actors::domain::TenantId;
use switchboard_actors::feed::FeedBatch;
use switchboard_adapters::redis::{Followed, RedisFeedLog};
use tokio::sync::{broadcast, mpsc};
use uuid::Uuid;

/// Typing and presence frames waiting for the relay; past this they are dropped.
const EPHEMERAL_BACKLOG: usize = 1024;

/// Frames the relay appends in one round trip at most.
const MAX_APPEND: usize = 512;

/// A frame on its way between nodes.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "lowercase")]
pub enum Wire {
    /// A journal event (kept in the ring).
    Event {
        /// The event's id.
        id: Uuid,
        /// The serialized `event` frame.
        frame: String,
        /// Who may see it.
        audience: Audience,
    },
    /// Typing or presence.
    Ephemeral {
        /// The serialized frame.
        frame: String,
        /// Who may see it.
        audience: Audience,
    },
    /// A node lost frames on the way (its relay fell behind, or Redis failed it): consoles
    /// start over from a snapshot.
    Gap,
    /// A node's relay started (it relays from here on, it did not before): consoles start over
    /// from a snapshot, and every node relays while they are open.
    On {
        /// The relay that started (one per node and tenant, for the life of the process).
        relay: Uuid,
    },
}

/// How often a running relay checks that a console still watches, and an idle one that none
/// started watching without telling it.
const CHECK_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// The tenant's feed, relayed from what `subscribe` gives (while a console watches) to `log` and
/// filled from `log` (followed from its end before anything is relayed, so this node's own frames
/// all come back).
pub async fn start(
    tenant: &TenantId,
    subscribe: impl Fn() -> Option<broadcast::Receiver<Arc<FeedBatch>>> + Send + 'static,
    log: RedisFeedLog,
) -> Arc<TenantFeed> {
    let (tx, ephemeral) = mpsc::channel(EPHEMERAL_BACKLOG);
    let feed = Arc::new(TenantFeed::new_shared(tx));
    let relay = Uuid::new_v4();
    let followed = log.follow(tenant.as_str()).await;
    tokio::spawn(fill(tenant.clone(), followed, feed.clone(), relay));
    tokio::spawn(run(tenant.clone(), relay, feed.clone(), subscribe, ephemeral, log));
    feed
}

/// Relays while a console watches; between times holds no subscription, so conversations do not
/// even prepare their batches.
async fn run(
    tenant: TenantId,
    relay_id: Uuid,
    feed: Arc<TenantFeed>,
    subscribe: impl Fn() -> Option<broadcast::Receiver<Arc<FeedBatch>>>,
    mut ephemeral: mpsc::Receiver<Wire>,
    log: RedisFeedLog,
) {
    loop {
        while !feed.watched() {
            tokio::select! {
                () = feed.woken(CHECK_EVERY) => {}
                // Typing and presence with no console anywhere to see them.
                frame = ephemeral.recv() => if frame.is_none() { return },
            }
        }
        let Some(batches) = subscribe() else { return };
        tracing::debug!(%tenant, "console relay started");
        relay(&tenant, relay_id, &feed, batches, &mut ephemeral, &log).await;
        feed.set_live(false);
        tracing::debug!(%tenant, "console relay stopped: no console open");
    }
}

/// Appends this node's frames to the shared stream, as many per round trip as are ready, until
/// no console watches.
async fn relay(
    tenant: &TenantId,
    relay_id: Uuid,
    feed: &TenantFeed,
    mut batches: broadcast::Receiver<Arc<FeedBatch>>,
    ephemeral: &mut mpsc::Receiver<Wire>,
    log: &RedisFeedLog,
) {
    let mut gap = false;
    let mut started = false;
    loop {
        let mut out: Vec<Wire> = Vec::new();
        if started {
            tokio::select! {
                batch = batches.recv() => match batch {
                    Ok(batch) => out.extend(events(&batch)),
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        tracing::warn!(%tenant, missed, "console relay fell behind the hub; consoles resync");
                        gap = true;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                Some(frame) = ephemeral.recv() => out.push(frame),
                () = tokio::time::sleep(CHECK_EVERY) => if !feed.watched() { return },
            }
        }
        while out.len() < MAX_APPEND {
            match batches.try_recv() {
                Ok(batch) => out.extend(events(&batch)),
                Err(broadcast::error::TryRecvError::Lagged(_)) => gap = true,
                Err(_) => break,
            }
        }
        while out.len() < MAX_APPEND
            && let Ok(frame) = ephemeral.try_recv()
        {
            out.push(frame);
        }
        if gap {
            out.insert(0, Wire::Gap);
        }
        if !started {
            out.insert(0, Wire::On { relay: relay_id });
        }
        let entries: Vec<String> = out.iter().filter_map(|w| serde_json::to_string(w).ok()).collect();
        match log.append(tenant.as_str(), &entries).await {
            Ok(()) => {
                gap = false;
                started = true;
            }
            Err(e) => {
                tracing::warn!(%tenant, frames = entries.len(), error = %e, "console frames not relayed; consoles resync");
                gap = true;
                if !started {
                    tokio::time::sleep(CHECK_EVERY).await;
                }
            }
        }
    }
}

fn events(batch: &FeedBatch) -> impl Iterator<Item = Wire> + '_ {
    frames(batch).map(|e| Wire::Event { id: e.id, frame: e.frame, audience: e.audience })
}

/// Fills the ring and the sessions from the shared stream.
async fn fill(tenant: TenantId, mut followed: mpsc::Receiver<Followed>, feed: Arc<TenantFeed>, relay_id: Uuid) {
    while let Some(next) = followed.recv().await {
        let entries = match next {
            Followed::Entries(entries) => entries,
            Followed::Gap => {
                feed.lost_events();
                continue;
            }
        };
        let mut kept = Vec::new();
        for entry in entries {
            match serde_json::from_str::<Wire>(&entry) {
                Ok(Wire::Event { id, frame, audience }) => kept.push(RingEvent { id, frame, audience }),
                Ok(Wire::Ephemeral { frame, audience }) => {
                    feed.keep(kept.drain(..));
                    feed.show_ephemeral(frame, audience);
                }
                Ok(Wire::Gap) => {
                    feed.keep(kept.drain(..));
                    feed.lost_events();
                }
                Ok(Wire::On { relay }) => {
                    feed.keep(kept.drain(..));
                    feed.lost_events();
                    if relay == relay_id {
                        feed.set_live(true);
                    } else {
                        feed.mark_watched();
                    }
                }
                Err(e) => tracing::warn!(%tenant, error = %e, "unreadable console frame skipped"),
            }
        }
        feed.keep(kept);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::console::feed::Push;
    use std::time::Duration;

    fn entries(wires: &[Wire]) -> Followed {
        Followed::Entries(wires.iter().map(|w| serde_json::to_string(w).unwrap()).collect())
    }

    /// A feed filled from `followed` as the node whose relay is `own` does.
    fn filled(own: Uuid) -> (Arc<TenantFeed>, mpsc::Sender<Followed>) {
        let (relay, _) = mpsc::channel(1);
        let feed = Arc::new(TenantFeed::new_shared(relay));
        let (tx, followed) = mpsc::channel(8);
        tokio::spawn(fill(TenantId::new("demo"), followed, feed.clone(), own));
        (feed, tx)
    }

    #[tokio::test]
    async fn another_node_starting_its_relay_makes_consoles_resync_and_this_node_relay() {
        let (feed, stream) = filled(Uuid::new_v4());
        assert!(!feed.watched(), "nobody watches yet");
        let mut session = feed.attach(None).rx;
        stream.send(entries(&[Wire::On { relay: Uuid::new_v4() }])).await.unwrap();
        let push = tokio::time::timeout(Duration::from_secs(2), session.recv()).await.expect("a push").unwrap();
        assert!(matches!(push, Push::Resync), "what that node persisted before reached no console: {push:?}");
        drop(session);
        assert!(feed.watched(), "a console is open at that node: relay here too");
    }

    #[tokio::test]
    async fn a_console_waits_for_its_own_nodes_relay_to_start() {
        let own = Uuid::new_v4();
        let (feed, stream) = filled(own);
        let waiting = tokio::spawn({
            let feed = feed.clone();
            async move { feed.ready().await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(feed.watched(), "the console's wait starts the relay");
        stream.send(entries(&[Wire::On { relay: Uuid::new_v4() }])).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "another node's start is not this node's");
        stream.send(entries(&[Wire::On { relay: own }])).await.unwrap();
        tokio::time::timeout(Duration::from_secs(1), waiting).await.expect("ready once its marker came round").unwrap();
    }
}
