//! Several `switchboard` processes on one Redis (a single server or a 3-master Redis Cluster),
//! with fakes of the WhatsApp Graph API and an instant echoing model: the rig of the multi-node
//! tests and of the failover benchmark. Nodes can be killed (SIGKILL), stopped (SIGTERM) and
//! restarted under the same node id.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::fakes::openai::{FakeOpenAi, Mode};
use crate::fakes::whatsapp::FakeGraph;
use crate::loadgen::hub::{HubProcess, HubSpec, MemProbe};
use crate::loadgen::rig::{ACCESS_TOKEN, APP_SECRET, PHONE_NUMBER_ID};
use crate::payloads::{wa_sign, wa_text};
use crate::redis_cluster::RedisCluster;
use crate::redis_server::RedisServer;

/// How to build the cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The `switchboard` binary.
    pub bin: PathBuf,
    /// The repository root (for `config/default.toml`).
    pub workdir: PathBuf,
    /// Where the nodes' logs go (`node-<i>.log`, every life of node `i` in one file).
    pub log_dir: PathBuf,
    /// Nodes started at once.
    pub nodes: usize,
    /// Bus partitions.
    pub partitions: u32,
    /// Lease TTL and heartbeat (ms).
    pub lease_ttl_ms: u64,
    /// Heartbeat (ms).
    pub heartbeat_ms: u64,
    /// Extra `redis-server` arguments (e.g. AOF); single server only.
    pub redis_args: Vec<String>,
    /// The nodes share a 3-master Redis Cluster instead of one `redis-server`.
    pub redis_cluster: bool,
}

/// The Redis the nodes share.
pub enum SharedRedis {
    /// One `redis-server`.
    Single(RedisServer),
    /// A Redis Cluster.
    Cluster(RedisCluster),
}

impl SharedRedis {
    /// The hub's `backend.redis.url` (comma-separated node URLs for a Cluster).
    pub fn url(&self) -> String {
        match self {
            Self::Single(server) => server.url().to_owned(),
            Self::Cluster(cluster) => cluster.url(),
        }
    }

    /// The key prefix of this run.
    pub fn prefix(&self) -> &str {
        match self {
            Self::Single(server) => server.prefix(),
            Self::Cluster(cluster) => cluster.prefix(),
        }
    }

    /// The one `redis-server` (to kill and restart it, say); `None` for a Cluster.
    pub fn single_mut(&mut self) -> Option<&mut RedisServer> {
        match self {
            Self::Single(server) => Some(server),
            Self::Cluster(_) => None,
        }
    }

    /// Whether it is a Redis Cluster (the hub's `backend.redis.cluster`).
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// The running cluster; everything stops when it is dropped.
pub struct Cluster {
    /// The shared Redis.
    pub redis: SharedRedis,
    /// Where replies go.
    pub graph: FakeGraph,
    /// The model (echo, instant).
    pub openai: FakeOpenAi,
    spec: ClusterSpec,
    nodes: Vec<Option<HubProcess>>,
}

impl Cluster {
    /// Starts Redis, the fakes and `spec.nodes` nodes, and waits until each answers `/healthz`.
    pub async fn start(spec: ClusterSpec) -> Result<Cluster> {
        let args: Vec<&str> = spec.redis_args.iter().map(String::as_str).collect();
        // A server of its own even when SWITCHBOARD_TEST_REDIS_URL is set: nodes get killed and
        // the test may restart Redis.
        let redis = if spec.redis_cluster {
            SharedRedis::Cluster(RedisCluster::start().context("starting a redis cluster")?)
        } else if args.is_empty() {
            SharedRedis::Single(RedisServer::start_with(&["--save", ""]).context("starting redis-server")?)
        } else {
            SharedRedis::Single(RedisServer::start_with(&args).context("starting redis-server")?)
        };
        let graph = FakeGraph::start(ACCESS_TOKEN).await.context("starting the fake Graph API")?;
        let openai = FakeOpenAi::start().await.context("starting the fake model")?;
        openai.recorder().set_enabled(false);
        openai.set_mode(Mode::Echo { delay: Duration::ZERO });
        let mut cluster = Cluster { redis, graph, openai, nodes: Vec::new(), spec };
        for i in 0..cluster.spec.nodes {
            // A node's log is appended to across restarts: start each run with none.
            let _ = std::fs::remove_file(cluster.hub_spec(i).log);
            cluster.nodes.push(None);
            cluster.restart(i).await?;
        }
        Ok(cluster)
    }

