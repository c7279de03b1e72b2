"""Fuzzed upstream answers through the core (issue 6 item 10): whatever the upstream sends, the client gets a valid
answer or an error naming the problem, never an exception, and never a cut answer dressed up as complete.

Fixed budgets with derandomized examples, so every run (and both cores) checks the same cases in a few seconds.
"""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.errors import STATUS_TO_ERROR_TYPE, ProxyError, UpstreamError
from tests.support.anthropic_message import check_message
from tests.support.anthropic_stream import GrammarChecker, parse_sse
from tests.support.upstream_strategies import (
    UpstreamStream,
    answer_chunks,
    chunk_lists,
    completions,
    json_values,
    splits,
    upstream_streams,
)

CTX = ResponseContext(
    message_id="msg_fuzz0123456789abcdef012345",
    model="claude-sonnet-4-5",
    input_tokens_estimate=9,
    tool_names=ToolNameMap(["mcp__x__" + "y" * 70]),
)
# What the last-resort nets in the core say: the fuzz must never reach them (the core reads every shape itself).
NET_WORDS = "ccproxy cannot read"


def fuzz(examples: int) -> Any:
    return settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def has_error_member(completion: Any) -> bool:
    """Whether the body reports an error itself (then its own status may be passed on)."""
    if not isinstance(completion, dict):
        return False
    if completion.get("error"):
        return True
    choices = completion.get("choices")
    return isinstance(choices, list) and any(isinstance(c, dict) and c.get("finish_reason") == "error" for c in choices)


def check_upstream_error(error: UpstreamError, completion: Any) -> None:
    assert NET_WORDS not in error.message, error.message
    assert isinstance(error.message, str) and error.message
    if has_error_member(completion):
        assert 400 <= error.status <= 599 and error.error_type in STATUS_TO_ERROR_TYPE.values()
    else:
        assert (error.status, error.error_type) == (502, "api_error"), error.message


# -- (a) non-stream bodies --------------------------------------------------------------------------------------


@fuzz(300)
@given(completions)
def test_a_fuzzed_completion_is_a_valid_message_or_a_502(core: Core, completion: dict[str, Any]) -> None:
    try:
        message = core.response.convert_response(completion, CTX)
    except UpstreamError as exc:
        check_upstream_error(exc, completion)
        return
    check_message(message)
    json.dumps(message)


@fuzz(100)
@given(json_values)
def test_any_json_body_is_a_valid_message_or_a_502(core: Core, value: Any) -> None:
    try:
        message = core.response.convert_response(core.response.parse_completion(json.dumps(value).encode()), CTX)
    except UpstreamError as exc:
        check_upstream_error(exc, value)
        return
    check_message(message)


# -- (b) streams ----------------------------------------------------------------------------------------------


def relay(core: Core, reads: list[bytes]) -> bytes:
    """What the pipeline sends for these upstream reads (stream_events without the IO)."""
    relay = core.relay.StreamRelay(CTX)
    out = [relay.start()]
    try:
        for data in reads:
            out.append(relay.feed(data))
            if relay.done:
                break
        out.append(relay.end())
    except ProxyError as exc:
        assert isinstance(exc, UpstreamError), repr(exc)
        assert NET_WORDS not in exc.message, exc.message
        out.append(relay.fail(exc))
    return b"".join(out)


@fuzz(200)
@given(st.data())
def test_a_fuzzed_stream_split_anywhere_is_a_well_formed_anthropic_stream(core: Core, data: st.DataObject) -> None:
    stream: UpstreamStream = data.draw(upstream_streams())
    reads = data.draw(splits(stream.body))
    sent = relay(core, reads)
    events = parse_sse(sent)
    checker = GrammarChecker()
    for event in events:
        checker.event(event)
    checker.end()
    assert events[-1]["type"] in ("message_stop", "error")
    if not stream.ends_the_answer():
        assert events[-1]["type"] == "error", "a stream without finish reason or [DONE] ended as complete"
    # However the bytes arrive, the client gets the same bytes.
    assert sent == relay(core, [stream.body])


@fuzz(100)
@given(st.one_of(answer_chunks(), chunk_lists))
def test_feed_sse_writes_the_bytes_of_feed_for_fuzzed_chunks(core: Core, chunks: list[dict[str, Any]]) -> None:
    by_dicts, by_bytes = core.stream.StreamTranslator(CTX), core.stream.StreamTranslator(CTX)
    by_dicts.start(), by_bytes.start()
    for chunk in chunks:
        if not isinstance(chunk, dict):
            continue  # StreamRelay skips JSON values that are not objects
        try:
            expected: bytes | str = core.sse.encode_events(by_dicts.feed(chunk))
        except UpstreamError as exc:
            expected = exc.message
        try:
            got: bytes | str = by_bytes.feed_sse(chunk)
        except UpstreamError as exc:
            got = exc.message
        assert got == expected, chunk
        if isinstance(got, str):
            return
