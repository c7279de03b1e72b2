"""Anthropic-defined client tools (bash, text editor, memory) become function tools; server tools stay refused."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.client_tools import (
    BASH_DESCRIPTION,
    CLIENT_TOOLS,
    MEMORY_COMMANDS,
    client_tool_definition,
)
from ccproxy.core.plan import ModelCapabilities, RequestPlan, ResponseContext
from ccproxy.core.toolnames import ToolNameMap
from ccproxy.errors import InvalidRequestError
from ccproxy.tokens import TokenCounter
from tests.support.anthropic_stream import accumulate, check_stream
from tests.support.openai_rules import RequestValidator

# (type, the name the Anthropic SDK fixes for it, the commands its schema offers; None = no `command`).
CLIENT_TOOL_TYPES: list[tuple[str, str, list[str] | None]] = [
    ("bash_20241022", "bash", None),
    ("bash_20250124", "bash", None),
    ("text_editor_20241022", "str_replace_editor", ["view", "create", "str_replace", "insert", "undo_edit"]),
    ("text_editor_20250124", "str_replace_editor", ["view", "create", "str_replace", "insert", "undo_edit"]),
    ("text_editor_20250429", "str_replace_based_edit_tool", ["view", "create", "str_replace", "insert"]),
    ("text_editor_20250728", "str_replace_based_edit_tool", ["view", "create", "str_replace", "insert"]),
    ("memory_20250818", "memory", list(MEMORY_COMMANDS)),
]
BASH = {"type": "bash_20250124", "name": "bash"}
EDITOR = {"type": "text_editor_20250728", "name": "str_replace_based_edit_tool"}
READ = {"name": "Read", "description": "Read a file", "input_schema": {"type": "object", "properties": {}}}


def body_with(
    tools: list[dict[str, Any]], messages: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 256,
        "messages": messages or [{"role": "user", "content": "List the files"}],
        "tools": tools,
        **extra,
    }


def convert(core: Core, body: dict[str, Any], plan: RequestPlan | None = None) -> dict[str, Any]:
    core.validate.validate_messages_request(body)
    return core.request.convert_request(body, plan or RequestPlan("gpt-4o", ModelCapabilities(), stream=False))


def function_of(converted: dict[str, Any], name: str) -> dict[str, Any]:
    functions = [tool["function"] for tool in converted["tools"] if tool["function"]["name"] == name]
    assert len(functions) == 1, converted["tools"]
    found: dict[str, Any] = functions[0]
    return found


# ------------------------------------------------------------------------------------------ conversion


def test_every_documented_version_is_known() -> None:
    assert sorted(CLIENT_TOOLS) == sorted(kind for kind, _, _ in CLIENT_TOOL_TYPES)


@pytest.mark.parametrize(("kind", "name", "commands"), CLIENT_TOOL_TYPES)
def test_client_tool_becomes_a_function_under_its_declared_name(
    core: Core, kind: str, name: str, commands: list[str] | None
) -> None:
    converted = convert(core, body_with([READ, {"type": kind, "name": name, "cache_control": {"type": "ephemeral"}}]))
    function = function_of(converted, name)
    assert set(function) == {"name", "description", "parameters"}
    assert function["description"]
    parameters = function["parameters"]
    assert parameters["type"] == "object"
    if commands is None:
        assert set(parameters["properties"]) == {"command", "restart"}
        assert parameters["properties"]["restart"]["type"] == "boolean"
        assert "required" not in parameters  # a restart call carries no command
    else:
        assert parameters["properties"]["command"]["enum"] == commands
        assert set(parameters["required"]) <= {"command", "path"} and "command" in parameters["required"]
    RequestValidator().validate(converted)  # what api.openai.com would accept


def test_bash_schema_and_description(core: Core) -> None:
    assert function_of(convert(core, body_with([BASH])), "bash") == {
        "name": "bash",
        "description": BASH_DESCRIPTION,
        "parameters": {
            "type": "object",
            "properties": {
                "command": {
                    "type": "string",
                    "description": "The bash command to run; needed on every call except a restart.",
                },
                "restart": {
                    "type": "boolean",
                    "description": "true restarts the bash session; leave it out otherwise.",
                },
            },
        },
    }


def test_text_editor_schema_has_every_documented_parameter(core: Core) -> None:
    parameters = function_of(convert(core, body_with([EDITOR])), "str_replace_based_edit_tool")["parameters"]
    properties = parameters["properties"]
    assert set(properties) == {"command", "path", "view_range", "file_text", "old_str", "new_str", "insert_line"}
    assert properties["view_range"]["items"] == {"type": "integer"}
    assert properties["insert_line"]["type"] == "integer"
    assert parameters["required"] == ["command", "path"]


def test_memory_schema_has_its_own_commands(core: Core) -> None:
    parameters = function_of(convert(core, body_with([{"type": "memory_20250818", "name": "memory"}])), "memory")[
        "parameters"
    ]
    assert {"insert_text", "old_path", "new_path"} <= set(parameters["properties"])
    assert parameters["required"] == ["command"]  # rename has paths of its own instead of `path`


def test_max_characters_reaches_the_model_in_the_description(core: Core) -> None:
    plain = function_of(convert(core, body_with([EDITOR])), "str_replace_based_edit_tool")["description"]
    limited = function_of(
        convert(core, body_with([{**EDITOR, "max_characters": 10000}])), "str_replace_based_edit_tool"
    )
    assert "10000 characters" in limited["description"] and "characters of it" not in plain
    assert (
        limited["parameters"]
        == function_of(convert(core, body_with([EDITOR])), "str_replace_based_edit_tool")["parameters"]
    )


def test_definitions_are_fresh_for_every_request(core: Core) -> None:
    first = convert(core, body_with([BASH, EDITOR]))
    first["tools"][0]["function"]["parameters"]["properties"]["command"]["type"] = "mutated"
    first["tools"][1]["function"]["parameters"]["properties"]["command"]["enum"].append("mutated")
    second = convert(core, body_with([BASH, EDITOR]))
    assert function_of(second, "bash")["parameters"]["properties"]["command"]["type"] == "string"
    editor = function_of(second, "str_replace_based_edit_tool")
    assert editor["parameters"]["properties"]["command"]["enum"] == ["view", "create", "str_replace", "insert"]


def test_tool_choice_can_name_a_client_tool(core: Core) -> None:
    converted = convert(core, body_with([BASH, READ], tool_choice={"type": "tool", "name": "bash"}))
    assert converted["tool_choice"] == {"type": "function", "function": {"name": "bash"}}


def test_the_request_is_not_mutated(core: Core) -> None:
    body = body_with([BASH, {**EDITOR, "max_characters": 5}])
    before = copy.deepcopy(body)
    convert(core, body)
    assert body == before


# ------------------------------------------------------------------------------------------ refusals


@pytest.mark.parametrize(
    ("kind", "name"),
    [("computer_20241022", "computer"), ("computer_20250124", "computer"), ("computer_20251124", "computer")],
)
def test_computer_use_is_a_clear_400(core: Core, kind: str, name: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        convert(
            core, body_with([READ, {"type": kind, "name": name, "display_width_px": 1024, "display_height_px": 768}])
        )
    assert caught.value.status == 400
    message = caught.value.message
    assert message.startswith(f"tools.1: tool '{name}' ({kind}) is not supported by this proxy: computer use")
    assert "remove it from `tools`" in message


@pytest.mark.parametrize(
    ("kind", "versions"),
    [
        ("bash_20990101", "bash_20241022, bash_20250124"),
        (
            "text_editor_20990101",
            "text_editor_20241022, text_editor_20250124, text_editor_20250429, text_editor_20250728",
        ),
        ("memory_20990101", "memory_20250818"),
    ],
)
def test_an_unknown_version_of_a_client_tool_names_the_known_ones(core: Core, kind: str, versions: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        convert(core, body_with([READ, {"type": kind, "name": "future"}]))
    assert caught.value.message == (
        f"tools.1: tool 'future' ({kind}) is not supported by this proxy: the versions it converts are "
        f"{versions}; remove it from `tools`"
    )


@pytest.mark.parametrize(
    ("kind", "name"),
    [("web_search_20250305", "web_search"), ("web_fetch_20250910", "web_fetch"), ("code_execution_20250825", "x")],
)
def test_server_tools_stay_refused_beside_client_tools(core: Core, kind: str, name: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        convert(core, body_with([BASH, {"type": kind, "name": name}]))
    assert f"tools.1: server tool '{name}' ({kind}) is not supported by this proxy" in caught.value.message


# ------------------------------------------------------------------------------------------ validation


@pytest.mark.parametrize(("kind", "name", "commands"), CLIENT_TOOL_TYPES)
def test_validation_accepts_client_tool_shapes(core: Core, kind: str, name: str, commands: list[str] | None) -> None:
    tool = {"type": kind, "name": name, "cache_control": {"type": "ephemeral"}, "strict": True}
    core.validate.validate_messages_request(body_with([tool]))
    core.validate.validate_count_tokens_request(
        {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
    )


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (0, "tools.0.max_characters: Input should be greater than or equal to 1"),
        ("100", "tools.0.max_characters: Input should be a valid integer"),
        (True, "tools.0.max_characters: Input should be a valid integer"),
    ],
)
def test_max_characters_must_be_a_positive_integer(core: Core, value: Any, fragment: str) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        core.validate.validate_messages_request(body_with([{**EDITOR, "max_characters": value}]))
    assert caught.value.message == fragment


# ------------------------------------------------------------------------------------------ round trips


def history() -> list[dict[str, Any]]:
    call = {"type": "tool_use", "id": "toolu_01", "name": "bash", "input": {"command": "ls"}}
    result = {"type": "tool_result", "tool_use_id": "toolu_01", "content": "a.txt\nb.txt"}
    return [
        {"role": "user", "content": "List the files"},
        {"role": "assistant", "content": [{"type": "text", "text": "Listing."}, call]},
        {"role": "user", "content": [result]},
    ]


def test_history_replay_of_a_bash_call(core: Core) -> None:
    converted = convert(core, body_with([BASH], history()))
    assert converted["messages"][1:] == [
        {
            "role": "assistant",
            "content": "Listing.",
            "tool_calls": [
                {"id": "toolu_01", "type": "function", "function": {"name": "bash", "arguments": '{"command":"ls"}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_01", "content": "a.txt\nb.txt"},
    ]
    RequestValidator().validate(converted)


def plan_and_context(core: Core, body: dict[str, Any], *, stream: bool) -> tuple[dict[str, Any], ResponseContext]:
    plan = RequestPlan("gpt-4o", ModelCapabilities(), stream=stream, tool_names=ToolNameMap())
    converted = convert(core, body, plan)
    return converted, ResponseContext("msg_1", "claude-sonnet-4-5", tool_names=plan.tool_names)


def test_a_bash_call_comes_back_as_bash_without_streaming(core: Core) -> None:
    converted, context = plan_and_context(core, body_with([BASH, READ]), stream=False)
    name = function_of(converted, "bash")["name"]
    call = {"id": "call_1", "type": "function", "function": {"name": name, "arguments": '{"command": "ls -la"}'}}
    completion = {
        "id": "c",
        "choices": [
            {"index": 0, "message": {"role": "assistant", "tool_calls": [call]}, "finish_reason": "tool_calls"}
        ],
    }
    message = core.response.convert_response(completion, context)
    assert message["content"] == [{"type": "tool_use", "id": "call_1", "name": "bash", "input": {"command": "ls -la"}}]
    assert message["stop_reason"] == "tool_use"


def test_a_text_editor_call_comes_back_as_the_editor_in_a_stream(core: Core) -> None:
    converted, context = plan_and_context(core, body_with([BASH, EDITOR]), stream=True)
    name = function_of(converted, "str_replace_based_edit_tool")["name"]
    head = {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": ""}}
    chunks = [
        {"choices": [{"index": 0, "delta": {"tool_calls": [head]}}]},
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '{"command":"view",'}}]}}
            ]
        },
        {
            "choices": [
                {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": '"path":"/a.py"}'}}]}}
            ]
        },
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
    ]
    translator = core.stream.StreamTranslator(context)
    events = [*translator.start()]
    for chunk in chunks:
        events.extend(translator.feed(chunk))
    events.extend(translator.finish())
    check_stream(events)
    message = accumulate(events)
    assert message["content"] == [
        {
            "type": "tool_use",
            "id": "call_1",
            "name": "str_replace_based_edit_tool",
            "input": {"command": "view", "path": "/a.py"},
        }
    ]


# ------------------------------------------------------------------------------------------ token counting


@pytest.fixture(scope="module")
def counter() -> TokenCounter:
    return TokenCounter.load()


def count_body(tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {"model": "m", "messages": [{"role": "user", "content": "hi"}], "tools": tools}


def test_client_tools_are_counted_as_the_function_the_model_reads(counter: TokenCounter) -> None:
    description, parameters = client_tool_definition(BASH) or ("", {})
    as_custom = {"name": "bash", "description": description, "input_schema": parameters}
    assert counter.count_request(count_body([BASH])) == counter.count_request(count_body([as_custom]))
    assert counter.count_request(count_body([EDITOR])) > counter.count_request(count_body([BASH]))
