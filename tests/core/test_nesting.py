"""Deeply nested JSON: one documented maximum, checked without recursion, and never a RecursionError anywhere."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from ccproxy.core._twins import Core
from ccproxy.core.jsoncodec import NestingError, dumps, dumps_text, loads
from ccproxy.core.nesting import MAX_DEPTH, NESTING_MESSAGE
from ccproxy.core.plan import ModelCapabilities, RequestPlan, ResponseContext
from ccproxy.core.response import RAW_ARGUMENTS_KEY
from ccproxy.errors import InvalidRequestError
from ccproxy.tokens import TokenCounter
from tests.core.test_validate import make_body

# Far beyond what any parser or recursive walker in the process could take.
HOSTILE_DEPTH = 50_000


def nested_lists(levels: int) -> list[Any]:
    """A list nested `levels` deep (the outermost list is level 1), built without recursion."""
    value: list[Any] = []
    for _ in range(levels - 1):
        value = [value]
    return value


def nested_objects(levels: int) -> dict[str, Any]:
    """An object nested `levels` deep through a property, as a JSON Schema or tool input would be."""
    value: dict[str, Any] = {"type": "string"}
    for _ in range(levels - 1):
        value = {"type": "object", "properties": {"x": value}}
    return value


def depth_of(value: Any) -> int:
    """The nesting depth of arrays and objects, measured the slow and obvious way (a stack of (value, level))."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


# ------------------------------------------------------------------------------------------ the check itself


@pytest.mark.parametrize("build", [nested_lists, nested_objects])
def test_the_check_agrees_with_a_direct_measurement_at_the_boundary(core: Core, build: Any) -> None:
    for levels in (1, 2, 3, MAX_DEPTH // 2, MAX_DEPTH - 1, MAX_DEPTH, MAX_DEPTH + 1, MAX_DEPTH + 2):
        value = build(levels)
        assert core.nesting.exceeds_depth(value) is (depth_of(value) > MAX_DEPTH), levels
    depth = depth_of(build(5))
    assert core.nesting.exceeds_depth(build(5), limit=depth - 1) and not core.nesting.exceeds_depth(
        build(5), limit=depth
    )


def test_scalars_and_wide_shallow_values_are_not_deep(core: Core) -> None:
    assert (
        not core.nesting.exceeds_depth("text")
        and not core.nesting.exceeds_depth(3)
        and not core.nesting.exceeds_depth(None)
    )
    wide = {"items": [{"k": list(range(100))} for _ in range(1000)]}
    assert not core.nesting.exceeds_depth(wide, limit=4)
    assert core.nesting.exceeds_depth(wide, limit=3)


def test_the_deepest_branch_counts_wherever_it_is(core: Core) -> None:
    value = {"a": [1, 2, {"b": "c"}], "z": [[[[[[]]]]]]}
    assert depth_of(value) == 7
    assert not core.nesting.exceeds_depth(value, limit=7) and core.nesting.exceeds_depth(value, limit=6)


def test_a_hostile_depth_is_checked_without_recursion(core: Core) -> None:
    assert core.nesting.exceeds_depth(nested_lists(HOSTILE_DEPTH))
    assert core.nesting.exceeds_depth({"metadata": nested_objects(HOSTILE_DEPTH)})


# ------------------------------------------------------------------------------------------ the JSON codec


@pytest.mark.parametrize("raw", [b"[" * HOSTILE_DEPTH + b"]" * HOSTILE_DEPTH, b'{"a":' * HOSTILE_DEPTH + b"1"])
def test_parsing_hostile_nesting_is_a_value_error_not_a_recursion_error(raw: bytes) -> None:
    with pytest.raises(NestingError):
        loads(raw)
    assert issubclass(NestingError, ValueError)


def test_the_standard_library_fallback_is_guarded_too() -> None:
    # A lone surrogate sends parsing to the standard library, which recurses.
    raw = b'["\\ud83d",' + b"[" * HOSTILE_DEPTH + b"]" * HOSTILE_DEPTH + b"]"
    with pytest.raises(NestingError):
        loads(raw)


@pytest.mark.parametrize("encode", [dumps, dumps_text])
def test_serialising_beyond_the_recursion_limit_is_a_value_error(encode: Any) -> None:
    # orjson refuses more than 254 levels; the standard-library fallback would raise RecursionError.
    with pytest.raises(NestingError):
        encode(nested_lists(5_000))
    assert loads(encode(nested_lists(MAX_DEPTH + 1))) == nested_lists(MAX_DEPTH + 1)


# ------------------------------------------------------------------------------------------ validation


def deep_bodies(levels: int) -> dict[str, dict[str, Any]]:
    """One body per place nesting can hide: read, forwarded, counted, or ignored by the converter."""
    schema_tool = {"name": "Deep", "input_schema": {"type": "object", "properties": {"x": nested_objects(levels)}}}
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "Deep", "input": {"x": nested_lists(levels)}}
    return {
        "unknown field": make_body(anything=nested_lists(levels)),
        "metadata": make_body(metadata={"user_id": "u", "extra": nested_objects(levels)}),
        "tool schema": make_body(tools=[schema_tool]),
        "tool input": make_body(
            messages=[
                {"role": "user", "content": "go"},
                {"role": "assistant", "content": [tool_use]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
            ]
        ),
        "unknown block": make_body(
            messages=[{"role": "user", "content": [{"type": "hologram", "x": nested_lists(levels)}]}]
        ),
        "output schema": make_body(output_config={"format": {"type": "json_schema", "schema": nested_objects(levels)}}),
    }


@pytest.mark.parametrize("place", list(deep_bodies(3)))
@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 300, 900, HOSTILE_DEPTH])
def test_nesting_beyond_the_maximum_is_refused_naming_the_problem(core: Core, place: str, levels: int) -> None:
    body = deep_bodies(levels)[place]
    for validate in (core.validate.validate_messages_request, core.validate.validate_count_tokens_request):
        with pytest.raises(InvalidRequestError) as caught:
            validate(body)
        assert caught.value.status == 400
        assert caught.value.message == NESTING_MESSAGE
    assert f"more than {MAX_DEPTH} levels" in NESTING_MESSAGE


