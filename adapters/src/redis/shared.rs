//! One multiplexed connection for every non-blocking command of a component, shared by all its
//! requests (Redis pipelines them on one socket). Checking a connection out of the deadpool-redis
//! pool costs a round trip (it sends `UNWATCH` + `PING` first), which doubled the round trips of
//! the hot path; this takes one connection out of the pool once, and takes a fresh one after an
//! error that means the socket is gone. On a Redis Cluster it is one cluster connection (one
//! socket per master), opened for this component.

use super::OP_TIMEOUT;
use super::connection::{Conn, Pool};
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use std::sync::{Arc, Mutex};

/// The shared connection of one component; cheap to clone.
#[derive(Clone)]
pub struct Shared {
    pool: Pool,
    slot: Arc<Mutex<Option<Conn>>>,
}

impl Shared {
    /// Connections come from `pool` (one at a time, kept until it breaks).
    pub fn new(pool: Pool) -> Self {
        Self { pool, slot: Arc::default() }
    }

    /// The shared connection, taken from the pool when there is none (or the last one broke).
    pub async fn get(&self) -> Result<SharedConn, String> {
        let cached = self.slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let conn = match cached {
            Some(conn) => conn,
            None => {
                let conn = self.pool.detached().await?;
                *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(conn.clone());
                conn
            }
        };
        Ok(SharedConn { conn, slot: self.slot.clone() })
    }

    /// Whether commands go to a Redis Cluster (where a pipeline must stay within one slot).
    pub fn is_cluster(&self) -> bool {
        self.pool.is_cluster()
    }
}

/// A handle on the shared connection; forgets it for everyone when a command finds it broken.
pub struct SharedConn {
    conn: Conn,
    slot: Arc<Mutex<Option<Conn>>>,
}

impl SharedConn {
    fn check<T>(&self, result: &Result<T, RedisError>) {
        if let Err(e) = result
            && (e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout())
        {
            *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = None;
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

    #[tokio::test]
    async fn one_connection_serves_everyone_and_a_broken_one_is_replaced() {
        let server = RedisServer::start().unwrap();
        let settings = RedisSettings {
            url: server.url().into(),
            cluster: false,
            prefix: server.prefix().into(),
            partitions: 1,
            pool_size: 2,
        };
        let shared = Shared::new(connect(&settings, Duration::from_secs(2)).await.unwrap());
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
}
