#!/usr/bin/env bash
# Install everything the test suite needs (Python packages, the compiled core, redis-server, the Claude Code CLI)
# and run the whole suite twice: against the compiled (Cython) core and against the pure-Python core.
#   ./run-tests.sh                 the whole suite, both cores
#   ./run-tests.sh tests/core -x   any pytest arguments (still both cores)
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
# Build the compiled twins whose pure source changed since the last build (incremental: a no-op when current).
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

status=0
for core in cython python; do
    echo "=== test suite on the ${core} core ==="
    if [ "$core" = cython ]; then enable=true; else enable=false; fi
    CCPROXY_ENABLE_CYTHON=$enable .venv/bin/python -m pytest "$@" || status=$?
done
exit "$status"
