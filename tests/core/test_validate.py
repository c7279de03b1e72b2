"""Targeted request validation: Anthropic-style field paths; unknown fields and block types are accepted."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.errors import InvalidRequestError


def make_body(**fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": "Hello"}],
    }
    body.update(fields)
    return body


def with_content(*blocks: Any) -> dict[str, Any]:
    return make_body(messages=[{"role": "user", "content": list(blocks)}])


def error_of(core: Core, body: Any) -> str:
    with pytest.raises(InvalidRequestError) as caught:
        core.validate.validate_messages_request(body)
    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"
    return caught.value.message


def test_minimal_body_is_valid(core: Core) -> None:
    core.validate.validate_messages_request(make_body())


@pytest.mark.parametrize("body", [[], "text", None, 3])
def test_body_must_be_an_object(core: Core, body: Any) -> None:
    assert error_of(core, body) == "Request body must be a JSON object"


@pytest.mark.parametrize("field", ["model", "max_tokens", "messages"])
def test_required_fields(core: Core, field: str) -> None:
    body = make_body()
    del body[field]
    assert error_of(core, body) == f"{field}: Field required"


def test_unknown_top_level_fields_and_anthropic_extras_are_accepted(core: Core) -> None:
    core.validate.validate_messages_request(
        make_body(
            context_management={"edits": []},
            output_config={"effort": "high"},
            service_tier="auto",
            cache_control={"type": "ephemeral"},
            brand_new_field=[1, 2, 3],
        )
    )


# ------------------------------------------------------------------------------------------ scalars


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "model: String should have at least 1 character"),
        (5, "model: Input should be a valid string"),
    ],
)
def test_model(core: Core, value: Any, message: str) -> None:
    assert error_of(core, make_body(model=value)) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1024", "max_tokens: Input should be a valid integer"),
        (True, "max_tokens: Input should be a valid integer"),
        (1.5, "max_tokens: Input should be a valid integer"),
        (None, "max_tokens: Input should be a valid integer"),
        (-1, "max_tokens: Input should be greater than or equal to 0"),
    ],
)
def test_max_tokens(core: Core, value: Any, message: str) -> None:
    assert error_of(core, make_body(max_tokens=value)) == message


def test_max_tokens_zero_is_accepted(core: Core) -> None:
    core.validate.validate_messages_request(make_body(max_tokens=0))


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("temperature", 1.5, "temperature: Input should be less than or equal to 1"),
        ("temperature", -0.1, "temperature: Input should be greater than or equal to 0"),
        ("temperature", "hot", "temperature: Input should be a valid number"),
        ("temperature", True, "temperature: Input should be a valid number"),
        ("top_p", 2, "top_p: Input should be less than or equal to 1"),
        ("top_k", -1, "top_k: Input should be greater than or equal to 0"),
        ("top_k", 0.5, "top_k: Input should be a valid integer"),
        ("stop_sequences", "END", "stop_sequences: Input should be a valid list"),
        ("stop_sequences", ["END", 3], "stop_sequences.1: Input should be a valid string"),
        ("stream", "yes", "stream: Input should be a valid boolean"),
        ("metadata", "user", "metadata: Input should be a valid dictionary"),
        ("metadata", {"user_id": 7}, "metadata.user_id: Input should be a valid string"),
    ],
)
def test_sampling_and_options(core: Core, field: str, value: Any, message: str) -> None:
    assert error_of(core, make_body(**{field: value})) == message


@pytest.mark.parametrize("temperature", [0, 0.0, 0.5, 1, 1.0])
def test_temperature_in_anthropic_range_is_accepted(core: Core, temperature: float) -> None:
    core.validate.validate_messages_request(make_body(temperature=temperature, top_p=1, top_k=0, stop_sequences=[]))


def test_null_optional_fields_are_accepted(core: Core) -> None:
    core.validate.validate_messages_request(
        make_body(temperature=None, top_p=None, top_k=None, stop_sequences=None, stream=None, metadata=None)
    )


# ------------------------------------------------------------------------------------------ messages


@pytest.mark.parametrize(
    ("messages", "message"),
    [
        ({"role": "user"}, "messages: Input should be a valid list"),
        ([], "messages: at least one message is required"),
        (["hi"], "messages.0: Input should be a valid dictionary"),
        ([{"content": "hi"}], "messages.0.role: Field required"),
        (
            [{"role": "tool", "content": "hi"}],
            "messages.0.role: Input should be 'user', 'assistant' or 'system'",
        ),
        ([{"role": "user"}], "messages.0.content: Field required"),
        (
            [{"role": "user", "content": 5}],
            "messages.0.content: Input should be a valid string or a valid list",
        ),
        ([{"role": "user", "content": ["hi"]}], "messages.0.content.0: Input should be a valid dictionary"),
    ],
)
def test_message_shape(core: Core, messages: Any, message: str) -> None:
    assert error_of(core, make_body(messages=messages)) == message


def test_block_without_type_names_its_full_path(core: Core) -> None:
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": [{"text": "no type"}]},
    ]
    assert error_of(core, make_body(messages=messages)) == "messages.3.content.0.type: Field required"


def test_system_role_entries_are_accepted_with_extra_keys(core: Core) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "system", "content": [{"type": "text", "text": "note"}], "output_config": {"effort": "low"}},
    ]
    core.validate.validate_messages_request(make_body(messages=messages))


def test_unknown_block_types_are_accepted(core: Core) -> None:
    core.validate.validate_messages_request(
        with_content({"type": "text", "text": "hi"}, {"type": "hologram", "depth": 3})
    )


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": 3}, "messages.0.content.0.type: Input should be a valid string"),
        ({"type": "text"}, "messages.0.content.0.text: Field required"),
        ({"type": "text", "text": None}, "messages.0.content.0.text: Input should be a valid string"),
        ({"type": "image"}, "messages.0.content.0.source: Field required"),
        ({"type": "image", "source": {}}, "messages.0.content.0.source.type: Field required"),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/bmp", "data": "x"}},
            "messages.0.content.0.source.media_type: "
            "Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'",
        ),
        (
            {"type": "image", "source": {"type": "base64", "media_type": "image/png"}},
            "messages.0.content.0.source.data: Field required",
        ),
        ({"type": "image", "source": {"type": "url"}}, "messages.0.content.0.source.url: Field required"),
        (
            {"type": "document", "source": {"type": "text"}},
            "messages.0.content.0.source.data: Field required",
        ),
        (
            {"type": "document", "source": {"type": "content", "content": [{"type": "text"}]}},
            "messages.0.content.0.source.content.0.text: Field required",
        ),
        ({"type": "tool_result"}, "messages.0.content.0.tool_use_id: Field required"),
        (
            {"type": "tool_result", "tool_use_id": "t", "content": 5},
            "messages.0.content.0.content: Input should be a valid string or a valid list",
        ),
        (
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text"}]},
            "messages.0.content.0.content.0.text: Field required",
        ),
        (
            {"type": "tool_result", "tool_use_id": "t", "is_error": "yes"},
            "messages.0.content.0.is_error: Input should be a valid boolean",
        ),
    ],
)
def test_user_block_fields(core: Core, block: dict[str, Any], message: str) -> None:
    assert error_of(core, with_content(block)) == message


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"type": "tool_use", "name": "Read", "input": {}}, "messages.1.content.0.id: Field required"),
        ({"type": "tool_use", "id": "t", "input": {}}, "messages.1.content.0.name: Field required"),
        (
            {"type": "tool_use", "id": "t", "name": "Read", "input": "{}"},
            "messages.1.content.0.input: Input should be a valid dictionary",
        ),
        ({"type": "thinking", "signature": "s"}, "messages.1.content.0.thinking: Field required"),
        ({"type": "redacted_thinking"}, "messages.1.content.0.data: Field required"),
    ],
)
def test_assistant_block_fields(core: Core, block: dict[str, Any], message: str) -> None:
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "content": [block]}]
    assert error_of(core, make_body(messages=messages)) == message


def test_valid_blocks_of_every_kind_pass(core: Core) -> None:
    png = {"type": "base64", "media_type": "image/png", "data": "iVBO"}
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}},
                {"type": "image", "source": png},
                {"type": "image", "source": {"type": "url", "url": "https://x/y.png"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": "J"},
                },
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "t"}},
                {"type": "document", "source": {"type": "content", "content": "inline"}},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "x"},
                {"type": "redacted_thinking", "data": "y"},
                {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "is_error": True}]},
    ]
    core.validate.validate_messages_request(make_body(messages=messages))


# ------------------------------------------------------------------------------------------ system


@pytest.mark.parametrize(
    ("system", "message"),
    [
        (5, "system: Input should be a valid string or a valid list"),
        ([{"type": "text"}], "system.0.text: Field required"),
        (["plain"], "system.0: Input should be a valid dictionary"),
    ],
)
def test_system(core: Core, system: Any, message: str) -> None:
    assert error_of(core, make_body(system=system)) == message


# ------------------------------------------------------------------------------------------ tools


def tool(name: str = "Read", **extra: Any) -> dict[str, Any]:
    return {"name": name, "input_schema": {"type": "object"}, **extra}


@pytest.mark.parametrize(
    ("tools", "message"),
    [
        ({"name": "Read"}, "tools: Input should be a valid list"),
        ([tool(), "Bash"], "tools.1: Input should be a valid dictionary"),
        ([tool("Read"), tool("Bash"), {"input_schema": {}}], "tools.2.name: Field required"),
        ([{"name": "", "input_schema": {}}], "tools.0.name: String should have at least 1 character"),
        ([{"name": "Read"}], "tools.0.input_schema: Field required"),
        (
            [tool(type="custom", input_schema="{}")],
            "tools.0.input_schema: Input should be a valid dictionary",
        ),
        ([tool(description=["x"])], "tools.0.description: Input should be a valid string"),
        ([tool("Read"), tool("Read")], "tools: Tool names must be unique (duplicate 'Read')"),
    ],
)
def test_tools(core: Core, tools: Any, message: str) -> None:
    assert error_of(core, make_body(tools=tools)) == message


def test_server_tools_validate_without_input_schema(core: Core) -> None:
    # The converter refuses them with its own 400; validation only checks their shape.
    core.validate.validate_messages_request(
        make_body(tools=[tool(), {"type": "web_search_20250305", "name": "web_search"}])
    )


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        ("auto", "tool_choice: Input should be a valid dictionary"),
        ({}, "tool_choice.type: Field required"),
        ({"type": "required"}, "tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'"),
        ({"type": "tool"}, "tool_choice.name: Field required"),
        (
            {"type": "auto", "disable_parallel_tool_use": "yes"},
            "tool_choice.disable_parallel_tool_use: Input should be a valid boolean",
        ),
    ],
)
def test_tool_choice(core: Core, choice: Any, message: str) -> None:
    assert error_of(core, make_body(tools=[tool()], tool_choice=choice)) == message


@pytest.mark.parametrize(
    "choice",
    [
        {"type": "auto"},
        {"type": "any", "disable_parallel_tool_use": True},
        {"type": "tool", "name": "Read"},
        {"type": "none"},
    ],
)
def test_valid_tool_choices(core: Core, choice: dict[str, Any]) -> None:
    core.validate.validate_messages_request(make_body(tools=[tool()], tool_choice=choice))


# ------------------------------------------------------------------------------------------ thinking


@pytest.mark.parametrize(
    ("thinking", "message"),
    [
        ("on", "thinking: Input should be a valid dictionary"),
        ({}, "thinking.type: Field required"),
        ({"type": "enabled"}, "thinking.budget_tokens: Field required"),
        (
            {"type": "enabled", "budget_tokens": "lots"},
            "thinking.budget_tokens: Input should be a valid integer",
        ),
        (
            {"type": "enabled", "budget_tokens": 1023},
            "thinking.budget_tokens: Input should be greater than or equal to 1024",
        ),
    ],
)
def test_thinking(core: Core, thinking: Any, message: str) -> None:
    assert error_of(core, make_body(thinking=thinking)) == message


@pytest.mark.parametrize(
    "thinking",
    [
        {"type": "enabled", "budget_tokens": 1024},
        # Budgets above max_tokens are legal with the interleaved-thinking beta Claude Code sends.
        {"type": "enabled", "budget_tokens": 4096, "display": "summarized"},
        {"type": "adaptive"},
        {"type": "disabled"},
    ],
)
def test_valid_thinking(core: Core, thinking: dict[str, Any]) -> None:
    core.validate.validate_messages_request(make_body(max_tokens=2048, thinking=thinking))


# ------------------------------------------------------------------------------------------ count_tokens


def test_count_tokens_needs_no_max_tokens(core: Core) -> None:
    core.validate.validate_count_tokens_request(
        {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "foo"}]}
    )


def test_count_tokens_checks_the_shared_fields(core: Core) -> None:
    with pytest.raises(InvalidRequestError, match=r"^model: Field required$"):
        core.validate.validate_count_tokens_request({"messages": [{"role": "user", "content": "foo"}]})
    with pytest.raises(InvalidRequestError, match=r"^messages\.0\.content\.0\.type: Field required$"):
        core.validate.validate_count_tokens_request({"model": "m", "messages": [{"role": "user", "content": [{}]}]})
    with pytest.raises(InvalidRequestError, match=r"^tools\.0\.name: Field required$"):
        core.validate.validate_count_tokens_request(
            {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [{}]}
        )
    with pytest.raises(InvalidRequestError, match=r"^Request body must be a JSON object$"):
        core.validate.validate_count_tokens_request([])


def test_count_tokens_ignores_messages_only_fields(core: Core) -> None:
    # count_tokens has no sampling parameters: whatever a client puts there is an unknown field.
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "temperature": 5, "max_tokens": "x"}
    core.validate.validate_count_tokens_request(body)
