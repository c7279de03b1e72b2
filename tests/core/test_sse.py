"""SSEDecoder (upstream side) and encode_event (client side)."""

from __future__ import annotations

import json

import pytest

from ccproxy.core._twins import Core
from tests.support.anthropic_stream import parse_sse


def decode(core: Core, *pieces: bytes) -> list[bytes]:
    decoder = core.sse.SSEDecoder()
    payloads: list[bytes] = []
    for piece in pieces:
        payloads.extend(decoder.feed(piece))
    payloads.extend(decoder.flush())
    return payloads


# A stream with every feature the decoder must handle, mixed line endings and multi-byte characters
# (2-, 3- and 4-byte UTF-8) right next to line ends and inside payloads.
MIXED = (
    "\ufeff: OPENROUTER PROCESSING\r\n\r\n"
    'data: {"a":"é"}\n\n'
    "event: chunk\r\nid: 7\r\nretry: 100\r\n"
    'data: {"b":\r\ndata: "日本"}\r\n\r\n'
    'data:{"c":"🙂"}\r\r'
    "data:  two spaces\n\n"
    "data\n\n"
    "unknown: field\ndata: [DONE]\n\n"
).encode()
MIXED_PAYLOADS = [text.encode() for text in ['{"a":"é"}', '{"b":\n"日本"}', '{"c":"🙂"}', " two spaces", "[DONE]"]]


def test_lf_events(core: Core) -> None:
    assert decode(core, b'data: {"x":1}\n\ndata: {"x":2}\n\n') == [b'{"x":1}', b'{"x":2}']


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"], ids=["lf", "crlf", "cr"])
def test_every_line_ending(core: Core, newline: bytes) -> None:
    body = b"data: one" + newline + newline + b"data: two" + newline + b"data: 2b" + newline + newline
    assert decode(core, body) == [b"one", b"two\n2b"]


def test_mixed_stream(core: Core) -> None:
    assert decode(core, MIXED) == MIXED_PAYLOADS


def test_multi_line_data_is_joined_with_lf(core: Core) -> None:
    assert decode(core, b"data: {\ndata: }\n\n") == [b"{\n}"]


def test_comments_and_other_fields_are_ignored(core: Core) -> None:
    body = b": keep-alive\n\nevent: message\nid: 1\nretry: 5\nfoo: bar\ndata: x\n\n"
    assert decode(core, body) == [b"x"]


def test_field_value_loses_one_leading_space_only(core: Core) -> None:
    assert decode(core, b"data:x\n\ndata:  y\n\n") == [b"x", b" y"]


LLAMA_CPP_ERROR = (
    b'error: {"code":400,"message":"the request exceeds the available context size. try increasing the context size'
    b' or enable context shift","type":"invalid_request_error"}\n\ndata: [DONE]\n\n'
)


@pytest.mark.parametrize("pieces", [(LLAMA_CPP_ERROR,), tuple(LLAMA_CPP_ERROR[i : i + 7] for i in range(0, 300, 7))])
def test_an_error_field_becomes_an_error_payload(core: Core, pieces: tuple[bytes, ...]) -> None:
    """Older llama.cpp servers report a failure inside a stream in an `error` field, in one read or cut anywhere."""
    error, done = decode(core, *pieces)
    assert json.loads(error)["error"]["type"] == "invalid_request_error"
    assert "available context size" in json.loads(error)["error"]["message"]
    assert done == b"[DONE]"


def test_an_error_field_after_content_and_in_plain_text(core: Core) -> None:
    body = b'data: {"a":1}\n\nerror: model crashed\n\nerror:\n\n'
    first, crashed, empty = decode(core, body)
    assert first == b'{"a":1}'
    assert json.loads(crashed) == {"error": {"message": "model crashed"}}
    assert json.loads(empty) == {"error": {"message": "Upstream reported an error"}}


def test_done_is_returned_as_is(core: Core) -> None:
    assert decode(core, b"data: [DONE]\n\n") == [b"[DONE]"]


def test_events_with_empty_data_are_dropped(core: Core) -> None:
    assert decode(core, b"data:\n\ndata\n\ndata: \n\n: only a comment\n\n") == []


def test_payload_is_returned_when_its_event_completes(core: Core) -> None:
    decoder = core.sse.SSEDecoder()
    assert decoder.feed(b"data: a\n") == []
    assert decoder.feed(b"\n") == [b"a"]


def test_flush_returns_an_event_without_the_final_blank_line(core: Core) -> None:
    decoder = core.sse.SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: b\n") == [b"a"]
    assert decoder.flush() == [b"b"]


def test_flush_returns_a_last_line_without_line_end(core: Core) -> None:
    decoder = core.sse.SSEDecoder()
    assert decoder.feed(b"data: [DO") == []
    assert decoder.flush() == [b"[DO"]


