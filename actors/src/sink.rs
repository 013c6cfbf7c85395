//! How actors other than the conversation itself (queues, outboxes) talk to a conversation:
//! they submit an input to the bus, so it is ordered with everything else the conversation gets.

use crate::event::{Envelope, Input};
use crate::partition::partition_of;
use crate::ports::Bus;
use futures_util::future::BoxFuture;
use std::sync::Arc;

/// Fire-and-forget delivery of an input to a conversation.
pub trait InputSink: Send + Sync + 'static {
    /// Submits; never blocks the caller.
    fn submit(&self, envelope: Envelope<Input>);

    /// Submits and resolves once the input is durable (or could not be made so, which is
    /// logged): the outbox holds a conversation's lane until its send's result is on the bus, so
    /// a partition handed over never leaves a result behind in this process.
    fn submit_durable(&self, envelope: Envelope<Input>) -> BoxFuture<'static, ()> {
        self.submit(envelope);
        Box::pin(std::future::ready(()))
    }
}

/// Submits through the bus, waiting for room (internal events are never shed: they were caused
/// by work already acknowledged).
pub struct BusSink(pub Arc<dyn Bus>);

impl InputSink for BusSink {
    fn submit(&self, envelope: Envelope<Input>) {
        tokio::spawn(self.submit_durable(envelope));
    }

    fn submit_durable(&self, envelope: Envelope<Input>) -> BoxFuture<'static, ()> {
        let bus = self.0.clone();
        let partition = partition_of(envelope.conversation_id.as_str(), bus.partitions());
        Box::pin(async move {
            let kind = envelope.body.type_name();
            if let Err(e) = bus.publish(partition, envelope, true).await {
                tracing::error!(error = %e, kind, "internal event could not be published");
            }
        })
    }
}
