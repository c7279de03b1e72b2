#!/usr/bin/env bash
# From a clean checkout: set everything up, run the micro-benchmarks, then the load script.
#   benchmarks/run.sh            full run (~5 min)
#   benchmarks/run.sh --quick    shorter load scenarios; any load.py option is passed on
set -euo pipefail
cd "$(dirname "$0")/.."
./run-tests.sh --install-only
CCPROXY_BUILD_CYTHON=false .venv/bin/python -m pip install --quiet -e ".[bench]"
.venv/bin/python -m pytest benchmarks --benchmark-only -q
.venv/bin/python benchmarks/load.py "$@"
