//! Grouping of independent script calls. Items that arrive while an earlier call is on its way to
//! Redis wait, and then go together in one call: one per partition on a Redis Cluster (a script
//! stays in one slot), one in all on a single server. Alone, an item waits for nothing more than
//! before: it goes as soon as no call is in flight.
//!
//! Why: the fixed costs of a call (a trip through the client's connection task, Lua's set-up in
//! Redis, a socket write and read on each side) were most of what Redis mode spent per message.
//! Under load the items of many conversations now share them.

use super::shared::Shared;
use futures_util::future::join_all;
use std::collections::BTreeMap;
use tokio::sync::{mpsc, oneshot};

type Answer<O> = oneshot::Sender<Result<O, String>>;

/// A queue of items, served by one task on the Redis IO runtime; the task ends with the batcher.
pub(super) struct Batcher<I, O> {
    items: mpsc::UnboundedSender<(I, Answer<O>)>,
}

impl<I: Send + 'static, O: Send + 'static> Batcher<I, O> {
    /// Calls `call` with at most `max` items at a time (all of one partition, as `partition`
    /// tells, on a cluster connection); it answers for each item, in order.
    pub fn start<C, F>(conn: Shared, max: usize, partition: fn(&I) -> u32, call: C) -> Self
    where
        C: Fn(Shared, Vec<I>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<Vec<O>, String>> + Send + 'static,
    {
        let (items, queue) = mpsc::unbounded_channel();
        super::IO.spawn(serve(conn, max.max(1), partition, call, queue));
        Self { items }
    }

    /// Sends `item` with whatever else waits, and returns once Redis answered for it.
    pub async fn submit(&self, item: I) -> Result<O, String> {
        let (answer, answered) = oneshot::channel();
        self.items.send((item, answer)).map_err(|_| "the redis batcher stopped".to_owned())?;
        answered.await.map_err(|_| "the redis batcher stopped".to_owned())?
    }
}

async fn serve<I, O, C, F>(
    conn: Shared,
    max: usize,
    partition: fn(&I) -> u32,
    call: C,
    mut queue: mpsc::UnboundedReceiver<(I, Answer<O>)>,
) where
    C: Fn(Shared, Vec<I>) -> F,
    F: Future<Output = Result<Vec<O>, String>>,
{
    let mut batch = Vec::with_capacity(max);
    while queue.recv_many(&mut batch, max).await > 0 {
        let items = std::mem::take(&mut batch);
        if conn.is_cluster() {
            let mut slots: BTreeMap<u32, Vec<(I, Answer<O>)>> = BTreeMap::new();
            for (item, answer) in items {
                slots.entry(partition(&item)).or_default().push((item, answer));
            }
            join_all(slots.into_values().map(|items| answer_all(&conn, &call, items))).await;
        } else {
            answer_all(&conn, &call, items).await;
        }
    }
}

/// One call for `items`; each caller gets its item's result, or the call's error.
async fn answer_all<I, O, C, F>(conn: &Shared, call: &C, items: Vec<(I, Answer<O>)>)
where
    C: Fn(Shared, Vec<I>) -> F,
    F: Future<Output = Result<Vec<O>, String>>,
{
    let (items, answers): (Vec<I>, Vec<Answer<O>>) = items.into_iter().unzip();
    let count = items.len();
    match call(conn.clone(), items).await {
        Ok(results) if results.len() == count => {
            for (answer, result) in answers.into_iter().zip(results) {
                let _ = answer.send(Ok(result));
            }
        }
        Ok(results) => {
            let why = format!("redis answered for {} of {count} items", results.len());
            answers.into_iter().for_each(|a| drop(a.send(Err(why.clone()))));
        }
        Err(why) => answers.into_iter().for_each(|a| drop(a.send(Err(why.clone())))),
    }
}
