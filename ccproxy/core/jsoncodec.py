"""The JSON codec for every hot path: orjson, with the standard library only for what orjson refuses.

Measured on the 78 KB Claude Code request (benchmarks/README.md): orjson dumps it in ~18 µs and loads it in ~70 µs,
ujson needs ~100-230 µs and ~105 µs, the standard library ~425 µs to dump.

Nesting: orjson parses at most 1024 levels and writes at most 254. The standard library, tried for what orjson
refuses, recurses and would raise RecursionError near Python's recursion limit; here that is a `NestingError` (a
ValueError, like any other JSON that cannot be read), so deep JSON never escapes as a RecursionError.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

# Already serialised JSON, written into orjson's output as it is (splice.py).
Fragment = orjson.Fragment


class NestingError(ValueError):
    """JSON nested too deeply for the parser or the serialiser."""


def _too_deep() -> NestingError:
    return NestingError("JSON is nested too deeply")


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError (json.JSONDecodeError, or NestingError) for input that cannot be read."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson rejects lone surrogate escapes ("\\ud83d"), which some backends emit when they cut an emoji
        # between chunks; the standard library keeps them. Truly invalid JSON fails here too, as ValueError.
        try:
            return json.loads(data)
        except RecursionError:
            raise _too_deep() from None


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:
        # A lone surrogate has no UTF-8 form: escaped (ASCII output) it is still valid JSON.
        try:
            return json.dumps(value, separators=(",", ":")).encode("ascii")
        except RecursionError:
            raise _too_deep() from None


def dumps_strict(value: Any) -> bytes | None:
    """Compact UTF-8 JSON bytes as orjson writes them, or None where only the standard library could (lone
    surrogates): pieces spliced into a body with `Fragment` must be the bytes `dumps` writes inside the body."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return None


def dumps_text(value: Any) -> str:
    """Compact JSON text, e.g. tool arguments."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except RecursionError:
            raise _too_deep() from None
