"""The stages of the stream path (core/stages.py) and StreamPipeline, which chains them (core/relay.py).

Each stage keeps one contract, `feed(item) -> list[out]` / `flush() -> list[out]`, and gives the same output however
its input is grouped. The staged path (filters, event tap) sends exactly the bytes of the fused fast path when the
filters pass everything through, on every recorded stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccproxy import ProxyError, StreamFilter, UpstreamError
from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from tests.support.anthropic_stream import check_stream, parse_sse
from tests.support.recorded import (
    Exchange,
    naive_sse_payloads,
    openai_completions,
    openai_error_streams,
    openai_streams,
)
from tests.support.upstream_strategies import UpstreamStream, splits, upstream_streams

if TYPE_CHECKING:  # annotations only: the code under test comes from the `core` fixture, [py] or [c]
    from ccproxy.core._relay_py import StreamPipeline
    from ccproxy.core._stages_py import Stage

Event = dict[str, Any]
STREAMS = openai_streams() + openai_error_streams()
STREAM_IDS = [stream.id for stream in STREAMS]
COMPLETIONS = openai_completions()
# The smallest in-repo stream that ends normally and the one cut by an in-band error: split at every byte offset.
SMALL = [
    min((s for s in STREAMS if not s.shared and s in openai_streams()), key=lambda s: len(s.raw)),
    min((s for s in STREAMS if not s.shared and s in openai_error_streams()), key=lambda s: len(s.raw)),
]


def context(exchange: Exchange | None = None) -> ResponseContext:
    return ResponseContext(
        message_id="msg_stages0123456789abcdef01",
        model="claude-sonnet-4-5",
        input_tokens_estimate=17,
        tool_names=ToolNameMap(exchange.tool_names() if exchange is not None else []),
    )


def sse(*payloads: str | dict[str, Any]) -> bytes:
    return b"".join(b"data: " + (p if isinstance(p, str) else json.dumps(p)).encode() + b"\n\n" for p in payloads)


def text_chunk(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"id": "c", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": finish}]}


USAGE = {"id": "c", "choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}
ANSWER = sse(text_chunk("Hello "), text_chunk("world", "stop"), USAGE, "[DONE]")


def run(pipeline: StreamPipeline, reads: Iterable[bytes]) -> bytes:
    """What pipeline.stream_events sends for these upstream reads, without the IO."""
    out = [pipeline.start()]
    try:
        for data in reads:
            out.append(pipeline.feed(data))
            if pipeline.done:
                break
        out.append(pipeline.end())
    except ProxyError as exc:
        out.append(pipeline.fail(exc))
    return b"".join(out)


class Passing(StreamFilter):
    """Passes every event on unchanged; records what it saw and when it was flushed."""

    def __init__(self, log: list[str] | None = None) -> None:
        self.log = [] if log is None else log

    def feed(self, event: Event) -> list[Event]:
        self.log.append(event["type"])
        return [event]

    def flush(self) -> list[Event]:
        self.log.append("flush")
        return []


class Notice(StreamFilter):
    """Adds a text block when flushed: what a filter holds back and releases at the end."""

    def __init__(self, text: str = "[checked]") -> None:
        self.text = text
        self.blocks = 0

    def feed(self, event: Event) -> list[Event]:
        self.blocks += event["type"] == "content_block_start"
        return [event]

    def flush(self) -> list[Event]:
        index = self.blocks
        return [
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
            {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": self.text}},
            {"type": "content_block_stop", "index": index},
        ]


class Refuse(StreamFilter):
    """Raises on the first event of type `kind`."""

    def __init__(self, kind: str, error: Exception | None = None) -> None:
        self.kind = kind
        self.error = error or ProxyError("answer blocked by policy", status=400)

    def feed(self, event: Event) -> list[Event]:
        if event["type"] == self.kind:
            raise self.error
        return [event]


def types(data: bytes) -> list[str]:
    return [event["type"] for event in parse_sse(data)]


def grouped(items: Sequence[Any], cut: int) -> list[list[Any]]:
    return [list(items[:cut]), list(items[cut:])]


def through(core: Core, stage: Stage[Any, Any], groups: Iterable[Sequence[Any]]) -> list[Any]:
    """A stage's whole output for its input fed in these groups, then flushed."""
    out: list[Any] = []
    for group in groups:
        out.extend(core.stages.feed_all(stage, group))
    return out + stage.flush()


# -- each stage: the feed/flush contract --------------------------------------------------------------------------


