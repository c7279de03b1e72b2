#!/usr/bin/env bash
# Build the ccproxy image from the Dockerfile without a Docker daemon (buildah), then prove it (podman, no daemon
# either): the container starts with the image's own entry point, as a non-root user, its HEALTHCHECK passes, it
# answers GET / with the compiled core loaded and counts tokens with a client key, it has no compiler, and it stops
# cleanly on SIGTERM. With no BASE_IMAGE, the Python base image is made here with debootstrap (Debian's python3), so
# no container registry is needed: the build reaches only a Debian mirror (the build stage's apt-get) and PyPI (pip).
#   containers/build-image.sh                       build localhost/ccproxy:slim on a local Debian base and check it
#   BASE_IMAGE=docker.io/library/python:3.12-slim-bookworm containers/build-image.sh     (a base from a registry)
#   TARGET=alpine ALPINE_BASE_IMAGE=docker.io/library/python:3.12-alpine containers/build-image.sh
#   CHECK_ONLY=1 containers/build-image.sh          check an image built before
# Settings (environment): TARGET (slim|alpine; default slim), IMAGE (default localhost/ccproxy:$TARGET), BASE_IMAGE,
# ALPINE_BASE_IMAGE, DEBIAN_SUITE (bookworm), DEBIAN_MIRROR (http://deb.debian.org/debian), REBUILD_BASE=1 (make the
# local base again), BUILD_CA_BUNDLE (a CA bundle pip trusts in the build stage; default $PIP_CERT), OCI_RUNTIME
# (default runc: Debian 12's crun refuses hosts with hybrid cgroups), WORK_DIR (scratch space, default
# /var/tmp/ccproxy-image). Runs as root (debootstrap, buildah mount); installs buildah, podman, runc and debootstrap
# with apt-get when they are missing. See docs/containers.md.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=containers/lib.sh
. containers/lib.sh
TARGET="${TARGET:-slim}"
IMAGE="${IMAGE:-localhost/ccproxy:$TARGET}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
CHECK_NAME="ccproxy-image-check-$$"
START_SECONDS=60

# A minimal Debian with python3 and its venv module, imported into buildah's storage as $LOCAL_BASE.
make_local_base() {
    if [ -z "${REBUILD_BASE:-}" ] && buildah inspect --type image "$LOCAL_BASE" >/dev/null 2>&1; then
        say "base image $LOCAL_BASE is there (REBUILD_BASE=1 makes it again)"
        return 0
    fi
    need_tools debootstrap
    local rootfs="$WORK_DIR/rootfs-$DEBIAN_SUITE" container mountpoint
    rm -rf "$rootfs"
    mkdir -p "$WORK_DIR"
    say "debootstrap $DEBIAN_SUITE (minbase + python3, python3-venv) from $DEBIAN_MIRROR"
    if ! debootstrap --variant=minbase --include=python3,python3-venv "$DEBIAN_SUITE" "$rootfs" "$DEBIAN_MIRROR" \
        >"$WORK_DIR/debootstrap.log" 2>&1; then
        tail -20 "$WORK_DIR/debootstrap.log" >&2
        fail "debootstrap failed (log: $WORK_DIR/debootstrap.log)"
    fi
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    say "importing the root file system as $LOCAL_BASE"
    container="$(buildah from scratch)"
    mountpoint="$(buildah mount "$container")"
    tar -C "$rootfs" -cf - . | tar -C "$mountpoint" -xpf -
    buildah umount "$container" >/dev/null
    buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --env LANG=C.UTF-8 \
        --cmd /bin/bash "$container"
    buildah commit --quiet --rm "$container" "$LOCAL_BASE" >/dev/null
    rm -rf "$rootfs"
}

build_image() {
    # --format docker: the OCI image format has no HEALTHCHECK. --network host: the build stage's apt-get and pip
    # reach their registries without a bridge network set up for buildah. No --layers: buildah 1.28 cannot bind-mount
    # a stage that came from its layer cache (`RUN --mount=type=bind,from=...` then finds no /wheels), so every run
    # builds afresh (a few minutes).
    local args=(--runtime "$OCI_RUNTIME" --format docker --network host --target "$TARGET" --tag "$IMAGE")
    args+=(--file Dockerfile)
    # Where pip must trust a CA of its own (a TLS-intercepting proxy), the build stage gets this host's bundle.
    local ca_bundle="${BUILD_CA_BUNDLE:-${PIP_CERT:-}}"
    if [ -n "$ca_bundle" ] && [ -f "$ca_bundle" ]; then
        args+=(--volume "$ca_bundle:/run/ccproxy-build-ca.pem:ro" --build-arg PIP_CERT=/run/ccproxy-build-ca.pem)
    fi
    if [ "$TARGET" = slim ]; then
        args+=(--build-arg "BASE_IMAGE=${BASE_IMAGE:-$LOCAL_BASE}")
    elif [ -n "${ALPINE_BASE_IMAGE:-}" ]; then
        args+=(--build-arg "ALPINE_BASE_IMAGE=$ALPINE_BASE_IMAGE")
    fi
    say "buildah bud ${args[*]} ."
    buildah bud "${args[@]}" .
}

