#!/usr/bin/env bash
# Create ./.venv if needed, install ccproxy-server and every plugin distribution under plugins/, then start the proxy.
#   ./run-ccproxy.sh                 start the proxy (settings from the environment and ./.env)
#   ./run-ccproxy.sh --port 8082     any `ccproxy serve` option
#   ./run-ccproxy.sh --demo          the offline demo provider for every model: canned answers, no key needed
#   ./run-ccproxy.sh --install-only  only set up .venv (used by run-tests.sh)
set -euo pipefail
cd "$(dirname "$0")"

find_python() {
    for candidate in "${PYTHON:-}" python3.13 python3.12 python3.11 python3; do
        if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "ccproxy needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2
    return 1
}

if [ ! -x .venv/bin/python ]; then
    "$(find_python)" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
stamp=.venv/.ccproxy-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ setup.py -nt "$stamp" ] ||
    [ -n "$(find plugins -maxdepth 2 -name pyproject.toml -newer "$stamp" -print -quit)" ]; then
    plugin_dirs=()
    for dir in plugins/*/; do plugin_dirs+=(-e "${dir%/}"); done
    .venv/bin/python -m pip install --quiet -e . "${plugin_dirs[@]}"
    touch "$stamp"
fi

if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi
exec .venv/bin/ccproxy serve "$@"
