"""Plain text chunks read without parsing them (StreamTranslator.feed_payload / learn_shape, used by the fused
stream path): byte for byte what parsing every chunk gives, for any text, with OpenAI's padding, and for chunks
built to look like a learnt one without being one."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccproxy import StreamFilter
from ccproxy.core._stream_py import SHAPE_TRIES
from ccproxy.core._twins import Core
from ccproxy.core.plan import ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from tests.support.anthropic_stream import check_stream, parse_sse

if TYPE_CHECKING:  # annotations only: the code under test comes from the `core` fixture, [py] or [c]
    from ccproxy.core._stream_py import StreamTranslator


def context() -> ResponseContext:
    return ResponseContext(
        message_id="msg_shape0123456789abcdef012",
        model="claude-sonnet-4-5",
        input_tokens_estimate=9,
        tool_names=ToolNameMap(["Bash"]),
    )


def openai_chunk(
    delta: dict[str, Any],
    finish: str | None = None,
    padding: str | None = None,
    created: int = 1782321917,
    ascii_only: bool = False,
) -> bytes:
    """A chunk as OpenAI writes it (compact, raw UTF-8; `ascii_only`: non-ASCII escaped, as Python servers write
    it), `padding` as its `obfuscation`."""
    chunk: dict[str, Any] = {
        "id": "chatcmpl-Shape",
        "object": "chat.completion.chunk",
        "created": created,
        "model": "gpt-5",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "usage": None,
    }
    if padding is not None:
        chunk["obfuscation"] = padding
    return json.dumps(chunk, ensure_ascii=ascii_only, separators=(",", ":")).encode()


def both_ways(core: Core, payloads: list[bytes]) -> tuple[bytes, bytes, int]:
    """The bytes for `payloads` read as the fused path reads them (feed_payload first) and with every chunk
    parsed, and how many chunks were read without their parse."""
    shaped, parsed = core.stream.StreamTranslator(context(), shapes=True), core.stream.StreamTranslator(context())
    out: list[bytes] = [core.sse.encode_events(shaped.start())]
    reference: list[bytes] = [core.sse.encode_events(parsed.start())]
    unparsed = 0
    for payload in payloads:
        reference.append(feed_parsed(parsed, payload))
        encoded = shaped.feed_payload(payload)
        if encoded is not None:
            unparsed += 1
            out.append(encoded)
            continue
        out.append(feed_parsed(shaped, payload))
        shaped.learn_shape(payload, json.loads(payload))
    out.append(core.sse.encode_events(shaped.finish()))
    reference.append(core.sse.encode_events(parsed.finish()))
    return b"".join(out), b"".join(reference), unparsed


def feed_parsed(translator: StreamTranslator, payload: bytes) -> bytes:
    return translator.feed_sse(json.loads(payload))


def test_a_long_answer_is_read_without_parsing_its_text_chunks(core: Core) -> None:
    texts = ["Olá", "!", " Here", " is", ' "quoted"', " back\\slash", " tab\t", " ✓", " 🎉", " done."]
    payloads = [openai_chunk({"role": "assistant", "content": ""})]
    payloads += [openai_chunk({"content": text}, padding="x" * (index % 7)) for index, text in enumerate(texts)]
    payloads.append(openai_chunk({}, finish="stop", padding="pad"))
    got, expected, unparsed = both_ways(core, payloads)
    assert got == expected
    check_stream(parse_sse(got))
    # All but the first text chunk (which opens the block) and the second (which teaches the shape).
    assert unparsed == len(texts) - 2


def test_without_padding_too(core: Core) -> None:
    payloads = [openai_chunk({"content": text}) for text in ("a", "b", "c\nd", "é")]
    got, expected, unparsed = both_ways(core, payloads)
    assert (got, unparsed) == (expected, 2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(st.text(min_size=0, max_size=12), min_size=1, max_size=8),
    paddings=st.lists(st.text(max_size=6), min_size=8, max_size=8),
    escaped=st.lists(st.booleans(), min_size=8, max_size=8),
)
def test_any_text_gives_the_bytes_of_the_parse(
    core: Core, texts: list[str], paddings: list[str], escaped: list[bool]
) -> None:
    payloads = [
        openai_chunk({"content": text}, padding=paddings[index], ascii_only=escaped[index])
        for index, text in enumerate(texts)
    ]
    payloads.append(openai_chunk({}, finish="stop"))
    got, expected, _ = both_ways(core, payloads)
    assert got == expected


def test_escaped_text_is_written_as_orjson_writes_it(core: Core) -> None:
    payloads = [openai_chunk({"content": text}, ascii_only=True) for text in ("opens", "teaches", "é ✓", "🎉\n")]
    got, expected, unparsed = both_ways(core, payloads)
    assert (got, unparsed) == (expected, 2)
    assert "é ✓".encode() in got and b"\\u00e9" not in got


def test_chunks_built_to_look_like_a_learnt_one_are_parsed(core: Core) -> None:
    opens = openai_chunk({"content": "opens the block"}, padding="o")
    learnt = openai_chunk({"content": "first"}, padding="p")
    head, tail = learnt.split(b'"first"')
    tail_after_padding = tail[tail.index(b'"p"') + 3 :]
    middle = tail[: tail.index(b'"p"')]
    forged = [
        # Not one JSON string where the text goes: the parse decides (a finish reason, a duplicate key).
        head + b'"a","finish_reason":"stop","x":"b"' + middle + b'"p"' + tail_after_padding,
        head + b'"a","content":"b"' + middle + b'"p"' + tail_after_padding,
        head + b'"unterminated\\"' + middle + b'"p"' + tail_after_padding,
        # Padding that is not one string.
        head + b'"next"' + middle + b'"p","choices":[],"z":"q"' + tail_after_padding,
        # The empty text, and escapes.
        head + b'""' + middle + b'"p"' + tail_after_padding,
        head + b'"\\u00e9\\n\\"x\\""' + middle + b'""' + tail_after_padding,
    ]
    for payload in forged:
        shaped = openai_chunk({"content": "second"}, padding="pp")  # takes the learnt shape
        payloads = [opens, learnt, shaped, payload, openai_chunk({"content": "after"}, padding="q")]
        try:
            json.loads(payload)
        except ValueError:
            continue  # broken JSON: the parse fails either way (tested for the fused path elsewhere)
        got, expected, unparsed = both_ways(core, [*payloads, openai_chunk({}, finish="stop")])
        assert got == expected, payload
        assert unparsed >= 1


def test_only_an_open_text_block_takes_the_shortcut(core: Core) -> None:
    tool = {"tool_calls": [{"index": 0, "id": "call_1", "type": "function", "function": {"name": "Bash"}}]}
    arguments = {"tool_calls": [{"index": 0, "function": {"arguments": '{"command":"ls"}'}}]}
    payloads = [
        openai_chunk({"content": "let me"}),
        openai_chunk({"content": " look"}),  # teaches the shape
        openai_chunk(tool),
        openai_chunk(arguments),
        openai_chunk({"content": "text after the call"}),  # shaped like the learnt chunk, while a tool block is open
        openai_chunk({}, finish="tool_calls"),
    ]
    got, expected, unparsed = both_ways(core, payloads)
    assert (got, unparsed) == (expected, 0)
    assert b"text after the call" in got


def test_a_shape_that_keeps_changing_is_learnt_a_few_times_then_left(core: Core) -> None:
    # `created` moves with every chunk: no chunk is shaped like the one before it.
    payloads = [openai_chunk({"content": f"t{number}"}, created=number) for number in range(SHAPE_TRIES + 5)]
    translator = core.stream.StreamTranslator(context(), shapes=True)
    translator.start()
    learnt = 0
    for payload in payloads:
        assert translator.feed_payload(payload) is None
        before = translator._shape
        translator.feed_sse(json.loads(payload))
        translator.learn_shape(payload, json.loads(payload))
        learnt += translator._shape is not before
    assert learnt == SHAPE_TRIES


def test_the_text_is_only_taken_from_where_the_parse_proved_it_is(core: Core) -> None:
    # The text is written escaped, and the same text sits plainly under another "content" key before it: found
    # there, but not proved to be the text, so not learnt from there (else "Z" would be sent for the third chunk).
    def chunk(other: str) -> bytes:
        return (
            '{"id":"c","content":"' + other + '","choices":[{"index":0,"delta":{"content":"\\u0041"},'
            '"finish_reason":null}]}'
        ).encode()

    payloads = [chunk("opens"), chunk("A"), chunk("Z"), openai_chunk({}, finish="stop")]
    got, expected, _ = both_ways(core, payloads)
    assert got == expected


def call_start(index: int, call_id: str, name: str = "Bash") -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "id": call_id, "type": "function", "function": {"name": name}}]}


def fragment(index: int, arguments: str) -> dict[str, Any]:
    return {"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}


def test_a_tool_calls_arguments_are_read_without_parsing_their_chunks(core: Core) -> None:
    pieces = ['{"comm', 'and":"', "ls -la", " \\u00e9 ✓", ' | grep \\"x\\"', '"}']
    payloads = [openai_chunk({"content": "Let me look."}), openai_chunk(call_start(0, "call_1"))]
    payloads += [openai_chunk(fragment(0, piece), padding="p" * index) for index, piece in enumerate(pieces)]
    payloads.append(openai_chunk({}, finish="tool_calls"))
    got, expected, unparsed = both_ways(core, payloads)
    assert got == expected
    check_stream(parse_sse(got))
    assert unparsed == len(pieces) - 1  # all but the first fragment, which taught the shape


def test_a_fragment_of_another_tool_call_is_not_taken_for_the_open_ones(core: Core) -> None:
    # Parallel calls: call 0's fragments teach the shape; once call 1 is open, a fragment of call 0 (shaped exactly
    # like the learnt ones) must not be added to call 1.
    payloads = [
        openai_chunk(call_start(0, "call_a")),
        openai_chunk(fragment(0, '{"command":')),
        openai_chunk(fragment(0, '"ls"}')),
        openai_chunk(call_start(1, "call_b", "Read")),
        openai_chunk(fragment(0, " ")),
        openai_chunk(fragment(1, '{"file_path":"/tmp/x"}')),
        openai_chunk({}, finish="tool_calls"),
    ]
    got, expected, _ = both_ways(core, payloads)
    assert got == expected
    check_stream(parse_sse(got))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.text(min_size=0, max_size=10), min_size=1, max_size=8), escaped=st.booleans())
def test_any_arguments_give_the_bytes_of_the_parse(core: Core, pieces: list[str], escaped: bool) -> None:
    payloads = [openai_chunk(call_start(0, "call_1"))]
    payloads += [openai_chunk(fragment(0, piece), padding="p", ascii_only=escaped) for piece in pieces]
    payloads.append(openai_chunk({}, finish="length"))  # broken arguments pass as they are after "length"
    got, expected, _ = both_ways(core, payloads)
    assert got == expected


def through_pipelines(core: Core, payloads: list[bytes]) -> tuple[bytes, bytes, bytes, StreamTranslator]:
    """The bytes of the fused pipeline, of the staged one (a filter passing everything through) and of the events
    of every chunk parsed; and the staged pipeline's translator."""
    body = b"".join(b"data: " + payload + b"\n\n" for payload in payloads) + b"data: [DONE]\n\n"
    outputs = []
    translator = None
    for filters in ((), (Passing(),)):
        pipeline = core.relay.StreamPipeline(context(), filters=filters)
        pieces = [pipeline.start()]
        for at in range(0, len(body), 97):  # reads cut anywhere, as the network does
            pieces.append(pipeline.feed(body[at : at + 97]))
        pieces.append(pipeline.end())
        outputs.append(b"".join(pieces))
        translator = pipeline._translator
    parsed = core.stream.StreamTranslator(context())
    reference = [core.sse.encode_events(parsed.start())]
    reference += [core.sse.encode_events(parsed.feed(json.loads(payload))) for payload in payloads]
    reference.append(core.sse.encode_events(parsed.finish()))
    assert translator is not None
    return outputs[0], outputs[1], b"".join(reference), translator