remove_check_container() {
    podman rm --force --time 0 "$CHECK_NAME" >/dev/null 2>&1 || true
}

# Runs inside the container: the health answer, then a token count with the client key (no upstream needed).
# shellcheck disable=SC2016  # $-free Python source
PROBE='
import json, os, urllib.error, urllib.request as u
base = "http://127.0.0.1:%s" % os.environ["PORT"]
health = json.load(u.urlopen(base + "/", timeout=5))
print("GET / ->", json.dumps(health))
assert health["status"] == "ok" and health["core"] == "cython", "expected the compiled core: %r" % health
body = json.dumps({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello from the image check"}]})
def count(headers):
    request = u.Request(base + "/v1/messages/count_tokens", data=body.encode(), headers={
        "content-type": "application/json", "anthropic-version": "2023-06-01", **headers})
    try:
        with u.urlopen(request, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
status, text = count({"x-api-key": os.environ["CHECK_CLIENT_KEY"]})
print("POST /v1/messages/count_tokens with the client key ->", status, text)
assert status == 200 and json.loads(text)["input_tokens"] > 0, text
status, text = count({})
print("POST /v1/messages/count_tokens without a key ->", status, "(401 once client keys are enforced)")
'

check_image() {
    local client_key deadline health user compilers exit_code
    client_key="check-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
    remove_check_container
    trap remove_check_container EXIT
    say "starting $IMAGE with its own entry point (network: none; a dummy upstream key, a client key)"
    # --health-interval=disable: no systemd timer (there may be no systemd); `podman healthcheck run` below runs the
    # image's HEALTHCHECK command.
    podman run --detach --name "$CHECK_NAME" --network none --health-interval=disable \
        --ulimit "nofile=$ULIMIT_FILES:$ULIMIT_FILES" --ulimit "nproc=$ULIMIT_PROCESSES:$ULIMIT_PROCESSES" \
        --env OPENAI_API_KEY=sk-image-check-never-sent --env CCPROXY_API_KEYS="$client_key" "$IMAGE" >/dev/null
    deadline=$((SECONDS + START_SECONDS))
    until health="$(podman healthcheck run "$CHECK_NAME" 2>&1)"; do
        if [ "$SECONDS" -ge "$deadline" ] || [ "$(podman inspect --format '{{.State.Running}}' "$CHECK_NAME")" != true ]; then
            podman logs "$CHECK_NAME" >&2 || true
            fail "the container did not become healthy within ${START_SECONDS}s: ${health}"
        fi
        sleep 1
    done
    say "HEALTHCHECK (the image's own command): ${health:-healthy}"
    podman exec --env CHECK_CLIENT_KEY="$client_key" "$CHECK_NAME" python -c "$PROBE"
    user="$(podman exec "$CHECK_NAME" id -u)"
    [ "$user" != 0 ] || fail "the server runs as root"
    say "server user: $(podman exec "$CHECK_NAME" id)"
    compilers="$(podman exec "$CHECK_NAME" sh -c 'for c in cc gcc clang; do command -v "$c" || true; done')"
    [ -z "$compilers" ] || fail "the runtime image has a compiler: $compilers"
    say "no compiler in the runtime image (cc, gcc, clang: none)"
    podman stop --time 20 "$CHECK_NAME" >/dev/null
    exit_code="$(podman inspect --format '{{.State.ExitCode}}' "$CHECK_NAME")"
    say "stopped with SIGTERM: exit code $exit_code; last log lines:"
    podman logs "$CHECK_NAME" 2>&1 | tail -5
    [ "$exit_code" = 0 ] || fail "the server exited $exit_code on SIGTERM"
    remove_check_container
    trap - EXIT
}

need_tools buildah podman "$OCI_RUNTIME"
if [ -z "${CHECK_ONLY:-}" ]; then
    if [ "$TARGET" = slim ] && [ -z "${BASE_IMAGE:-}" ]; then
        make_local_base
    fi
    build_image
fi
say "image: $(buildah images --format '{{.Name}}:{{.Tag}} {{.ID}} {{.Size}}' "$IMAGE")"
check_image
say "OK: $IMAGE builds, starts, is healthy and answers"
