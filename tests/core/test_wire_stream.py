"""StreamPipeline with another API's translator (ccproxy/wire.py): the OpenAI Responses fixtures of the openai
plugin through the core's stream path, fused and staged, split at every byte offset — the same bytes every time."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from ccproxy import ProxyError, StreamFilter
from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from ccproxy_openai.responses import ResponsesWire
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse

if TYPE_CHECKING:  # annotations only: the code under test comes from the `core` fixture, [py] or [c]
    from ccproxy.core._relay_py import StreamPipeline

FIXTURES = Path(__file__).resolve().parents[2] / "plugins" / "ccproxy-openai" / "tests" / "fixtures" / "responses"
STREAMS = sorted(path.name for path in FIXTURES.glob("*.sse"))
ENDS_WELL = ["incomplete.sse", "parallel_tools.sse", "reasoning_text.sse"]
WIRE = ResponsesWire()


class PassThrough(StreamFilter):
    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return [event]


def context() -> ResponseContext:
    return ResponseContext(message_id="msg_wire", model="claude-sonnet-4-5", tool_names=ToolNameMap())


def pipeline(core: Core, staged: bool = False) -> StreamPipeline:
    ctx = context()
    filters = [PassThrough()] if staged else []
    relay: StreamPipeline = core.relay.StreamPipeline(
        ctx, WIRE.stream_translator(ctx), filters=filters, convert=WIRE.convert_response
    )
    return relay


def run(relay: StreamPipeline, *pieces: bytes) -> bytes:
    """The client's bytes for the upstream body read in `pieces`; a failure ends it with the error event."""
    out = [relay.start()]
    try:
        for piece in pieces:
            out.append(relay.feed(piece))
            if relay.done:
                break
        out.append(relay.end())
    except ProxyError as error:
        out.append(relay.fail(error))
    return b"".join(out)


def test_the_fixtures_are_found() -> None:
    assert set(ENDS_WELL) < set(STREAMS) and len(STREAMS) == 5


@pytest.mark.parametrize("name", STREAMS)
def test_fused_and_staged_paths_send_the_same_bytes(core: Core, name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    fused, staged = pipeline(core), pipeline(core, staged=True)
    assert fused.fused and not staged.fused
    whole = run(fused, raw)
    assert run(staged, raw) == whole
    check_stream(parse_sse(whole))


@pytest.mark.parametrize("name", STREAMS)
def test_every_split_gives_the_same_bytes(core: Core, name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    whole = run(pipeline(core), raw)
    assert run(pipeline(core), *(raw[k : k + 1] for k in range(len(raw)))) == whole
    # Two pieces, split at every byte offset (inside multi-byte UTF-8 characters too).
    for k in range(len(raw) + 1):
        assert run(pipeline(core), raw[:k], raw[k:]) == whole, k


@pytest.mark.parametrize("name", ENDS_WELL)
def test_a_cut_body_ends_with_an_error_event(core: Core, name: str) -> None:
    raw = (FIXTURES / name).read_bytes()
    cut = raw[: raw.index(b"event: response.output_item.done")]
    events = parse_sse(run(pipeline(core), cut))
    assert events[-1]["type"] == "error" and "ended before the response was complete" in str(events[-1])
    assert "message_stop" not in [event["type"] for event in events]


def test_a_json_answer_to_a_stream_request_is_replayed_through_the_wire(core: Core) -> None:
    raw = (FIXTURES / "reasoning_tool.json").read_bytes()
    message = accumulate(parse_sse(run(pipeline(core), raw)))
    assert [block["type"] for block in message["content"]] == ["thinking", "text", "tool_use"]
    assert message["stop_reason"] == "tool_use"
