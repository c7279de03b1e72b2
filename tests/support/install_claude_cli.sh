#!/usr/bin/env bash
# Install the Claude Code CLI into .tools/claude for the e2e CLI tests and the fixture capture. Idempotent; prints the
# binary's path. The version is the one pinned in tools/capture_claude_code/CLAUDE_CODE_VERSION (the version the
# fixtures in tests/fixtures/claude-code were captured with); CLAUDE_CODE_VERSION=x.y.z (or a tag like `latest`)
# overrides it. An installed CLI of another exact version is replaced.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREFIX="$ROOT/.tools/claude"
PACKAGE="$PREFIX/node_modules/@anthropic-ai/claude-code"
BIN="$PREFIX/node_modules/.bin/claude"
VERSION="${CLAUDE_CODE_VERSION:-$(tr -d '[:space:]' <"$ROOT/tools/capture_claude_code/CLAUDE_CODE_VERSION")}"

if [ -x "$BIN" ] && installed="$("$BIN" --version 2>/dev/null)"; then
    # `--version` prints e.g. "2.1.332 (Claude Code)". A tag or range is satisfied by any installed version.
    if [ "${installed%% *}" = "$VERSION" ] || ! [[ "$VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
        echo "$BIN"
        exit 0
    fi
    echo "replacing Claude Code ${installed%% *} with $VERSION" >&2
fi

mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund "@anthropic-ai/claude-code@$VERSION" >&2
# npm may hold back the package's postinstall script; it copies the native binary over the bin/ placeholder.
node "$PACKAGE/install.cjs" >&2
"$BIN" --version >&2
echo "$BIN"
