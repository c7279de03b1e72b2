"""Bytecode executed per request, by Python function, with the operations features on against off.

`instructions.py` says how many machine instructions a request costs; it cannot say which Python function they
belong to (callgrind sees the interpreter, not the code it runs). This script does: it starts the fast fake upstream
and the proxy twice ("off": the operations built-ins disabled; "on": client keys, usage, metrics, JSON lines at
INFO), with a sitecustomize in the proxy's path that, on SIGUSR1, traces every Python frame with opcode events
(`sys.settrace`, `f_trace_opcodes`) and, on SIGUSR2, writes the count per function. Between the two signals it
sends the measured requests; the report lists the functions whose opcodes per request differ most, "on" minus
"off". At ~70-90 machine instructions per opcode on average, it points at where the instructions go; the tracing
slows the proxy ~20x, so deferred work runs in smaller batches than at full load (read those rows with that in
mind, and `instructions.py --real-batches` for their real share).

    .venv/bin/python benchmarks/opcodes.py [--requests 1000] [--rows 40]
"""

from __future__ import annotations

import argparse
import os
import pickle
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from bench_harness import start_proxy, start_upstream
from bench_payloads import dumps, small_request
from instructions import send, variants

TRACER = """import collections, os, pickle, signal, sys
_counts = collections.Counter()
def _opcodes(frame, event, arg):
    if event == "opcode":
        _counts[frame.f_code] += 1
    return _opcodes
def _frames(frame, event, arg):
    frame.f_trace_opcodes = True
    return _opcodes
def _start(*_):
    _counts.clear()
    sys.settrace(_frames)
def _stop(*_):
    sys.settrace(None)
    counts = {(code.co_filename, code.co_firstlineno, code.co_name): n for code, n in _counts.items()}
    with open(os.path.join(os.environ["CCPROXY_OPCODES_OUT"], f"{os.getpid()}.pickle"), "wb") as out:
        pickle.dump(counts, out)
signal.signal(signal.SIGUSR1, _start)
signal.signal(signal.SIGUSR2, _stop)
"""
Counts = dict[tuple[str, int, str], int]


def count(scratch: Path, name: str, upstream_port: int, settings: dict[str, str], requests: int) -> Counts:
    """Opcodes per function over `requests` small requests of one variant."""
    out = scratch / f"{name}-out"
    out.mkdir()
    env = {**settings, "PYTHONPATH": str(scratch / "tracer"), "CCPROXY_OPCODES_OUT": str(out)}
    child, port, _ = start_proxy(scratch, upstream_port, extra_env=env, name=name)
    body = dumps(small_request()).encode()
    try:
        send(port, body, 300, stream=False)
        os.kill(child.pid, signal.SIGUSR1)
        time.sleep(0.3)
        send(port, body, requests, stream=False)
        time.sleep(0.5)  # the deferred observers' and log handlers' last batch
        os.kill(child.pid, signal.SIGUSR2)
        return _read(out)
    finally:
        child.stop()


def _read(out: Path) -> Counts:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = list(out.glob("*.pickle"))
        if found:
            time.sleep(0.3)
            with found[0].open("rb") as data:
                counts: Counts = pickle.load(data)
            return counts
        time.sleep(0.1)
    raise RuntimeError(f"the proxy wrote no opcode counts to {out}")


def where(key: tuple[str, int, str]) -> str:
    path, line, function = key
    for marker in ("/site-packages/", f"{Path(__file__).resolve().parent.parent}/"):
        path = path.split(marker)[-1]
    return f"{path}:{line} {function}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=1000, help="measured requests per side (default 1000)")
    parser.add_argument("--rows", type=int, default=40, help="functions listed (default 40)")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="ccproxy-opcodes-"))
    (scratch / "tracer").mkdir()
    (scratch / "tracer" / "sitecustomize.py").write_text(TRACER)
    upstream, upstream_port = start_upstream(scratch, None)
    sides: dict[str, Counts] = {}
    try:
        for name, settings in variants(scratch, parts=False).items():
            sides[name] = count(scratch, f"proxy-{name}", upstream_port, settings, args.requests)
    finally:
        upstream.stop()
        shutil.rmtree(scratch, ignore_errors=True)
    off, on = sides["off"], sides["on"]
    per = args.requests
    print(f"opcodes per request: off {sum(off.values()) / per:,.0f}, on {sum(on.values()) / per:,.0f}\n")
    print("| on minus off | on | function |")
    print("| ---: | ---: | --- |")
    changed = sorted(set(off) | set(on), key=lambda key: -abs(on.get(key, 0) - off.get(key, 0)))
    for key in changed[: args.rows]:
        print(f"| {(on.get(key, 0) - off.get(key, 0)) / per:+.1f} | {on.get(key, 0) / per:.1f} | {where(key)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
