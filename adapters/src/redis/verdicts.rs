//! Verdicts of commands sent back to the node whose caller waits (a REST, console or MCP command
//! that arrived at a node not running its conversation), over Redis pub/sub: one channel per node,
//! `<prefix>verdicts:<node>`. Pub/sub keeps nothing: a verdict published while its node is away
//! is lost, and the caller there has timed out (503) anyway. On a Redis Cluster a message
//! published on any node reaches the subscribers of every node (classic, not sharded, pub/sub),
//! so the subscription is a plain connection to one seed node, the next one if it fails.

use super::shared::Shared;
use super::{IO, OP_TIMEOUT, Pool};
use async_trait::async_trait;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::sync::Mutex;
use std::time::Duration;
use switchboard_actors::conversation::ProcessResult;
use switchboard_actors::ports::{Verdict, Verdicts};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Verdicts waiting to be handed out before the node drops new ones (its callers are slow).
const BACKLOG: usize = 4096;

/// A verdict on the wire, as published (borrowed) and as received (owned).
#[derive(Serialize, Deserialize)]
struct Wire<R> {
    event_id: Uuid,
    result: R,
}

/// Verdicts on Redis pub/sub.
pub struct RedisVerdicts {
    conn: Shared,
    prefix: String,
    node: String,
    incoming: Mutex<Option<mpsc::Receiver<Verdict>>>,
}

impl RedisVerdicts {
    /// Subscribes to this node's channel (on its own connection to `url`, or to the first node
    /// of a comma-separated Cluster list that answers; re-made if it breaks) and publishes on the
    /// shared connections of `pool`.
    pub fn start(pool: Pool, url: String, prefix: &str, node: String) -> Self {
        let (tx, rx) = mpsc::channel(BACKLOG);
        let channel = channel(prefix, &node);
        let urls = super::cluster_seeds(&url).into_iter().map(str::to_owned).collect();
        IO.spawn(subscribe(urls, channel, tx));
        Self { conn: Shared::new(pool), prefix: prefix.to_owned(), node, incoming: Mutex::new(Some(rx)) }
    }
}

fn channel(prefix: &str, node: &str) -> String {
    format!("{prefix}verdicts:{node}")
}

/// Receives this node's verdicts until the hub stops listening.
async fn subscribe(urls: Vec<String>, channel: String, tx: mpsc::Sender<Verdict>) {
    for url in urls.iter().cycle() {
        let connected = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(OP_TIMEOUT, connected).await {
            Ok(Ok(mut pubsub)) => {
                let mut messages = pubsub.on_message();
                while let Some(msg) = messages.next().await {
                    let Ok(payload) = msg.get_payload::<Vec<u8>>() else { continue };
                    match serde_json::from_slice::<Wire<ProcessResult>>(&payload) {
                        Ok(wire) => {
                            if tx.try_send((wire.event_id, wire.result)).is_err() && tx.is_closed() {
                                return;
                            }
                        }
                        Err(e) => tracing::warn!(%channel, error = %e, "unreadable verdict dropped"),
                    }
                }
                tracing::warn!(%channel, "verdict subscription lost; subscribing again");
            }
            Ok(Err(e)) => tracing::warn!(%channel, error = %e, "cannot subscribe to verdicts; retrying"),
            Err(_) => tracing::warn!(%channel, "cannot subscribe to verdicts within {OP_TIMEOUT:?}; retrying"),
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[async_trait]
impl Verdicts for RedisVerdicts {
    fn origin(&self) -> Option<String> {
        Some(self.node.clone())
    }

    async fn send(&self, origin: &str, verdict: &Verdict) {
        let wire = Wire { event_id: verdict.0, result: &verdict.1 };
        let Ok(payload) = serde_json::to_vec(&wire) else { return };
        let publish = async {
            let mut conn = self.conn.get().await?;
            redis::cmd("PUBLISH")
                .arg(channel(&self.prefix, origin))
                .arg(payload)
                .query_async::<i64>(&mut conn)
                .await
                .map_err(|e| e.to_string())
        };
        if let Err(e) = publish.await {
            tracing::warn!(%origin, event_id = %verdict.0, error = %e, "verdict not sent; the caller there times out");
        }
    }

    fn incoming(&self) -> Option<mpsc::Receiver<Verdict>> {
        self.incoming.lock().ok()?.take()
    }
}