class Passing(StreamFilter):
    """Passes every event through unchanged (puts the pipeline on the staged path)."""

    def feed(self, event: dict[str, Any]) -> list[dict[str, Any]]:
        return [event]

    def flush(self) -> list[dict[str, Any]]:
        return []


def test_the_staged_path_reads_shaped_chunks_without_parsing_them_too(core: Core) -> None:
    texts = ["Olá", "!", " more", ' "quoted"', " é ✓ 🎉"]
    pieces = ['{"comm', 'and":"', "ls -la", ' | grep \\"x\\"', '"}']
    payloads = [openai_chunk({"content": text}, padding="p" * index) for index, text in enumerate(texts)]
    payloads += [openai_chunk(call_start(0, "call_1"))]
    payloads += [openai_chunk(fragment(0, piece), padding="q" * index) for index, piece in enumerate(pieces)]
    payloads.append(openai_chunk({}, finish="tool_calls", padding="r"))
    fused, staged, expected, translator = through_pipelines(core, payloads)
    assert fused == staged == expected
    check_stream(parse_sse(staged))
    assert translator._shape is not None and translator._arguments_shape is not None  # learnt on the staged path


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=st.lists(st.text(min_size=0, max_size=10), min_size=1, max_size=6),
    pieces=st.lists(st.text(min_size=0, max_size=10), min_size=0, max_size=6),
    escaped=st.booleans(),
)
def test_both_paths_give_the_bytes_of_the_parse(core: Core, texts: list[str], pieces: list[str], escaped: bool) -> None:
    payloads = [openai_chunk({"content": text}, padding="p", ascii_only=escaped) for text in texts]
    if pieces:
        payloads.append(openai_chunk(call_start(0, "call_1")))
        payloads += [openai_chunk(fragment(0, piece), ascii_only=escaped) for piece in pieces]
        payloads.append(openai_chunk({}, finish="length"))
    else:
        payloads.append(openai_chunk({}, finish="stop"))
    fused, staged, expected, _ = through_pipelines(core, payloads)
    assert fused == staged == expected


