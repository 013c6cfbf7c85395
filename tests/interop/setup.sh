#!/usr/bin/env bash
# Installs the outside MCP clients that tests/api/mcp_interop.rs drives against the hub,
# schemathesis, which tests/api/rest_openapi.rs runs against the REST API, and playwright-core,
# with which tests/api/browser.rs drives the console and web-chat pages in Chromium, pinned, into
# .cache/interop/ (gitignored):
#   venv/                 Python venv with the `mcp` SDK and schemathesis (tests/interop/requirements.txt)
#   node/node_modules/    Node 22 (the npm "node" package ships the binary), npm, the MCP
#                         Inspector and playwright-core; node/node_modules/.bin holds node, npx and
#                         the inspector
#   env.sh                exports MCP_PYTHON, MCP_INSPECTOR_NODE_BIN, SCHEMATHESIS,
#                         PLAYWRIGHT_CORE_DIR and CHROMIUM for the tests
# The browser is Debian's `chromium` (apt-get, when /usr/bin/chromium is missing): playwright-core
# drives it and never downloads browsers of its own. Debian's `fonts-noto-color-emoji` comes with
# it (when its NotoColorEmoji.ttf is missing) so emoji render in the screenshots.
# A no-op (a second or so) when the stamp file says the pinned versions are already there.
# Needs python3 and npm (the machine's Node 20 npm is enough to bootstrap Node 22); registries:
# PyPI, npm and Debian's apt only. Usage: tests/interop/setup.sh
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE="$REPO/.cache/interop"
VENV="$CACHE/venv"
NODE_DIR="$CACHE/node"
NODE_BIN="$NODE_DIR/node_modules/.bin"
STAMP="$CACHE/stamp"
REQUIREMENTS="$HERE/requirements.txt"

# Pins. Inspector 2.x needs Node >= 22.19; under the system Node 20 npm would silently resolve
# `@modelcontextprotocol/inspector` to the old 0.x CLI, so it is installed under Node 22 (below).
NODE_VERSION=22.23.3
NPM_VERSION=11.19.1
INSPECTOR_VERSION=2.12.0
PLAYWRIGHT_CORE_VERSION=1.65.1
CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
EMOJI_FONT=/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
PLAYWRIGHT_CORE_DIR="$NODE_DIR/node_modules/playwright-core"
MCP_VERSION="$(sed -n 's/^mcp==//p' "$REQUIREMENTS")"
SCHEMATHESIS_VERSION="$(sed -n 's/^schemathesis==//p' "$REQUIREMENTS")"

log() { echo "interop setup: $*" >&2; }
die() {
  log "ERROR: $*"
  exit 1
}

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

expected_stamp() {
  printf 'node=%s\nnpm=%s\ninspector=%s\nplaywright-core=%s\n' "$NODE_VERSION" "$NPM_VERSION" "$INSPECTOR_VERSION" \
    "$PLAYWRIGHT_CORE_VERSION"
  grep -v -e '^#' -e '^[[:space:]]*$' "$REQUIREMENTS"
}

