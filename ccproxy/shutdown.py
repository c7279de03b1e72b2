"""SIGTERM / SIGINT in the multi-worker main process, acted on by Sanic's monitor loop instead of inside the handler."""

from __future__ import annotations

import asyncio
import logging
import signal
from types import FrameType
from typing import Any

from sanic import Sanic

log = logging.getLogger("ccproxy")

# The monitor message Sanic's own WorkerManager acts on by stopping every worker (WorkerManager._poll_monitor).
TERMINATE = "__TERMINATE__"


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
    requested = False

    def request_shutdown(signum: int, frame: FrameType | None) -> None:
        nonlocal requested
        if requested:
            sanic_handler(signum, frame)  # type: ignore[no-untyped-call]  # Sanic does not annotate it
            return
        requested = True
        log.info("received %s: stopping the workers", signal.Signals(signum).name)
        manager.monitor_publisher.send(TERMINATE)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, request_shutdown)