def test_sse_decoder_is_a_stage_that_gives_the_same_payloads_split_at_every_byte_offset(core: Core) -> None:
    raw = SMALL[0].raw
    whole = through(core, core.sse.SSEDecoder(), [[raw]])
    assert whole == [payload.encode() for payload in naive_sse_payloads(raw)]
    for cut in range(len(raw) + 1):
        assert through(core, core.sse.SSEDecoder(), [[raw[:cut], raw[cut:]]]) == whole, cut


def test_chunk_reader_gives_the_chunk_of_each_payload(core: Core) -> None:
    reader = core.stages.ChunkReader()
    assert reader.feed(b'{"choices":[]}') == [{"choices": []}]
    assert reader.feed('{"t":"日本"}'.encode()) == [{"t": "日本"}]
    assert reader.flush() == [] and not reader.ended


def test_chunk_reader_reads_what_orjson_refuses(core: Core) -> None:
    assert core.stages.ChunkReader().feed(b'{"t":"\\ud800"}') == [{"t": "\ud800"}]  # a lone surrogate


@pytest.mark.parametrize("payload", [b"1", b'"keep-alive"', b"[1]", b"null"])
def test_chunk_reader_skips_json_that_is_not_an_object(core: Core, payload: bytes) -> None:
    assert core.stages.ChunkReader().feed(payload) == []


def test_chunk_reader_refuses_a_payload_that_is_not_json(core: Core) -> None:
    with pytest.raises(UpstreamError) as raised:
        core.stages.ChunkReader().feed(b"{not json")
    assert (raised.value.status, raised.value.message) == (502, "Upstream sent a malformed stream chunk")


def test_done_ends_the_chunk_reader(core: Core) -> None:
    reader = core.stages.ChunkReader()
    assert reader.feed(b"[DONE]") == [] and reader.ended
    assert reader.feed(b'{"choices":[]}') == []  # nothing after [DONE] is read
    assert reader.feed(b"{not json") == []


@pytest.mark.parametrize("stream", SMALL, ids=[stream.id for stream in SMALL])
def test_translate_stage_gives_the_translators_events_however_chunks_are_grouped(core: Core, stream: Exchange) -> None:
    payloads = through(core, core.sse.SSEDecoder(), [[stream.raw]])

    def translated(cut: int) -> list[Event]:
        reader = core.stages.ChunkReader()
        translate = core.stages.TranslateStage(core.stream.StreamTranslator(context(stream)), reader)
        out = translate.translator.start()
        try:
            for group in grouped(payloads, cut):
                for chunk in core.stages.feed_all(reader, group):
                    out += translate.feed(chunk)
            return out + translate.flush()
        except UpstreamError as exc:  # the in-band error of the error stream
            return [*out, {"type": "raised", "message": exc.message}]

    expected = translated(0)
    assert expected[-1]["type"] in ("message_stop", "raised")
    assert all(translated(cut) == expected for cut in range(1, len(payloads) + 1))


