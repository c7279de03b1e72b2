"""A server worker ignores SIGINT and SIGTERM while it starts, from the moment the ccproxy package is imported
(ccproxy/worker_signals.py); other processes keep theirs."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from ccproxy.worker_signals import ignore_stop_signals_while_starting


@pytest.fixture
def saved_handlers() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_starting_server_worker_ignores_the_stop_signals(
    monkeypatch: pytest.MonkeyPatch, saved_handlers: None
) -> None:
    monkeypatch.setenv("SANIC_WORKER_NAME", "Sanic-Server-0-0")
    ignore_stop_signals_while_starting()
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN


@pytest.mark.parametrize("name", [None, "Sanic-Reloader-0"])
def test_other_processes_keep_their_handlers(
    monkeypatch: pytest.MonkeyPatch, saved_handlers: None, name: str | None
) -> None:
    if name is None:
        monkeypatch.delenv("SANIC_WORKER_NAME", raising=False)
    else:
        monkeypatch.setenv("SANIC_WORKER_NAME", name)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    ignore_stop_signals_while_starting()
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


@pytest.mark.parametrize(("name", "ignored"), [("Sanic-Server-1-0", True), ("Sanic-Main", False), (None, False)])
def test_importing_ccproxy_is_what_makes_a_server_worker_ignore_them(name: str | None, ignored: bool) -> None:
    # A fresh interpreter, as a spawned worker is: the package import alone, before any app factory runs.
    env = {key: value for key, value in os.environ.items() if key != "SANIC_WORKER_NAME"}
    if name is not None:
        env["SANIC_WORKER_NAME"] = name
    probe = "import signal, ccproxy; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN)"
    result = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(ignored)
