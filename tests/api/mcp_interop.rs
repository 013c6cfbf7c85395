//! Interoperability with MCP clients written elsewhere, run as subprocesses against a hub the test
//! starts: the official Python SDK (`mcp`) in both protocol eras (2026-07-28 `server/discover`,
//! and the `initialize` handshake with a session), and the MCP Inspector CLI.
//!
//! The clients are pinned and installed into `.cache/interop/` by `tests/interop/setup.sh`;
//! `scripts/test.sh` runs it and exports `MCP_PYTHON` and `MCP_INSPECTOR_NODE_BIN`. Without those
//! variables these tests fail (they never pass silently).

use crate::helpers::*;
use crate::subprocess::{Finished, run};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A WhatsApp contact no other test uses.
const PHONE: &str = "5511955500001";
const PHONE_INSPECTOR: &str = "5511955500002";
/// How long one client run may take (a cold Node start included).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

/// A path from an environment variable set by `scripts/test.sh`, or a failure that says how to
/// get it.
fn tool_path(var: &str) -> PathBuf {
    let Some(value) = std::env::var_os(var).filter(|v| !v.is_empty()) else {
        panic!(
            "{var} is not set: the MCP interop tests need the pinned outside clients. Run `scripts/test.sh`, or run \
             `tests/interop/setup.sh` and `source .cache/interop/env.sh` (it exports MCP_PYTHON and \
             MCP_INSPECTOR_NODE_BIN) before `cargo test`."
        );
    };
    let path = PathBuf::from(value);
    assert!(
        path.exists(),
        "{var}={} does not exist: run `tests/interop/setup.sh` (it installs into .cache/interop/)",
        path.display()
    );
    path
}

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A hub with one WhatsApp conversation from `phone`, its id.
async fn hub_with_conversation(phone: &str) -> (TestApp, String) {
    let app = spawn_app(&[]).await;
    let res = app.wa_text(phone, &format!("wamid.MCP-{phone}"), "Oi, quero falar com alguém").await;
    assert_eq!(res.status(), 200);
    let id = app.wa_conversation(phone);
    eventually(Duration::from_secs(5), || async { app.state_of(&id).await })
        .await
        .expect("the webhook opened a conversation");
    (app, id.as_str().to_owned())
}

async fn python_client(app: &TestApp, python: &Path, conversation: &str, mode: &str) -> Finished {
    let mut cmd = Command::new(python);
    cmd.arg(repo_file("tests/interop/mcp_client.py"))
        .arg(format!("{}/mcp", app.url))
        .arg(BOT_TOKEN)
        .arg(conversation)
        .arg(mode)
        .env("PYTHONUNBUFFERED", "1");
    run(cmd, CLIENT_TIMEOUT).await
}

#[actix_web::test]
async fn python_sdk_drives_the_tools_in_both_protocol_eras() {
    let python = tool_path("MCP_PYTHON");
    let (app, conversation) = hub_with_conversation(PHONE).await;

    for mode in ["auto", "legacy"] {
        let out = python_client(&app, &python, &conversation, mode).await;
        assert!(out.success, "Python MCP client ({mode}) failed: {}", out.describe());
        assert!(out.stdout.contains(&format!("mcp_client ok [{mode}]")), "{}", out.describe());
        println!("{}", out.stdout.trim());
        if !out.stderr.trim().is_empty() {
            println!("client stderr ({mode}): {}", out.stderr.trim());
        }
    }

    // Both send_message calls reached the customer through the Graph API, in order.
    let texts = eventually(Duration::from_secs(5), || async {
        let texts: Vec<String> = app.wa_texts_to(PHONE).into_iter().filter(|t| t.starts_with("mcp interop ")).collect();
        (texts.len() >= 2).then_some(texts)
    })
    .await
    .unwrap_or_else(|| panic!("two MCP texts at the Graph API; it got {:?}", app.wa_texts_to(PHONE)));
    assert_eq!(texts.len(), 2, "{texts:?}");
    assert!(texts[0].starts_with("mcp interop auto "), "{texts:?}");
    assert!(texts[1].starts_with("mcp interop legacy "), "{texts:?}");
}

#[actix_web::test]
async fn inspector_cli_lists_and_calls_the_tools() {
    let bin = tool_path("MCP_INSPECTOR_NODE_BIN");
    let npx = bin.join("npx");
    assert!(npx.exists(), "{} missing: run `tests/interop/setup.sh`", npx.display());
    // The npm project the pinned Inspector is installed in (`<dir>/node_modules/.bin`): npx runs
    // it from there and, with --no-install, never fetches another version.
    let project = bin.parent().and_then(Path::parent).expect("MCP_INSPECTOR_NODE_BIN is <project>/node_modules/.bin");
    let path = std::env::join_paths(
        std::iter::once(bin.clone()).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )
    .unwrap();
    let (app, _) = hub_with_conversation(PHONE_INSPECTOR).await;
    let inspector = |method: &str, extra: &[&str]| {
        let mut cmd = Command::new(&npx);
        cmd.current_dir(project)
            .env("PATH", &path)
            .args(["--no-install", "@modelcontextprotocol/inspector", "--cli"])
            .arg(format!("{}/mcp", app.url))
            .args(["--transport", "http", "--method", method])
            .arg("--header")
            .arg(format!("Authorization: Bearer {BOT_TOKEN}"))
            .args(extra);
        cmd
    };

    let out = run(inspector("tools/list", &[]), CLIENT_TIMEOUT).await;
    assert!(out.success, "Inspector tools/list failed: {}", out.describe());
    for tool in ["queue_stats", "send_message", "list_conversations", "get_conversation"] {
        assert!(out.stdout.contains(&format!("\"{tool}\"")), "tools/list lacks {tool}: {}", out.describe());
    }

    let out = run(inspector("tools/call", &["--tool-name", "queue_stats"]), CLIENT_TIMEOUT).await;
    assert!(out.success, "Inspector tools/call queue_stats failed: {}", out.describe());
    for queue in ["vendas", "suporte"] {
        assert!(out.stdout.contains(queue), "queue_stats lacks {queue}: {}", out.describe());
    }
}
