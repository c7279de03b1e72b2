"""Conversion-core micro-benchmarks: pure `[py]` vs compiled `[c]` vs a plain json/ujson round-trip of the same bytes.

Run with `.venv/bin/python -m pytest benchmarks --benchmark-only` (the default test run skips benchmarks). Each group
holds one piece of per-request work as the proxy does it, next to its implementations and its baselines.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
import pytest
import ujson
from bench_payloads import (
    claude_code_request,
    completion,
    conversation_turns,
    dumps,
    request_plan,
    small_request,
    stream_chunks,
    stream_events_bytes,
)

from ccproxy.core._twins import Core
from ccproxy.core.jsoncodec import dumps as codec_dumps
from ccproxy.core.jsoncodec import loads as codec_loads
from ccproxy.core.plan import ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.splice import SplicedPieces

Benchmark = Any  # pytest-benchmark's fixture has no public type

MESSAGE_ID = "msg_bench0123456789abcdef0123"
CLIENT_MODEL = "claude-sonnet-4-5"


@dataclass(frozen=True)
class Codec:
    """A JSON library as the baselines use it: parse bytes, write compact UTF-8 (non-ASCII kept as is)."""

    loads: Callable[[bytes], Any]
    dumps: Callable[[Any], str | bytes]


CODECS: dict[str, Codec] = {
    "json": Codec(json.loads, partial(json.dumps, ensure_ascii=False, separators=(",", ":"))),
    "ujson": Codec(ujson.loads, partial(ujson.dumps, ensure_ascii=False, escape_forward_slashes=False)),
    "ujson_ascii": Codec(ujson.loads, partial(ujson.dumps, escape_forward_slashes=False)),
    "orjson": Codec(orjson.loads, orjson.dumps),
}
# The round-trip baselines: the standard library and the codec the proxy uses (ccproxy.core.jsoncodec: orjson).
BASELINES = ("json", "orjson")
# Rounds of benchmarks that need a fresh input per call (pedantic mode: setup is not timed).
FRESH_ROUNDS = 1000

REQUESTS: dict[str, bytes] = {
    "small": dumps(small_request()).encode(),
    "claude_code": dumps(claude_code_request()).encode(),
}
COMPLETION = dumps(completion()).encode()
STREAM_READS = stream_events_bytes()
STREAM_CHUNKS = stream_chunks()


def response_context() -> ResponseContext:
    return ResponseContext(
        message_id=MESSAGE_ID, model=CLIENT_MODEL, input_tokens_estimate=1234, tool_names=ToolNameMap()
    )


def roundtrip(codec: Codec, raw: bytes) -> bytes:
    """The baseline: parse and re-serialise the same bytes, nothing else."""
    result = codec.dumps(codec.loads(raw))
    return result if isinstance(result, bytes) else result.encode()


# ------------------------------------------------------------------------------------- what the proxy does


def prepare_request(core: Core, raw: bytes) -> bytes:
    """pipeline.prepare + convert without hooks: parse, validate, convert, serialise the upstream body."""
    body = codec_loads(raw)
    core.validate.validate_messages_request(body)
    return codec_dumps(core.request.convert_request(body, request_plan(stream=bool(body.get("stream")))))


def prepare_request_spliced(core: Core, raw: bytes, pieces: SplicedPieces) -> bytes | None:
    """prepare_request with the system prompt and tools spliced in from `pieces` (what the pipeline does)."""
    body = codec_loads(raw)
    core.validate.validate_messages_request(body)
    return pieces.body(raw, body, request_plan(stream=bool(body.get("stream"))), _unchanged)


def _unchanged(body: dict[str, Any], anthropic_request: Any) -> dict[str, Any]:
    return body


def prepare_request_reusing(core: Core, raw: bytes, pieces: SplicedPieces, messages: bool) -> bytes | None:
    """What MessagesPipeline.prepare + convert do with no guardrails: the tools (and, with `messages`, the messages
    a conversation repeats) of recent requests not parsed again, the system prompt and tools spliced in."""
    parsed = pieces.parse(raw, True, messages)
    body = codec_loads(raw) if parsed is None else parsed.body
    if parsed is None:
        core.validate.validate_messages_request(body)
    else:
        core.validate.validate_messages_request(body, parsed.tools_reused, parsed.messages_reused)
    turn = pieces.learn_messages(raw, parsed, body) if messages else None
    return pieces.body(raw, body, request_plan(stream=bool(body.get("stream"))), _unchanged, turn=turn)


def convert_completion(core: Core, raw: bytes) -> bytes:
    """parse the upstream's completion + convert_response + the handler's JSON response body."""
    return codec_dumps(core.response.convert_response(codec_loads(raw), response_context()))


class PassEvents:
    """A stream filter that passes every event on: the least any filter adds (the staged path)."""

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return [event]

    def flush(self) -> list[dict[str, Any]]:
        return []


def proxy_stream(core: Core, reads: list[bytes], filtered: bool = False) -> list[bytes]:
    """pipeline.stream_events for one upstream read per chunk: SSE decode, JSON parse, translate, SSE encode."""
    relay = core.relay.StreamPipeline(response_context(), filters=[PassEvents()] if filtered else ())
    out = [relay.start()]
    for data in reads:
        encoded = relay.feed(data)
        if encoded:
            out.append(encoded)
        if relay.done:
            break
    encoded = relay.end()
    if encoded:
        out.append(encoded)
    return out


def translate_only(core: Core, chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    translator = core.stream.StreamTranslator(response_context())
    events: list[dict[str, Any]] = translator.start()
    for chunk in chunks:
        events.extend(translator.feed(chunk))
    events.extend(translator.finish())
    return events


def decode_sse(core: Core, reads: list[bytes]) -> list[bytes]:
    decoder = core.sse.SSEDecoder()
    payloads: list[bytes] = []
    for data in reads:
        payloads.extend(decoder.feed(data))
    payloads.extend(decoder.flush())
    return payloads


def encode_sse(core: Core, events: list[dict[str, Any]]) -> list[bytes]:
    encode = core.sse.encode_event
    return [encode(event) for event in events]


@pytest.fixture(scope="module")
def anthropic_events(pure_core: Core) -> list[dict[str, Any]]:
    """The Anthropic events the 100-chunk stream translates into."""
    return translate_only(pure_core, STREAM_CHUNKS)


# -------------------------------------------------------------------------------------------- request


@pytest.mark.parametrize("size", list(REQUESTS))
def test_request(benchmark: Benchmark, core: Core, pure_core: Core, size: str) -> None:
    benchmark.group = f"request-{size}: parse + validate + convert + dumps"
    raw = REQUESTS[size]
    result = benchmark(prepare_request, core, raw)
    assert result == prepare_request(pure_core, raw)
    assert json.loads(result)["model"] == "gpt-5"


@pytest.mark.parametrize("size", list(REQUESTS))
def test_request_spliced(benchmark: Benchmark, core: Core, pure_core: Core, size: str) -> None:
    """The same, with the converted system prompt and tools cached (ccproxy/splice.py): every call after the first."""
    benchmark.group = f"request-{size}: parse + validate + convert + dumps"
    raw = REQUESTS[size]
    pieces = SplicedPieces(core_request=core.request)
    result = benchmark(prepare_request_spliced, core, raw, pieces)
    assert result == prepare_request(pure_core, raw)


@pytest.mark.parametrize("reuse", ["tools", "tools+messages"])
def test_request_next_turn(benchmark: Benchmark, core: Core, pure_core: Core, reuse: str) -> None:
    """A Claude Code session's turns one after the other: 8 turns of a long conversation (the 78 KB request plus 60
    tool calls, ~160 KB), each the next of the one before (two messages more, the cache marker moved), then from
    the first again (1 in 8 starts the conversation over)."""
    benchmark.group = "request-long-conversation: parse + validate + convert + dumps, turn after turn"
    turns = [dumps(turn).encode() for turn in conversation_turns(turns=8)]
    pieces = SplicedPieces(core_request=core.request)
    prepare = partial(prepare_request_reusing, core, pieces=pieces, messages=reuse == "tools+messages")
    expected = [prepare_request(pure_core, raw) for raw in turns]
    assert [prepare(raw) for raw in turns] == expected
    at = iter(range(1 << 62))

    def next_turn() -> bytes | None:
        return prepare(turns[next(at) % len(turns)])

    benchmark(next_turn)
    assert [prepare(raw) for raw in turns] == expected


@pytest.mark.parametrize("codec", BASELINES)
@pytest.mark.parametrize("size", list(REQUESTS))
def test_request_baseline(benchmark: Benchmark, size: str, codec: str) -> None:
    benchmark.group = f"request-{size}: parse + validate + convert + dumps"
    raw = REQUESTS[size]
    assert json.loads(benchmark(roundtrip, CODECS[codec], raw)) == json.loads(raw)


def test_request_convert_only(benchmark: Benchmark, core: Core, pure_core: Core) -> None:
    """convert_request alone on the parsed Claude Code body (the body is not mutated, so it is parsed once)."""
    benchmark.group = "request-claude_code: convert_request alone"
    body = json.loads(REQUESTS["claude_code"])
    result = benchmark(lambda: core.request.convert_request(body, request_plan(stream=False)))
    assert result == pure_core.request.convert_request(body, request_plan(stream=False))


def test_request_validate_only(benchmark: Benchmark, core: Core) -> None:
    benchmark.group = "request-claude_code: validate alone"
    body = json.loads(REQUESTS["claude_code"])
    assert benchmark(core.validate.validate_messages_request, body) is None


# ------------------------------------------------------------------------------------------- response


def test_response(benchmark: Benchmark, core: Core, pure_core: Core) -> None:
    benchmark.group = "response: parse + convert + dumps"
    result = benchmark(convert_completion, core, COMPLETION)
    assert result == convert_completion(pure_core, COMPLETION)
    assert [block["type"] for block in json.loads(result)["content"]] == ["text", "tool_use"]


@pytest.mark.parametrize("codec", BASELINES)
def test_response_baseline(benchmark: Benchmark, codec: str) -> None:
    benchmark.group = "response: parse + convert + dumps"
    assert json.loads(benchmark(roundtrip, CODECS[codec], COMPLETION)) == json.loads(COMPLETION)


# --------------------------------------------------------------------------------------------- stream


def test_stream(benchmark: Benchmark, core: Core, pure_core: Core) -> None:
    """The whole per-stream work of the proxy for 100 chunks, each arriving in its own read."""
    benchmark.group = "stream-100: SSE decode + parse + translate + encode"
    result = benchmark(proxy_stream, core, STREAM_READS)
    assert result == proxy_stream(pure_core, STREAM_READS)
    text = b"".join(result)
    assert text.count(b"event: content_block_start") == 2
    assert text.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')


def test_stream_filtered(benchmark: Benchmark, core: Core) -> None:
    """The same stream on the staged path: one filter that passes every event on, as dicts, then encoded."""
    benchmark.group = "stream-100: SSE decode + parse + translate + encode"
    result = benchmark(proxy_stream, core, STREAM_READS, True)
    assert result == proxy_stream(core, STREAM_READS)


@pytest.mark.parametrize("codec", BASELINES)
def test_stream_baseline(benchmark: Benchmark, codec: str) -> None:
    """Each chunk's JSON parsed and re-serialised: what any translating proxy must at least do."""
    benchmark.group = "stream-100: SSE decode + parse + translate + encode"
    payloads = [data[len(b"data: ") : -2] for data in STREAM_READS[:-1]]
    result = benchmark(lambda: [roundtrip(CODECS[codec], payload) for payload in payloads])
    assert len(result) == len(STREAM_CHUNKS)


