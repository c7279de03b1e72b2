"""The messages a conversation repeats from its last turn are reused as parsed then (ccproxy/history.py, through
`SplicedPieces.parse`): what comes out is what parsing the whole body gives, the upstream bytes stay exact, and
anything unusual (a nested decoy, a duplicate member, other formatting, broken JSON) is left to the plain parse."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from ccproxy.core._twins import Core
from ccproxy.core.jsoncodec import loads
from ccproxy.history import MIN_BODY, MessageHistories
from ccproxy.splice import Parsed, SplicedPieces, Turn, _start
from tests.core.test_splice import CAPTURES, PROFILES, adjust, claude_code_bytes, fresh, plan_for, same_map

MARK = {"type": "ephemeral"}
# Captures big enough to be looked at (MIN_BODY) with at least one message: every real Claude Code turn is.
BIG = [(name, body) for name, body in CAPTURES if len(claude_code_bytes(body)) >= MIN_BODY and body["messages"]]


def read(pieces: SplicedPieces, raw: bytes) -> tuple[dict[str, Any], Parsed | None, Turn | None]:
    """What MessagesPipeline does with a body whose messages may be reused: `parse`, else the plain parse, then
    remember its messages for the next turn."""
    parsed = pieces.parse(raw, tools=True, messages=True)
    body = loads(raw) if parsed is None else parsed.body
    return body, parsed, pieces.learn_messages(raw, parsed, body)


def next_turn(body: dict[str, Any], number: int) -> dict[str, Any]:
    """Claude Code's next request: the answer and a new user message appended, the cache marker moved from the
    last message's last block to the new one's."""
    turn = copy.deepcopy(body)
    last = turn["messages"][-1]
    if isinstance(last["content"], list) and last["content"]:
        last["content"][-1].pop("cache_control", None)
    turn["messages"] += [
        {"role": "assistant", "content": [{"type": "text", "text": f'answer {number} — ✓ \u2028 "quoted"'}]},
        {"role": "user", "content": [{"type": "text", "text": f"question {number}\n", "cache_control": MARK}]},
    ]
    return turn


def histories_are_their_bytes(pieces: SplicedPieces) -> bool:
    """Every remembered message still parses from its bytes to its value: nothing changed a shared value."""
    return all([loads(raw) for raw in history.raws] == history.parsed for history in pieces.histories)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize(("name", "body"), BIG, ids=[name for name, _ in BIG])
def test_each_turn_reuses_the_messages_of_the_last_and_the_bytes_stay_exact(
    core: Core, name: str, body: dict[str, Any], profile: str
) -> None:
    pieces = SplicedPieces(core_request=core.request)
    turn = copy.deepcopy(body)
    previous: list[Any] = []
    for number in range(4):
        raw = claude_code_bytes(turn)
        parsed, read_by, where = read(pieces, raw)
        assert parsed == loads(raw)
        assert list(parsed) == list(loads(raw))  # the members in the client's order
        # The messages the last turn had unchanged (all but one that lost its marker) are its very values.
        kept = 0
        while kept < min(len(previous), len(parsed["messages"])) and parsed["messages"][kept] == previous[kept]:
            kept += 1
        if kept > 0:
            assert read_by is not None and read_by.messages is not None
            assert read_by.messages.count == kept
            assert all(a is b for a, b in zip(parsed["messages"][:kept], previous, strict=False))
        else:
            assert read_by is None or read_by.messages is None
        plan = plan_for(profile)
        started = None if where is None else _start(where, plan.capabilities, parsed["messages"])
        # From the second turn on, the conversion starts from what the last one kept: all but its last message.
        assert (started is not None and started.count) == (kept > 0 and kept)
        expected, expected_map = fresh(core, raw, profile)
        assert pieces.body(raw, parsed, plan, adjust, turn=where) == expected
        assert same_map(plan.tool_names, expected_map)
        assert histories_are_their_bytes(pieces)
        previous = parsed["messages"]
        turn = next_turn(turn, number)


def test_the_same_body_again_reuses_every_message(core: Core) -> None:
    pieces = SplicedPieces(core_request=core.request)
    raw = claude_code_bytes(BIG[0][1])
    first, _, _ = read(pieces, raw)
    again, parsed, _ = read(pieces, raw)
    assert parsed is not None and parsed.messages is not None and parsed.messages.closed
    assert again == loads(raw)
    assert all(a is b for a, b in zip(again["messages"], first["messages"], strict=True))
    assert len(pieces.histories) == 1


def member_before_messages(raw: bytes, member: bytes) -> bytes:
    """`raw` with one more top-level member written before its first (Claude Code writes `model` first)."""
    assert raw.startswith(b"{")
    return b"{" + member + b"," + raw[1:]


def variants(body: dict[str, Any]) -> dict[str, bytes]:
    """Bodies near a known one, each of which `parse` must either decline or parse exactly as `loads` does."""
    raw = claude_code_bytes(body)
    messages = claude_code_bytes({"messages": body["messages"]})[1:-1]  # `"messages":[...]`
    other = copy.deepcopy(body)
    other["messages"] = [{"role": "user", "content": "something else entirely"}]
    other_raw = claude_code_bytes(other)
    edited = copy.deepcopy(body)
    edited["messages"][0]["content"] = "edited"
    start = raw.find(b'"messages":[')
    return {
        "the known messages nested before other ones": member_before_messages(
            other_raw, b'"metadata":{' + messages + b"}"
        ),
        "an earlier duplicate member with the known messages": member_before_messages(other_raw, messages),
        "a later duplicate member": raw[:-1] + b',"messages":[{"role":"user","content":"later"}]}',
        "the first message edited": claude_code_bytes(edited),
        "blanks after the key": raw[:start] + b'"messages": [' + raw[start + len(b'"messages":[') :],
        "a blank after the last message": raw[: start + len(messages) - 1] + b" " + raw[start + len(messages) - 1 :],
        "broken JSON after the messages": raw[: start + len(messages)] + b",," + raw[start + len(messages) + 1 :],
        "a trailing comma in the messages": raw[: start + len(messages) - 1] + b"," + raw[start + len(messages) - 1 :],
        "an array holding the body": b"[" + raw + b"]",
        "pretty-printed": json.dumps(body, ensure_ascii=False, indent=1).encode(),
        "one message fewer": claude_code_bytes({**body, "messages": body["messages"][:-1]}),
    }


@pytest.mark.parametrize("case", sorted(variants(BIG[0][1])))
def test_a_body_near_a_known_one_parses_exactly_or_is_left_to_the_plain_parse(core: Core, case: str) -> None:
    body = BIG[0][1]
    pieces = SplicedPieces(core_request=core.request)
    read(pieces, claude_code_bytes(body))
    raw = variants(body)[case]
    parsed = pieces.parse(raw, tools=False, messages=True)
    try:
        expected = loads(raw)
    except ValueError:
        assert parsed is None  # the caller parses it and words the error about the client's bytes
        return
    if case in ("the known messages nested before other ones", "an earlier duplicate member with the known messages"):
        assert parsed is None  # the marker was not where the parser kept the messages
    if parsed is not None:
        assert parsed.body == expected
        assert isinstance(expected, dict)
        assert list(parsed.body) == list(expected)
        pieces.learn_messages(raw, parsed, parsed.body)
    assert histories_are_their_bytes(pieces)


def test_small_bodies_are_neither_looked_at_nor_remembered() -> None:
    histories = MessageHistories()
    raw = claude_code_bytes({"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]})
    assert len(raw) < MIN_BODY
    histories.learn(raw, loads(raw)["messages"], None)
    assert len(histories) == 0


def test_a_client_that_writes_json_otherwise_leaves_nothing_remembered() -> None:
    histories = MessageHistories()
    body = BIG[0][1]
    for raw in (
        json.dumps(body, separators=(",", ":")).encode(),  # non-ASCII escaped
        json.dumps(body).encode(),  # Python's blanks, as the Python SDK sends
        json.dumps(body, ensure_ascii=False, indent=1).encode(),
    ):
        histories.learn(raw, loads(raw)["messages"], None)
    assert len(histories) == 0  # nothing it sends could be found: no history to compare each body with


def conversation(texts: list[str]) -> bytes:
    messages = [
        {"role": "user" if number % 2 == 0 else "assistant", "content": [{"type": "text", "text": text}]}
        for number, text in enumerate(texts)
    ]
    return claude_code_bytes({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages})


def test_the_histories_are_bounded_by_number_and_bytes() -> None:
    histories = MessageHistories(recent=3, max_bytes=10_000, min_body=0)
    bodies = [conversation([f"conversation {number}", "x" * 2000]) for number in range(5)]
    for raw in bodies:
        histories.learn(raw, loads(raw)["messages"], None)
    assert len(histories) == 3
    assert histories.find(bodies[0]) is None  # pushed out by the later ones
    assert histories.find(bodies[-1]) is not None
    big = conversation(["y" * 5_000, "z" * 2_000])
    histories.learn(big, loads(big)["messages"], None)
    assert histories.bytes <= 10_000
    assert histories.find(big) is not None
    assert histories.find(bodies[-1]) is not None
    assert histories.find(bodies[-2]) is None  # the older ones made room for the big one
    huge = conversation(["w" * 20_000])
    histories.learn(huge, loads(huge)["messages"], None)
    assert histories.find(huge) is None  # over the bound on its own: not kept


# Texts JSON writes in many ways: escapes, quotes, non-ASCII, line separators, brackets that look like structure.
TEXTS = st.text(alphabet=st.sampled_from([*'ab"\\\n\t\u2028é✓😀[]{},:', "\x00", "\x1f"]), max_size=12)
EDITS = st.lists(
    st.tuples(st.sampled_from(["append", "edit", "truncate", "same"]), st.integers(0, 20), TEXTS),
    min_size=1,
    max_size=8,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.lists(TEXTS, min_size=1, max_size=6), edits=EDITS)
def test_any_sequence_of_turns_parses_exactly(core: Core, first: list[str], edits: list[Any]) -> None:
    pieces = SplicedPieces(core_request=core.request)
    pieces.histories = MessageHistories(min_body=0)
    texts = list(first)
    for action, where, text in edits:
        if action == "append":
            texts.append(text)
        elif action == "edit":
            texts[where % len(texts)] = text
        elif action == "truncate" and len(texts) > 1:
            del texts[where % len(texts) :]
            texts = texts or [text]
        raw = conversation(texts)
        body, _, _ = read(pieces, raw)
        assert body == loads(raw)
        assert histories_are_their_bytes(pieces)


@pytest.mark.parametrize("edited", [0, 1, 5, 17, 38, 39])
def test_the_run_reused_is_the_longest_one_before_an_edit(edited: int) -> None:
    histories = MessageHistories(min_body=0)
    texts = [f"message {number}" for number in range(40)]
    raw = conversation(texts)
    histories.learn(raw, loads(raw)["messages"], None)
    texts[edited] = "edited"

    def reused(raw: bytes) -> tuple[int, bool]:
        found = histories.find(raw)
        return (0, False) if found is None else (found.count, found.closed)

    assert reused(conversation([*texts, "one more"])) == (edited, False)
    assert reused(conversation(texts[:edited])) == ((edited, True) if edited else (0, False))  # rewound


LONG_NAME = "mcp__a_server_with_a_long_name__and_a_tool_whose_name_is_longer_than_openai_allows"
PIXEL = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}


def rich_message(kind: str, number: int, text: str) -> dict[str, Any]:
    """One message of a kind the converter keeps state for: tool calls (long names too) and their results (with
    images, labelled by the call's name), system messages arriving while results are awaited, thinking, markers."""
    call = f"toolu_{number:04d}"
    name = LONG_NAME if number % 3 == 0 else "Bash"
    made: dict[str, dict[str, Any]] = {
        "user": {"role": "user", "content": [{"type": "text", "text": text}]},
        "marked": {"role": "user", "content": [{"type": "text", "text": text, "cache_control": MARK}]},
        "call": {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": text, "signature": f"sig-{number}"},
                {"type": "tool_use", "id": call, "name": name, "input": {"command": text}},
            ],
        },
        "result": {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": f"toolu_{number - 1:04d}", "content": text},
                {"type": "image", "source": PIXEL},
            ],
        },
        "image-result": {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": f"toolu_{number - 1:04d}",
                    "content": [{"type": "text", "text": text}, {"type": "image", "source": PIXEL}],
                }
            ],
        },
        "system": {"role": "system", "content": f"reminder: {text}"},
        "answer": {"role": "assistant", "content": text or "ok"},
    }
    return made[kind]


