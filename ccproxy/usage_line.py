"""The usage log's line for one request, built from cached pieces.

One JSON line per request is most of what usage and cost cost (measured: the generic `log_fields` path was ~40 % of
everything client keys, metrics and JSON logs add to a small request). Most of a line repeats from request to
request: who asked (the key id), for which model, through which backend, with which error type. Those fields are
redacted and encoded once per distinct set and kept as text; per request only the time, the request id and the
numbers are formatted. The line holds what `usage_fields` gives the generic path, with the same values (its keys in
a slightly different order: the repeating text fields first).

It is used only when every handler the line reaches is one of ccproxy's JSON batching handlers with one
RedactingFilter (what configure_logging builds); otherwise the caller logs a record the ordinary way. The lines
themselves are written by the core's `usage_block` (ccproxy/core/_usageline_py.py, with a hand-written compiled
twin: the numbers were most of a line's cost).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ccproxy.core.jsoncodec import dumps_text
from ccproxy.core.usageline import usage_block
from ccproxy.events import RequestRecord
from ccproxy.logs import DirectLines, UtcStamp
from ccproxy.redaction import RedactingFilter

if TYPE_CHECKING:
    from ccproxy.core._usageline_py import PieceKey

# The fields whose values repeat: encoded once per distinct set (in this order, first in the line).
REPEATING = ("endpoint", "key_id", "client_model", "backend", "upstream_model", "error_type")
MAX_PIECES = 1024  # distinct sets kept; beyond that a line encodes its own (client-chosen model names are unbounded)


class UsageLines:
    """Adds a request's usage line straight to the JSON handlers of `logger` (see the module docstring)."""

    __slots__ = ("_head", "_head_for", "_pieces", "_stamp", "direct", "message")

    def __init__(self, logger: logging.Logger, message: str) -> None:
        self.direct = DirectLines(logger)
        self.message = message
        self._stamp = UtcStamp()
        self._pieces: dict[PieceKey, str] = {}
        self._head = ""  # `","level":...,"pid":N,"request_id":` after the time
        self._head_for: tuple[RedactingFilter, int] | None = None

    def write(self, record: RequestRecord) -> bool:
        """Add `record`'s line to every handler; False (nothing written) when the handlers need a record instead."""
        return self.write_all((record,))

    def write_all(self, records: Sequence[RequestRecord]) -> bool:
        """Add the records' lines to every handler as one block; False (nothing written) when the handlers need
        records instead."""
        handlers = self.direct.route()
        redacting = self.direct.redacting
        if handlers is None or redacting is None:
            return False
        # The lines of one block are written together, so they carry the block's time (as a record logged now
        # would), and the fixed part after it is looked up once, not per line (os.getpid() is a system call).
        block = usage_block(records, self._start(redacting), self._pieces, self._piece_for)
        for handler in handlers:
            handler.add_line(block)
        return True

    def line(self, record: RequestRecord, redacting: RedactingFilter) -> bytes:
        """One record's line, newline included, with `redacting`'s pieces."""
        return usage_block((record,), self._start(redacting), self._pieces, self._piece_for)

    def _piece_for(self, key: PieceKey) -> str:
        """The repeating fields' text for `key`, redacted by the redactor of the current head, kept while there is
        room (client-chosen model names are unbounded)."""
        assert self._head_for is not None  # _start ran first
        piece = _piece(key, self._head_for[0])
        if len(self._pieces) < MAX_PIECES:
            self._pieces[key] = piece
        return piece

    def _start(self, redacting: RedactingFilter) -> str:
        """`{"time":...,"request_id":` for lines written now: the time, then the fixed part for this process and this
        redactor."""
        pid = os.getpid()
        head = self._head if self._head_for == (redacting, pid) else self._new_head(redacting, pid)
        return f'{{"time":"{self._stamp(time.time())}{head}'

    def _new_head(self, redacting: RedactingFilter, pid: int) -> str:
        """The fixed part after the time, for this process and this redactor (the pieces were redacted by it too)."""
        if self._head_for is None or self._head_for[0] is not redacting:
            self._pieces.clear()
        name = dumps_text(self.direct.logger.name)
        message = dumps_text(redacting.redact_text(self.message))
        self._head = f'","level":"INFO","logger":{name},"message":{message},"pid":{pid},"request_id":'
        self._head_for = (redacting, pid)
        return self._head


def _piece(key: PieceKey, redacting: RedactingFilter) -> str:
    """`"endpoint":...,"error_type":...` with every text redacted."""
    redact = redacting.redact_text
    return ",".join(
        f'"{name}":{dumps_text(redact(value) if isinstance(value, str) else value)}'
        for name, value in zip(REPEATING, key, strict=True)
    )
