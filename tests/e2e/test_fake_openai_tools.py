"""The fake OpenAI upstream's tool rules: OpenAI's strict-mode schema checks and the CALL_TOOL marker."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.support.fake_openai import Script, named_tool_calls
from tests.support.openai_rules import OpenAIError, RequestValidator

CLOSED = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "when": {
            "type": "object",
            "properties": {"day": {"type": "string"}},
            "required": ["day"],
            "additionalProperties": False,
        },
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"t": {"type": "string"}},
                "required": ["t"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["city", "when", "tags"],
    "additionalProperties": False,
}


def body_with(parameters: dict[str, Any], strict: Any = True) -> dict[str, Any]:
    function = {"name": "weather", "parameters": parameters, "strict": strict}
    return {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": function}],
    }


def rejection(body: dict[str, Any]) -> OpenAIError:
    with pytest.raises(OpenAIError) as caught:
        RequestValidator().validate(body)
    assert caught.value.status == 400
    return caught.value


def test_a_closed_fully_required_schema_is_accepted_in_strict_mode() -> None:
    RequestValidator().validate(body_with(CLOSED))


@pytest.mark.parametrize(
    ("path", "change", "context", "rule"),
    [
        (
            (),
            {"additionalProperties": True},
            "()",
            "'additionalProperties' is required to be supplied and to be false.",
        ),
        (("properties", "when"), {"additionalProperties": None}, "('properties', 'when')", "'additionalProperties'"),
        (("properties", "tags", "items"), {"required": []}, "('properties', 'tags', 'items')", "Missing 't'."),
        ((), {"required": ["city", "when"]}, "()", "Missing 'tags'."),
    ],
)
def test_strict_mode_rejects_what_openai_rejects(
    path: tuple[str, ...], change: dict[str, Any], context: str, rule: str
) -> None:
    schema = json.loads(json.dumps(CLOSED))
    node = schema
    for key in path:
        node = node[key]
    for key, value in change.items():
        if value is None:
            node.pop(key)
        else:
            node[key] = value
    error = rejection(body_with(schema))
    assert error.message.startswith(f"Invalid schema for function 'weather': In context={context}, ")
    assert rule in error.message
    assert error.param == "tools[0].function.parameters" and error.code == "invalid_function_parameters"


def test_the_same_schema_is_fine_without_strict() -> None:
    open_schema = {"type": "object", "properties": {"city": {"type": "string"}}}
    RequestValidator().validate(body_with(open_schema, strict=False))
    RequestValidator().validate(body_with(open_schema, strict=None))
    rejection(body_with(open_schema, strict=True))


def test_strict_must_be_a_boolean() -> None:
    assert rejection(body_with(CLOSED, strict="true")).code == "invalid_type"


def test_call_tool_marker_calls_only_a_declared_function() -> None:
    tools = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object"}}}]
    (call,) = named_tool_calls('please CALL_TOOL bash {"command": "ls -la"}', tools)
    assert (call.name, call.arguments) == ("bash", {"command": "ls -la"})
    assert named_tool_calls('CALL_TOOL memory {"command": "view"}', tools) == []
    reply = Script().reply(
        {
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": 'CALL_TOOL bash {"command": "pwd"}'}],
            "tools": tools,
        }
    )
    assert [(c.name, c.arguments) for c in reply.tool_calls] == [("bash", {"command": "pwd"})]
    assert reply.finish_reason == "tool_calls"
