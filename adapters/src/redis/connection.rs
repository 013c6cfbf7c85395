//! Connections to either deployment: one Redis server (a deadpool of multiplexed connections) or
//! a Redis Cluster (redis's cluster client, which sends each command to the master of its key's
//! slot and follows `MOVED`/`ASK`). Components ask for the kind of connection they need, never
//! for a kind of server:
//!
//! - [`Pool::get`]: a connection for a few commands (lease scripts, claims, pings), opened on
//!   the Redis IO runtime (see `IO` in `mod.rs`).
//! - [`Pool::here`]: a connection for the hot path, opened on the caller's own runtime (see
//!   `shared`): its driver then runs on the thread that sends the commands and awaits the
//!   replies, so a command costs no wake-up of another thread on the way out and none back.
//! - [`Pool::blocking`]: a connection of its own for a blocking read of one key, on the caller's
//!   runtime too. On a Cluster a blocked `XREADGROUP` would stall every command queued behind it
//!   on the shared socket to that node, so the reader gets a plain connection straight to the
//!   master serving the key.

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, Pipeline, RedisFuture, Value};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{IO, OP_TIMEOUT};

/// Where commands go: one Redis server or a Redis Cluster. Cheap to clone.
#[derive(Clone)]
pub enum Pool {
    /// One server: a deadpool of connections, and the client that opens connections elsewhere.
    Single(deadpool_redis::Pool, Arc<redis::Client>),
    /// A Redis Cluster.
    Cluster(Arc<ClusterPool>),
}

/// A Redis Cluster's client, its seed nodes, and the connection [`Pool::get`] hands out.
pub struct ClusterPool {
    client: ClusterClient,
    /// The seed nodes as given (`host:port`) with how to log in, for direct connections.
    seeds: Vec<ConnectionInfo>,
    timeout: Duration,
    /// Opened at the first `get`; it reconnects to nodes by itself, so it is kept for good.
    shared: Mutex<Option<ClusterConnection>>,
}

/// A connection of either kind; every command goes through [`ConnectionLike`].
pub enum Conn {
    /// Checked out of the single server's pool (returned to it on drop).
    Pooled(deadpool_redis::Connection),
    /// A connection of its own to one server (or one Cluster node).
    Multiplexed(MultiplexedConnection),
    /// A Cluster connection: commands are routed by key.
    Cluster(ClusterConnection),
}

impl Clone for Conn {
    /// A pooled connection is not shared: its clone is a detached handle on the same socket.
    fn clone(&self) -> Self {
        match self {
            Self::Pooled(conn) => Self::Multiplexed(MultiplexedConnection::clone(conn)),
            Self::Multiplexed(conn) => Self::Multiplexed(conn.clone()),
            Self::Cluster(conn) => Self::Cluster(conn.clone()),
        }
    }
}

impl Pool {
    /// A Cluster reached through `seeds` (`redis://host:port` of one or more of its nodes; the
    /// others are discovered). Connecting and each command are bounded by `timeout`.
    pub fn cluster(seeds: &[&str], timeout: Duration) -> Result<Self, String> {
        let infos = seeds
            .iter()
            .map(|url| url.into_connection_info().map_err(|e| e.to_string()))
            .collect::<Result<Vec<_>, _>>()?;
        if infos.is_empty() {
            return Err("no cluster node given".into());
        }
        if let Some(info) = infos.iter().find(|i| !matches!(i.addr, ConnectionAddr::Tcp(..))) {
            return Err(format!("cluster nodes are reached over plain tcp, not {}", info.addr));
        }
        let client = ClusterClient::builder(infos.clone())
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self::Cluster(Arc::new(ClusterPool { client, seeds: infos, timeout, shared: Mutex::default() })))
    }

    /// Whether this is a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }

    /// One server at `url`: a deadpool of `size` connections, each opened within `timeout`
    /// and recycled (waited for) within it too.
    pub fn single(url: &str, size: usize, timeout: Duration) -> Result<Self, String> {
        let mut config = deadpool_redis::Config::from_url(url);
        let mut pool_config = deadpool_redis::PoolConfig::new(size.max(1));
        pool_config.timeouts =
            deadpool_redis::Timeouts { wait: Some(timeout), create: Some(timeout), recycle: Some(timeout) };
        config.pool = Some(pool_config);
        let pool = config.create_pool(Some(deadpool_redis::Runtime::Tokio1)).map_err(|e| e.to_string())?;
        let client = redis::Client::open(url).map_err(|e| e.to_string())?;
        Ok(Self::Single(pool, Arc::new(client)))
    }

    /// A connection for a few commands.
    pub async fn get(&self) -> Result<Conn, String> {
        match self {
            Self::Single(pool, _) => {
                let pool = pool.clone();
                on_io(async move { pool.get().await.map_err(|e| e.to_string()) }).await.map(Conn::Pooled)
            }
            Self::Cluster(cluster) => {
                let cached = cluster.shared.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let conn = match cached {
                    Some(conn) => conn,
                    None => {
                        let conn = cluster.open().await?;
                        *cluster.shared.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn.clone());
                        conn
                    }
                };
                Ok(Conn::Cluster(conn))
            }
        }
    }

    /// A connection of its own, opened on the caller's runtime (a Cluster connection still on
    /// the IO runtime): only tasks of the runtime that opened it may keep using it, because it
    /// dies with that runtime.
    pub(crate) async fn here(&self) -> Result<Conn, String> {
        match self {
            Self::Single(_, client) => {
                let timeout = OP_TIMEOUT;
                let opened = tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await;
                let conn = opened
                    .map_err(|_| format!("redis did not accept a connection within {timeout:?}"))?
                    .map_err(|e| e.to_string())?;
                Ok(Conn::Multiplexed(conn))
            }
            Self::Cluster(cluster) => cluster.open().await.map(Conn::Cluster),
        }
    }

    /// A connection of its own for blocking reads of `key`, and on a Cluster the node
    /// (`host:port`) it is connected to, so that [`on_node`](Self::on_node) can reach it.
    pub(crate) async fn blocking(&self, key: &str) -> Result<(MultiplexedConnection, Option<String>), String> {
        match self {
            Self::Single(..) => match self.here().await? {
                Conn::Multiplexed(conn) => Ok((conn, None)),
                _ => Err("a single server gave no plain connection".into()),
            },
            Self::Cluster(cluster) => cluster.serving(key).await.map(|(conn, node)| (conn, Some(node))),
        }
    }

    /// `cmd` on Cluster node `node` (`host:port`), on a connection opened for it.
    pub(crate) async fn on_node(&self, node: &str, cmd: &Cmd) -> Result<Value, String> {
        let Self::Cluster(cluster) = self else { return Err("not a cluster".into()) };
        let mut conn = cluster.node(node).await?;
        cmd.query_async(&mut conn).await.map_err(|e| e.to_string())
    }
}

