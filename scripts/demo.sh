#!/usr/bin/env bash
# The demo: builds the hub and the demo driver, then runs the hub (embedded backend, demo tenant)
# against loopback stand-ins for WhatsApp, Telegram and OpenAI, plays two customers through its
# real webhooks and keeps running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

cargo build --release --locked -p switchboard -p switchboard-load-tests --bins
exec ./target/release/demo
