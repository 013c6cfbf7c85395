//! The console feed across nodes (Redis backend): each node relays the frames of what its own
//! conversations persist (and its typing and presence frames) to the tenant's shared stream, and
//! fills its consoles' ring from that stream only, its own frames included. So every console of
//! a tenant sees every node's conversations, in one order.

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
}

/// The tenant's feed, relayed from `batches` to `log` and filled from `log` (followed from its
/// end before anything is relayed, so this node's own frames all come back).
pub async fn start(
    tenant: &TenantId,
    batches: broadcast::Receiver<Arc<FeedBatch>>,
    log: RedisFeedLog,
) -> Arc<TenantFeed> {
    let (tx, ephemeral) = mpsc::channel(EPHEMERAL_BACKLOG);
    let feed = Arc::new(TenantFeed::new_shared(tx));
    let followed = log.follow(tenant.as_str()).await;
    tokio::spawn(fill(tenant.clone(), followed, feed.clone()));
    tokio::spawn(relay(tenant.clone(), batches, ephemeral, log));
    feed
}

/// Appends this node's frames to the shared stream, as many per round trip as are ready.
async fn relay(
    tenant: TenantId,
    mut batches: broadcast::Receiver<Arc<FeedBatch>>,
    mut ephemeral: mpsc::Receiver<Wire>,
    log: RedisFeedLog,
) {
    let mut gap = false;
    loop {
        let mut out: Vec<Wire> = Vec::new();
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
        let entries: Vec<String> = out.iter().filter_map(|w| serde_json::to_string(w).ok()).collect();
        match log.append(tenant.as_str(), &entries).await {
            Ok(()) => gap = false,
            Err(e) => {
                tracing::warn!(%tenant, frames = entries.len(), error = %e, "console frames not relayed; consoles resync");
                gap = true;
            }
        }
    }
}

fn events(batch: &FeedBatch) -> impl Iterator<Item = Wire> + '_ {
    frames(batch).map(|e| Wire::Event { id: e.id, frame: e.frame, audience: e.audience })
}

/// Fills the ring and the sessions from the shared stream.
async fn fill(tenant: TenantId, mut followed: mpsc::Receiver<Followed>, feed: Arc<TenantFeed>) {
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
                Err(e) => tracing::warn!(%tenant, error = %e, "unreadable console frame skipped"),
            }
        }
        feed.keep(kept);
    }
}
