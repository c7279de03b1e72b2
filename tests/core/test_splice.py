"""Spliced bodies (ccproxy/splice.py) are byte for byte the bodies converted afresh: every Claude Code capture, every
upstream profile, both cores, on the first call (miss), the second (hit) and after eviction."""

from __future__ import annotations

import copy
import json
import types
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from ccproxy.core._twins import Core
from ccproxy.core.jsoncodec import dumps, loads
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.splice import RETRY_AFTER, BoundedLRU, SplicedPieces
from tests.support.fixtures import claude_code_posts

CAPTURES = [(capture.id, capture.body) for capture in claude_code_posts("/v1/messages")]
WITH_TOOLS = [(name, body) for name, body in CAPTURES if body.get("tools")]

# The profiles of tests/core/test_request_fixtures.py, plus every capability the pieces' conversion reads.
PROFILES: dict[str, tuple[str, ModelCapabilities, dict[str, Any]]] = {
    "gpt-4o": ("gpt-4o", ModelCapabilities(), {}),
    "gpt-5": (
        "gpt-5",
        ModelCapabilities(
            max_tokens_param="max_completion_tokens",
            system_role="developer",
            supports_temperature=False,
            supports_top_p=False,
            max_output_tokens=128000,
            supports_reasoning=True,
        ),
        {"reasoning_effort": "high"},
    ),
    "deepseek": ("deepseek-reasoner", ModelCapabilities(reasoning_replay="reasoning_content"), {}),
    "openrouter": (
        "anthropic/claude-sonnet-4.5",
        ModelCapabilities(
            reasoning_replay="reasoning_details",
            supports_documents=True,
            forward_cache_control=True,
            supports_strict_tools=True,
        ),
        {"reasoning": {"max_tokens": 8000}},
    ),
}


def claude_code_bytes(body: dict[str, Any]) -> bytes:
    """The body as the CLI writes it (JSON.stringify: compact, non-ASCII as it is)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def plan_for(profile: str) -> RequestPlan:
    model, capabilities, reasoning = PROFILES[profile]
    return RequestPlan(upstream_model=model, capabilities=capabilities, stream=True, reasoning=reasoning)


def adjust(body: dict[str, Any], anthropic_request: Mapping[str, Any]) -> dict[str, Any]:
    """A provider hook that adds a field beside the spliced pieces (as OpenRouter's does)."""
    body["usage"] = {"include": True}
    return body


def fresh(core: Core, raw: bytes, profile: str) -> tuple[bytes, ToolNameMap]:
    """What the pipeline sent before splicing existed."""
    plan = plan_for(profile)
    return dumps(adjust(core.request.convert_request(loads(raw), plan), loads(raw))), plan.tool_names


def spliced(pieces: SplicedPieces, raw: bytes, profile: str, amended: bool = False) -> tuple[bytes | None, ToolNameMap]:
    plan = plan_for(profile)
    body = loads(raw)
    return pieces.body(raw, body, plan, adjust, amended), plan.tool_names


def counting(core: Core) -> tuple[types.ModuleType, list[str]]:
    """`core.request`, with each conversion of tools or system noted."""
    calls: list[str] = []
    module = types.ModuleType("counting_request")

    def convert_tools(*args: Any) -> Any:
        calls.append("tools")
        return core.request.convert_tools(*args)

    def convert_system(*args: Any) -> Any:
        calls.append("system")
        return core.request.convert_system(*args)

    vars(module).update(
        convert_request=core.request.convert_request, convert_tools=convert_tools, convert_system=convert_system
    )
    return module, calls


def same_map(left: ToolNameMap, right: ToolNameMap) -> bool:
    return (left._to_client, left._to_upstream) == (right._to_client, right._to_upstream)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize(("name", "body"), CAPTURES, ids=[name for name, _ in CAPTURES])
def test_every_capture_splices_to_the_fresh_bytes_on_miss_and_hit(
    core: Core, name: str, body: dict[str, Any], profile: str
) -> None:
    raw = claude_code_bytes(body)
    expected, expected_map = fresh(core, raw, profile)
    module, calls = counting(core)
    pieces = SplicedPieces(core_request=module)
    for _ in range(3):
        got, names = spliced(pieces, raw, profile)
        assert got == expected
        assert same_map(names, expected_map)
    # Converted once (the first call), then spliced from the cache.
    assert calls.count("tools") == (1 if body.get("tools") else 0)
    assert calls.count("system") <= 1


@pytest.mark.parametrize("profile", ["gpt-5", "openrouter"])
def test_eviction_and_alternating_bodies_stay_exact(core: Core, profile: str) -> None:
    raws = [claude_code_bytes(body) for _, body in WITH_TOOLS]
    expected = [fresh(core, raw, profile)[0] for raw in raws]
    for lru in (BoundedLRU(max_entries=1), BoundedLRU(max_bytes=50_000), BoundedLRU()):
        pieces = SplicedPieces(lru, core_request=core.request)
        for _ in range(2):
            for raw, wanted in zip(raws, expected, strict=True):
                assert spliced(pieces, raw, profile)[0] == wanted
        assert len(lru) <= lru.max_entries and lru.bytes <= lru.max_bytes


def long_named(body: dict[str, Any], called: bool) -> dict[str, Any]:
    """`body` with its first tool renamed past OpenAI's 64 characters (and, if `called`, a call of it in the
    history, which names it to the map too)."""
    body = copy.deepcopy(body)
    long_name = "mcp__a_very_long_server_name_for_testing__" + "and_a_tool_name_that_goes_on" * 2
    body["tools"][0]["name"] = long_name
    if called:
        body["messages"][0:0] = [
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": long_name, "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]},
        ]
    return body


