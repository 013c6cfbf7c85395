#!/usr/bin/env bash
# The whole test suite: unit tests of every crate, the app-level tests (real HTTP server on
# loopback, local fakes of WhatsApp, Telegram and OpenAI), and the CLI tests.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust (https://rustup.rs) first" >&2
  exit 1
fi

cargo test --workspace --all-targets --locked