def test_stream_translate_only(benchmark: Benchmark, core: Core, pure_core: Core) -> None:
    benchmark.group = "stream-100: StreamTranslator alone"
    result = benchmark(translate_only, core, STREAM_CHUNKS)
    assert result == translate_only(pure_core, STREAM_CHUNKS)
    assert result[-1] == {"type": "message_stop"}


# ------------------------------------------------------------------------------------------------ SSE


def test_sse_decode(benchmark: Benchmark, core: Core) -> None:
    benchmark.group = "sse-decode: 101 events, one read each"
    result = benchmark(decode_sse, core, STREAM_READS)
    assert len(result) == len(STREAM_READS)
    assert result[-1] == b"[DONE]"


def test_sse_decode_baseline(benchmark: Benchmark) -> None:
    """The floor: cut `data: ` and the blank line off bytes known to hold exactly one event."""
    benchmark.group = "sse-decode: 101 events, one read each"
    result = benchmark(lambda: [data[len(b"data: ") : -2] for data in STREAM_READS])
    assert result[-1] == b"[DONE]"


def test_sse_encode(benchmark: Benchmark, core: Core, pure_core: Core, anthropic_events: list[dict[str, Any]]) -> None:
    benchmark.group = "sse-encode: the stream's Anthropic events"
    result = benchmark(encode_sse, core, anthropic_events)
    assert result == encode_sse(pure_core, anthropic_events)


