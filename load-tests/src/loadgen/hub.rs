//! The hub under test as a child process: spawn on a free loopback port, wait for `/healthz`,
//! read its VmRSS and `/metrics`, and kill it (also on drop, so an error path never leaks it).
//! Or an already-running deployment ([`HubProcess::external`], `loadgen --target`): then there is
//! no process to watch, and memory comes from its `/metrics` when it exposes
//! `process_resident_memory_bytes` ([`MemProbe`]).

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// How to start the hub.
#[derive(Clone, Debug)]
pub struct HubSpec {
    /// Path of the `switchboard` binary.
    pub bin: PathBuf,
    /// Working directory (the workspace root, for `config/default.toml`).
    pub workdir: PathBuf,
    /// Environment of the child; the parent's environment is not inherited (see `spawn`).
    pub env: Vec<(String, String)>,
    /// File receiving the hub's stdout and stderr.
    pub log: PathBuf,
    /// Loopback port to listen on; a free one when `None`.
    pub port: Option<u16>,
}

/// A running hub; killed when dropped.
pub struct HubProcess {
    child: Option<Child>,
    pid: u32,
    /// A deployment loadgen did not start (`--target`): nothing to kill or watch.
    external: bool,
    base_url: String,
    log: PathBuf,
    http: reqwest::Client,
}

/// Variables passed through from the parent: enough to run a binary, nothing that configures it.
const PASS_THROUGH: &[&str] = &["PATH", "HOME", "LANG", "TZ"];

impl HubProcess {
    /// Starts the hub listening on a free `127.0.0.1` port.
    pub fn spawn(spec: &HubSpec) -> Result<HubProcess> {
        if !spec.bin.is_file() {
            bail!(
                "hub binary {} not found (build it with `cargo build --release -p switchboard` or pass --hub-bin)",
                spec.bin.display()
            );
        }
        // Bind-then-release leaves a tiny race with other processes; acceptable on a test box.
        let port = match spec.port {
            Some(port) => port,
            None => TcpListener::bind("127.0.0.1:0")?.local_addr()?.port(),
        };
        let bind = format!("127.0.0.1:{port}");
        if let Some(dir) = spec.log.parent() {
            std::fs::create_dir_all(dir)?;
        }
        // Appended to: a restarted node keeps its earlier lives' lines.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .with_context(|| format!("opening hub log {}", spec.log.display()))?;
        let mut cmd = Command::new(&spec.bin);
        // A clean environment: stray SWITCHBOARD__*, proxy or provider variables of the shell
        // must not change what is measured.
        cmd.env_clear();
        for key in PASS_THROUGH {
            if let Ok(v) = std::env::var(key) {
                cmd.env(key, v);
            }
        }
        cmd.envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("SWITCHBOARD__SERVER__BIND", &bind)
            .current_dir(&spec.workdir)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        let child = cmd.spawn().with_context(|| format!("spawning {}", spec.bin.display()))?;
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build()?;
        Ok(HubProcess {
            pid: child.id(),
            child: Some(child),
            external: false,
            base_url: format!("http://{bind}"),
            log: spec.log.clone(),
            http,
        })
    }

    /// A deployment that is already running at `base_url` (no trailing slash).
    pub fn external(base_url: &str) -> Result<HubProcess> {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build()?;
        Ok(HubProcess {
            child: None,
            pid: 0,
            external: true,
            base_url: base_url.trim_end_matches('/').to_owned(),
            log: PathBuf::from("(external target: see its own logs)"),
            http,
        })
    }

    /// Whether this is a deployment loadgen did not start.
    pub fn is_external(&self) -> bool {
        self.external
    }

