"""How deep a request's arrays and objects may nest: the documented maximum and a check that cannot overflow.

Every request body is checked right after parsing (core/validate.py), before anything walks it. Bounding the depth
once, up front, is what makes everything after it safe without a guard of its own: the recursive walkers
(validation, conversion, token counting) stay far below Python's recursion limit, and the upstream body, at most
one level deeper than the request, stays within orjson's serialisation limit of 254 levels, so it never falls back
to the standard library's recursive encoder.

The check visits every array and object once, level by level, with no recursion: on the 78 KB Claude Code request
(whose tool schemas hold nearly all of its containers) it adds ~6-8 µs to the compiled validation, ~30 µs to the
pure-Python one.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MAX_DEPTH", "NESTING_MESSAGE", "exceeds_depth"]

#: The deepest nesting of arrays and objects a request may have; the body itself is level 1. Real tool schemas and
#: tool inputs stay below 30.
MAX_DEPTH = 200
NESTING_MESSAGE = f"Request body is nested too deeply (more than {MAX_DEPTH} levels of arrays and objects)"


def exceeds_depth(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether arrays and objects in `value` nest more than `limit` levels deep (`value` itself is level 1).

    Only exact `dict` and `list` count: they are all a JSON parser makes, and exact type checks keep the walk fast.
    """
    level: list[Any] = [value] if type(value) is dict or type(value) is list else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below: list[Any] = []
        append = below.append
        for container in level:
            if type(container) is dict:
                for item in container.values():
                    if type(item) is dict or type(item) is list:
                        append(item)
            else:
                for item in container:
                    if type(item) is dict or type(item) is list:
                        append(item)
        level = below
    return False
