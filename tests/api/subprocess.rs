//! External programs (MCP clients, schemathesis) run from the tests, without blocking the
//! runtime the hub lives on.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Finished {
    pub success: bool,
    pub status: String,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn describe(&self) -> String {
        format!("{}\n--- stdout ---\n{}\n--- stderr ---\n{}", self.status, self.stdout, self.stderr)
    }
}

/// Reads a child's pipe to the end on its own thread (so a full pipe never stalls the child).
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut out = String::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_string(&mut out);
        }
        out
    })
}

/// Runs `cmd` to completion, killed (with its children) after `timeout`. The wait happens on a
/// blocking thread: the hub and the fakes live on this test's runtime, so its thread must stay
/// free while the client talks to them.
pub async fn run(mut cmd: Command, timeout: Duration) -> Finished {
    let what = format!("{cmd:?}");
    // Its own process group, so a timeout kills the whole tree (npx runs the Inspector as a child).
    let mut child = cmd
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let group = child.id();
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let mut waiter = tokio::task::spawn_blocking(move || child.wait());
    let (success, status) = match tokio::time::timeout(timeout, &mut waiter).await {
        Ok(status) => {
            let status = status.expect("waiter").expect("wait for the child");
            (status.success(), format!("{what}: {status}"))
        }
        Err(_) => {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{group}")]).status();
            let _ = waiter.await;
            (false, format!("{what}: killed after {timeout:?}"))
        }
    };
    let (stdout, stderr) = tokio::task::spawn_blocking(move || (stdout.join().unwrap(), stderr.join().unwrap()))
        .await
        .expect("client output");
    Finished { success, status, stdout, stderr }
}
