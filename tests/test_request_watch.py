"""What RequestWatch reads from the last bytes of a stream: the final usage, or the error that ended it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.http.observe import _last_events

FINAL_USAGE = {"input_tokens": 12, "output_tokens": 34, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 6}


def event(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def whole_stream(ending: bytes) -> bytes:
    """A stream as one chunk (an upstream that sent it in one read), its text full of SSE look-alikes."""
    deltas = b"".join(
        event("content_block_delta", {"type": "content_block_delta", "delta": {"text": f"event: error\\n{n}"}})
        for n in range(200)
    )
    return event("message_start", {"type": "message_start"}) + deltas + ending


DELTA = event("message_delta", {"type": "message_delta", "usage": FINAL_USAGE})
STOP = event("message_stop", {"type": "message_stop"})
ERROR = event("error", {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})


@pytest.mark.parametrize(
    ("chunk", "names"),
    [
        (whole_stream(DELTA + STOP), [b"message_stop", b"message_delta"]),
        (DELTA + STOP, [b"message_stop", b"message_delta"]),  # the delta opens the chunk
        (STOP, [b"message_stop"]),
        (whole_stream(ERROR), [b"error", b"content_block_delta"]),
        (ERROR, [b"error"]),
        (b"", []),
        (b"event: message_delta\ndata: {not json\n\n", []),
        (b"data: no event line\n\n", []),
    ],
)
def test_the_last_two_events_are_read_from_the_end(chunk: bytes, names: list[bytes]) -> None:
    found = _last_events(chunk)
    assert [name for name, _ in found] == names
    for name, data in found:
        if name == b"message_delta":
            assert data["usage"] == FINAL_USAGE
        if name == b"error":
            assert data["error"]["type"] == "overloaded_error"
