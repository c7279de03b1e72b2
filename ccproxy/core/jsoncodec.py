"""The JSON codec for every hot path: orjson, with the standard library only for what orjson refuses.

Measured on the 78 KB Claude Code request (benchmarks/README.md): orjson dumps it in ~18 µs and loads it in ~70 µs,
ujson needs ~100-230 µs and ~105 µs, the standard library ~425 µs to dump.
"""

from __future__ import annotations

import json
from typing import Any

import orjson


def loads(data: bytes | str) -> Any:
    """Parse JSON; raises ValueError (json.JSONDecodeError) for invalid input."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # orjson rejects lone surrogate escapes ("\\ud83d"), which some backends emit when they cut an emoji
        # between chunks; the standard library keeps them. Truly invalid JSON fails here too, as ValueError.
        return json.loads(data)


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON bytes."""
    try:
        return orjson.dumps(value)
    except TypeError:
        # A lone surrogate has no UTF-8 form: escaped (ASCII output) it is still valid JSON.
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def dumps_text(value: Any) -> str:
    """Compact JSON text, e.g. tool arguments."""
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
