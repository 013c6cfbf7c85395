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

/// Ports tried before a server of its own gives up starting.
const PORT_ATTEMPTS: u32 = 5;

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
        // A port free when chosen may be taken before the server binds it (by another test's
        // server or a client connection's ephemeral port): the server then exits, and the next
        // attempt takes another port.
        let mut attempt = 1;
        loop {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            let dir = std::env::temp_dir().join(format!("switchboard-redis-{port}-{}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let mut server = Self {
                child: None,
                dir: Some(dir),
                port,
                args: args.iter().map(|a| (*a).to_owned()).collect(),
                url: format!("redis://127.0.0.1:{port}"),
                prefix: prefix.clone(),
            };
            match server.spawn()? {
                Listen::PortLost if attempt < PORT_ATTEMPTS => attempt += 1,
                Listen::PortLost => bail!("redis-server lost its port to another process {attempt} times"),
                Listen::Ready => return Ok(server),
            }
        }
    }

    /// Starts the process on this server's port and directory and waits until it answers.
    fn spawn(&mut self) -> Result<Listen> {
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
        let child = self.child.insert(child);
        await_own(child, self.port, Duration::from_secs(10))
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
        match self.spawn()? {
            Listen::Ready => Ok(()),
            Listen::PortLost => bail!("redis-server lost port {} to another process", self.port),
        }
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

/// How waiting for a `redis-server` just started ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Listen {
    /// It answers on its port.
    Ready,
    /// It exited at start, or another process answers on its port: a port free when chosen
    /// was taken before the server bound it (by another test's server or a client connection's
    /// ephemeral port). Starting again on another port is the cure.
    PortLost,
}

/// Waits up to `limit` until `child`, a `redis-server` started on `port`, answers `PING` (a
/// server loading its append-only file accepts connections but answers `-LOADING` until it is
/// done), and makes sure that the server answering is `child` itself.
pub(crate) fn await_own(child: &mut Child, port: u16, limit: Duration) -> Result<Listen> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return Ok(Listen::PortLost);
        }
        if ask(port, "PING").is_some_and(|a| a.starts_with("+PONG")) {
            let own = ask(port, "INFO server").is_some_and(|i| i.contains(&format!("process_id:{}\r\n", child.id())));
            return Ok(if own { Listen::Ready } else { Listen::PortLost });
        }
        #[expect(clippy::disallowed_methods, reason = "synchronous test set-up, not an actor or handler")]
        std::thread::sleep(Duration::from_millis(10));
    }
    bail!("redis-server on port {port} did not start within {limit:?}")
}

/// The reply to one inline `command` to the server on `port` (as much of it as arrives within
/// a second, up to 16 KiB); `None` when nothing answers.
pub(crate) fn ask(port: u16, command: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
    stream.write_all(format!("{command}\r\n").as_bytes()).ok()?;
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    // A simple reply ends with its first CRLF; a bulk one (`$<len>`) once `len` bytes followed.
    while reply.len() < 16 * 1024 {
        let n = stream.read(&mut buf).ok().filter(|&n| n > 0)?;
        reply.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&reply);
        let Some((head, body)) = text.split_once("\r\n") else { continue };
        match head.strip_prefix('$').and_then(|len| len.parse::<usize>().ok()) {
            Some(len) if body.len() < len => continue,
            _ => return Some(text.into_owned()),
        }
    }
    Some(String::from_utf8_lossy(&reply).into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_whose_port_is_taken_is_not_mistaken_for_the_one_there() {
        let first = RedisServer::start_with(&["--appendonly", "no"]).unwrap();
        let dir = std::env::temp_dir().join(format!("switchboard-redis-taken-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut second = RedisServer {
            child: None,
            dir: Some(dir),
            port: first.port,
            args: Vec::new(),
            url: first.url.clone(),
            prefix: unique_prefix(),
        };
        assert_eq!(second.spawn().unwrap(), Listen::PortLost, "the port is taken");
        assert_eq!(ask(first.port, "PING").as_deref(), Some("+PONG\r\n"), "the first server still answers");
    }
}