    fn hub_spec(&self, i: usize) -> HubSpec {
        let s = &self.spec;
        let env = [
            ("WHATSAPP_ACCESS_TOKEN", ACCESS_TOKEN.to_owned()),
            ("WHATSAPP_APP_SECRET", APP_SECRET.to_owned()),
            ("WHATSAPP_VERIFY_TOKEN", "v".to_owned()),
            ("WHATSAPP_PHONE_NUMBER_ID", PHONE_NUMBER_ID.to_owned()),
            ("WHATSAPP_GRAPH_URL", self.graph.base_url()),
            ("OPENAI_API_KEY", "test".to_owned()),
            ("OPENAI_BASE_URL", self.openai.base_url()),
            ("OPENAI_MODEL", "test-model".to_owned()),
            ("RUST_LOG", "warn,switchboard_adapters::redis=info,switchboard_actors::consumer=debug".to_owned()),
            ("SWITCHBOARD__TENANTS__DEMO__ENTRY", "ai".to_owned()),
            ("SWITCHBOARD__TENANTS__DEMO__AI__RATE_PER_SECOND", "1000000".to_owned()),
            ("SWITCHBOARD__TENANTS__DEMO__WHATSAPP__MAIN__RATE_PER_SECOND", "1000000".to_owned()),
            ("SWITCHBOARD__BACKEND__KIND", "redis".to_owned()),
            ("SWITCHBOARD__BACKEND__PARTITIONS", s.partitions.to_string()),
            ("SWITCHBOARD__BACKEND__REDIS__URL", self.redis.url()),
            ("SWITCHBOARD__BACKEND__REDIS__CLUSTER", self.redis.is_cluster().to_string()),
            ("SWITCHBOARD__BACKEND__REDIS__PREFIX", self.redis.prefix().to_owned()),
            ("SWITCHBOARD__BACKEND__REDIS__NODE_ID", format!("node-{i}")),
            ("SWITCHBOARD__BACKEND__REDIS__LEASE_TTL_MS", s.lease_ttl_ms.to_string()),
            ("SWITCHBOARD__BACKEND__REDIS__HEARTBEAT_MS", s.heartbeat_ms.to_string()),
        ];
        HubSpec {
            bin: s.bin.clone(),
            workdir: s.workdir.clone(),
            env: env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
            log: s.log_dir.join(format!("node-{i}.log")),
            port: None,
        }
    }

    /// (Re)starts node `i` (same node id, a new port) and waits until it is healthy.
    pub async fn restart(&mut self, i: usize) -> Result<()> {
        let mut hub = HubProcess::spawn(&self.hub_spec(i))?;
        hub.wait_healthy(Duration::from_secs(30)).await?;
        self.nodes[i] = Some(hub);
        Ok(())
    }

    /// `http://…` of node `i`, while it runs.
    pub fn url(&self, i: usize) -> Option<String> {
        self.nodes.get(i)?.as_ref().map(|n| n.base_url().to_owned())
    }

    /// The running nodes' indexes.
    pub fn running(&self) -> Vec<usize> {
        (0..self.nodes.len()).filter(|&i| self.nodes[i].is_some()).collect()
    }

    /// Where node `i`'s resident memory is read from, while it runs (the probe answers
    /// nothing once the node is gone).
    pub fn mem_probe(&self, i: usize) -> Option<MemProbe> {
        self.nodes.get(i)?.as_ref().map(HubProcess::mem_probe)
    }

    /// SIGKILL: the node dies without handing anything over.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut node) = self.nodes[i].take() {
            node.kill();
        }
    }

    /// SIGTERM: a graceful stop; returns the exit code.
    pub async fn terminate(&mut self, i: usize, timeout: Duration) -> Result<Option<i32>> {
        let mut node = self.nodes[i].take().context("node not running")?;
        node.terminate(timeout).await
    }

    /// A node's `/metrics` samples.
    pub async fn metrics(&self, i: usize) -> Result<std::collections::BTreeMap<String, f64>> {
        self.nodes[i].as_ref().context("node not running")?.metrics().await
    }
}

/// Posts a WhatsApp message (`text` from `phone`, provider id `wamid`), signed, to node
/// `first` of `urls`, moving on to the next ones when a node refuses or is gone, as a provider
/// behind a load balancer retries; true once a node answered 200.
pub async fn post_whatsapp(
    http: &reqwest::Client,
    urls: &[String],
    first: usize,
    phone: &str,
    wamid: &str,
    text: &str,
) -> bool {
    post_whatsapp_observed(http, urls, first, phone, wamid, text, |_| {}).await
}

/// [`post_whatsapp`], telling `refused` of every attempt not accepted: the status a node
/// answered with, or `None` when none answered (the node is gone).
pub async fn post_whatsapp_observed(
    http: &reqwest::Client,
    urls: &[String],
    first: usize,
    phone: &str,
    wamid: &str,
    text: &str,
    mut refused: impl FnMut(Option<reqwest::StatusCode>),
) -> bool {
    let body = wa_text(PHONE_NUMBER_ID, phone, wamid, text);
    let signature = wa_sign(APP_SECRET, body.as_bytes());
    for attempt in 0..40 {
        let url = &urls[(first + attempt) % urls.len()];
        let sent = http
            .post(format!("{url}/webhooks/whatsapp"))
            .header("content-type", "application/json")
            .header("x-hub-signature-256", &signature)
            .body(body.clone())
            .send()
            .await;
        match sent {
            Ok(answer) if answer.status().is_success() => return true,
            Ok(answer) => refused(Some(answer.status())),
            Err(_) => refused(None),
        }
        tokio::time::sleep(Duration::from_millis(50 * (attempt as u64 + 1).min(10))).await;
    }
    false
}
