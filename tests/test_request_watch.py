"""What RequestWatch reads from the last bytes of a stream: the final usage, or the error that ended it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.events import RequestRecord
from ccproxy.http.observe import RequestWatch

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


def stream_end(chunk: bytes) -> RequestRecord:
    """What a RequestWatch records from `chunk` as the stream's last one."""
    watch = RequestWatch.__new__(RequestWatch)  # no observers or request needed for this part
    watch.record = RequestRecord(request_id="req_1")
    watch.stream_end(chunk)
    return watch.record


TOKENS = (12, 34, 5, 6)


@pytest.mark.parametrize(
    ("chunk", "tokens", "error_type"),
    [
        (whole_stream(DELTA + STOP), TOKENS, None),
        (DELTA + STOP, TOKENS, None),  # the delta opens the chunk
        (STOP, (0, 0, 0, 0), None),  # the delta went out in an earlier chunk
        (whole_stream(ERROR), (0, 0, 0, 0), "overloaded_error"),
        (ERROR, (0, 0, 0, 0), "overloaded_error"),
        (b"", (0, 0, 0, 0), None),
        (b"event: message_delta\ndata: {not json\n\nevent: message_stop\ndata: {}\n\n", (0, 0, 0, 0), None),
        (b"data: no event line\n\n", (0, 0, 0, 0), None),
        (DELTA, (0, 0, 0, 0), None),  # not closed by message_stop: not the stream's end
    ],
)
def test_the_final_usage_or_error_is_read_from_the_end(
    chunk: bytes, tokens: tuple[int, int, int, int], error_type: str | None
) -> None:
    record = stream_end(chunk)
    assert (record.input_tokens, record.output_tokens, record.cache_read_tokens, record.cache_write_tokens) == tokens
    assert record.error_type == error_type


def test_hostile_usage_values_count_as_zero() -> None:
    usage = {
        "input_tokens": True,
        "output_tokens": 1.5,
        "cache_read_input_tokens": "7",
        "cache_creation_input_tokens": 3,
    }
    record = stream_end(event("message_delta", {"type": "message_delta", "usage": usage}) + STOP)
    assert (record.input_tokens, record.output_tokens, record.cache_read_tokens, record.cache_write_tokens) == (
        0,
        0,
        0,
        3,
    )
