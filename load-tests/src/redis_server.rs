//! A throwaway `redis-server` for tests and benchmarks: started on a free loopback port with its
//! own directory, killed (and its directory removed) on drop. `SWITCHBOARD_TEST_REDIS_URL` points
//! tests at an existing server instead; they then isolate themselves with a fresh key prefix.
//! A server of its own can be killed (SIGKILL, as a crash) and started again on the same port
//! and directory, so a test sees what survives in its append-only file.

use anyhow::{Context, Result, bail};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Environment variable naming a Redis server to use instead of starting one.
pub const REDIS_URL_ENV: &str = "SWITCHBOARD_TEST_REDIS_URL";

/// A Redis server for one test (or a shared one from the environment).
pub struct RedisServer {
    child: Option<Child>,
    dir: Option<PathBuf>,
    /// Port and extra arguments of a server of its own, to start it again after a kill.
    port: u16,
    args: Vec<String>,
    url: String,
    /// Unique per instance: keys of tests sharing one server never meet.
    prefix: String,
}

impl RedisServer {
    /// The server of `SWITCHBOARD_TEST_REDIS_URL`, or a new one without persistence.
    pub fn start() -> Result<Self> {
        Self::start_with(&[])
    }

    /// Like [`start`](Self::start), with extra `redis-server` arguments (e.g. `--appendonly yes`)
    /// for a server of its own.
    pub fn start_with(args: &[&str]) -> Result<Self> {
        let prefix = unique_prefix();
        if args.is_empty()
            && let Ok(url) = std::env::var(REDIS_URL_ENV)
        {
            return Ok(Self { child: None, dir: None, port: 0, args: Vec::new(), url, prefix });
        }
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!("switchboard-redis-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let mut server = Self {
            child: None,
            dir: Some(dir),
            port,
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            url: format!("redis://127.0.0.1:{port}"),
            prefix,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Starts the process on this server's port and directory and waits until it answers.
    fn spawn(&mut self) -> Result<()> {
        let dir = self.dir.clone().context("a shared server cannot be started")?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--dir", &dir.to_string_lossy()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting redis-server (install it: apt-get install redis-server)")?;
        self.child = Some(child);
        self.wait_ready()
    }

    /// SIGKILL, as a crash: nothing is flushed beyond what the server's own settings (e.g.
    /// `--appendfsync always`) already wrote. The directory stays for [`restart`](Self::restart).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and directory (after [`kill`](Self::kill)),
    /// with the same arguments, so it loads what it persisted there.
    pub fn restart(&mut self) -> Result<()> {
        self.kill();
        self.spawn()
    }

    /// Waits until the server answers `PING` (a server loading its append-only file accepts
    /// connections but answers `-LOADING` until it is done).
    fn wait_ready(&self) -> Result<()> {
        use std::io::{Read, Write};
        let port = self.port;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
                let mut answer = [0u8; 5];
                if stream.write_all(b"PING\r\n").is_ok()
                    && stream.read_exact(&mut answer).is_ok()
                    && &answer == b"+PONG"
                {
                    return Ok(());
                }
            }
            #[expect(clippy::disallowed_methods, reason = "synchronous test set-up, not an actor or handler")]
            std::thread::sleep(Duration::from_millis(10));
        }
        bail!("redis-server on port {port} did not start within 10 s")
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A key prefix of this instance's own.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = self.dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A key prefix no other test instance uses: `sbtest:<unique>:`.
pub fn unique_prefix() -> String {
    format!("sbtest:{}:", uuid_like())
}

/// 16 hex digits from the clock and the process id: unique enough for key prefixes.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    format!("{:x}{:x}{:x}", nanos & 0xffff_ffff, std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed))
}
