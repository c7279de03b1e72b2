"""What a ccproxy-guardrails redact rule adds to a streamed answer: time to the first text delta and CPU per chunk.

Run with `.venv/bin/python -m pytest benchmarks/test_bench_guardrails.py --benchmark-only`. The stream is the
benchmarks' 100-chunk OpenAI stream (69 text deltas, a Bash call in 28 argument pieces), one upstream read per
chunk, through the proxy's stream relay (SSE decode, JSON parse, translate, filter, SSE encode), with the core the
environment selects. Variants: no filter (the fused fast path), a filter that passes every event (the cost of the
filtered path itself), the default redact rule (the built-in secret detectors), a redact rule with e-mail, phone and
two patterns of its own, and the default rule on a stream that carries secrets split across deltas.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from bench_payloads import stream_chunks

from ccproxy import StreamContext, StreamFilter
from ccproxy.core.plan import ResponseContext
from ccproxy.core.relay import StreamRelay
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.filters import StreamFilters
from ccproxy_guardrails.config import parse_rules
from ccproxy_guardrails.stream import filter_factory_for
from tests.support.anthropic_stream import streamed_message

Benchmark = Any  # pytest-benchmark's fixture has no public type
Factory = Callable[[StreamContext], StreamFilter | None]
KEY = "sk-proj-" + "Qm4xT7vB2nK9pL5rW8sD3fG6hJ1kZ0cA" * 2
CONTEXT = StreamContext("req_bench", "claude-sonnet-4-5", "gpt-5")
FIRST_DELTA = b"event: content_block_delta"


class PassThrough(StreamFilter):
    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return [event]


def rule_factory(options: dict[str, Any]) -> Factory:
    [rule] = parse_rules(options)
    factory = filter_factory_for(rule, lambda event: None)
    assert factory is not None
    return factory


FILTERS: dict[str, list[Factory]] = {
    "no filter (fused path)": [],
    "pass-through filter": [lambda context: PassThrough()],
    "redact: secrets": [rule_factory({"redact": {}})],
    "redact: secrets+email+phone+2 patterns": [
        rule_factory(
            {
                "redact": {
                    "detectors": ["secrets", "email", "phone"],
                    "patterns": ["(?i)project\\s+falcon", "\\bACME-[0-9]{6}\\b"],
                }
            }
        )
    ],
}


def reads(chunks: list[dict[str, Any]]) -> list[bytes]:
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]


def with_secrets(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same stream with a key split over three text deltas, twice, and one in the tool arguments."""
    chunks = json.loads(json.dumps(chunks))
    texts = [chunk for chunk in chunks if chunk["choices"] and chunk["choices"][0]["delta"].get("content")]
    for start in (10, 40):
        for offset, piece in enumerate((KEY[:20], KEY[20:50], KEY[50:] + " ")):
            texts[start + offset]["choices"][0]["delta"]["content"] = piece
    calls = [chunk for chunk in chunks if chunk["choices"] and chunk["choices"][0]["delta"].get("tool_calls")]
    function = calls[5]["choices"][0]["delta"]["tool_calls"][0]["function"]
    function["arguments"] = function["arguments"][:-1] + " " + KEY + " " + function["arguments"][-1:]
    return chunks


PLAIN = reads(stream_chunks())
SECRET = reads(with_secrets(stream_chunks()))


def relay_for(factories: list[Factory]) -> StreamRelay:
    context = ResponseContext(
        message_id="msg_bench", model="claude-sonnet-4-5", input_tokens_estimate=1, tool_names=ToolNameMap()
    )
    if not factories:
        return StreamRelay(context)
    return StreamRelay(context, filters=StreamFilters(factories).select(CONTEXT))


def whole_stream(factories: list[Factory], stream: list[bytes]) -> bytes:
    relay = relay_for(factories)
    out = [relay.start()]
    for data in stream:
        out.append(relay.feed(data))
        if relay.done:
            break
    out.append(relay.end())
    return b"".join(out)


def to_first_delta(factories: list[Factory], stream: list[bytes]) -> int:
    """Feed reads until the first content_block_delta is out; returns how many reads that took."""
    relay = relay_for(factories)
    relay.start()
    for count, data in enumerate(stream, 1):
        if FIRST_DELTA in relay.feed(data):
            return count
    raise AssertionError("no text delta")


@pytest.mark.parametrize("variant", list(FILTERS))
def test_first_text_delta(benchmark: Benchmark, variant: str) -> None:
    """Time to the first text delta: start, then reads until it is out (the same read with or without a filter)."""
    benchmark.group = "guardrails stream-100: to the first text delta"
    assert benchmark(to_first_delta, FILTERS[variant], PLAIN) == to_first_delta([], PLAIN) == 2


@pytest.mark.parametrize("variant", list(FILTERS))
def test_whole_stream(benchmark: Benchmark, variant: str) -> None:
    """All 100 chunks: divide by 100 for the CPU per chunk."""
    benchmark.group = "guardrails stream-100: whole stream"
    result = benchmark(whole_stream, FILTERS[variant], PLAIN)
    assert streamed_message(result) == streamed_message(whole_stream([], PLAIN))  # nothing to redact: the same


@pytest.mark.parametrize("variant", ["no filter (fused path)", "redact: secrets"])
def test_whole_stream_with_split_secrets(benchmark: Benchmark, variant: str) -> None:
    benchmark.group = "guardrails stream-100: whole stream, 3 keys split across deltas"
    result = benchmark(whole_stream, FILTERS[variant], SECRET)
    assert (KEY.encode() in result) == (variant == "no filter (fused path)")
