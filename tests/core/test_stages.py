"""The stages of the stream path (core/stages.py) and StreamPipeline, which chains them (core/relay.py).

Each stage keeps one contract, `feed(item) -> list[out]` / `flush() -> list[out]`, and gives the same output however
its input is grouped. The staged path (filters, event tap) sends exactly the bytes of the fused fast path when the
filters pass everything through, on every recorded stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccproxy import ProxyError, StreamFilter, UpstreamError
from ccproxy.core.plan import ResponseContext
from ccproxy.core.relay import StreamPipeline, StreamRelay
from ccproxy.core.response import convert_response
from ccproxy.core.sse import SSEDecoder, encode_event, encode_events
from ccproxy.core.stages import (
    ChunkReader,
    EventEncoder,
    FilterStage,
    Stage,
    TranslateStage,
    feed_all,
)
from ccproxy.core.stream import StreamTranslator
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


def through(stage: Stage[Any, Any], groups: Iterable[Sequence[Any]]) -> list[Any]:
    """A stage's whole output for its input fed in these groups, then flushed."""
    out: list[Any] = []
    for group in groups:
        out.extend(feed_all(stage, group))
    return out + stage.flush()


# -- each stage: the feed/flush contract --------------------------------------------------------------------------


def test_sse_decoder_is_a_stage_that_gives_the_same_payloads_split_at_every_byte_offset() -> None:
    raw = SMALL[0].raw
    whole = through(SSEDecoder(), [[raw]])
    assert whole == [payload.encode() for payload in naive_sse_payloads(raw)]
    for cut in range(len(raw) + 1):
        assert through(SSEDecoder(), [[raw[:cut], raw[cut:]]]) == whole, cut


def test_chunk_reader_gives_the_chunk_of_each_payload() -> None:
    reader = ChunkReader()
    assert reader.feed(b'{"choices":[]}') == [{"choices": []}]
    assert reader.feed('{"t":"日本"}'.encode()) == [{"t": "日本"}]
    assert reader.flush() == [] and not reader.ended


def test_chunk_reader_reads_what_orjson_refuses() -> None:
    assert ChunkReader().feed(b'{"t":"\\ud800"}') == [{"t": "\ud800"}]  # a lone surrogate


@pytest.mark.parametrize("payload", [b"1", b'"keep-alive"', b"[1]", b"null"])
def test_chunk_reader_skips_json_that_is_not_an_object(payload: bytes) -> None:
    assert ChunkReader().feed(payload) == []


def test_chunk_reader_refuses_a_payload_that_is_not_json() -> None:
    with pytest.raises(UpstreamError) as raised:
        ChunkReader().feed(b"{not json")
    assert (raised.value.status, raised.value.message) == (502, "Upstream sent a malformed stream chunk")


def test_done_ends_the_chunk_reader() -> None:
    reader = ChunkReader()
    assert reader.feed(b"[DONE]") == [] and reader.ended
    assert reader.feed(b'{"choices":[]}') == []  # nothing after [DONE] is read
    assert reader.feed(b"{not json") == []


@pytest.mark.parametrize("stream", SMALL, ids=[stream.id for stream in SMALL])
def test_translate_stage_gives_the_translators_events_however_chunks_are_grouped(stream: Exchange) -> None:
    payloads = through(SSEDecoder(), [[stream.raw]])

    def translated(cut: int) -> list[Event]:
        reader = ChunkReader()
        translate = TranslateStage(StreamTranslator(context(stream)), reader)
        out = translate.translator.start()
        try:
            for group in grouped(payloads, cut):
                for chunk in feed_all(reader, group):
                    out += translate.feed(chunk)
            return out + translate.flush()
        except UpstreamError as exc:  # the in-band error of the error stream
            return [*out, {"type": "raised", "message": exc.message}]

    expected = translated(0)
    assert expected[-1]["type"] in ("message_stop", "raised")
    assert all(translated(cut) == expected for cut in range(1, len(payloads) + 1))


