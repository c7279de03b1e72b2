#!/usr/bin/env bash
# Bring up docker-compose.yml without a Docker daemon and check it, then remove it again. docker-compose (apt:
# docker-compose) talks to podman's Docker-compatible API; the ccproxy image is the one containers/build-image.sh
# makes, Redis and HAProxy images are made here from the same local Debian base (no registry needed). Checks: the
# instances and Redis become healthy and the load balancer starts after them; GET / through the load balancer is
# answered by both instances; a token count with a client key; a Host outside ALLOWED_HOSTS refused while GET / still
# answers; a count made on one instance is a cache hit on the other (one cache in Redis: the ccproxy-redis plugin);
# an instance stopped mid-traffic costs no failed request.
#   containers/compose-check.sh            (after containers/build-image.sh; runs as root)
# Settings (environment): IMAGE (default localhost/ccproxy:slim), REDIS_IMAGE / HAPROXY_IMAGE (default: made here),
# OCI_RUNTIME, WORK_DIR as in build-image.sh. See docs/containers.md.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=containers/lib.sh
. containers/lib.sh
IMAGE="${IMAGE:-localhost/ccproxy:slim}"
PROJECT="ccproxycheck$$"
SOCKET="$WORK_DIR/compose-check-$$.sock"
CLIENT_KEY="check-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LB="http://127.0.0.1:$PORT"
SERVICE_PID=""
HEALTH_PID=""