@pytest.mark.parametrize("codec", BASELINES)
def test_sse_encode_baseline(benchmark: Benchmark, codec: str, anthropic_events: list[dict[str, Any]]) -> None:
    """The JSON serialisation alone, without SSE framing."""
    benchmark.group = "sse-encode: the stream's Anthropic events"
    dump = CODECS[codec].dumps
    result = benchmark(lambda: [dump(event) for event in anthropic_events])
    assert len(result) == len(anthropic_events)


# ------------------------------------------------------------------------------------------ JSON codecs


@pytest.mark.parametrize("codec", list(CODECS))
def test_json_loads(benchmark: Benchmark, codec: str) -> None:
    """Parsing the 78 KB Claude Code body (it holds non-ASCII text, including an emoji)."""
    benchmark.group = "json: loads the Claude Code body"
    raw = REQUESTS["claude_code"]
    assert benchmark(CODECS[codec].loads, raw) == json.loads(raw)


@pytest.fixture(scope="module")
def converted_body(pure_core: Core) -> dict[str, Any]:
    """The OpenAI body the Claude Code request converts into."""
    converted: dict[str, Any] = pure_core.request.convert_request(
        json.loads(REQUESTS["claude_code"]), request_plan(stream=False)
    )
    return converted


@pytest.mark.parametrize("codec", list(CODECS))
def test_json_dumps(benchmark: Benchmark, codec: str, converted_body: dict[str, Any]) -> None:
    """Writing the converted upstream body, freshly parsed each round as in the proxy.

    Fresh matters: CPython caches a str's UTF-8 form once it has been encoded, so dumping the same non-ASCII
    strings again is 3-5x cheaper than the first time. `ujson` keeps non-ASCII (a str to encode afterwards),
    `ujson_ascii` escapes it.
    """
    benchmark.group = "json: dumps the converted Claude Code body (fresh objects), to bytes"
    dump = CODECS[codec].dumps
    raw = orjson.dumps(converted_body)

    def to_bytes(body: dict[str, Any]) -> bytes:
        result = dump(body)
        return result if isinstance(result, bytes) else result.encode()

    result = benchmark.pedantic(to_bytes, setup=lambda: ((orjson.loads(raw),), {}), rounds=FRESH_ROUNDS)
    assert json.loads(result) == converted_body