KINDS = st.sampled_from(["user", "marked", "call", "result", "image-result", "system", "answer"])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(  # a system message while a call's result is awaited: held across the turn's boundary
    first=[("call", "a"), ("system", "b"), ("result", "c"), ("call", "d"), ("system", "e"), ("image-result", "f")],
    turns=[("same", 0, "user", "")],
    profile="gpt-4o",
)
@given(
    first=st.lists(st.tuples(KINDS, TEXTS), min_size=1, max_size=10),
    turns=st.lists(
        st.tuples(st.sampled_from(["append", "edit", "truncate", "same"]), st.integers(0, 30), KINDS, TEXTS),
        min_size=1,
        max_size=6,
    ),
    profile=st.sampled_from(sorted(PROFILES)),
)
def test_any_conversation_converts_exactly_from_the_runs_kept(
    core: Core, first: list[Any], turns: list[Any], profile: str
) -> None:
    pieces = SplicedPieces(core_request=core.request)
    pieces.histories = MessageHistories(min_body=0)
    messages = [rich_message(kind, number, text) for number, (kind, text) in enumerate(first)]
    bodies = [messages[:count] for count in range(1, len(messages) + 1)]  # each a turn: state kept at every step
    for action, where, kind, text in turns:
        messages = copy.deepcopy(messages)
        if action == "append":
            messages.append(rich_message(kind, len(messages), text))
        elif action == "edit":
            messages[where % len(messages)] = rich_message(kind, where % len(messages), text)
        elif action == "truncate":
            del messages[max(1, where % len(messages)) :]
        bodies.append(messages)
    for messages in bodies:
        raw = claude_code_bytes({"model": "claude-sonnet-4-5", "max_tokens": 100, "messages": messages})
        body, _, where = read(pieces, raw)
        plan = plan_for(profile)
        expected, expected_map = fresh(core, raw, profile)
        assert pieces.body(raw, body, plan, adjust, turn=where) == expected
        assert same_map(plan.tool_names, expected_map)


def test_a_body_sent_again_keeps_the_run_its_next_turn_starts_from(core: Core) -> None:
    """A client that sends a body again (a retry) and then goes on: the next turn still starts from the run of all
    but the last message, kept by the first of the two."""
    pieces = SplicedPieces(core_request=core.request)
    body = copy.deepcopy(BIG[0][1])
    for number in range(3):  # a few messages, so that all but the last is a run worth keeping
        body = next_turn(body, number)
    following = next_turn(body, 9)
    for raw in (claude_code_bytes(body), claude_code_bytes(body), claude_code_bytes(following)):
        parsed, _, where = read(pieces, raw)
        plan = plan_for("gpt-4o")
        assert where is not None
        started = _start(where, plan.capabilities, parsed["messages"])
        assert pieces.body(raw, parsed, plan, adjust, turn=where) == fresh(core, raw, "gpt-4o")[0]
    assert started is not None and started.count == len(body["messages"]) - 1