installed() {
  [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(expected_stamp)" ] &&
    [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/schemathesis" ] && [ -x "$NODE_BIN/node" ] && [ -x "$NODE_BIN/npx" ] &&
    [ -f "$NODE_DIR/node_modules/@modelcontextprotocol/inspector/package.json" ] &&
    [ -f "$PLAYWRIGHT_CORE_DIR/package.json" ]
}

write_env() {
  cat >"$CACHE/env.sh" <<EOF
# Written by tests/interop/setup.sh: source it before \`cargo test\` to run the interop tests.
export MCP_PYTHON="$VENV/bin/python"
export MCP_INSPECTOR_NODE_BIN="$NODE_BIN"
export SCHEMATHESIS="$VENV/bin/schemathesis"
export PLAYWRIGHT_CORE_DIR="$PLAYWRIGHT_CORE_DIR"
export CHROMIUM="$CHROMIUM"
EOF
}

# The versions actually installed (not the stamp's word); fails if any is missing.
report() {
  local py mcp schemathesis node npm inspector playwright chromium
  py="$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
  mcp="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("mcp"))')"
  schemathesis="$("$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("schemathesis"))')"
  node="$("$NODE_BIN/node" --version)"
  npm="$(PATH="$NODE_BIN:$PATH" "$NODE_BIN/npm" --version 2>/dev/null)"
  inspector="$("$NODE_BIN/node" -p 'require(process.argv[1]).version' \
    "$NODE_DIR/node_modules/@modelcontextprotocol/inspector/package.json")"
  playwright="$("$NODE_BIN/node" -p 'require(process.argv[1]).version' "$PLAYWRIGHT_CORE_DIR/package.json")"
  chromium="$("$CHROMIUM" --version 2>/dev/null | tail -n 1)"
  echo "interop clients: python $py, mcp $mcp, schemathesis $schemathesis; node $node, npm $npm, @modelcontextprotocol/inspector $inspector, playwright-core $playwright; $chromium"
  [ "$mcp" = "$MCP_VERSION" ] || die "mcp is $mcp, pinned $MCP_VERSION"
  [ "$schemathesis" = "$SCHEMATHESIS_VERSION" ] || die "schemathesis is $schemathesis, pinned $SCHEMATHESIS_VERSION"
  [ "$node" = "v$NODE_VERSION" ] || die "node is $node, pinned v$NODE_VERSION"
  [ "$inspector" = "$INSPECTOR_VERSION" ] || die "inspector is $inspector, pinned $INSPECTOR_VERSION"
  [ "$playwright" = "$PLAYWRIGHT_CORE_VERSION" ] || die "playwright-core is $playwright, pinned $PLAYWRIGHT_CORE_VERSION"
  [ -n "$chromium" ] || die "$CHROMIUM --version printed nothing"
}

make_venv() {
  local py="${PYTHON:-python3}"
  rm -rf "$VENV"
  if "$py" -m venv "$VENV" >/dev/null 2>&1; then return; fi
  log "\`$py -m venv\` failed: installing python3-venv from Debian"
  rm -rf "$VENV"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y python3-venv
  for candidate in "$py" /usr/bin/python3; do
    if "$candidate" -m venv "$VENV"; then return; fi
    rm -rf "$VENV"
  done
  die "could not create a Python venv at $VENV"
}

install_python() {
  log "Python venv with mcp==$MCP_VERSION, schemathesis==$SCHEMATHESIS_VERSION -> $VENV"
  make_venv
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REQUIREMENTS"
}

install_node() {
  log "node@$NODE_VERSION, npm@$NPM_VERSION, @modelcontextprotocol/inspector@$INSPECTOR_VERSION, playwright-core@$PLAYWRIGHT_CORE_VERSION -> $NODE_DIR"
  command -v npm >/dev/null 2>&1 || die "npm not found (install Node.js and npm, e.g. apt-get install npm)"
  rm -rf "$NODE_DIR"
  mkdir -p "$NODE_DIR"
  printf '{ "name": "switchboard-mcp-interop", "private": true }\n' >"$NODE_DIR/package.json"
  # Two steps on purpose: npm picks versions whose `engines` fit the node running npm, so Node 22
  # comes first and everything else is installed by npm running under it.
  (cd "$NODE_DIR" && npm install --no-audit --no-fund --save-exact "node@$NODE_VERSION")
  [ -x "$NODE_BIN/node" ] || die "node@$NODE_VERSION installed no $NODE_BIN/node"
  (cd "$NODE_DIR" && PATH="$NODE_BIN:$PATH" npm install --no-audit --no-fund --save-exact \
    "npm@$NPM_VERSION" "@modelcontextprotocol/inspector@$INSPECTOR_VERSION" \
    "playwright-core@$PLAYWRIGHT_CORE_VERSION")
}

# Debian's Chromium for the browser test (playwright-core downloads no browser), and Debian's
# colour emoji font: without it the emoji in the demo's greetings are blank boxes in the
# screenshots. Each is installed only when missing, so a second run costs two file tests.
install_browser() {
  local packages=()
  if [ ! -x "$CHROMIUM" ]; then
    [ "$CHROMIUM" = /usr/bin/chromium ] || die "CHROMIUM=$CHROMIUM is not an executable"
    packages+=(chromium)
  fi
  [ -f "$EMOJI_FONT" ] || packages+=(fonts-noto-color-emoji)
  [ "${#packages[@]}" -gt 0 ] || return 0
  log "Debian ${packages[*]}"
  as_root apt-get update
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}"
  [ -x "$CHROMIUM" ] || die "apt-get installed no $CHROMIUM"
  [ -f "$EMOJI_FONT" ] || die "apt-get installed no $EMOJI_FONT"
}

mkdir -p "$CACHE"
# One installer at a time (two test runs started together).
exec 9>"$CACHE/.lock"
command -v flock >/dev/null 2>&1 && flock 9

# Outside .cache (system packages): checked on every run, installed only when missing.
install_browser
if ! installed; then
  rm -f "$STAMP"
  install_python
  install_node
  report >/dev/null
  expected_stamp >"$STAMP"
fi
write_env
report
echo "export MCP_PYTHON=$VENV/bin/python"
echo "export MCP_INSPECTOR_NODE_BIN=$NODE_BIN"
echo "export SCHEMATHESIS=$VENV/bin/schemathesis"
echo "export PLAYWRIGHT_CORE_DIR=$PLAYWRIGHT_CORE_DIR"
echo "export CHROMIUM=$CHROMIUM"
