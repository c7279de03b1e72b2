#!/usr/bin/env bash
# Install everything the test suite needs (Python packages, the Claude Code CLI) and run the whole suite.
#   ./run-tests.sh                 the whole suite
#   ./run-tests.sh tests/core -x   any pytest arguments
set -euo pipefail
cd "$(dirname "$0")"

./run-ccproxy.sh --install-only
stamp=.venv/.ccproxy-test-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    .venv/bin/python -m pip install --quiet -e ".[test]"
    touch "$stamp"
fi

# The real Claude Code CLI for the end-to-end tests (from npm; idempotent).
bash tests/support/install_claude_cli.sh
export CCPROXY_REQUIRE_CLAUDE_CLI=1

exec .venv/bin/python -m pytest "$@"
