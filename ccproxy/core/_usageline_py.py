"""The usage log's lines for a batch of request records, as one block of UTF-8 bytes (ccproxy/usage_line.py).

Each line is `start` (`{"time":...,"request_id":`), the request id, the record's repeating text fields as one cached
piece, then its numbers. This file is the reference; its compiled twin `_usageline_c.pyx` is hand-written Cython
that writes the same bytes into one C buffer (per request, formatting ~15 numbers here cost more than the rest of
the usage observer). Floats are written with a fixed number of decimals (the value `round` gives the generic line);
what JSON has no number for (None, a NaN or an infinity) is written as null.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from math import isfinite

from ccproxy.core.jsoncodec import dumps_text
from ccproxy.events import RequestRecord

__all__ = ["usage_block"]

# The repeating fields' values, in line order: `endpoint, key_id, client_model, backend, upstream_model, error_type`.
PieceKey = tuple[str | None, str | None, str | None, str | None, str | None, str | None]


def usage_block(
    records: Sequence[RequestRecord],
    start: str,
    pieces: dict[PieceKey, str],
    piece_of: Callable[[PieceKey], str],
) -> bytes:
    """The records' lines, newlines included. A record's piece (`"endpoint":...,"error_type":...`) is taken from
    `pieces`, else made by `piece_of` (which may keep it there); both are text ready for the line (redacted)."""
    return "".join([_line(record, start, pieces, piece_of) for record in records]).encode("utf-8", "backslashreplace")


def _line(record: RequestRecord, start: str, pieces: dict[PieceKey, str], piece_of: Callable[[PieceKey], str]) -> str:
    key: PieceKey = (
        record.endpoint,
        record.key_id,
        record.client_model,
        record.backend,
        record.upstream_model,
        record.error_type,
    )
    piece = pieces.get(key)
    if piece is None:
        piece = piece_of(key)
    # The numbers inline (no helper per field); a float with a fixed number of decimals: the value `round` gives
    # the generic line, in one float-to-text conversion instead of two.
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