def test_flush_empties_the_decoder(core: Core) -> None:
    decoder = core.sse.SSEDecoder()
    decoder.feed(b"data: a")
    assert decoder.flush() == [b"a"]
    assert decoder.flush() == []
    assert decoder.feed(b"data: b\n\n") == [b"b"]


def test_cr_at_the_end_of_a_read_then_lf(core: Core) -> None:
    decoder = core.sse.SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"\n\r") == [b"a"]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"data: b\r\r") == [b"b"]


def test_cr_then_empty_read_then_lf(core: Core) -> None:
    decoder = core.sse.SSEDecoder()
    assert decoder.feed(b"data: a\r") == []
    assert decoder.feed(b"") == []
    assert decoder.feed(b"\n\r\n") == [b"a"]


def test_cr_only_stream_dispatches_without_waiting_for_more_bytes(core: Core) -> None:
    decoder = core.sse.SSEDecoder()
    assert decoder.feed(b"data: a\r\r") == [b"a"]


def test_bom_is_stripped_only_at_the_start(core: Core) -> None:
    assert decode(core, b"\xef\xbb\xbfdata: a\n\n") == [b"a"]
    assert decode(core, b"\xef", b"\xbb", b"\xbfdata: a\n\n") == [b"a"]
    # Later, a BOM is an ordinary character of an unknown field name.
    assert decode(core, b"data: a\n\n\xef\xbb\xbfdata: b\n\n") == [b"a"]


def test_invalid_utf8_becomes_replacement_characters(core: Core) -> None:
    assert decode(core, b"data: a\xffb\n\n") == ["a\ufffdb".encode()]


def test_split_at_every_offset_gives_identical_payloads(core: Core) -> None:
    for offset in range(len(MIXED) + 1):
        assert decode(core, MIXED[:offset], MIXED[offset:]) == MIXED_PAYLOADS, offset


def test_split_at_every_pair_of_offsets_gives_identical_payloads(core: Core) -> None:
    for first in range(len(MIXED) + 1):
        for second in range(first, len(MIXED) + 1):
            pieces = (MIXED[:first], MIXED[first:second], MIXED[second:])
            assert decode(core, *pieces) == MIXED_PAYLOADS, (first, second)


def test_one_byte_at_a_time(core: Core) -> None:
    assert decode(core, *(MIXED[i : i + 1] for i in range(len(MIXED)))) == MIXED_PAYLOADS


# The same stream with LF line ends only: reads of whole one-line events take the decoder's fast path, and the
# splits below mix it with the line reader (partial lines, multi-line events, the BOM, comments, other fields).
LF_ONLY = MIXED.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def test_lf_only_stream_split_at_every_pair_of_offsets(core: Core) -> None:
    assert decode(core, LF_ONLY) == MIXED_PAYLOADS
    for first in range(len(LF_ONLY) + 1):
        for second in range(first, len(LF_ONLY) + 1):
            pieces = (LF_ONLY[:first], LF_ONLY[first:second], LF_ONLY[second:])
            assert decode(core, *pieces) == MIXED_PAYLOADS, (first, second)


def test_several_whole_events_and_a_partial_line_in_one_read(core: Core) -> None:
    decoder = core.sse.SSEDecoder()
    assert decoder.feed(b"data: a\n\n: ping\n\ndata:b\n\n\n\ndata: c") == [b"a", b"b"]
    assert decoder.feed(b"d\n\ndata: e\n\ndata: f\n") == [b"cd", b"e"]
    assert decoder.feed(b"data: g\n\n") == [b"f\ng"]


def test_invalid_utf8_in_a_read_of_whole_events(core: Core) -> None:
    body = b"data: a\n\ndata: \xe6\x97\n\ndata: \xe6\x97\xa5\n\n"
    assert decode(core, body) == [b"a", "\ufffd".encode(), "日".encode()]


def test_encode_event_framing(core: Core) -> None:
    event = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "a/b é\n"}}
    encoded = core.sse.encode_event(event)
    expected = (
        'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        '"delta":{"type":"text_delta","text":"a/b é\\n"}}\n\n'
    )
    assert encoded == expected.encode()
    assert parse_sse(encoded) == [event]


def test_encode_event_keeps_lone_surrogates_as_json_escapes(core: Core) -> None:
    encoded = core.sse.encode_event({"type": "ping", "x": "\ud83d"})
    assert encoded == b'event: ping\ndata: {"type":"ping","x":"\\ud83d"}\n\n'


def test_encoded_events_decode_back(core: Core) -> None:
    events = [{"type": "ping"}, {"type": "message_stop"}, {"type": "x", "text": "日本\r\n"}]
    body = b"".join(core.sse.encode_event(event) for event in events)
    assert [json.loads(payload) for payload in decode(core, body)] == events
