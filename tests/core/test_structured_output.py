"""Structured output (`output_config.format`, the beta top-level `output_format`) and `strict` tools."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.errors import InvalidRequestError
from ccproxy.tokens import TokenCounter
from tests.support.openai_rules import OpenAIError, RequestValidator

TITLE_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}},
    "required": ["title"],
    "additionalProperties": False,
}
OTHER_SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}}
# Meets OpenAI's strict rules: closed objects, every property required.
STRICT_SCHEMA = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
    "required": ["city", "unit"],
    "additionalProperties": False,
}
# Fine for Anthropic's strict mode, refused by OpenAI's: `unit` is optional.
OPTIONAL_SCHEMA = {**STRICT_SCHEMA, "required": ["city"]}


def body_with(**fields: Any) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Name this session"}],
        **fields,
    }


def convert(core: Core, body: dict[str, Any], **caps: Any) -> dict[str, Any]:
    core.validate.validate_messages_request(body)
    return core.request.convert_request(body, RequestPlan("gpt-4o", ModelCapabilities(**caps), stream=False))


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": schema, "strict": False}}


# ------------------------------------------------------------------------------------------ output_format


def test_the_beta_output_format_becomes_response_format(core: Core) -> None:
    converted = convert(core, body_with(output_format={"type": "json_schema", "schema": TITLE_SCHEMA}))
    assert converted["response_format"] == response_format(TITLE_SCHEMA)
    assert "output_format" not in converted
    RequestValidator().validate(converted)


def test_output_config_format_wins_over_output_format(core: Core) -> None:
    body = body_with(
        output_config={"effort": "low", "format": {"type": "json_schema", "schema": TITLE_SCHEMA}},
        output_format={"type": "json_schema", "schema": OTHER_SCHEMA},
    )
    assert convert(core, body)["response_format"] == response_format(TITLE_SCHEMA)


def test_output_format_applies_beside_an_output_config_without_format(core: Core) -> None:
    body = body_with(output_config={"effort": "low"}, output_format={"type": "json_schema", "schema": OTHER_SCHEMA})
    assert convert(core, body)["response_format"] == response_format(OTHER_SCHEMA)


@pytest.mark.parametrize("field", ["output_format", "output_config"])
@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("json", "Input should be a valid dictionary"),
        ({"schema": TITLE_SCHEMA}, "type: Field required"),
        ({"type": "json_object", "schema": TITLE_SCHEMA}, "type: Input should be 'json_schema'"),
        ({"type": "json_schema"}, "schema: Field required"),
        ({"type": "json_schema", "schema": "{}"}, "schema: Input should be a valid dictionary"),
    ],
)
def test_a_malformed_format_is_a_400_instead_of_free_text(core: Core, field: str, spec: Any, message: str) -> None:
    body = body_with(output_config={"format": spec}) if field == "output_config" else body_with(output_format=spec)
    path = "output_config.format" if field == "output_config" else "output_format"
    for validate, request in (
        (core.validate.validate_messages_request, body),
        (core.validate.validate_count_tokens_request, body),
    ):
        with pytest.raises(InvalidRequestError) as caught:
            validate(request)
        expected = f"{path}: {message}" if message.startswith("Input") else f"{path}.{message}"
        assert caught.value.message == expected


def test_output_config_must_be_an_object(core: Core) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        core.validate.validate_messages_request(body_with(output_config="high"))
    assert caught.value.message == "output_config: Input should be a valid dictionary"


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter.load()


def test_count_tokens_counts_the_output_schema_from_either_field(counter: TokenCounter) -> None:
    spec = {"type": "json_schema", "schema": TITLE_SCHEMA}
    plain = counter.count_request(body_with())
    beta = counter.count_request(body_with(output_format=spec))
    current = counter.count_request(body_with(output_config={"effort": "low", "format": spec}))
    assert plain < beta == current


# ------------------------------------------------------------------------------------------ strict tools


def strict_tool(schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "get_weather", "description": "Weather", "input_schema": schema, **extra}


def test_strict_reaches_an_upstream_that_takes_it(core: Core) -> None:
    converted = convert(core, body_with(tools=[strict_tool(STRICT_SCHEMA, strict=True)]), supports_strict_tools=True)
    function = converted["tools"][0]["function"]
    assert function == {"name": "get_weather", "description": "Weather", "parameters": STRICT_SCHEMA, "strict": True}
    RequestValidator().validate(converted)


def test_strict_is_dropped_where_the_upstream_does_not_take_it(core: Core) -> None:
    converted = convert(core, body_with(tools=[strict_tool(STRICT_SCHEMA, strict=True)]))
    assert "strict" not in converted["tools"][0]["function"]


def test_strict_false_is_not_sent(core: Core) -> None:
    converted = convert(core, body_with(tools=[strict_tool(STRICT_SCHEMA, strict=False)]), supports_strict_tools=True)
    assert "strict" not in converted["tools"][0]["function"]


def test_strict_applies_to_client_tools_as_declared(core: Core) -> None:
    converted = convert(
        core, body_with(tools=[{"type": "bash_20250124", "name": "bash", "strict": True}]), supports_strict_tools=True
    )
    assert converted["tools"][0]["function"]["strict"] is True


def test_a_schema_openai_cannot_make_strict_is_passed_as_given_and_openai_says_why(core: Core) -> None:
    converted = convert(core, body_with(tools=[strict_tool(OPTIONAL_SCHEMA, strict=True)]), supports_strict_tools=True)
    assert converted["tools"][0]["function"]["parameters"] == OPTIONAL_SCHEMA  # not rewritten
    with pytest.raises(OpenAIError) as caught:
        RequestValidator().validate(converted)
    assert caught.value.status == 400
    assert "'required' is required to be supplied" in caught.value.message and "Missing 'unit'" in caught.value.message


def test_strict_must_be_a_boolean(core: Core) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        core.validate.validate_messages_request(body_with(tools=[strict_tool(STRICT_SCHEMA, strict="yes")]))
    assert caught.value.message == "tools.0.strict: Input should be a valid boolean"
