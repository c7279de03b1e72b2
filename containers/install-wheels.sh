#!/bin/sh
# The Dockerfile's runtime stage: a virtual environment at VENV with every wheel of the build stage, from that folder
# alone (no index, no compiler), then a start-up smoke check; pip is removed afterwards, the image needs no installer.
# POSIX sh: Alpine has no bash.   Usage: sh /wheels/install-wheels.sh VENV   (this script sits beside the wheels)
set -eu
venv="${1:?usage: install-wheels.sh VENV}"
wheels="$(dirname "$0")"

python3 -m venv "$venv"
"$venv/bin/python" -m pip install --no-index --no-cache-dir --disable-pip-version-check --find-links "$wheels" \
    "$wheels"/*.whl
"$venv/bin/python" -m pip uninstall --yes --quiet pip
# Every plugin loads and the app's imports resolve (a missing shared library on musl would fail here, not at run time).
"$venv/bin/ccproxy" plugins >/dev/null
