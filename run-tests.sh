#!/usr/bin/env bash
# Install everything the test suite needs (Python packages, the compiled core, redis-server, the Claude Code CLI) and
# run the whole suite once. Tests that exercise the conversion core run on both implementations in that one run
# (`[py]` and `[c]`, the `core` fixture); the HTTP and end-to-end tests run on the compiled core, as ccproxy does by
# default.
#   ./run-tests.sh                 the whole suite
#   ./run-tests.sh tests/core -x   any pytest arguments
#   ./run-tests.sh --install-only  only set everything up (used by benchmarks/run.sh)
set -euo pipefail
cd "$(dirname "$0")"

# The editable installs skip the Cython twins (each would compile them once more in a throwaway build directory):
# they are built once, in place, right after.
CCPROXY_BUILD_CYTHON=false ./run-ccproxy.sh --install-only
stamp=.venv/.ccproxy-test-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    CCPROXY_BUILD_CYTHON=false .venv/bin/python -m pip install --quiet -e ".[test]"
    touch "$stamp"
fi
# Build the compiled twins whose source changed since the last build (incremental, by content: a no-op when current;
# a stale twin would be refused at import).
.venv/bin/python setup.py --quiet build_ext --inplace >/dev/null 2>&1 ||
    .venv/bin/python setup.py build_ext --inplace

# A real redis-server for the Redis plugin's tests (they start their own on free ports; never skipped).
if ! command -v redis-server >/dev/null 2>&1; then
    as_root=()
    if [ "$(id -u)" != 0 ]; then as_root=(sudo -n); fi
    echo "installing redis-server (apt-get)" >&2
    "${as_root[@]}" apt-get update -qq >/dev/null
    "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi

# The real Claude Code CLI for the end-to-end tests (from npm; idempotent).
bash tests/support/install_claude_cli.sh >/dev/null
export CCPROXY_REQUIRE_CLAUDE_CLI=1
if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi

exec .venv/bin/python -m pytest "$@"