@pytest.mark.parametrize("place", list(deep_bodies(3)))
def test_nesting_up_to_the_maximum_works_end_to_end(core: Core, place: str, counter: TokenCounter) -> None:
    # The body itself is level 1 and each place adds its own levels around the deep value: find the deepest
    # body at or below the maximum, then run it through everything that follows validation.
    levels = MAX_DEPTH
    while depth_of(deep_bodies(levels)[place]) > MAX_DEPTH:
        levels -= 1
    body = deep_bodies(levels)[place]
    assert depth_of(body) >= MAX_DEPTH - 1  # nested schemas grow two levels at a time
    core.validate.validate_messages_request(body)
    core.validate.validate_count_tokens_request(body)
    plan = RequestPlan("gpt-test", ModelCapabilities(), stream=False)
    upstream = core.request.convert_request(body, plan)
    # The upstream body stays within orjson's own limit, so it is written by orjson itself.
    assert orjson.loads(orjson.dumps(upstream)) == upstream
    assert counter.count_request(body) > 0


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter.load()


# ------------------------------------------------------------------------------------------ upstream answers


def completion_with_arguments(arguments: str) -> dict[str, Any]:
    call = {"id": "call_1", "type": "function", "function": {"name": "Deep", "arguments": arguments}}
    message = {"role": "assistant", "content": None, "tool_calls": [call]}
    return {"id": "c", "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls"}]}


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, HOSTILE_DEPTH])
def test_tool_arguments_nested_too_deeply_are_kept_as_text(core: Core, levels: int) -> None:
    arguments = '{"x":' + "[" * levels + "]" * levels + "}"
    message = core.response.convert_response(
        completion_with_arguments(arguments), ResponseContext("msg_1", "claude-sonnet-4-5")
    )
    assert message["content"][0]["input"] == {RAW_ARGUMENTS_KEY: arguments}
    assert loads(dumps(message)) == message


def test_tool_arguments_at_the_maximum_are_an_object(core: Core) -> None:
    arguments = '{"x":' + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "}"
    message = core.response.convert_response(
        completion_with_arguments(arguments), ResponseContext("msg_1", "claude-sonnet-4-5")
    )
    assert message["content"][0]["input"] == loads(arguments)
    assert orjson.loads(orjson.dumps(message)) == message
