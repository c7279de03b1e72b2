"""The cost an upstream reports in its usage (OpenRouter's `usage.cost`), read from a completion or the last usage
chunk of a stream, for the request record."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext

OPENROUTER_USAGE = {
    "prompt_tokens": 607,
    "completion_tokens": 143,
    "total_tokens": 750,
    "cost": 0.001322,
    "is_byok": False,
    "prompt_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
    "cost_details": {"upstream_inference_cost": 0.001322},
}


@pytest.mark.parametrize(
    ("usage", "cost"),
    [
        (OPENROUTER_USAGE, 0.001322),
        ({"cost": 0}, 0.0),
        ({"cost": 2}, 2.0),
        # With the user's own vendor key, `cost` is OpenRouter's fee and the vendor bills the inference on top.
        ({"cost": 0.0005, "is_byok": True, "cost_details": {"upstream_inference_cost": 0.02}}, 0.0205),
        ({"cost": 0.0005, "is_byok": True}, 0.0005),
        ({"prompt_tokens": 10}, None),
        ({"cost": "0.1"}, None),
        ({"cost": True}, None),
        ({"cost": -1}, None),
        ({"cost": float("nan")}, None),
        ({"cost": float("inf")}, None),
        (None, None),
        ([], None),
    ],
)
def test_upstream_cost(core: Core, usage: Any, cost: float | None) -> None:
    assert core.usage.upstream_cost(usage) == cost


def test_a_stream_keeps_the_last_usage_the_upstream_sent(core: Core) -> None:
    relay = core.relay.StreamRelay(ResponseContext(message_id="msg_1", model="claude-sonnet-5"))
    assert relay.upstream_usage is None
    chunks: list[dict[str, Any]] = [
        {"id": "gen-1", "choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
        {"id": "gen-1", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": OPENROUTER_USAGE},
    ]
    body = b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"
    relay.start()
    relay.feed(body)
    relay.end()
    assert relay.upstream_usage == OPENROUTER_USAGE
    assert core.usage.upstream_cost(relay.upstream_usage) == 0.001322