impl ClusterPool {
    /// A new Cluster connection (it learns the slot map from the seeds).
    async fn open(&self) -> Result<ClusterConnection, String> {
        let client = self.client.clone();
        on_io(async move { client.get_async_connection().await.map_err(|e| e.to_string()) }).await
    }

    /// A plain connection to node `addr` (`host:port`), logged in as the seeds are.
    async fn node(&self, addr: &str) -> Result<MultiplexedConnection, String> {
        let (host, port) = addr.rsplit_once(':').ok_or_else(|| format!("cluster node {addr:?} has no port"))?;
        let port = port.parse().map_err(|_| format!("cluster node {addr:?}: bad port"))?;
        let info =
            ConnectionInfo { addr: ConnectionAddr::Tcp(host.to_owned(), port), redis: self.seeds[0].redis.clone() };
        let client = redis::Client::open(info).map_err(|e| e.to_string())?;
        let (timeout, addr) = (self.timeout, addr.to_owned());
        on_io(async move {
            let opened = tokio::time::timeout(timeout, client.get_multiplexed_async_connection()).await;
            opened
                .map_err(|_| format!("cluster node {addr} did not answer within {timeout:?}"))?
                .map_err(|e| e.to_string())
        })
        .await
    }

    /// A plain connection to the master that serves `key`: tried on a seed, then wherever the
    /// `MOVED` answer points (a harmless `EXISTS` asks).
    async fn serving(&self, key: &str) -> Result<(MultiplexedConnection, String), String> {
        let mut last_error = String::new();
        let mut candidates: Vec<String> = self.seeds.iter().map(|i| i.addr.to_string()).collect();
        let mut hops = 0;
        while let Some(addr) = candidates.first().cloned() {
            let mut conn = match self.node(&addr).await {
                Ok(conn) => conn,
                Err(e) => {
                    // A seed that is down: the next one.
                    last_error = e;
                    candidates.remove(0);
                    continue;
                }
            };
            match redis::cmd("EXISTS").arg(key).query_async::<i64>(&mut conn).await {
                Ok(_) => return Ok((conn, addr)),
                Err(e) => match e.redirect_node() {
                    Some((to, _slot)) if hops < 5 => {
                        hops += 1;
                        candidates.insert(0, to.to_owned());
                        candidates.retain_mut(|c| *c != addr);
                    }
                    _ => return Err(e.to_string()),
                },
            }
        }
        Err(format!("no cluster node serves {key}: {last_error}"))
    }
}

/// `op` on the Redis IO runtime, so that the connection it opens outlives the caller's runtime.
async fn on_io<T: Send + 'static>(op: impl Future<Output = Result<T, String>> + Send + 'static) -> Result<T, String> {
    IO.spawn(op).await.map_err(|e| format!("redis-io runtime: {e}"))?
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Pooled(conn) => conn.req_packed_command(cmd),
            Self::Multiplexed(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Pooled(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Multiplexed(conn) => conn.req_packed_commands(cmd, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Pooled(conn) => conn.get_db(),
            Self::Multiplexed(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}
