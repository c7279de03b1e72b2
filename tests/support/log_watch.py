"""A logging handler that keeps every ERROR record and every logged traceback, on the loggers ccproxy and Sanic use."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

# ccproxy's and Sanic's loggers may not propagate to the root: each gets the handler.
WATCHED = ("", "ccproxy", "sanic.error", "sanic.root")


class LogWatch(logging.Handler):
    """Every record at ERROR or above, and every record carrying a traceback, while installed."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR or record.exc_info or "Traceback" in record.getMessage():
            self.records.append(record)

    def problems(self) -> list[str]:
        return [self.format(record) for record in self.records]


@contextmanager
def watching_logs() -> Iterator[LogWatch]:
    """Install a LogWatch (after the app has set up its loggers); the caller asserts on `problems()`."""
    handler = LogWatch()
    loggers = [logging.getLogger(name) for name in WATCHED]
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)
