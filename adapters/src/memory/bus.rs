//! In-memory bus: one bounded channel per partition. "Durable" here means "in the channel":
//! a webhook is acknowledged once its event is queued in this process.

use async_trait::async_trait;
use std::sync::atomic::{AtomicU64, Ordering};
use switchboard_actors::event::{Envelope, Input};
use switchboard_actors::ports::{Bus, BusError, Delivery};
use tokio::sync::{Mutex, mpsc};

struct Partition {
    tx: mpsc::Sender<Delivery>,
    rx: Mutex<mpsc::Receiver<Delivery>>,
}

/// Partitioned bounded queues.
pub struct MemoryBus {
    partitions: Vec<Partition>,
    next_id: AtomicU64,
}

impl MemoryBus {
    /// `partitions` queues of `capacity` events each.
    pub fn new(partitions: u32, capacity: usize) -> Self {
        let partitions = (0..partitions.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(capacity.max(1));
                Partition { tx, rx: Mutex::new(rx) }
            })
            .collect();
        Self { partitions, next_id: AtomicU64::new(1) }
    }

    fn partition(&self, p: u32) -> Result<&Partition, BusError> {
        self.partitions.get(p as usize).ok_or(BusError::Closed)
    }
}

#[async_trait]
impl Bus for MemoryBus {
    fn partitions(&self) -> u32 {
        self.partitions.len() as u32
    }

    async fn publish(&self, partition: u32, envelope: Envelope<Input>, wait: bool) -> Result<(), BusError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        let delivery = Delivery { id, envelope };
        let tx = &self.partition(partition)?.tx;
        if wait {
            return tx.send(delivery).await.map_err(|_| BusError::Closed);
        }
        tx.try_send(delivery).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => BusError::Full { partition },
            mpsc::error::TrySendError::Closed(_) => BusError::Closed,
        })
    }

    fn held_here(&self, partition: u32) -> usize {
        self.partition(partition).map_or(0, |p| p.tx.max_capacity() - p.tx.capacity())
    }

    async fn next_batch(&self, partition: u32, max: usize) -> Result<Vec<Delivery>, BusError> {
        let mut rx = self.partition(partition)?.rx.lock().await;
        let mut batch = Vec::with_capacity(max.min(64));
        if rx.recv_many(&mut batch, max.max(1)).await == 0 {
            return Err(BusError::Closed);
        }
        Ok(batch)
    }

    async fn ack(&self, _partition: u32, _ids: &[String]) -> Result<(), BusError> {
        // Nothing to acknowledge: a delivery left the channel when it was read.
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_actors::domain::{AgentId, ConversationId, TenantId};

    fn env(n: u32) -> Envelope<Input> {
        Envelope::new(
            TenantId::new("t"),
            ConversationId::new("c"),
            "trace",
            u64::from(n),
            Input::AgentReply { agent: AgentId::new("a"), body: n.to_string() },
        )
    }

    #[tokio::test]
    async fn keeps_order_and_refuses_when_full() {
        let bus = MemoryBus::new(2, 2);
        bus.publish(1, env(1), false).await.unwrap();
        bus.publish(1, env(2), false).await.unwrap();
        assert!(matches!(bus.publish(1, env(3), false).await, Err(BusError::Full { partition: 1 })));
        let batch = bus.next_batch(1, 10).await.unwrap();
        let order: Vec<u64> = batch.iter().map(|d| d.envelope.occurred_at).collect();
        assert_eq!(order, vec![1, 2]);
        bus.publish(1, env(3), false).await.unwrap();
    }
}