    /// How to sample this hub's resident memory while a run goes.
    pub fn mem_probe(&self) -> MemProbe {
        if self.external {
            MemProbe::Metrics { url: format!("{}/metrics", self.base_url), http: self.http.clone() }
        } else {
            MemProbe::Pid(self.pid)
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Process id of the hub.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Where the hub's output goes.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Fails if the hub has exited (with the end of its log, which usually says why).
    pub fn ensure_running(&mut self) -> Result<()> {
        if self.external {
            return Ok(());
        }
        let Some(child) = self.child.as_mut() else {
            bail!("hub was already killed");
        };
        if let Some(status) = child.try_wait()? {
            bail!("hub exited with {status}; last log lines:\n{}", log_tail(&self.log, 20));
        }
        Ok(())
    }

    /// Polls `GET /healthz` until it answers 200, the hub exits, or `timeout` passes.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> Result<Duration> {
        let start = Instant::now();
        let url = format!("{}/healthz", self.base_url);
        loop {
            self.ensure_running()?;
            let probe = self.http.get(&url).timeout(Duration::from_millis(500)).send().await;
            if probe.is_ok_and(|r| r.status().is_success()) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > timeout {
                bail!("hub not healthy after {timeout:?}; last log lines:\n{}", log_tail(&self.log, 20));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Resident set size in bytes (`VmRSS` of `/proc/<pid>/status`).
    pub fn rss_bytes(&self) -> Result<u64> {
        if self.external {
            bail!("the RSS of an external target is not known here");
        }
        rss_of_pid(self.pid)
    }

    /// `GET /healthz` answers 2xx now.
    pub async fn healthy(&self) -> bool {
        let probe = self.http.get(format!("{}/healthz", self.base_url)).timeout(Duration::from_secs(2)).send().await;
        probe.is_ok_and(|r| r.status().is_success())
    }

    /// Every sample of `GET /metrics` keyed by its name (labels included) — e.g.
    /// `switchboard_live_conversations`.
    pub async fn metrics(&self) -> Result<BTreeMap<String, f64>> {
        let text = self.http.get(format!("{}/metrics", self.base_url)).send().await?.error_for_status()?.text().await?;
        Ok(parse_metrics(&text))
    }

    /// Sends SIGTERM (a graceful stop: drain, hand partitions over) and waits up to `timeout`
    /// for the exit; returns the exit code (`None`: killed by a signal, or still running and
    /// then killed).
    pub async fn terminate(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let Some(mut child) = self.child.take() else { bail!("hub was already stopped") };
        // No libc binding in this crate: the `kill` utility sends the signal.
        let sent = Command::new("kill").args(["-TERM", &self.pid.to_string()]).status()?;
        if !sent.success() {
            bail!("could not signal hub pid {}", self.pid);
        }
        let start = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status.code());
            }
            if start.elapsed() > timeout {
                let _ = child.kill();
                let _ = child.wait();
                return Ok(None);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kills the hub (SIGKILL: nothing it would flush on SIGTERM matters to a benchmark) and
    /// reaps it. Idempotent.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `VmRSS` of `/proc/<pid>/status`, in bytes.
fn rss_of_pid(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).context("reading hub /proc status")?;
    let kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .context("no VmRSS in /proc status")?;
    Ok(kb * 1024)
}

/// Where a run reads the hub's resident memory from, once per second.
#[derive(Clone, Debug)]
pub enum MemProbe {
    /// A local child: `/proc/<pid>/status`.
    Pid(u32),
    /// A deployment: `process_resident_memory_bytes` of its Prometheus endpoint, if any.
    Metrics { url: String, http: reqwest::Client },
}

impl MemProbe {
    /// The RSS now, or `None` when it cannot be known (process gone, metric not exposed).
    pub async fn rss_bytes(&self) -> Option<u64> {
        match self {
            MemProbe::Pid(pid) => rss_of_pid(*pid).ok(),
            MemProbe::Metrics { url, http } => {
                let text = http.get(url).timeout(Duration::from_millis(800)).send().await.ok()?.text().await.ok()?;
                // With or without (empty) labels: `name 1.0` or `name{} 1.0`.
                let name = "process_resident_memory_bytes";
                let metrics = parse_metrics(&text);
                metrics
                    .iter()
                    .find(|(k, _)| k.strip_prefix(name).is_some_and(|rest| rest.is_empty() || rest.starts_with('{')))
                    .map(|(_, &b)| b as u64)
            }
        }
    }
}

/// Prometheus text to `name{labels}` → value; comments and unparsable lines are skipped.
pub fn parse_metrics(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            Some((name.trim().to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

/// The last `n` lines of a file, for error messages.
fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::parse_metrics;

    #[test]
    fn metrics_keep_labels_and_skip_comments() {
        let text = "# TYPE a counter\na_total 3\nb{x=\"y z\"} 4\nc 1.5\n";
        let m = parse_metrics(text);
        assert_eq!(m.get("a_total"), Some(&3.0));
        assert_eq!(m.get("b{x=\"y z\"}"), Some(&4.0));
        assert_eq!(m.get("c"), Some(&1.5));
        assert_eq!(m.len(), 3);
    }
}