def test_translate_stage_flush_after_done_is_a_complete_answer(core: Core) -> None:
    reader = core.stages.ChunkReader()
    translate = core.stages.TranslateStage(core.stream.StreamTranslator(context()), reader)
    translate.translator.start()
    events = core.stages.feed_all(
        translate, core.stages.feed_all(reader, [json.dumps(text_chunk("Paris.")).encode(), b"[DONE]"])
    )
    events += translate.flush()
    assert [event["type"] for event in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_translate_stage_flush_without_done_or_finish_reason_is_a_cut_answer(core: Core) -> None:
    translate = core.stages.TranslateStage(core.stream.StreamTranslator(context()), core.stages.ChunkReader())
    translate.feed(text_chunk("Par"))
    with pytest.raises(UpstreamError, match="ended before the answer was complete"):
        translate.flush()


def test_translate_stage_turns_an_unforeseen_chunk_shape_into_a_502(core: Core) -> None:
    class Broken(core.stream.StreamTranslator):  # type: ignore[misc,name-defined]
        def feed(self, chunk: dict[str, Any]) -> list[Event]:
            raise KeyError("choices")

    with pytest.raises(UpstreamError) as raised:
        core.stages.TranslateStage(Broken(context()), core.stages.ChunkReader()).feed({})
    assert raised.value.status == 502 and "cannot read (KeyError)" in raised.value.message


def test_encoder_writes_each_event(core: Core) -> None:
    events: list[Event] = [{"type": "ping"}, {"type": "message_stop"}]
    assert core.stages.feed_all(core.stages.EventEncoder(), events) == [
        core.sse.encode_event(event) for event in events
    ]
    assert b"".join(through(core, core.stages.EventEncoder(), [events])) == core.sse.encode_events(events)
    assert core.stages.EventEncoder().flush() == []


# -- the filter stage ---------------------------------------------------------------------------------------------


def answer_events(core: Core) -> list[Event]:
    return parse_sse(run(core.relay.StreamPipeline(context()), [ANSWER]))


def test_filter_stage_runs_filters_in_order(core: Core) -> None:
    class Suffix(StreamFilter):
        def __init__(self, suffix: str) -> None:
            self.suffix = suffix

        def feed(self, event: Event) -> list[Event]:
            if event["type"] == "content_block_delta":
                event = {**event, "delta": {**event["delta"], "text": event["delta"]["text"] + self.suffix}}
            return [event]

    out = through(core, core.stages.FilterStage([Suffix("1"), Suffix("2")]), [answer_events(core)])
    assert [e["delta"]["text"] for e in out if e["type"] == "content_block_delta"] == ["Hello 12", "world12"]


def test_filter_stage_gives_the_same_events_however_they_are_grouped(core: Core) -> None:
    events = answer_events(core)
    expected = through(core, core.stages.FilterStage([Notice("a"), Passing(), Notice("b")]), [events])
    for cut in range(len(events) + 1):
        assert (
            through(core, core.stages.FilterStage([Notice("a"), Passing(), Notice("b")]), grouped(events, cut))
            == expected
        ), cut
        stage = core.stages.FilterStage([Notice("a"), Passing(), Notice("b")])
        assert [*stage.feed_many(events[:cut]), *stage.feed_many(events[cut:]), *stage.flush()] == expected, cut


def test_filters_are_flushed_before_message_delta_and_the_flush_passes_later_filters(core: Core) -> None:
    log: list[str] = []
    out = through(core, core.stages.FilterStage([Passing(log), Notice("!"), Passing(log)]), [answer_events(core)])
    check_stream(out)
    assert [e["type"] for e in out][-5:] == [
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert out[-4]["delta"]["text"] == "!"
    # Each Passing filter is flushed once, before message_delta; the second one sees the notice block first.
    assert log[log.index("content_block_stop") :] == [
        "content_block_stop",
        "content_block_stop",
        "flush",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "flush",
        "message_delta",
        "message_delta",
        "message_stop",
        "message_stop",
    ]


def test_filters_are_flushed_before_a_message_stop_without_message_delta(core: Core) -> None:
    stage = core.stages.FilterStage([Notice()])
    out = core.stages.feed_all(stage, [{"type": "ping"}, {"type": "message_stop"}])
    assert [e["type"] for e in out] == [
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_stop",
    ]
    assert stage.flush() == []  # once


def test_filter_stage_flush_at_the_end_releases_what_is_held_once(core: Core) -> None:
    stage = core.stages.FilterStage([Notice()])
    assert [e["type"] for e in stage.flush()] == ["content_block_start", "content_block_delta", "content_block_stop"]
    assert stage.flush() == []


# -- the pipeline: fused and staged paths give the same bytes -----------------------------------------------------


def one_byte_reads(raw: bytes) -> list[bytes]:
    return [raw[k : k + 1] for k in range(len(raw))]


def paths(core: Core) -> dict[str, Callable[[ResponseContext], StreamPipeline]]:
    """The ways to build a pipeline: the fused fast path, and the staged path for filters and the event tap."""
    return {
        "fused": lambda ctx: core.relay.StreamPipeline(ctx),
        "payload-tap": lambda ctx: core.relay.StreamPipeline(ctx, payload_tap=lambda payload: None),
        "filtered": lambda ctx: core.relay.StreamPipeline(ctx, filters=[Passing(), Passing()]),
        "event-tap": lambda ctx: core.relay.StreamPipeline(ctx, event_tap=lambda event: None),
    }


def test_the_fused_path_runs_without_filters_and_event_tap(core: Core) -> None:
    ctx = context()
    assert [(name, make(ctx).fused) for name, make in paths(core).items()] == [
        ("fused", True),
        ("payload-tap", True),
        ("filtered", False),
        ("event-tap", False),
    ]
    assert core.relay.StreamRelay is core.relay.StreamPipeline


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
def test_every_path_sends_the_same_bytes_for_a_recorded_stream(core: Core, stream: Exchange) -> None:
    expected = run(core.relay.StreamPipeline(context(stream)), [stream.raw])
    check_stream(parse_sse(expected))
    for name, make in paths(core).items():
        assert run(make(context(stream)), [stream.raw]) == expected, name
        # One byte per read: a split at every byte offset at once.
        assert run(make(context(stream)), one_byte_reads(stream.raw)) == expected, name


@pytest.mark.parametrize("stream", SMALL, ids=[stream.id for stream in SMALL])
@pytest.mark.parametrize("path", ["fused", "filtered"])
def test_a_stream_split_at_every_byte_offset_sends_the_same_bytes(core: Core, stream: Exchange, path: str) -> None:
    raw = stream.raw
    expected = run(core.relay.StreamPipeline(context(stream)), [raw])
    for cut in range(len(raw) + 1):
        assert run(paths(core)[path](context(stream)), [raw[:cut], raw[cut:]]) == expected, cut


@pytest.mark.parametrize("case", COMPLETIONS, ids=[case.id for case in COMPLETIONS])
def test_every_path_replays_a_recorded_completion_the_same(core: Core, case: Exchange) -> None:
    message = core.response.convert_response(json.loads(case.raw), context(case))
    expected = core.relay.StreamPipeline(context(case)).replay(message)
    check_stream(parse_sse(expected))
    for name, make in paths(core).items():
        assert make(context(case)).replay(message) == expected, name


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_a_fuzzed_stream_sends_the_same_bytes_on_every_path(core: Core, data: st.DataObject) -> None:
    stream: UpstreamStream = data.draw(upstream_streams())
    reads = data.draw(splits(stream.body))
    expected = run(core.relay.StreamPipeline(context()), [stream.body])
    for name, make in paths(core).items():
        assert run(make(context()), reads) == expected, name


# -- taps --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
@pytest.mark.parametrize("path", ["fused", "filtered"])
def test_the_payload_tap_sees_every_upstream_payload(core: Core, stream: Exchange, path: str) -> None:
    filters = [Passing()] if path == "filtered" else []
    payloads = [payload.encode() for payload in naive_sse_payloads(stream.raw)]
    seen: list[bytes] = []
    run(core.relay.StreamPipeline(context(stream), filters=filters, payload_tap=seen.append), [stream.raw])
    assert seen == payloads
    # Read by read, in order; the stream loop stops reading once the answer has ended (usage after the finish
    # reason ends it, and some upstreams send more chunks after that one, or [DONE]).
    seen.clear()
    pipeline = core.relay.StreamPipeline(context(stream), filters=filters, payload_tap=seen.append)
    run(pipeline, one_byte_reads(stream.raw))
    assert pipeline.done and seen and seen == payloads[: len(seen)]


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
def test_the_event_tap_sees_every_event_the_client_is_sent(core: Core, stream: Exchange) -> None:
    seen: list[Event] = []
    sent = run(core.relay.StreamPipeline(context(stream), filters=[Notice()], event_tap=seen.append), [stream.raw])
    assert seen == parse_sse(sent)


def test_the_event_tap_sees_the_error_event(core: Core) -> None:
    seen: list[Event] = []
    sent = run(core.relay.StreamPipeline(context(), event_tap=seen.append), [sse(text_chunk("Par"))])
    assert seen == parse_sse(sent) and seen[-1]["type"] == "error"


def test_the_event_tap_sees_a_replay(core: Core) -> None:
    seen: list[Event] = []
    message = core.response.convert_response(json.loads(COMPLETIONS[0].raw), context(COMPLETIONS[0]))
    sent = core.relay.StreamPipeline(context(COMPLETIONS[0]), event_tap=seen.append).replay(message)
    assert seen == parse_sse(sent) and seen[-1] == {"type": "message_stop"}


# -- where the filters' flush lands, and errors --------------------------------------------------------------------


def ends(data: bytes) -> list[str]:
    return types(data)[-5:]


NOTICE_THEN_END = ["content_block_start", "content_block_delta", "content_block_stop", "message_delta", "message_stop"]


@pytest.mark.parametrize(
    "body",
    [
        ANSWER,  # [DONE]
        sse(text_chunk("Hello "), text_chunk("world", "stop"), USAGE),  # usage after the finish reason ends it
        sse(text_chunk("Hello "), text_chunk("world", "stop")),  # end of body after a finish reason
        json.dumps({"choices": [{"message": {"content": "Hi"}, "finish_reason": "stop"}]}).encode(),  # whole body
    ],
    ids=["done", "usage", "end-of-body", "json-body"],
)
def test_what_filters_release_at_flush_is_sent_inside_the_message(core: Core, body: bytes) -> None:
    for reads in ([body], one_byte_reads(body)):
        sent = run(core.relay.StreamPipeline(context(), filters=[Notice()]), reads)
        check_stream(parse_sse(sent))
        assert ends(sent) == NOTICE_THEN_END


def test_what_filters_release_at_flush_is_inside_a_replayed_message(core: Core) -> None:
    message = core.response.convert_response(json.loads(COMPLETIONS[0].raw), context(COMPLETIONS[0]))
    sent = core.relay.StreamPipeline(context(COMPLETIONS[0]), filters=[Notice()]).replay(message)
    check_stream(parse_sse(sent))
    assert ends(sent) == NOTICE_THEN_END


@pytest.mark.parametrize(
    "body",
    [sse(text_chunk("Par")), sse(text_chunk("Par"), {"error": {"message": "boom"}}), sse(text_chunk("a")) + b"data: {"],
    ids=["cut", "in-band-error", "malformed"],
)
def test_filters_are_never_flushed_after_an_error_event(core: Core, body: bytes) -> None:
    log: list[str] = []
    sent = run(core.relay.StreamPipeline(context(), filters=[Passing(log), Notice()]), [body])
    assert types(sent)[-1] == "error"
    assert "flush" not in log and "error" not in log  # the error event bypasses the filters
    assert "[checked]" not in sent.decode()


@pytest.mark.parametrize("kind", ["ping", "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
def test_a_filter_that_raises_ends_the_stream_with_an_error_event(core: Core, kind: str) -> None:
    for reads in ([ANSWER], one_byte_reads(ANSWER)):
        sent = run(core.relay.StreamPipeline(context(), filters=[Refuse(kind)]), reads)
        events = parse_sse(sent)
        check_stream(events)
        assert events[-1] == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "answer blocked by policy"},
        }
        assert "message_stop" not in types(sent)


class FlushRefuses(StreamFilter):
    def feed(self, event: Event) -> list[Event]:
        return [event]

    def flush(self) -> list[Event]:
        raise ProxyError("answer blocked by policy", status=400)


def failing_tap(event: Event) -> None:
    if event["type"] == "message_stop":
        raise RuntimeError("tap bug")


@pytest.mark.parametrize(
    "make",
    [
        lambda core, ctx: core.relay.StreamPipeline(ctx, filters=[Refuse("message_stop", RuntimeError("filter bug"))]),
        lambda core, ctx: core.relay.StreamPipeline(ctx, filters=[FlushRefuses()]),
        lambda core, ctx: core.relay.StreamPipeline(ctx, event_tap=failing_tap),
    ],
    ids=["filter-bug", "flush-refuses", "tap-bug"],
)
def test_a_failure_on_the_last_events_still_ends_the_stream_with_an_error_event(
    core: Core, make: Callable[[Core, ResponseContext], StreamPipeline]
) -> None:
    ctx = ResponseContext(message_id="msg_x", model="m", public_message=lambda message: message.replace("e", "*"))
    pipeline = make(core, ctx)
    sent = pipeline.start()
    with pytest.raises(Exception) as raised:
        pipeline.feed(ANSWER)
    # What pipeline.stream_events does: a ProxyError as it is, anything else as an internal error.
    error = raised.value if isinstance(raised.value, ProxyError) else ProxyError("Internal proxy error", status=500)
    events = parse_sse(sent + pipeline.fail(error))
    check_stream(events)
    assert events[-1]["type"] == "error" and "message_stop" not in [event["type"] for event in events]
    assert "e" not in events[-1]["error"]["message"]  # made public like every stream error event
    assert pipeline.done and pipeline.fail(error) == b""


def test_a_filter_that_raises_in_start_or_replay_gives_the_error_event(core: Core) -> None:
    started = core.relay.StreamPipeline(context(), filters=[Refuse("ping")]).start()
    assert types(started) == ["error"]
    message = core.response.convert_response(json.loads(COMPLETIONS[0].raw), context(COMPLETIONS[0]))
    replayed = core.relay.StreamPipeline(context(COMPLETIONS[0]), filters=[Refuse("message_delta")]).replay(message)
    assert types(replayed)[-1] == "error" and "message_stop" not in types(replayed)


def test_events_before_a_refusal_in_the_same_read_still_arrive(core: Core) -> None:
    pipeline = core.relay.StreamPipeline(context(), filters=[Refuse("message_delta")])
    pipeline.start()
    with pytest.raises(ProxyError) as raised:
        pipeline.feed(ANSWER)
    tail = types(pipeline.fail(raised.value))
    assert tail[0] == "content_block_start" and tail[-2:] == ["content_block_stop", "error"]


def test_nothing_follows_the_end_of_a_stream(core: Core) -> None:
    pipeline = core.relay.StreamPipeline(context(), filters=[Passing()])
    sent = run(pipeline, [ANSWER + sse(text_chunk("late"))])
    assert types(sent)[-1] == "message_stop" and pipeline.done
    assert pipeline.fail(UpstreamError("late", status=502)) == b"" and pipeline.end() == b""