@pytest.mark.parametrize("called", [False, True])
def test_a_hit_still_fills_the_tool_name_map(core: Core, called: bool) -> None:
    raw = claude_code_bytes(long_named(WITH_TOOLS[0][1], called))
    expected, expected_map = fresh(core, raw, "gpt-5")
    assert expected_map  # the long name is shortened: the response side needs the map
    pieces = SplicedPieces(core_request=core.request)
    for _ in range(2):
        got, names = spliced(pieces, raw, "gpt-5")
        assert got == expected
        assert same_map(names, expected_map)


def test_a_nested_tools_value_equal_to_cached_tools_is_not_taken_for_the_top_level_one(core: Core) -> None:
    """The last `"tools"` in the bytes is inside output_config; it equals the tools of an earlier request byte for
    byte, while this request's own tools (same names) say something else."""
    first = copy.deepcopy(WITH_TOOLS[0][1])
    pieces = SplicedPieces(core_request=core.request)
    spliced(pieces, claude_code_bytes(first), "gpt-4o")
    decoy = copy.deepcopy(first)
    decoy["tools"][0]["description"] = "something else entirely"
    schema = {"type": "object", "properties": {"tools": {"type": "array"}}}
    decoy["output_config"] = {"format": {"type": "json_schema", "schema": schema, "x": {"tools": first["tools"]}}}
    raw = claude_code_bytes(decoy)
    assert raw.rfind(b'"tools"') > raw.find(b'"tools"') > 0
    assert spliced(pieces, raw, "gpt-4o")[0] == fresh(core, raw, "gpt-4o")[0]


def test_tools_amended_by_a_guardrail_are_not_spliced_from_the_raw_bytes(core: Core) -> None:
    raw = claude_code_bytes(WITH_TOOLS[0][1])
    pieces = SplicedPieces(core_request=core.request)
    spliced(pieces, raw, "gpt-4o")
    body = loads(raw)
    body["tools"][0]["description"] = "amended"
    plan = plan_for("gpt-4o")
    got = pieces.body(raw, body, plan, adjust, amended=True)
    assert got == dumps(adjust(core.request.convert_request(body, plan_for("gpt-4o")), body))
    assert b'"description":"amended"' in (got or b"")


@pytest.mark.parametrize("encode", ["ascii", "indented"])
def test_bodies_not_written_like_orjson_convert_exactly_every_time(core: Core, encode: str) -> None:
    body = WITH_TOOLS[0][1]
    raw = json.dumps(body, ensure_ascii=True, indent=2 if encode == "indented" else None).encode()
    expected = fresh(core, raw, "openrouter")[0]
    pieces = SplicedPieces(core_request=core.request)
    assert [spliced(pieces, raw, "openrouter")[0] for _ in range(3)] == [expected] * 3


def test_tools_not_found_once_are_looked_for_again_later(core: Core) -> None:
    body = WITH_TOOLS[0][1]
    indented, compact = json.dumps(body, indent=2).encode(), claude_code_bytes(body)
    module, calls = counting(core)
    pieces = SplicedPieces(core_request=module)
    spliced(pieces, indented, "gpt-4o")  # not orjson's JSON: remembered as not findable
    for _ in range(RETRY_AFTER + 3):
        assert spliced(pieces, compact, "gpt-4o")[0] == fresh(core, compact, "gpt-4o")[0]
    # Converted afresh until the retry found them, then spliced from the cache.
    assert calls.count("tools") == 1 + RETRY_AFTER + 1


def test_a_body_orjson_cannot_write_is_left_to_the_caller(core: Core) -> None:
    body = copy.deepcopy(WITH_TOOLS[0][1])
    body["messages"].append({"role": "user", "content": "cut emoji \ud83d"})
    raw = json.dumps(body).encode()  # ASCII, the lone surrogate escaped
    pieces = SplicedPieces(core_request=core.request)
    assert spliced(pieces, raw, "gpt-4o")[0] is None
    with pytest.raises(TypeError):
        orjson.dumps(loads(raw))


def test_the_lru_is_bounded_by_entries_and_bytes() -> None:
    lru = BoundedLRU(max_entries=2, max_bytes=100)
    lru.put("a", 1, 40)
    lru.put("b", 2, 40)
    assert lru.get("a") == 1  # now the most recent
    lru.put("c", 3, 40)  # over both bounds: "b" goes
    assert (lru.get("b"), lru.get("a"), lru.get("c"), lru.bytes) == (None, 1, 3, 80)
    lru.put("d", 4, 90)  # alone it fits; the others go
    assert (len(lru), lru.bytes, lru.get("d")) == (1, 90, 4)
    lru.put("huge", 5, 101)  # never fits: not kept, nothing dropped for it
    assert (len(lru), lru.get("huge")) == (1, None)
