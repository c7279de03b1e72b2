#!/bin/sh
# The Dockerfile's build stage: wheels of ccproxy-server (with the compiled core), of every plugin under plugins/ and
# of all their dependencies, into one folder, checked; the runtime stage installs them with no compiler and no index.
# POSIX sh: Alpine has no bash.   Usage (from the source tree): sh containers/build-wheels.sh OUT_DIR
set -eu
out="${1:?usage: build-wheels.sh OUT_DIR}"
venv=/tmp/ccproxy-build-venv

python3 -m venv "$venv"
# Every folder under plugins/ with a pyproject.toml is a distribution: no list to keep up to date.
set -- .
for plugin in plugins/*/; do
    if [ -f "${plugin}pyproject.toml" ]; then
        set -- "$@" "$plugin"
    fi
done
# ccproxy-server comes from `.`, so plugins that require it never look for it on an index.
"$venv/bin/python" -m pip wheel --no-cache-dir --disable-pip-version-check --wheel-dir "$out" "$@"
"$venv/bin/python" tools/check_wheels.py --wheel-dir "$out" --with-deps
cp containers/install-wheels.sh "$out/"
rm -rf "$venv"
