//! The console and web-chat pages in a real browser: `tests/browser/console_widget.mjs` drives
//! Debian's Chromium with playwright-core against a hub this test starts. A customer writes in the
//! web chat and picks "Vendas" in the triage menu; an agent signs in to the console, becomes
//! available, accepts the waiting conversation (vendas is a `manual` queue here, see
//! `fixtures/browser.toml`) and replies; the customer sees the reply.
//!
//! playwright-core (pinned) and Chromium are installed by `tests/interop/setup.sh`;
//! `scripts/test.sh` runs it and exports `PLAYWRIGHT_CORE_DIR` and `CHROMIUM`. Without them this
//! test fails (it never passes silently). Screenshots land in `target/test-artifacts/browser/`.

use crate::helpers::*;
use crate::subprocess::run;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// How long the whole browser run may take (a cold Chromium start included).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(180);

/// A path from an environment variable set by `tests/interop/setup.sh`'s env.sh, or a failure
/// that says how to get it.
fn setup_path(var: &str) -> PathBuf {
    let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
        panic!(
            "{var} is not set: the browser test needs playwright-core and Chromium. Run `scripts/test.sh`, or run \
             `tests/interop/setup.sh` and `source .cache/interop/env.sh` (it exports PLAYWRIGHT_CORE_DIR and \
             CHROMIUM) before `cargo test`."
        );
    };
    let path = PathBuf::from(value);
    assert!(
        path.exists(),
        "{var}={} does not exist: run `tests/interop/setup.sh` (it installs playwright-core into .cache/interop/ \
         and Chromium with apt-get)",
        path.display()
    );
    path
}

/// `<target dir>/test-artifacts/browser`: next to the `tmp` dir cargo gives integration tests.
fn artifact_dir() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent().expect("CARGO_TARGET_TMPDIR is <target>/tmp").join("test-artifacts").join("browser")
}

/// The Node that came with the pinned playwright-core (`node_modules/.bin/node`), else the
/// system's.
fn node_for(playwright_core: &Path) -> PathBuf {
    let bundled = playwright_core.parent().map(|modules| modules.join(".bin").join("node"));
    bundled.filter(|p| p.exists()).unwrap_or_else(|| PathBuf::from("node"))
}

#[actix_web::test]
async fn customer_and_agent_talk_through_the_widget_and_the_console() {
    let playwright_core = setup_path("PLAYWRIGHT_CORE_DIR");
    let chromium = setup_path("CHROMIUM");
    let artifacts = artifact_dir();
    std::fs::create_dir_all(&artifacts).expect("artifact dir");
    for old in ["widget.png", "console.png", "widget-failure.png", "console-failure.png"] {
        let _ = std::fs::remove_file(artifacts.join(old));
    }
    let app = spawn_app_with(Some("browser.toml"), &[]).await;

    let mut cmd = Command::new(node_for(&playwright_core));
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/console_widget.mjs"))
        .arg(&app.url)
        .arg(ANA_TOKEN)
        .arg(&artifacts)
        .env("PLAYWRIGHT_CORE_DIR", &playwright_core)
        .env("CHROMIUM", &chromium);
    let out = run(cmd, SCRIPT_TIMEOUT).await;
    assert!(
        out.success,
        "the browser run failed (screenshots of the failure in {}): {}",
        artifacts.display(),
        out.describe()
    );
    println!("{}", out.stdout.trim());
    for shot in ["widget.png", "console.png"] {
        let path = artifacts.join(shot);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        assert!(size > 0, "no screenshot at {}: {}", path.display(), out.describe());
        println!("screenshot: {}", path.display());
    }
}
