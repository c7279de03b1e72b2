"""A Sanic server worker ignores SIGINT and SIGTERM while it starts; imported first by the ccproxy package.

Until Sanic installs its own handlers, just before a worker's server is up (its `_setup_system_signals`), Python's
default SIGINT handler is in place: the SIGINT Sanic's manager stops workers with raised KeyboardInterrupt in a
worker that was still starting ("Unable to start server", or an import cut short, and a traceback in the log). A
stop requested meanwhile is not lost: `ccproxy.shutdown.stop_if_requested` sees the shared flag once the worker is
up. Done when this module is imported, which the package does first, and a worker imports the package before
anything else of ccproxy (the app factory's module is in it): only Sanic's own start-up before that stays exposed.
Standard library only, to run early.
"""

from __future__ import annotations

import os
import signal

# The name Sanic gives a server worker process (SANIC_WORKER_NAME, inherited from the main process): Sanic-Server-N-N.
SERVER_WORKER_PREFIX = "Sanic-Server"


def ignore_stop_signals_while_starting() -> None:
    """In a server worker process: ignore SIGINT and SIGTERM until Sanic installs its own handlers."""
    if os.environ.get("SANIC_WORKER_NAME", "").startswith(SERVER_WORKER_PREFIX):
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


ignore_stop_signals_while_starting()
