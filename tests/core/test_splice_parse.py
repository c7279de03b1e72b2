"""A body whose tools are byte for byte those of a recent request is parsed without them (ccproxy/splice.py
`SplicedPieces.parse`): what comes out is what parsing the whole body gives, the spliced bytes stay exact, and
anything unusual (other tools, a decoy, a later duplicate, broken JSON) is left to the plain parse."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.jsoncodec import loads
from ccproxy.errors import InvalidRequestError
from ccproxy.splice import RECENT_TOOLS, SplicedPieces
from tests.core.test_splice import PROFILES, WITH_TOOLS, adjust, claude_code_bytes, fresh, plan_for, same_map


def as_pipeline(pieces: SplicedPieces, raw: bytes, profile: str) -> tuple[bytes | None, dict[str, Any], bool]:
    """What MessagesPipeline does with a body: `parse`, else the plain parse, then the spliced conversion.
    Returns the bytes, the parsed body and whether its tools were reused."""
    parsed = pieces.parse(raw)
    reused = parsed is not None
    body = loads(raw) if parsed is None else parsed.body
    return pieces.body(raw, body, plan_for(profile), adjust), body, reused


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize(("name", "body"), WITH_TOOLS, ids=[name for name, _ in WITH_TOOLS])
def test_the_tools_of_a_recent_body_are_reused_and_the_bytes_stay_exact(
    core: Core, name: str, body: dict[str, Any], profile: str
) -> None:
    raw = claude_code_bytes(body)
    expected, expected_map = fresh(core, raw, profile)
    pieces = SplicedPieces(core_request=core.request)
    got, first, reused = as_pipeline(pieces, raw, profile)
    assert (got, reused) == (expected, False)
    for _ in range(2):
        plan = plan_for(profile)
        read = pieces.parse(raw)
        assert read is not None
        parsed = read.body
        assert parsed == loads(raw)
        assert list(parsed) == list(loads(raw))  # the members in the client's order
        assert parsed["tools"] is first["tools"]  # not parsed again: the list of the first request
        assert pieces.body(raw, parsed, plan, adjust) == expected
        assert same_map(plan.tool_names, expected_map)


def test_the_next_turn_of_a_conversation_reuses_the_tools(core: Core) -> None:
    body = copy.deepcopy(WITH_TOOLS[0][1])
    pieces = SplicedPieces(core_request=core.request)
    as_pipeline(pieces, claude_code_bytes(body), "gpt-5")
    body["messages"] += [
        {"role": "assistant", "content": [{"type": "text", "text": "Done — ✓"}]},
        {"role": "user", "content": "and now the next thing"},
    ]
    raw = claude_code_bytes(body)
    got, parsed, reused = as_pipeline(pieces, raw, "gpt-5")
    assert reused
    assert parsed == body
    assert got == fresh(core, raw, "gpt-5")[0]


def with_member_after_tools(raw: bytes, member: bytes) -> bytes:
    """`raw` with one more top-level member written after the last one."""
    assert raw.endswith(b"}")
    return raw[:-1] + b"," + member + b"}"


def variants(body: dict[str, Any]) -> dict[str, bytes]:
    """Bodies near a known one, each of which `parse` must either decline or parse exactly as `loads` does."""
    raw = claude_code_bytes(body)
    tools = claude_code_bytes({"tools": body["tools"]})[1:-1]  # `"tools":[...]`
    other = copy.deepcopy(body)
    other["tools"][0]["description"] = "something else entirely"
    decoy = copy.deepcopy(other)
    decoy["output_config"] = {"format": {"type": "json_schema", "schema": {}, "x": {"tools": body["tools"]}}}
    start = raw.rfind(b'"tools":')
    return {
        "other tools": claude_code_bytes(other),
        "known tools nested after other tools": claude_code_bytes(decoy),
        "a later duplicate member": with_member_after_tools(raw, b'"tools":[]'),
        "a later duplicate of the same tools": with_member_after_tools(raw, tools),
        "an earlier duplicate member": b'{"tools":[],' + raw[1:],
        "broken JSON before the tools": raw[: start - 2] + raw[start - 1 :],
        "broken JSON after the tools": raw[:-1],
        "an array holding the body": b"[" + raw + b"]",
        "blanks around the colon": raw[:start] + b'"tools" : ' + raw[start + len(b'"tools":') :],
    }


@pytest.mark.parametrize("case", sorted(variants(WITH_TOOLS[0][1])))
def test_a_body_near_a_known_one_parses_exactly_or_is_left_to_the_plain_parse(core: Core, case: str) -> None:
    body = WITH_TOOLS[0][1]
    pieces = SplicedPieces(core_request=core.request)
    as_pipeline(pieces, claude_code_bytes(body), "gpt-4o")
    raw = variants(body)[case]
    read = pieces.parse(raw)
    parsed = None if read is None else read.body
    try:
        expected = loads(raw)
    except ValueError:
        assert parsed is None  # the caller parses it and words the error about the client's bytes
        return
    if case in ("other tools", "known tools nested after other tools", "a later duplicate member"):
        assert parsed is None
    else:
        assert parsed is None or parsed == expected
    if parsed is not None:
        assert isinstance(expected, dict)
        assert list(parsed) == list(expected)


def test_only_the_most_recent_tool_sets_are_looked_for(core: Core) -> None:
    bodies = []
    for number in range(RECENT_TOOLS + 1):
        body = copy.deepcopy(WITH_TOOLS[0][1])
        body["tools"][0]["description"] = f"tool set {number}"
        bodies.append(claude_code_bytes(body))
    pieces = SplicedPieces(core_request=core.request)
    for raw in bodies:
        as_pipeline(pieces, raw, "gpt-4o")
    assert pieces.parse(bodies[0]) is None  # pushed out by the later ones
    assert all(pieces.parse(raw) is not None for raw in bodies[1:])
    as_pipeline(pieces, bodies[0], "gpt-4o")  # used again: recent again
    assert pieces.parse(bodies[0]) is not None


def test_tools_known_skips_only_the_tools(core: Core) -> None:
    body = copy.deepcopy(WITH_TOOLS[0][1])
    body["tools"].append(copy.deepcopy(body["tools"][0]))  # a duplicate name: refused when walked
    with pytest.raises(InvalidRequestError, match="unique"):
        core.validate.validate_messages_request(body)
    core.validate.validate_messages_request(body, True)
    body["max_tokens"] = "many"
    with pytest.raises(InvalidRequestError, match="max_tokens"):
        core.validate.validate_messages_request(body, True)


def test_messages_known_skips_only_the_first_messages(core: Core) -> None:
    """The messages a recent request had (ccproxy/history.py) passed then: only those are not walked again."""
    body = copy.deepcopy(WITH_TOOLS[0][1])
    deep: Any = "x"
    for _ in range(200):
        deep = [deep]
    body["messages"] = [
        {"role": "user", "content": [{"type": "text", "text": "fine", "x": deep}]},  # too deep: refused when walked
        {"role": "user", "content": [{"type": "text"}]},  # no text: refused when walked
        {"role": "assistant", "content": "fine"},
    ]
    validate = core.validate.validate_messages_request
    with pytest.raises(InvalidRequestError, match="nest"):
        validate(body)
    with pytest.raises(InvalidRequestError, match=r"messages\.1\.content\.0\.text"):
        validate(body, False, 1)
    validate(body, False, 2)
    body["messages"].append({"role": "robot", "content": "new"})
    with pytest.raises(InvalidRequestError, match=r"messages\.3\.role"):
        validate(body, False, 3)
    body["messages"][3] = {"role": "user", "content": [{"type": "text", "text": "new", "x": deep}]}
    with pytest.raises(InvalidRequestError, match="nest"):
        validate(body, True, 3)