# A service image from the local Debian base plus one Debian package; COMMAND is a JSON list.
make_service_image() {
    local name="$1" package="$2" command="$3" container
    if buildah inspect --type image "$name" >/dev/null 2>&1; then
        return 0
    fi
    say "making $name (Debian's $package)"
    container="$(buildah from "$LOCAL_BASE")"
    buildah run --runtime "$OCI_RUNTIME" --network host "$container" -- sh -c "apt-get update -qq &&
        apt-get install -y -qq --no-install-recommends $package >/dev/null && rm -rf /var/lib/apt/lists/*"
    buildah config --cmd "$command" "$container"
    buildah commit --quiet --rm "$container" "$name" >/dev/null
}

compose() {
    DOCKER_HOST="unix://$SOCKET" REDIS_IMAGE="$REDIS_IMAGE" HAPROXY_IMAGE="$HAPROXY_IMAGE" \
        CCPROXY_API_KEYS="$CLIENT_KEY" OPENAI_API_KEY=sk-compose-check-never-sent CCPROXY_PUBLISH="127.0.0.1:$PORT" \
        docker-compose --project-name "$PROJECT" "$@"
}

cleanup() {
    local status=$?
    if [ "$status" -ne 0 ] && [ -n "$SERVICE_PID" ]; then
        compose logs --tail 15 >&2 2>/dev/null || true
    fi
    compose down --timeout 5 >/dev/null 2>&1 || true
    [ -z "$HEALTH_PID" ] || kill "$HEALTH_PID" 2>/dev/null || true
    [ -z "$SERVICE_PID" ] || kill "$SERVICE_PID" 2>/dev/null || true
    rm -f "$SOCKET" "$WORK_DIR/containers-$$.conf"
}

# With no systemd, podman runs no health-check timers: this loop runs each container's HEALTHCHECK every 2 s instead.
run_health_checks() {
    local name
    while sleep 2; do
        for name in $(podman ps --filter "label=com.docker.compose.project=$PROJECT" --format '{{.Names}}'); do
            podman healthcheck run "$name" >/dev/null 2>&1 || true
        done
    done
}

# "<status> <instance>" of one request through the load balancer.
request() {
    curl --silent --output /dev/null --max-time 30 --dump-header - --write-out '%{http_code}\n' "$@" "$LB/" |
        awk 'tolower($1) == "x-ccproxy-instance:" { instance = $2 } END { print $0, instance }' | tr -d '\r'
}

# "<instance> <body>" of a token count through the load balancer (the same body every time).
count_tokens() {
    local headers body
    headers="$(mktemp)"
    body="$(curl --silent --max-time 30 --dump-header "$headers" --header 'content-type: application/json' "$@" \
        "$LB/v1/messages/count_tokens" \
        --data '{"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Hello through the LB"}]}')"
    printf '%s %s\n' "$(awk 'tolower($1) == "x-ccproxy-instance:" { print $2 }' "$headers" | tr -d '\r')" "$body"
    rm -f "$headers"
}

need_tools buildah podman docker-compose curl "$OCI_RUNTIME"
buildah inspect --type image "$IMAGE" >/dev/null 2>&1 || fail "no image $IMAGE: run containers/build-image.sh first"
buildah inspect --type image "$LOCAL_BASE" >/dev/null 2>&1 || fail "no base $LOCAL_BASE: run containers/build-image.sh"
if [ -z "${REDIS_IMAGE:-}" ]; then
    REDIS_IMAGE=localhost/ccproxy-check-redis:$DEBIAN_SUITE
    make_service_image "$REDIS_IMAGE" redis-server '["redis-server"]'
fi
if [ -z "${HAPROXY_IMAGE:-}" ]; then
    HAPROXY_IMAGE=localhost/ccproxy-check-haproxy:$DEBIAN_SUITE
    # The official image's configuration path, where docker-compose.yml mounts containers/haproxy.cfg.
    make_service_image "$HAPROXY_IMAGE" haproxy '["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]'
fi
# docker-compose asks for the image by the name in docker-compose.yml.
podman tag "$IMAGE" ccproxy:slim

mkdir -p "$WORK_DIR"
trap cleanup EXIT
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n[engine]\nruntime = "%s"\n' \
    "$ULIMIT_FILES" "$ULIMIT_FILES" "$ULIMIT_PROCESSES" "$ULIMIT_PROCESSES" "$OCI_RUNTIME" >"$WORK_DIR/containers-$$.conf"
export CONTAINERS_CONF="$WORK_DIR/containers-$$.conf"
say "podman's Docker API on $SOCKET"
command podman system service --time=0 "unix://$SOCKET" >"$WORK_DIR/compose-check-service.log" 2>&1 &
SERVICE_PID=$!
for _ in $(seq 1 50); do [ -S "$SOCKET" ] && break; sleep 0.2; done
if [ ! -d /run/systemd/system ]; then
    run_health_checks &
    HEALTH_PID=$!
fi

say "docker-compose up (redis: $REDIS_IMAGE, lb: $HAPROXY_IMAGE, published on 127.0.0.1:$PORT)"
compose up --detach --no-build
compose ps
for _ in $(seq 1 30); do [ "$(request | cut -d' ' -f1)" = 200 ] && break; sleep 1; done

answers="$(for _ in 1 2 3 4 5 6; do request; done)"
say "GET / through the load balancer, six times: $(echo "$answers" | tr '\n' ' ')"
for instance in ccproxy-1 ccproxy-2; do
    echo "$answers" | grep -qx "200 $instance" || fail "no 200 from $instance through the load balancer"
done
first="$(count_tokens --header "x-api-key: $CLIENT_KEY")"
second="$(count_tokens --header "x-api-key: $CLIENT_KEY")"
say "count_tokens with the client key: on $first; again on $second"
for answer in "$first" "$second"; do
    echo "$answer" | grep -q '"input_tokens"' || fail "no token count"
done
# With the client key, so the answer is about the Host alone.
answer="$(count_tokens --header 'Host: proxy.example.com' --header "x-api-key: $CLIENT_KEY")"
say "count_tokens with Host proxy.example.com: $answer"
echo "$answer" | grep -q '"permission_error"' || fail "a Host outside ALLOWED_HOSTS was served"
[ "$(request --header 'Host: proxy.example.com' | cut -d' ' -f1)" = 200 ] || fail "GET / refused an unknown Host"

# The fleet-wide counters of the Redis cache (docs/cache.md): the second count, made on the other instance, is a hit.
stats="$(compose exec -T redis redis-cli hgetall ccproxy:stats:cache | tr -d '\r' | paste -sd' ')"
say "the shared Redis: $(compose exec -T redis redis-cli dbsize | tr -d '\r') keys, cache stats: $stats"
hits="$(compose exec -T redis redis-cli hget ccproxy:stats:cache hits | tr -d '\r')"
[ "${first%% *}" != "${second%% *}" ] || fail "both counts went to ${first%% *}: no proof of a shared cache"
[ "${hits:-0}" -ge 1 ] || fail "the second instance did not find the first one's count in Redis"

say "stopping ccproxy-1 (the load balancer's health check notices within 6 s; until then, retries)"
compose stop --timeout 20 ccproxy-1 >/dev/null 2>&1
answers="$(for _ in 1 2 3 4 5 6; do request; done)"
say "GET / right after: $(echo "$answers" | tr '\n' ' ')"
echo "$answers" | grep -vqx "200 ccproxy-2" && fail "a request failed or went to the stopped instance"
say "OK: docker-compose.yml brings up Redis, two instances and the load balancer, and they answer"