def test_translate_stage_flush_after_done_is_a_complete_answer() -> None:
    reader = ChunkReader()
    translate = TranslateStage(StreamTranslator(context()), reader)
    translate.translator.start()
    events = feed_all(translate, feed_all(reader, [json.dumps(text_chunk("Paris.")).encode(), b"[DONE]"]))
    events += translate.flush()
    assert [event["type"] for event in events][-2:] == ["message_delta", "message_stop"]
    assert events[-2]["delta"]["stop_reason"] == "end_turn"


def test_translate_stage_flush_without_done_or_finish_reason_is_a_cut_answer() -> None:
    translate = TranslateStage(StreamTranslator(context()), ChunkReader())
    translate.feed(text_chunk("Par"))
    with pytest.raises(UpstreamError, match="ended before the answer was complete"):
        translate.flush()


def test_translate_stage_turns_an_unforeseen_chunk_shape_into_a_502() -> None:
    class Broken(StreamTranslator):
        def feed(self, chunk: dict[str, Any]) -> list[Event]:
            raise KeyError("choices")

    with pytest.raises(UpstreamError) as raised:
        TranslateStage(Broken(context()), ChunkReader()).feed({})
    assert raised.value.status == 502 and "cannot read (KeyError)" in raised.value.message


def test_encoder_writes_each_event() -> None:
    events: list[Event] = [{"type": "ping"}, {"type": "message_stop"}]
    assert feed_all(EventEncoder(), events) == [encode_event(event) for event in events]
    assert b"".join(through(EventEncoder(), [events])) == encode_events(events)
    assert EventEncoder().flush() == []


# -- the filter stage ---------------------------------------------------------------------------------------------


def answer_events() -> list[Event]:
    return parse_sse(run(StreamPipeline(context()), [ANSWER]))


def test_filter_stage_runs_filters_in_order() -> None:
    class Suffix(StreamFilter):
        def __init__(self, suffix: str) -> None:
            self.suffix = suffix

        def feed(self, event: Event) -> list[Event]:
            if event["type"] == "content_block_delta":
                event = {**event, "delta": {**event["delta"], "text": event["delta"]["text"] + self.suffix}}
            return [event]

    out = through(FilterStage([Suffix("1"), Suffix("2")]), [answer_events()])
    assert [e["delta"]["text"] for e in out if e["type"] == "content_block_delta"] == ["Hello 12", "world12"]


def test_filter_stage_gives_the_same_events_however_they_are_grouped() -> None:
    events = answer_events()
    expected = through(FilterStage([Notice("a"), Passing(), Notice("b")]), [events])
    for cut in range(len(events) + 1):
        assert through(FilterStage([Notice("a"), Passing(), Notice("b")]), grouped(events, cut)) == expected, cut
        stage = FilterStage([Notice("a"), Passing(), Notice("b")])
        assert [*stage.feed_many(events[:cut]), *stage.feed_many(events[cut:]), *stage.flush()] == expected, cut


def test_filters_are_flushed_before_message_delta_and_the_flush_passes_later_filters() -> None:
    log: list[str] = []
    out = through(FilterStage([Passing(log), Notice("!"), Passing(log)]), [answer_events()])
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


def test_filters_are_flushed_before_a_message_stop_without_message_delta() -> None:
    stage = FilterStage([Notice()])
    out = feed_all(stage, [{"type": "ping"}, {"type": "message_stop"}])
    assert [e["type"] for e in out] == [
        "ping",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_stop",
    ]
    assert stage.flush() == []  # once


def test_filter_stage_flush_at_the_end_releases_what_is_held_once() -> None:
    stage = FilterStage([Notice()])
    assert [e["type"] for e in stage.flush()] == ["content_block_start", "content_block_delta", "content_block_stop"]
    assert stage.flush() == []


# -- the pipeline: fused and staged paths give the same bytes -----------------------------------------------------


def one_byte_reads(raw: bytes) -> list[bytes]:
    return [raw[k : k + 1] for k in range(len(raw))]


