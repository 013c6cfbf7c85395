//! The live feed of what conversations record, one per tenant: consoles and API clients
//! subscribe to see changes as they happen. It is best effort and bounded: a subscriber that
//! falls behind learns how many batches it missed (and re-reads the state it needs); the journal
//! stays the source of truth.

use crate::event::{Envelope, Event};
use crate::state::{ConversationState, Status};
use std::sync::Arc;
use tokio::sync::broadcast;

/// Batches a slow subscriber may lag behind before it misses some.
pub const FEED_CAPACITY: usize = 4096;

/// What one conversation persisted in one journal write, with where it stood before and after:
/// a subscriber decides who may see the events from both (a conversation transferred out of a
/// queue must still reach that queue's agents, so they drop it).
#[derive(Debug)]
pub struct FeedBatch {
    /// The events, in journal order.
    pub events: Vec<Envelope<Event>>,
    /// Status before the first of them.
    pub before: Status,
    /// The conversation after the last of them (shared with the actor, copy-on-write).
    pub state: Arc<ConversationState>,
}

/// One tenant's feed; cheap to clone.
#[derive(Clone, Debug)]
pub struct EventFeed(broadcast::Sender<Arc<FeedBatch>>);

impl Default for EventFeed {
    fn default() -> Self {
        Self(broadcast::channel(FEED_CAPACITY).0)
    }
}

impl EventFeed {
    /// Whether anyone listens; when nobody does, the actor need not prepare a batch.
    pub fn is_live(&self) -> bool {
        self.0.receiver_count() > 0
    }

    /// Hands a persisted batch to every subscriber.
    pub fn publish(&self, batch: FeedBatch) {
        // Only fails when the last subscriber left meanwhile.
        let _ = self.0.send(Arc::new(batch));
    }

    /// A new subscriber: it sees batches persisted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<FeedBatch>> {
        self.0.subscribe()
    }
}
