"""Instructions per request of the proxy, counted by valgrind's callgrind: a figure that does not move with load.

On a shared 2-core VM the CPU time per request of `load.py` moves by ±10-20 % from run to run, more than the 10 %
that issue 11 allows the operations features. The number of instructions the proxy process executes per request
does not: two runs of the same commit agree to ~0.2 %. This script starts the fast fake upstream and, for each
variant, the proxy under `valgrind --tool=callgrind` (~50x slower), sends warm-up requests, zeroes the counters,
sends the measured requests one after another on one keep-alive connection, dumps the counters and reports
instructions per request, each variant next to "off" of the same run.

What it does not count: the kernel's work (system calls: socket and log writes) and, because the process runs ~50x
slower, it sees fewer full garbage collections and less batching per request than a real run (the deferred
observers' 20 ms and the log handlers' 50 ms hold one or two requests here, ~100 at full load). `--real-batches`
stretches those two waits (to 1 s and 2.5 s, by a sitecustomize in the proxy's path) so that a batch holds about
as many requests as at full load. The CPU figures of `load.py --ops-compare` stay the final word; this says where
the instructions go and whether a change removed any.

    .venv/bin/python benchmarks/instructions.py [--requests 1000] [--parts] [--only] [--real-batches]
        [--scenario small-json|stream-100]
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench_harness import Child, http_get_json, start_proxy, start_upstream
from bench_payloads import dumps, small_request
from load import OPS_BUILTINS, OPS_CLIENT_KEY

STARTUP_TIMEOUT = 300.0  # imports under valgrind take a while
# --real-batches: the waits before a batch is handled, stretched ~50x like the process under valgrind.
STRETCHED_WAITS = """import ccproxy.logs, ccproxy.observers
ccproxy.observers.DEFER_SECONDS = 1.0
ccproxy.logs.FLUSH_DELAY_SECONDS = 2.5
"""
TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


def variants(scratch: Path, parts: bool, only: bool = False) -> dict[str, dict[str, str]]:
    """Settings per variant: "off" (the operations built-ins disabled), "on" (client keys, usage and metrics,
    JSON lines at INFO to stderr and a file), with --parts "on" less one part at a time, and with --only one part
    alone (what it costs without the others: the observers' common work is then in each)."""

    def disabled(*names: str) -> str:
        path = scratch / f"disabled-{len(names)}-{'-'.join(n.rsplit('.', 1)[-1] for n in names)}.toml"
        path.write_text("[ccproxy]\ndisabled_plugins = [" + ", ".join(f'"{n}"' for n in names) + "]\n")
        return str(path)

    on = {
        "CCPROXY_API_KEYS": OPS_CLIENT_KEY,
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
        "LOG_FILE_PATH": str(scratch / "log.jsonl"),
        "ERROR_LOG_FILE_PATH": str(scratch / "error.jsonl"),
    }
    chosen = {"off": {"CCPROXY_CONFIG": disabled(*OPS_BUILTINS)}, "on": on}
    if parts:
        chosen["on, no usage line (LOG_LEVEL=WARNING)"] = {**on, "LOG_LEVEL": "WARNING"}
        chosen["on, no usage observer"] = {**on, "CCPROXY_CONFIG": disabled("ccproxy.usage")}
        chosen["on, no metrics observer"] = {**on, "CCPROXY_CONFIG": disabled("ccproxy.metrics")}
        chosen["on, no client keys"] = {**on, "CCPROXY_CONFIG": disabled("ccproxy.client_keys")}
    if only:
        for name in OPS_BUILTINS:
            others = [other for other in OPS_BUILTINS if other != name]
            chosen[f"only {name.rsplit('.', 1)[-1]}"] = {**on, "CCPROXY_CONFIG": disabled(*others)}
        chosen["only JSON logs at INFO"] = {**on, "CCPROXY_CONFIG": disabled(*OPS_BUILTINS)}
    return chosen


def start_counted_proxy(scratch: Path, name: str, upstream_port: int, settings: dict[str, str]) -> tuple[Child, int]:
    """The proxy as `load.py` starts it, under callgrind (its counters dumped to `<scratch>/<name>.<pid>.1`)."""
    wrapper = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={scratch}/{name}.%p", "--dump-instr=no"]
    child, port, _ = start_proxy(
        scratch, upstream_port, cpus=None, extra_env=settings, name=name, wrapper=wrapper, ready_timeout=STARTUP_TIMEOUT
    )
    return child, port


def send(port: int, body: bytes, count: int, stream: bool) -> None:
    """`count` requests one after another on one keep-alive connection; each answer read whole and checked."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"content-type": "application/json", "anthropic-version": "2023-06-01", "x-api-key": OPS_CLIENT_KEY}
    try:
        for _ in range(count):
            connection.request("POST", "/v1/messages", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.read()
            if response.status != 200 or (stream and b"message_stop" not in answer):
                raise RuntimeError(f"proxy answered {response.status}: {answer[:300]!r}")
    finally:
        connection.close()


def callgrind_control(*args: str) -> None:
    import subprocess

    # valgrind names the pipes callgrind_control talks through after $HOST, which the proxy has as 127.0.0.1
    # (start_proxy sets it): with another HOST here the counters would silently stay untouched.
    env = {**os.environ, "HOST": "127.0.0.1"}
    subprocess.run(["callgrind_control", *args], check=True, capture_output=True, timeout=120, env=env)


def count(scratch: Path, name: str, upstream_port: int, settings: dict[str, str], args: argparse.Namespace) -> float:
    """Instructions per measured request of one variant."""
    body = dumps(small_request(stream=args.scenario == "stream-100")).encode()
    stream = args.scenario == "stream-100"
    child, port = start_counted_proxy(scratch, name, upstream_port, settings)
    try:
        send(port, body, args.warmup, stream)
        callgrind_control("--zero", str(child.pid))
        send(port, body, args.requests, stream)
        # The dump happens when the process next runs: a GET / wakes it (a few thousand instructions more).
        # callgrind_control waits for the dump, so it runs beside the request.
        waker = threading.Thread(target=_wake, args=(port,))
        waker.start()
        callgrind_control("--dump", str(child.pid))
        waker.join()
        dump = _dump_file(scratch, name)
    finally:
        child.stop()
    match = TOTALS.search(dump.read_bytes())
    if match is None:
        raise RuntimeError(f"no totals in {dump}")
    requests: int = args.requests
    return int(match.group(1)) / requests


def _wake(port: int) -> None:
    time.sleep(1.0)
    http_get_json(f"http://127.0.0.1:{port}/", timeout=60.0)


def _dump_file(scratch: Path, name: str) -> Path:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = sorted(scratch.glob(f"{name}.*.1"))
        if found and found[0].stat().st_size:
            time.sleep(0.5)  # written in one go, but give it a moment
            return found[0]
        time.sleep(0.2)
    raise RuntimeError(f"no callgrind dump of {name} in {scratch}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per variant (default 1000)")
    parser.add_argument("--warmup", type=int, default=300, help="requests before counting (default 300)")
    parser.add_argument("--parts", action="store_true", help="also 'on' less one part at a time")
    parser.add_argument("--only", action="store_true", help="also each part alone (with JSON logs at INFO)")
    parser.add_argument(
        "--real-batches", action="store_true", help="batches of deferred work as big as at full load (see above)"
    )
    parser.add_argument("--scenario", choices=("small-json", "stream-100"), default="small-json")
    parser.add_argument("--keep", action="store_true", help="keep the callgrind dumps (their directory is printed)")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="ccproxy-instructions-"))
    upstream, upstream_port = start_upstream(scratch, None)
    results: dict[str, float] = {}
    stretched: dict[str, str] = {}
    if args.real_batches:
        (scratch / "sitecustomize.py").write_text(STRETCHED_WAITS)
        stretched["PYTHONPATH"] = str(scratch)
    try:
        for number, (name, settings) in enumerate(variants(scratch, args.parts, args.only).items()):
            results[name] = count(scratch, f"proxy-{number}", upstream_port, {**settings, **stretched}, args)
            print(f"{name:45s} {results[name]:12,.0f} instructions/request", flush=True)
    finally:
        upstream.stop()
    off = results["off"]
    print(f"\n{args.scenario}, {args.requests} requests after {args.warmup}, one keep-alive connection\n")
    print("| variant | instructions / request | over off |")
    print("| --- | ---: | ---: |")
    for name, value in results.items():
        print(f"| {name} | {value:,.0f} | {(value / off - 1) * 100:+.1f} % |")
    if args.keep:
        print(f"\ncallgrind dumps kept in {scratch} (read them with callgrind_annotate --inclusive=no)")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
