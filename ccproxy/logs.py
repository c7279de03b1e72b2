"""Where ccproxy's log lines go and how they look: text or JSON lines on stderr, JSON files with size rotation.

Every handler carries the app's RedactingFilter (ccproxy/redaction.py), and every line carries the request id of
the request it was logged for (ccproxy/context.py). A record may carry `fields` (a dict of JSON values, e.g. the
usage record): JSON lines hold them as keys, text lines append them as `key=value`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from ccproxy.batch_timer import BatchTimer
from ccproxy.context import REQUEST_ID
from ccproxy.core.jsoncodec import dumps, dumps_text
from ccproxy.redaction import RedactingFilter, Redactor
from ccproxy.settings import Settings, SettingsError

ROOT_LOGGER = "ccproxy"
# Sanic's own loggers, routed through the same handlers when lines are JSON, so stderr holds nothing else.
SANIC_LOGGERS = ("sanic.root", "sanic.error", "sanic.server")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ERROR_LOG_LEVEL = logging.WARNING  # ERROR_LOG_FILE_PATH: failed requests (5xx are warnings) and errors
FILE_MODE = 0o640
# How often a file handler looks whether another process rotated its file (then it reopens the path).
REOPEN_CHECK_SECONDS = 1.0
# INFO lines (the usage line of every request) are written at most this long after they were logged, or as soon as
# this many bytes wait: one write per handler for many requests instead of one per event-loop turn. Warnings and
# errors are written at once; a worker that stops writes what waits (flush_logs).
FLUSH_DELAY_SECONDS = 0.05
FLUSH_AT_BYTES = 64 * 1024


def log_format(settings: Settings, stream: TextIO | None = None) -> str:
    """LOG_FORMAT, else json unless stderr is a terminal (where people read lines rather than ship them)."""
    if settings.log_format:
        return settings.log_format.lower()
    stream = sys.stderr if stream is None else stream
    return "text" if stream.isatty() else "json"


class UtcStamp:
    """Log times as UTC ISO 8601 with milliseconds; strftime once per second, not per line."""

    __slots__ = ("_second", "_stamp")

    def __init__(self) -> None:
        self._second = -1
        self._stamp = ""

    def __call__(self, created: float) -> str:
        second = int(created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ms), level, logger, message, pid, request_id, the record's fields."""

    def __init__(self) -> None:
        super().__init__()
        self.stamp = UtcStamp()

    def format(self, record: logging.LogRecord) -> str:
        done: str | None = getattr(record, "json_line", None)
        if done is not None:
            return done  # a record reaches stderr and the log files: formatted once
        line: dict[str, Any] = {
            "time": self.stamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        fields = getattr(record, "fields", None)
        if fields:
            line.update(fields)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        record.json_line = text = dumps_text(line)
        return text


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [req_…] key=value ...` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request_id = REQUEST_ID.get()
        fields = getattr(record, "fields", None)
        extra = f" [{request_id}]" if request_id is not None and request_id not in text else ""
        if fields:
            extra += "".join(f" {key}={_text(value)}" for key, value in fields.items() if value is not None)
        if not extra:
            return text
        head, newline, rest = text.partition("\n")  # after the message, before any traceback
        return head + extra + newline + rest


def _text(value: Any) -> str:
    return f"{value:.6f}" if isinstance(value, float) else str(value)


class BatchingHandler(logging.Handler):
    """Writes INFO and DEBUG lines in batches: at most FLUSH_DELAY_SECONDS after the first of them, or once
    FLUSH_AT_BYTES wait, with one write for every line of the batch (a busy proxy finishes hundreds of requests in
    that time; one write per request, or even per event-loop turn, cost more than building the lines). Warnings and
    errors, and records logged outside the event loop (start-up, worker threads), are written at once, with what
    waits before them. Subclasses implement `write(bytes)`."""

    _pending: list[bytes]
    _pending_bytes: int
    _timer: BatchTimer  # writes the batch FLUSH_DELAY_SECONDS after its first line

    def _batch(self) -> None:
        self._pending = []
        self._pending_bytes = 0
        self._timer = BatchTimer(FLUSH_DELAY_SECONDS, self.flush)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._add((self.format(record) + "\n").encode("utf-8", "backslashreplace"), record.levelno)
        except Exception:
            self.handleError(record)

    def add_line(self, line: bytes) -> None:
        """A finished INFO line (ccproxy/logs.py `log_fields`, `DirectLines`), batched like a record's."""
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            self._add(line, logging.INFO)

    def _add(self, line: bytes, level: int) -> None:
        self._pending.append(line)
        self._pending_bytes += len(line)
        # Written now: warnings and errors, a full batch, or no loop in this thread to write it later.
        if level >= logging.WARNING or self._pending_bytes >= FLUSH_AT_BYTES or not self._timer.arm():
            self.flush()

    def flush(self) -> None:
        self.acquire()
        try:
            if self._pending:
                data = b"".join(self._pending)
                self._pending.clear()
                self._pending_bytes = 0
                self.write(data)
        finally:
            self.release()

    def write(self, data: bytes) -> None:
        raise NotImplementedError


class StderrLines(BatchingHandler, logging.StreamHandler):  # type: ignore[type-arg]  # a text stream
    """Lines to stderr (the stream it was when logging was configured; `setStream` replaces it)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        logging.StreamHandler.__init__(self, stream)
        self._batch()

    def flush(self) -> None:
        BatchingHandler.flush(self)

    def write(self, data: bytes) -> None:
        buffer = getattr(self.stream, "buffer", None)
        if buffer is None:
            self.stream.write(data.decode("utf-8"))
            self.stream.flush()
            return
        self.stream.flush()  # whatever was written as text first stays first
        buffer.write(data)
        buffer.flush()


class RotatingLogFile(BatchingHandler):
    """Appends lines to a file (O_APPEND: whole lines from several worker processes never interleave) and rotates
    it by size, `path` -> `path.1` -> ... -> `path.<backups>`, under an flock so two workers never both rotate.

    A worker that finds its file rotated by another (the path is a new file) reopens the path. Each worker counts
    the bytes it wrote and reads the real size once a second, so the file may pass `max_bytes` by up to a second
    of the other workers' lines. `max_bytes` 0 or `backups` 0: the file only grows.
    """

    def __init__(self, path: str, max_bytes: int, backups: int, level: int = logging.NOTSET) -> None:
        super().__init__(level)
        self._batch()
        self.path = os.path.abspath(path)
        self.max_bytes = max_bytes if backups > 0 else 0
        self.backups = backups
        self.fd = -1
        self.size = 0
        self.inode = 0
        self.checked = 0.0
        self._open()

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
        stat = os.fstat(self.fd)
        self.size, self.inode, self.checked = stat.st_size, stat.st_ino, time.monotonic()

    def write(self, data: bytes) -> None:
        if self.max_bytes and self.size + len(data) > self.max_bytes:
            self._rotate()
        elif time.monotonic() - self.checked > REOPEN_CHECK_SECONDS:
            self._follow()
        os.write(self.fd, data)
        self.size += len(data)

    def _follow(self) -> None:
        """Reopen when another process rotated the path away; take in the real size (others write too)."""
        self.checked = time.monotonic()
        try:
            moved = os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            moved = True
        if moved:
            self._reopen()
        else:
            self.size = os.fstat(self.fd).st_size

    def _rotate(self) -> None:
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                stat = os.stat(self.path)
            except FileNotFoundError:
                stat = None
            # Rotate only our own, still-full file: another worker may have rotated it a moment ago.
            if stat is not None and stat.st_ino == self.inode and stat.st_size >= self.max_bytes // 2:
                for number in range(self.backups - 1, 0, -1):
                    older = f"{self.path}.{number}"
                    if os.path.exists(older):
                        os.replace(older, f"{self.path}.{number + 1}")
                os.replace(self.path, self.path + ".1")
            self._reopen()

    def _reopen(self) -> None:
        os.close(self.fd)
        self._open()

    def close(self) -> None:
        self.flush()
        self.acquire()
        try:
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1
        finally:
            self.release()
        super().close()


def build_handlers(settings: Settings, redact: Redactor) -> list[logging.Handler]:
    """stderr (text or JSON), LOG_FILE_PATH (JSON, every level), ERROR_LOG_FILE_PATH (JSON, warnings and errors),
    each with the redacting filter."""
    json_lines = log_format(settings) == "json"
    stderr = StderrLines()
    stderr.setFormatter(JsonFormatter() if json_lines else TextFormatter())
    handlers: list[logging.Handler] = [stderr]
    files = (
        ("LOG_FILE_PATH", settings.log_file_path, logging.NOTSET),
        ("ERROR_LOG_FILE_PATH", settings.error_log_file_path, ERROR_LOG_LEVEL),
    )
    for name, path, level in files:
        if not path:
            continue
        try:
            file = RotatingLogFile(path, settings.log_file_max_bytes, settings.log_file_backups, level)
        except OSError as exc:
            raise SettingsError(f"{name}: cannot open {path!r}: {exc.strerror}") from None
        file.setFormatter(JsonFormatter())
        handlers.append(file)
    redacting = RedactingFilter(redact)
    for handler in handlers:
        handler.addFilter(redacting)
    return handlers


def configure_logging(settings: Settings, redact: Redactor) -> None:
    """The `ccproxy` loggers write at LOG_LEVEL to the handlers above (replacing and closing earlier ones)."""
    handlers = build_handlers(settings, redact)
    logger = logging.getLogger(ROOT_LOGGER)
    for old in logger.handlers:
        old.close()
    logger.handlers[:] = handlers
    logger.setLevel(settings.log_level.upper())
    logger.propagate = False
    if log_format(settings) == "json":
        for name in SANIC_LOGGERS:
            logging.getLogger(name).handlers[:] = handlers


class DirectLines:
    """Where one logger's INFO lines go when every handler that takes them is one of this module's JSON batching
    handlers carrying one and the same RedactingFilter (what configure_logging builds): then a finished JSON line may
    be added to each handler's batch directly, skipping `logging` altogether (see `log_fields`).

    Worked out again only when the handlers along the logger's chain change, not per line: `route()` compares the
    handlers it sees with those it resolved, which is cheaper than resolving them.
    """

    __slots__ = ("_handlers", "_seen", "logger", "redacting")

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self._seen: tuple[logging.Handler, ...] | None = None
        self._handlers: tuple[BatchingHandler, ...] = ()
        self.redacting: RedactingFilter | None = None

    def route(self) -> tuple[BatchingHandler, ...] | None:
        """The handlers to add finished lines to (redacted by `self.redacting`), or None: log a record instead."""
        seen = _handlers_of(self.logger)
        if seen != self._seen:
            self._seen = seen
            self._resolve(seen)
        return self._handlers if self.redacting is not None else None

    def _resolve(self, seen: tuple[logging.Handler, ...]) -> None:
        handlers: list[BatchingHandler] = []
        filters: set[RedactingFilter] = set()
        for handler in seen:
            if handler.level > logging.INFO:
                continue
            direct = _direct(handler)
            if direct is None:
                self._handlers, self.redacting = (), None
                return
            handlers.append(direct[0])
            filters.add(direct[2])
        self._handlers = tuple(handlers)
        self.redacting = filters.pop() if len(filters) == 1 else None


def _handlers_of(logger: logging.Logger) -> tuple[logging.Handler, ...]:
    """Every handler a record of `logger` reaches, along the propagation chain."""
    found: tuple[logging.Handler, ...] = ()
    current: logging.Logger | None = logger
    while current is not None:
        if current.handlers:
            found += tuple(current.handlers)
        current = current.parent if current.propagate else None
    return found


def log_fields(logger: logging.Logger, message: str, fields: dict[str, Any], make_record: RecordMaker) -> None:
    """Log `message` with `fields` at INFO, as cheaply as the handlers allow (this runs once per request).

    A JSON handler of this module whose RedactingFilter is known gets the finished line straight into its batch:
    the line is built once, its text fields redacted by that filter's redactor, and the `logging` machinery (record,
    `callHandlers`, handler locks and filters, per handler) is skipped, which was most of the line's cost. Any other
    handler (text lines, pytest's caplog, a plugin's) gets an ordinary record from `make_record`, filters and all.
    """
    if not logger.isEnabledFor(logging.INFO):
        return
    line, made_by = b"", None  # the JSON line, and the filter that redacted it
    record: logging.LogRecord | None = None
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if handler.level > logging.INFO:
                continue
            direct = _direct(handler)
            if direct is None:
                if record is None:
                    record = make_record(fields)
                handler.handle(record)
                continue
            batching, formatter, redacting = direct
            if redacting is not made_by:
                line, made_by = _json_line(formatter, redacting, logger.name, message, fields), redacting
            batching.add_line(line)
        current = current.parent if current.propagate else None


RecordMaker = Callable[[dict[str, Any]], logging.LogRecord]


def _direct(handler: logging.Handler) -> tuple[BatchingHandler, JsonFormatter, RedactingFilter] | None:
    """A handler that can take finished JSON lines (batching, JSON, its only filter redacting), else None."""
    formatter, filters = handler.formatter, handler.filters
    if isinstance(handler, BatchingHandler) and type(formatter) is JsonFormatter and len(filters) == 1:
        redacting = filters[0]
        if isinstance(redacting, RedactingFilter):
            return handler, formatter, redacting
    return None


def _json_line(
    formatter: JsonFormatter, redacting: RedactingFilter, name: str, message: str, fields: dict[str, Any]
) -> bytes:
    """What JsonFormatter writes for such a record (time, level, logger, message, pid, request_id, fields)."""
    now = time.time()
    line: dict[str, Any] = {
        "time": formatter.stamp(now),
        "level": "INFO",
        "logger": name,
        "message": redacting.redact_text(message),
        "pid": os.getpid(),
    }
    request_id = REQUEST_ID.get()
    if request_id is not None:
        line["request_id"] = request_id
    line.update(redacting.redacted_fields(fields))
    return dumps(line) + b"\n"


def flush_logs() -> None:
    """Write what the handlers still hold (server stop: worker processes exit without logging's atexit flush)."""
    for handler in logging.getLogger(ROOT_LOGGER).handlers:
        handler.flush()
