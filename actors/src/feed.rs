//! The live feed of what conversations record, one per tenant: consoles and API clients
//! subscribe to see changes as they happen. It is best effort and bounded: a subscriber that
//! falls behind learns how many events it missed (and re-reads the state it needs); the journal
//! stays the source of truth.

use crate::event::{Envelope, Event};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Events a slow subscriber may lag behind before it misses some.
pub const FEED_CAPACITY: usize = 4096;

/// One tenant's feed; cheap to clone.
#[derive(Clone, Debug)]
pub struct EventFeed(broadcast::Sender<Arc<Envelope<Event>>>);

impl Default for EventFeed {
    fn default() -> Self {
        Self(broadcast::channel(FEED_CAPACITY).0)
    }
}

impl EventFeed {
    /// Hands persisted events to every subscriber. Nothing is copied when nobody listens, so
    /// the feed costs the hot path nothing until a console connects.
    pub fn publish(&self, events: &[Envelope<Event>]) {
        if self.0.receiver_count() == 0 {
            return;
        }
        for event in events {
            // Only fails when the last subscriber left meanwhile.
            let _ = self.0.send(Arc::new(event.clone()));
        }
    }

    /// A new subscriber: it sees events persisted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope<Event>>> {
        self.0.subscribe()
    }
}
