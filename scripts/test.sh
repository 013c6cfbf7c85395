#!/usr/bin/env bash
# The whole test suite: unit tests of every crate, the app-level tests (real HTTP server on
# loopback, local fakes of WhatsApp, Telegram and OpenAI), the CLI tests, and the MCP interop
# tests (the official Python MCP SDK and the MCP Inspector CLI against the hub), the browser test
# (Playwright driving Debian's Chromium), the Redis backend's tests (a redis-server per test), and
# the deployment files' linters.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

# The Redis backend's tests start throwaway redis-server processes on free ports (or use the
# server named by SWITCHBOARD_TEST_REDIS_URL), and the Redis Cluster tests a 3-master cluster of
# their own, joined with redis-cli (package redis-tools, which redis-server depends on): install
# them when missing.
if ! command -v redis-server >/dev/null 2>&1 || ! command -v redis-cli >/dev/null 2>&1; then
  echo "installing redis-server and redis-cli (apt-get)" >&2
  if [ "$(id -u)" = 0 ]; then SUDO=(); else SUDO=(sudo); fi
  "${SUDO[@]}" apt-get update
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y redis-server redis-tools
fi

# The pinned outside MCP clients (into .cache/interop/; a no-op once installed). It writes
# .cache/interop/env.sh, which exports MCP_PYTHON and MCP_INSPECTOR_NODE_BIN for
# tests/api/mcp_interop.rs.
bash tests/interop/setup.sh
# shellcheck source=/dev/null
source .cache/interop/env.sh

# The Dockerfile, the Kubernetes manifests and the Compose file (linted: no Docker engine here).
bash scripts/lint-deploy.sh

cargo test --workspace --all-targets --locked

# The app-level suite once more on the Redis backend: the same webhooks, conversations, REST,
# console and MCP tests, each hub on a throwaway redis-server. The multi-process tests
# (`cluster::`) and the Redis crash test (`redis_aof::`) start Redis servers of their own
# whatever the backend, so they ran in the pass above and are not repeated here.
echo "app-level tests on the Redis backend" >&2
SWITCHBOARD_TEST_BACKEND=redis cargo test --locked --test api -- --skip cluster:: --skip redis_aof::
