"""The usage log's line for one request, built from cached pieces.

One JSON line per request is most of what usage and cost cost (measured: the generic `log_fields` path was ~40 % of
everything client keys, metrics and JSON logs add to a small request). Most of a line repeats from request to
request: who asked (the key id), for which model, through which backend, with which error type. Those fields are
redacted and encoded once per distinct set and kept as text; per request only the time, the request id and the
numbers are formatted. The line holds what `usage_fields` gives the generic path, with the same values (its keys in
a slightly different order: the repeating text fields first).

It is used only when every handler the line reaches is one of ccproxy's JSON batching handlers with one
RedactingFilter (what configure_logging builds); otherwise the caller logs a record the ordinary way.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from math import isfinite

from ccproxy.core.jsoncodec import dumps_text
from ccproxy.events import RequestRecord
from ccproxy.logs import DirectLines, UtcStamp
from ccproxy.redaction import RedactingFilter

# The fields whose values repeat: encoded once per distinct set (in this order, first in the line).
REPEATING = ("endpoint", "key_id", "client_model", "backend", "upstream_model", "error_type")
MAX_PIECES = 1024  # distinct sets kept; beyond that a line encodes its own (client-chosen model names are unbounded)
PieceKey = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


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
        start = self._start(redacting)
        text = self.text
        block = "".join([text(record, redacting, start) for record in records]).encode("utf-8", "backslashreplace")
        for handler in handlers:
            handler.add_line(block)
        return True

    def line(self, record: RequestRecord, redacting: RedactingFilter) -> bytes:
        return self.text(record, redacting, self._start(redacting)).encode("utf-8", "backslashreplace")

    def text(self, record: RequestRecord, redacting: RedactingFilter, start: str) -> str:
        """The line, newline included, after `start` (`{"time":...,"request_id":`, for `redacting`'s pieces)."""
        key: PieceKey = (
            record.endpoint,
            record.key_id,
            record.client_model,
            record.backend,
            record.upstream_model,
            record.error_type,
        )
        piece = self._pieces.get(key)
        if piece is None:
            piece = _piece(key, redacting)
            if len(self._pieces) < MAX_PIECES:
                self._pieces[key] = piece
        # The numbers inline (no helper per field: this runs for every request); what JSON has no number for (a NaN
        # or an infinity, say from an upstream's cost) is written as null. A float is written with a fixed number of
        # decimals: the value `round` gives the generic line, in one float-to-text conversion instead of two
        # (`round` converts too; measured: 390 -> 133 ns per field).
        cost, ttft, total = record.cost_usd, record.ttft_ms, record.total_ms
        return (
            f'{start}{dumps_text(record.request_id)},{piece},"status":{record.status},'
            f'"stream":{"true" if record.stream else "false"},"input_tokens":{record.input_tokens},'
            f'"output_tokens":{record.output_tokens},"cache_read_tokens":{record.cache_read_tokens},'
            f'"cache_write_tokens":{record.cache_write_tokens},'
            f'"cost_usd":{f"{cost:.8f}" if cost is not None and isfinite(cost) else "null"},'
            f'"ttft_ms":{f"{ttft:.2f}" if ttft is not None and isfinite(ttft) else "null"},'
            f'"total_ms":{f"{total:.2f}" if isfinite(total) else "null"},"retries":{record.retries},'
            f'"fallbacks":{record.fallbacks}}}\n'
        )

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
