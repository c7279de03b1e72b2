"""Shutting down: SIGTERM / SIGINT in the multi-worker main process (acted on by Sanic's monitor loop, the listening
sockets shut at once), and in each worker the streams still running ended with an error event after SHUTDOWN_GRACE."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
import socket
from collections.abc import Callable
from types import FrameType
from typing import Any, Protocol

from sanic import Sanic

from ccproxy.errors import ProxyError

log = logging.getLogger("ccproxy")

# The monitor message Sanic's own WorkerManager acts on by stopping every worker (WorkerManager._poll_monitor).
TERMINATE = "__TERMINATE__"
# `app.shared_ctx` attribute: a multiprocessing Event set when the main process was asked to stop.
STOP_FLAG = "ccproxy_stopping"


def share_stop_flag(app: Sanic[Any, Any], _loop: asyncio.AbstractEventLoop) -> None:
    """`main_process_start` listener (multi-worker only): the flag workers read once they are up (see
    `stop_if_requested`)."""
    setattr(app.shared_ctx, STOP_FLAG, multiprocessing.get_context().Event())


def stop_if_requested(app: Sanic[Any, Any]) -> None:
    """`after_server_start` listener: stop at once when shutdown was requested while this worker was starting.

    Sanic's manager stops workers with SIGINT, which a worker ignores until its own handler is installed, just
    before this listener runs: a worker still starting when SIGTERM came missed it, and the main process waited
    ~10 s for it. The flag is set before the signal is sent, so a worker that missed the signal sees the flag.
    """
    flag = getattr(app.shared_ctx, STOP_FLAG, None)
    if flag is not None and flag.is_set():
        log.info("shutdown was requested while this worker started: stopping")
        app.stop(terminate=False)


def defer_shutdown_signals(app: Sanic[Any, Any], _loop: asyncio.AbstractEventLoop) -> None:
    """`main_process_ready` listener: make the first shutdown signal a request to the monitor loop.

    Sanic's WorkerManager stops the workers from inside its signal handler, and stopping writes to the shared
    worker-state proxy. When the signal lands while the monitor loop is itself reading that proxy, both use the same
    connection, the replies interleave and the manager dies with an UnpicklingError: exit code 1 and a traceback
    for a plain `kill`, which a supervisor reads as a crash (seen about once in twelve stops with two workers).
    Sending Sanic's own terminate message instead lets the monitor loop stop the workers at a safe point. A second
    signal goes to Sanic's handler, which then kills the workers at once, as before.
    """
    manager = app.manager
    sanic_handler = manager.shutdown_signal
    stop = stop_listening(listening_sockets(app))
    requested = False

    def request_shutdown(signum: int, frame: FrameType | None) -> None:
        nonlocal requested
        if requested:
            sanic_handler(signum, frame)  # type: ignore[no-untyped-call]  # Sanic does not annotate it
            return
        requested = True
        log.info("received %s: stopping the workers", signal.Signals(signum).name)
        flag = getattr(app.shared_ctx, STOP_FLAG, None)
        if flag is not None:
            flag.set()
        stop()  # new connections are refused from now on, whichever worker would have taken them
        manager.monitor_publisher.send(TERMINATE)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_shutdown)


SHUTTING_DOWN = (
    "ccproxy is shutting down and ended this stream after its grace period (SHUTDOWN_GRACE); retry the request"
)
OVERLOADED_STATUS = 529


class Interruptible(Protocol):
    """A running answer that can be ended from outside (pipeline.OpenedStream)."""

    async def interrupt(self, error: ProxyError) -> None: ...


class Drain:
    """The streams this worker is answering; once shutdown's grace runs out, each is ended with an `error` event
    (529 `overloaded_error`: the request is worth retrying, on another instance or after the restart) before Sanic
    aborts the connections (GRACEFUL_SHUTDOWN_TIMEOUT is the grace plus a margin for those last events)."""

    __slots__ = ("_closing", "_ended", "_timer", "streams")

    def __init__(self) -> None:
        self.streams: set[Interruptible] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._ended = False
        # The interrupting tasks, referenced until done (the loop keeps only weak references to tasks).
        self._closing: set[asyncio.Task[None]] = set()

    def add(self, stream: Interruptible) -> None:
        self.streams.add(stream)
        if self._ended:  # a keep-alive request that started after the grace ran out
            self._interrupt(stream)

    def reset(self) -> None:
        """The server (re)starts: no shutdown in progress (ASGI test clients start and stop the app per request)."""
        if self._timer is not None:
            self._timer.cancel()
        self._timer = None
        self._ended = False

    def begin(self, grace: float) -> None:
        """Shutdown has begun (a `before_server_stop` listener, on the worker's loop): end the streams in `grace` s."""
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(grace, self.end_all)

    def end_all(self) -> None:
        self._ended = True
        if self.streams:
            log.info("shutdown grace over: ending %d running stream(s) with an error event", len(self.streams))
        for stream in list(self.streams):
            self._interrupt(stream)

    def _interrupt(self, stream: Interruptible) -> None:
        task = asyncio.get_running_loop().create_task(stream.interrupt(shutting_down()))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)


def shutting_down() -> ProxyError:
    return ProxyError(SHUTTING_DOWN, status=OVERLOADED_STATUS)


def listening_sockets(app: Sanic[Any, Any]) -> list[socket.socket]:
    """The sockets the multi-worker main process made and shares with its workers (Sanic keeps them in the
    server settings it passes on)."""
    found = (info.settings.get("sock") for info in app.state.server_info)
    return [sock for sock in found if isinstance(sock, socket.socket)]


def stop_listening(socks: list[socket.socket]) -> Callable[[], None]:
    """A function that stops the shared listening sockets accepting: new connections are refused at once instead of
    waiting in the backlog, which the main process keeps open until the last worker has stopped."""

    def stop() -> None:
        for sock in socks:
            with contextlib.suppress(OSError):  # already shut, or never listening
                sock.shutdown(socket.SHUT_RDWR)

    return stop
