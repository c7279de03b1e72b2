"""A server worker ignores SIGINT and SIGTERM while it starts (ccproxy/shutdown.py); other processes keep theirs."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest

from ccproxy.shutdown import ignore_stop_signals_while_starting


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