def test_a_translator_learns_shapes_only_when_asked(core: Core) -> None:
    payloads = [openai_chunk({"content": text}) for text in ("opens", "teaches", "would take it")]
    translator = core.stream.StreamTranslator(context())  # no caller reading payloads: no shapes
    translator.start()
    for payload in payloads:
        assert translator.feed_payload(payload) is None
        translator.feed_sse(json.loads(payload))
        translator.learn_shape(payload, json.loads(payload))
    assert translator._shape is None


def test_chunks_written_with_blanks_after_the_colons_are_read_too(core: Core) -> None:
    # Python's json.dumps writes `"content": "..."`: what some Python servers send.
    def spaced(delta: dict[str, Any], padding: str | None = None) -> bytes:
        chunk: dict[str, Any] = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        if padding is not None:
            chunk["obfuscation"] = padding
        return json.dumps(chunk).encode()

    payloads = [spaced({"content": text}, padding="x" * len(text)) for text in ("opens", "teaches", "a", "b c")]
    payloads.append(spaced({}, padding=""))
    got, expected, unparsed = both_ways(core, payloads)
    assert (got, unparsed) == (expected, 2)


def test_a_stream_no_shape_fits_is_not_offered_payloads_for_long(core: Core) -> None:
    # Every text is non-ASCII and written escaped: no shape can be learnt (its string is not found as orjson writes
    # it), so after SHAPE_TRIES attempts the pipeline stops offering the translator payloads and chunks.
    payloads = [openai_chunk({"content": f"é{number}"}, ascii_only=True) for number in range(SHAPE_TRIES + 6)]
    pipeline = core.relay.StreamPipeline(context())
    pieces = [pipeline.start()]
    pieces += [pipeline.feed(b"data: " + payload + b"\n\n") for payload in payloads]
    pieces.append(pipeline.feed(b"data: [DONE]\n\n"))
    pieces.append(pipeline.end())
    check_stream(parse_sse(b"".join(pieces)))
    assert pipeline._shaped is None
