//! One multiplexed connection per thread for every non-blocking command of a component, shared
//! by all the requests of that thread (Redis pipelines them on one socket). Checking a connection
//! out of the deadpool-redis pool costs a round trip (it sends `UNWATCH` + `PING` first), which
//! doubled the round trips of the hot path; this opens a connection once per thread and opens a
//! fresh one after an error that means the socket is gone.
//!
//! Per thread, because a multiplexed connection's driver is a task on the runtime that opened
//! it: a connection opened on the IO runtime made every command wake the IO thread, and every
//! reply wake the caller's thread again, about ten thread wake-ups per message answered. Opened
//! by the thread that uses it, on that thread's runtime, the command, the socket and the reply
//! stay on one thread. Each thread's connection dies with its runtime (an HTTP worker's at
//! shutdown), and only that thread's tasks use it. On a Redis Cluster it is one cluster
//! connection (one socket per master) per component, on the IO runtime, as before.

use super::OP_TIMEOUT;
use super::connection::{Conn, Pool};
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::ThreadId;

/// Whose connection: a thread's, or (`None`) every thread's on a Cluster.
type Slot = Option<ThreadId>;

/// The shared connections of one component, one per thread; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    pool: Pool,
    slots: Arc<Mutex<HashMap<Slot, Conn>>>,
}

impl Shared {
    /// Connections come from `pool` (one per thread, kept until it breaks).
    pub fn new(pool: Pool) -> Self {
        Self { pool, slots: Arc::default() }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<Slot, Conn>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// This thread's connection, opened when it has none (or its last one broke). On a Cluster
    /// every thread shares the component's one connection.
    pub async fn get(&self) -> Result<SharedConn, String> {
        let key = if self.pool.is_cluster() { None } else { Some(std::thread::current().id()) };
        let cached = self.slots().get(&key).cloned();
        let conn = match cached {
            Some(conn) => conn,
            None => {
                let conn = self.pool.here().await?;
                self.slots().insert(key, conn.clone());
                conn
            }
        };
        Ok(SharedConn { conn, key, slots: self.slots.clone() })
    }

    /// Whether commands go to a Redis Cluster (where a pipeline must stay within one slot).
    pub fn is_cluster(&self) -> bool {
        self.pool.is_cluster()
    }
}

/// A handle on a shared connection; forgets it (for every task of its thread) when a command
/// finds it broken.
pub struct SharedConn {
    conn: Conn,
    key: Slot,
    slots: Arc<Mutex<HashMap<Slot, Conn>>>,
}

impl SharedConn {
    fn check<T>(&self, result: &Result<T, RedisError>) {
        if let Err(e) = result
            && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout())
        {
            self.slots.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
        }
    }
}

/// A command on the shared connection that gets no answer within [`OP_TIMEOUT`] fails (and
/// `check` then replaces the connection): a socket that stopped answering must not hold every
/// caller forever.
async fn answered<T>(request: impl Future<Output = Result<T, RedisError>>) -> Result<T, RedisError> {
    tokio::time::timeout(OP_TIMEOUT, request).await.unwrap_or_else(|_| {
        tracing::warn!("redis did not answer within {OP_TIMEOUT:?}; replacing the shared connection");
        Err(RedisError::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("redis did not answer within {OP_TIMEOUT:?}"),
        )))
    })
}

impl ConnectionLike for SharedConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move {
            let result = answered(self.conn.req_packed_command(cmd)).await;
            self.check(&result);
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            let result = answered(self.conn.req_packed_commands(cmd, offset, count)).await;
            self.check(&result);
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redis::{RedisSettings, connect};
    use std::time::Duration;
    use switchboard_load_tests::redis_server::RedisServer;

    async fn shared_on(server: &RedisServer) -> Shared {
        let settings = RedisSettings {
            url: server.url().into(),
            cluster: false,
            prefix: server.prefix().into(),
            partitions: 1,
            pool_size: 2,
        };
        Shared::new(connect(&settings, Duration::from_secs(2)).await.unwrap())
    }

    #[tokio::test]
    async fn one_connection_serves_everyone_and_a_broken_one_is_replaced() {
        let server = RedisServer::start().unwrap();
        let shared = shared_on(&server).await;
        let mut conn = shared.get().await.unwrap();
        let id = || redis::cmd("CLIENT").arg("ID").to_owned();
        let first: i64 = id().query_async(&mut conn).await.unwrap();
        let again: i64 = id().query_async(&mut shared.get().await.unwrap()).await.unwrap();
        assert_eq!(first, again, "the same connection");

        // The server drops it: the next command fails, the one after gets a new connection.
        let mut killer = shared.pool.get().await.unwrap();
        redis::cmd("CLIENT").arg("KILL").arg("ID").arg(first).query_async::<()>(&mut killer).await.unwrap();
        let mut broken = shared.get().await.unwrap();
        let failed = id().query_async::<i64>(&mut broken).await;
        let after: i64 = match failed {
            Ok(_) => panic!("a killed connection cannot answer"),
            Err(_) => id().query_async(&mut shared.get().await.unwrap()).await.unwrap(),
        };
        assert_ne!(after, first, "a fresh connection after the broken one");
    }

    #[tokio::test]
    async fn each_thread_has_its_own_connection_and_one_that_stopped_breaks_no_other() {
        let server = RedisServer::start().unwrap();
        let shared = shared_on(&server).await;
        let id = || redis::cmd("CLIENT").arg("ID").to_owned();
        let here: i64 = id().query_async(&mut shared.get().await.unwrap()).await.unwrap();

        // Another thread with a runtime of its own, like an HTTP worker that stops at shutdown.
        let other = shared.clone();
        let there: i64 = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async move { id().query_async(&mut other.get().await.unwrap()).await.unwrap() })
        })
        .join()
        .unwrap();
        assert_ne!(here, there, "the other thread opened a connection of its own");

        // That thread and its runtime are gone; this thread's connection still answers.
        let again: i64 = id().query_async(&mut shared.get().await.unwrap()).await.unwrap();
        assert_eq!(again, here, "this thread keeps its connection");
    }
}
