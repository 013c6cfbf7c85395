#!/usr/bin/env bash
# The whole test suite: unit tests of every crate, the app-level tests (real HTTP server on
# loopback, local fakes of WhatsApp, Telegram and OpenAI), the CLI tests, and the MCP interop
# tests (the official Python MCP SDK and the MCP Inspector CLI against the hub).
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# The pinned outside MCP clients (into .cache/interop/; a no-op once installed). It writes
# .cache/interop/env.sh, which exports MCP_PYTHON and MCP_INSPECTOR_NODE_BIN for
# tests/api/mcp_interop.rs.
bash tests/interop/setup.sh
# shellcheck source=/dev/null
source .cache/interop/env.sh

cargo test --workspace --all-targets --locked
