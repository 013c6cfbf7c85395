//! A throwaway Redis Cluster for tests: three masters (no replicas) on free loopback ports, each
//! in a directory of its own, joined with `redis-cli --cluster create`; killed (and the
//! directories removed) on drop. `redis-cli` comes with Debian's `redis-server` package.

use anyhow::{Context, Result, bail};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::redis_server::{Listen, await_own};

/// Masters started: the fewest `redis-cli --cluster create` accepts.
const MASTERS: usize = 3;

/// A running Redis Cluster.
pub struct RedisCluster {
    nodes: Vec<Child>,
    dirs: Vec<PathBuf>,
    ports: Vec<u16>,
    prefix: String,
}

/// A port nobody listens on now.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl RedisCluster {
    /// Starts three masters, creates the cluster, and waits until every node reports
    /// `cluster_state:ok` (all 16,384 slots served).
    pub fn start() -> Result<Self> {
        // A port free when chosen may be taken before its node binds it (by another test's
        // server or a client connection's ephemeral port): that node exits, and the next
        // attempt takes other ports.
        for _ in 0..5 {
            if let Some(cluster) = Self::start_once()? {
                return Ok(cluster);
            }
        }
        bail!("a redis-server of the cluster lost its port to another process 5 times")
    }

    /// The cluster, or `None` when a node lost its port (see [`Listen::PortLost`]).
    fn start_once() -> Result<Option<Self>> {
        let mut cluster = Self {
            nodes: Vec::new(),
            dirs: Vec::new(),
            ports: Vec::new(),
            prefix: crate::redis_server::unique_prefix(),
        };
        for _ in 0..MASTERS {
            // Two ports each: the client port and the cluster bus port, given explicitly because
            // the default bus port (client port + 10000) may lie beyond 65535 for an ephemeral one.
            let (port, bus) = (free_port()?, free_port()?);
            let dir = std::env::temp_dir().join(format!("switchboard-redis-cluster-{port}-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--cluster-port", &bus.to_string(), "--bind", "127.0.0.1"])
                .args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"])
                .args(["--cluster-node-timeout", "5000", "--save", "", "--appendonly", "no"])
                .args(["--dir", &dir.to_string_lossy()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .context("starting redis-server (install it: apt-get install redis-server)")?;
            cluster.nodes.push(child);
            cluster.dirs.push(dir);
            cluster.ports.push(port);
        }
        for (node, &port) in cluster.nodes.iter_mut().zip(&cluster.ports) {
            if await_own(node, port, Duration::from_secs(20))? == Listen::PortLost {
                return Ok(None);
            }
        }
        let addresses: Vec<String> = cluster.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .context("running redis-cli --cluster create (redis-cli comes with redis-server)")?;
        if !created.status.success() {
            bail!("redis-cli --cluster create failed: {}", String::from_utf8_lossy(&created.stdout));
        }
        for &port in &cluster.ports {
            wait_until(|| cluster_info(port).is_some_and(|i| i.contains("cluster_state:ok")), "cluster_state:ok")?;
        }
        Ok(Some(cluster))
    }

    /// The nodes as the hub's `backend.redis.url` takes them with `cluster = true`:
    /// `redis://127.0.0.1:P1,redis://127.0.0.1:P2,…`.
    pub fn url(&self) -> String {
        self.ports.iter().map(|p| format!("redis://127.0.0.1:{p}")).collect::<Vec<_>>().join(",")
    }

    /// A key prefix of this instance's own.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The masters' client ports.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }
}

/// `CLUSTER INFO` of the node on `port`, through `redis-cli`.
fn cluster_info(port: u16) -> Option<String> {
    let out = Command::new("redis-cli").args(["-p", &port.to_string(), "cluster", "info"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

fn wait_until(mut ready: impl FnMut() -> bool, what: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if ready() {
            return Ok(());
        }
        #[expect(clippy::disallowed_methods, reason = "synchronous test set-up, not an actor or handler")]
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("waited 20 s for {what}")
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        for dir in self.dirs.drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
