//! How actors other than the conversation itself (queues, outboxes) talk to a conversation:
//! they submit an input to the bus, so it is ordered with everything else the conversation gets
//! (a send's result may go straight to its conversation: see `DirectSink`).

use crate::conversation::Handled;
use crate::event::{Envelope, Input};
use crate::metrics::HubMetrics;
use crate::partition::partition_of;
use crate::ports::{Bus, BusError};
use crate::registry::{ConversationRegistry, Deliver};
use actix::Addr;
use std::time::Duration;

/// How long an internal event is retried while the bus is unavailable.
pub const RETRY_FOR: Duration = Duration::from_secs(60);
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
#[derive(Clone)]
pub struct BusSink(pub Arc<dyn Bus>, pub Arc<HubMetrics>);

impl InputSink for BusSink {
    fn submit(&self, envelope: Envelope<Input>) {
        tokio::spawn(self.submit_durable(envelope));
    }

    /// Retries while the bus is unavailable (Redis restarting), for up to [`RETRY_FOR`]: a lost
    /// send result would leave its message looking unsent, and the conversation waiting for it.
    fn submit_durable(&self, envelope: Envelope<Input>) -> BoxFuture<'static, ()> {
        let (bus, metrics) = (self.0.clone(), self.1.clone());
        let partition = partition_of(envelope.conversation_id.as_str(), bus.partitions());
        Box::pin(async move {
            let kind = envelope.body.type_name();
            let give_up = tokio::time::Instant::now() + RETRY_FOR;
            let mut pause = Duration::from_millis(100);
            loop {
                match bus.publish(partition, envelope.clone(), true).await {
                    Ok(()) => return metrics.series.published(partition),
                    Err(e) if !matches!(e, BusError::Closed) && tokio::time::Instant::now() + pause < give_up => {
                        tracing::warn!(error = %e, kind, "internal event not published yet; retrying");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                    Err(e) => {
                        tracing::error!(error = %e, kind, "internal event could not be published");
                        return;
                    }
                }
            }
        })
    }
}

/// Send results go straight to their conversation when it is running on this node, and
/// through the bus otherwise: the conversation journals the result (that write is what makes it
/// durable either way), and the bus round trip (publish, read, acknowledge) is saved. A result
/// the conversation did not journal (not running here any more, the partition on its way out,
/// a refused write) goes through the bus as before, so it reaches whichever node runs the
/// conversation. Other inputs (queue offers…) always go through the bus.
pub struct DirectSink {
    bus: BusSink,
    /// Per partition, set once the hub has started them.
    registries: std::sync::OnceLock<Arc<[Addr<ConversationRegistry>]>>,
    metrics: Arc<HubMetrics>,
}

impl DirectSink {
    /// A sink that uses the bus until [`DirectSink::run_with`] names the registries.
    pub fn new(bus: Arc<dyn Bus>, metrics: Arc<HubMetrics>) -> Self {
        Self { bus: BusSink(bus, metrics.clone()), registries: std::sync::OnceLock::new(), metrics }
    }

    /// The partitions' registries, in partition order.
    pub fn run_with(&self, registries: Arc<[Addr<ConversationRegistry>]>) {
        let _ = self.registries.set(registries);
    }
}

impl InputSink for DirectSink {
    fn submit(&self, envelope: Envelope<Input>) {
        tokio::spawn(self.submit_durable(envelope));
    }

    fn submit_durable(&self, envelope: Envelope<Input>) -> BoxFuture<'static, ()> {
        let registry = match (&envelope.body, self.registries.get()) {
            (Input::OutboundResult { .. }, Some(registries)) if !registries.is_empty() => {
                let p = partition_of(envelope.conversation_id.as_str(), self.bus.0.partitions()) as usize;
                registries[p % registries.len()].clone()
            }
            _ => return self.bus.submit_durable(envelope),
        };
        let (bus, metrics) = (self.bus.clone(), self.metrics.clone());
        Box::pin(async move {
            let direct = Deliver { envelope: envelope.clone(), receipt: None, live_only: true };
            match registry.send(direct).await {
                Ok(Handled { result: Ok(_), .. }) => HubMetrics::inc(&metrics.send_results_direct),
                outcome => {
                    tracing::debug!(conversation = %envelope.conversation_id, ?outcome, "send result goes through the bus");
                    HubMetrics::inc(&metrics.send_results_via_bus);
                    bus.submit_durable(envelope).await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{ConversationId, TenantId};
    use crate::event::SendOutcome;
    use crate::ports::Delivery;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A bus that is down for its first `down` publishes.
    #[derive(Default)]
    struct Flaky {
        down: AtomicU32,
        published: Mutex<Vec<Envelope<Input>>>,
    }

    #[async_trait::async_trait]
    impl Bus for Flaky {
        fn partitions(&self) -> u32 {
            4
        }
        async fn publish(&self, _: u32, envelope: Envelope<Input>, _: bool) -> Result<(), BusError> {
            if self.down.load(Ordering::SeqCst) > 0 {
                self.down.fetch_sub(1, Ordering::SeqCst);
                return Err(BusError::Unavailable("redis restarting".into()));
            }
            self.published.lock().unwrap().push(envelope);
            Ok(())
        }
        async fn next_batch(&self, _: u32, _: usize) -> Result<Vec<Delivery>, BusError> {
            Err(BusError::Closed)
        }
        async fn ack(&self, _: u32, _: &[String]) -> Result<(), BusError> {
            Ok(())
        }
    }

    fn result() -> Envelope<Input> {
        let outcome = SendOutcome::Sent { provider_message_id: "wamid.1".into() };
        Envelope::new(
            TenantId::new("t"),
            ConversationId::new("c"),
            "",
            0,
            Input::OutboundResult { local_id: 1, outcome },
        )
    }

    #[tokio::test(start_paused = true)]
    async fn a_send_result_outlives_a_short_bus_outage() {
        let bus = Arc::new(Flaky { down: AtomicU32::new(5), ..Default::default() });
        BusSink(bus.clone(), Arc::default()).submit_durable(result()).await;
        assert_eq!(bus.published.lock().unwrap().len(), 1, "published once the bus was back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bus_that_stays_down_is_given_up_on_after_a_minute() {
        let bus = Arc::new(Flaky { down: AtomicU32::new(u32::MAX), ..Default::default() });
        let started = tokio::time::Instant::now();
        BusSink(bus.clone(), Arc::default()).submit_durable(result()).await;
        assert!(bus.published.lock().unwrap().is_empty());
        assert!(started.elapsed() <= RETRY_FOR, "bounded: {:?}", started.elapsed());
        assert!(started.elapsed() >= RETRY_FOR - Duration::from_secs(3), "kept trying: {:?}", started.elapsed());
    }
}
