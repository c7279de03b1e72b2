#!/usr/bin/env bash
# Install the Claude Code CLI into .tools/claude for the e2e CLI tests. Idempotent; prints the binary's path.
# Set CLAUDE_CODE_VERSION to pin a version (the fixtures were captured with 2.1.197).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PREFIX="$ROOT/.tools/claude"
PACKAGE="$PREFIX/node_modules/@anthropic-ai/claude-code"
BIN="$PREFIX/node_modules/.bin/claude"

if [ -x "$BIN" ] && "$BIN" --version >/dev/null 2>&1; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$PREFIX"
npm install --prefix "$PREFIX" --no-audit --no-fund "@anthropic-ai/claude-code${CLAUDE_CODE_VERSION:+@$CLAUDE_CODE_VERSION}" >&2
# npm may hold back the package's postinstall script; it copies the native binary over the bin/ placeholder.
node "$PACKAGE/install.cjs" >&2
"$BIN" --version >&2
echo "$BIN"
