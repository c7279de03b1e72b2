"""The conversion core: pure, synchronous, no IO. Anthropic <-> OpenAI request, response and stream shapes."""

from __future__ import annotations


def implementation_name() -> str:
    """Which core is running: "python" or "cython" (shown by GET / and the start-up log)."""
    return "python"