PATHS: dict[str, Callable[[ResponseContext], StreamPipeline]] = {
    "fused": lambda ctx: StreamPipeline(ctx),
    "payload-tap": lambda ctx: StreamPipeline(ctx, payload_tap=lambda payload: None),
    "filtered": lambda ctx: StreamPipeline(ctx, filters=[Passing(), Passing()]),
    "event-tap": lambda ctx: StreamPipeline(ctx, event_tap=lambda event: None),
}


def test_the_fused_path_runs_without_filters_and_event_tap() -> None:
    ctx = context()
    assert [(name, make(ctx).fused) for name, make in PATHS.items()] == [
        ("fused", True),
        ("payload-tap", True),
        ("filtered", False),
        ("event-tap", False),
    ]
    assert StreamRelay is StreamPipeline


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
def test_every_path_sends_the_same_bytes_for_a_recorded_stream(stream: Exchange) -> None:
    expected = run(StreamPipeline(context(stream)), [stream.raw])
    check_stream(parse_sse(expected))
    for name, make in PATHS.items():
        assert run(make(context(stream)), [stream.raw]) == expected, name
        # One byte per read: a split at every byte offset at once.
        assert run(make(context(stream)), one_byte_reads(stream.raw)) == expected, name


@pytest.mark.parametrize("stream", SMALL, ids=[stream.id for stream in SMALL])
@pytest.mark.parametrize("path", ["fused", "filtered"])
def test_a_stream_split_at_every_byte_offset_sends_the_same_bytes(stream: Exchange, path: str) -> None:
    raw = stream.raw
    expected = run(StreamPipeline(context(stream)), [raw])
    for cut in range(len(raw) + 1):
        assert run(PATHS[path](context(stream)), [raw[:cut], raw[cut:]]) == expected, cut


@pytest.mark.parametrize("case", COMPLETIONS, ids=[case.id for case in COMPLETIONS])
def test_every_path_replays_a_recorded_completion_the_same(case: Exchange) -> None:
    message = convert_response(json.loads(case.raw), context(case))
    expected = StreamPipeline(context(case)).replay(message)
    check_stream(parse_sse(expected))
    for name, make in PATHS.items():
        assert make(context(case)).replay(message) == expected, name


