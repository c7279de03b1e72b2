# Shared by containers/build-image.sh and containers/compose-check.sh (sourced, not run): messages, tools from apt,
# and podman as this kind of machine needs it.
# shellcheck shell=bash disable=SC2034  # the variables are for the scripts that source this file

OCI_RUNTIME="${OCI_RUNTIME:-runc}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
LOCAL_BASE="localhost/ccproxy-base:$DEBIAN_SUITE"
WORK_DIR="${WORK_DIR:-/var/tmp/ccproxy-image}"

say() { printf '==> %s\n' "$*"; }
fail() {
    printf '%s: %s\n' "$(basename "$0")" "$*" >&2
    exit 1
}

# Installs the missing ones with apt-get when running as root on Debian/Ubuntu, else says what is missing.
need_tools() {
    local missing=() tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing ${missing[*]} with apt-get"
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        fail "needs ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]})"
    fi
}

# Podman with the chosen runtime (Debian 12's crun refuses hosts with hybrid cgroups). It says at every start and
# removal that it has no systemd for health-check timers: not news here.
podman() { command podman --runtime "$OCI_RUNTIME" "$@" 2> >(grep -v 'systemd connection' >&2); }

# Podman's default limits (1048576 open files, 4194304 processes) can only be set with CAP_SYS_RESOURCE, which a
# sandboxed root may lack: containers get this shell's hard file limit and 4096 processes.
ULIMIT_FILES="$(ulimit -Hn)"
ULIMIT_PROCESSES=4096