@settings(
    max_examples=100,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_a_fuzzed_stream_sends_the_same_bytes_on_every_path(data: st.DataObject) -> None:
    stream: UpstreamStream = data.draw(upstream_streams())
    reads = data.draw(splits(stream.body))
    expected = run(StreamPipeline(context()), [stream.body])
    for name, make in PATHS.items():
        assert run(make(context()), reads) == expected, name


# -- taps --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
@pytest.mark.parametrize("path", ["fused", "filtered"])
def test_the_payload_tap_sees_every_upstream_payload(stream: Exchange, path: str) -> None:
    filters = [Passing()] if path == "filtered" else []
    payloads = [payload.encode() for payload in naive_sse_payloads(stream.raw)]
    seen: list[bytes] = []
    run(StreamPipeline(context(stream), filters=filters, payload_tap=seen.append), [stream.raw])
    assert seen == payloads
    # Read by read, in order; the stream loop stops reading once the answer has ended (usage after the finish
    # reason ends it, and some upstreams send more chunks after that one, or [DONE]).
    seen.clear()
    pipeline = StreamPipeline(context(stream), filters=filters, payload_tap=seen.append)
    run(pipeline, one_byte_reads(stream.raw))
    assert pipeline.done and seen and seen == payloads[: len(seen)]


@pytest.mark.parametrize("stream", STREAMS, ids=STREAM_IDS)
def test_the_event_tap_sees_every_event_the_client_is_sent(stream: Exchange) -> None:
    seen: list[Event] = []
    sent = run(StreamPipeline(context(stream), filters=[Notice()], event_tap=seen.append), [stream.raw])
    assert seen == parse_sse(sent)


def test_the_event_tap_sees_the_error_event() -> None:
    seen: list[Event] = []
    sent = run(StreamPipeline(context(), event_tap=seen.append), [sse(text_chunk("Par"))])
    assert seen == parse_sse(sent) and seen[-1]["type"] == "error"


def test_the_event_tap_sees_a_replay() -> None:
    seen: list[Event] = []
    message = convert_response(json.loads(COMPLETIONS[0].raw), context(COMPLETIONS[0]))
    sent = StreamPipeline(context(COMPLETIONS[0]), event_tap=seen.append).replay(message)
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
def test_what_filters_release_at_flush_is_sent_inside_the_message(body: bytes) -> None:
    for reads in ([body], one_byte_reads(body)):
        sent = run(StreamPipeline(context(), filters=[Notice()]), reads)
        check_stream(parse_sse(sent))
        assert ends(sent) == NOTICE_THEN_END


def test_what_filters_release_at_flush_is_inside_a_replayed_message() -> None:
    message = convert_response(json.loads(COMPLETIONS[0].raw), context(COMPLETIONS[0]))
    sent = StreamPipeline(context(COMPLETIONS[0]), filters=[Notice()]).replay(message)
    check_stream(parse_sse(sent))
    assert ends(sent) == NOTICE_THEN_END


@pytest.mark.parametrize(
    "body",
    [sse(text_chunk("Par")), sse(text_chunk("Par"), {"error": {"message": "boom"}}), sse(text_chunk("a")) + b"data: {"],
    ids=["cut", "in-band-error", "malformed"],
)
def test_filters_are_never_flushed_after_an_error_event(body: bytes) -> None:
    log: list[str] = []
    sent = run(StreamPipeline(context(), filters=[Passing(log), Notice()]), [body])
    assert types(sent)[-1] == "error"
    assert "flush" not in log and "error" not in log  # the error event bypasses the filters
    assert "[checked]" not in sent.decode()


@pytest.mark.parametrize("kind", ["ping", "content_block_delta", "content_block_stop", "message_delta", "message_stop"])
def test_a_filter_that_raises_ends_the_stream_with_an_error_event(kind: str) -> None:
    for reads in ([ANSWER], one_byte_reads(ANSWER)):
        sent = run(StreamPipeline(context(), filters=[Refuse(kind)]), reads)
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
        lambda ctx: StreamPipeline(ctx, filters=[Refuse("message_stop", RuntimeError("filter bug"))]),
        lambda ctx: StreamPipeline(ctx, filters=[FlushRefuses()]),
        lambda ctx: StreamPipeline(ctx, event_tap=failing_tap),
    ],
    ids=["filter-bug", "flush-refuses", "tap-bug"],
)
def test_a_failure_on_the_last_events_still_ends_the_stream_with_an_error_event(
    make: Callable[[ResponseContext], StreamPipeline],
) -> None:
    ctx = ResponseContext(message_id="msg_x", model="m", public_message=lambda message: message.replace("e", "*"))
    pipeline = make(ctx)
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


def test_a_filter_that_raises_in_start_or_replay_gives_the_error_event() -> None:
    started = StreamPipeline(context(), filters=[Refuse("ping")]).start()
    assert types(started) == ["error"]
    message = convert_response(json.loads(COMPLETIONS[0].raw), context(COMPLETIONS[0]))
    replayed = StreamPipeline(context(COMPLETIONS[0]), filters=[Refuse("message_delta")]).replay(message)
    assert types(replayed)[-1] == "error" and "message_stop" not in types(replayed)


def test_events_before_a_refusal_in_the_same_read_still_arrive() -> None:
    pipeline = StreamPipeline(context(), filters=[Refuse("message_delta")])
    pipeline.start()
    with pytest.raises(ProxyError) as raised:
        pipeline.feed(ANSWER)
    tail = types(pipeline.fail(raised.value))
    assert tail[0] == "content_block_start" and tail[-2:] == ["content_block_stop", "error"]


def test_nothing_follows_the_end_of_a_stream() -> None:
    pipeline = StreamPipeline(context(), filters=[Passing()])
    sent = run(pipeline, [ANSWER + sse(text_chunk("late"))])
    assert types(sent)[-1] == "message_stop" and pipeline.done
    assert pipeline.fail(UpstreamError("late", status=502)) == b"" and pipeline.end() == b""
