"""Anthropic requests -> OpenAI Responses API bodies (ccproxy_openai/responses_request.py), checked against the fake
Responses server's rules (tests/support/responses_rules.py: what api.openai.com rejects)."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy import InvalidRequestError, ProviderConfig
from ccproxy.wire import RequestPlan
from ccproxy_openai import OpenAIProvider
from ccproxy_openai.responses import ResponsesWire
from ccproxy_openai.responses_answer import SIGNATURE_PREFIX
from tests.support.openai_rules import OpenAIError
from tests.support.responses_rules import ResponsesValidator

ISSUED = {"gAAAAAB-first", "gAAAAAB-second"}
WIRE = ResponsesWire()
PNG = "iVBORw0KGgo="
BASH = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}


def convert(body: dict[str, Any], model: str = "gpt-5.1", reasoning: dict[str, Any] | None = None) -> dict[str, Any]:
    provider = OpenAIProvider(ProviderConfig(base_url="https://api.openai.com/v1", api_key="sk-t", options={}))
    plan = RequestPlan(model, provider.capabilities(model), bool(body.get("stream")), reasoning=reasoning or {})
    converted = WIRE.convert_request({"model": "claude-sonnet-4-5", "max_tokens": 32000, **body}, plan)
    ResponsesValidator(ISSUED).validate(converted)  # what OpenAI would refuse fails here
    return converted


def tool_turn(signature: str, call_id: str = "toolu_01", text: str = "Checking.") -> list[dict[str, Any]]:
    return [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "**Plan**\n\nList the files.", "signature": signature},
                {"type": "text", "text": text},
                {"type": "tool_use", "id": call_id, "name": "Bash", "input": {"command": "ls"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call_id, "content": "a.txt\nb.txt"}]},
    ]


def test_system_becomes_instructions_and_messages_become_input_items() -> None:
    body = convert(
        {
            "system": [
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=2.1; cc_entrypoint=cli;"},
                {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
            ],
            "messages": [
                {"role": "user", "content": "hello"},
                {"role": "assistant", "content": "hi"},
                {"role": "user", "content": [{"type": "text", "text": "again"}]},
            ],
        }
    )
    assert body["instructions"] == "You are Claude Code."
    assert body["input"] == [
        {"role": "user", "content": [{"type": "input_text", "text": "hello"}]},
        {"type": "message", "role": "assistant", "content": "hi"},
        {"role": "user", "content": [{"type": "input_text", "text": "again"}]},
    ]
    assert body["store"] is False and "reasoning" not in body and "include" not in body


def test_tools_are_flat_functions_that_are_not_strict_unless_asked() -> None:
    strict = {**BASH, "name": "Strict", "strict": True, "input_schema": {**BASH["input_schema"]}}
    strict["input_schema"]["additionalProperties"] = False
    body = convert(
        {
            "messages": [{"role": "user", "content": "go"}],
            "tools": [BASH, strict],
            "tool_choice": {"type": "tool", "name": "Bash", "disable_parallel_tool_use": True},
        }
    )
    assert body["tools"][0] == {
        "type": "function",
        "name": "Bash",
        "description": "Run a command",
        "parameters": BASH["input_schema"],
        "strict": False,
    }
    assert body["tools"][1]["strict"] is True
    assert body["tool_choice"] == {"type": "function", "name": "Bash"}
    assert body["parallel_tool_calls"] is False


@pytest.mark.parametrize(("choice", "expected"), [("auto", "auto"), ("any", "required"), ("none", "none")])
def test_tool_choice_keywords(choice: str, expected: str) -> None:
    body = convert({"messages": [{"role": "user", "content": "go"}], "tools": [BASH], "tool_choice": {"type": choice}})
    assert body["tool_choice"] == expected


def test_tool_use_and_results_become_function_call_items_in_order() -> None:
    history = tool_turn("not-ours")
    history[1]["content"].append({"type": "text", "text": "and now?"})
    body = convert({"messages": [{"role": "user", "content": "list"}, *history], "tools": [BASH]})
    assert body["input"][1:] == [
        {"type": "message", "role": "assistant", "content": "Checking."},
        {"type": "function_call", "call_id": "toolu_01", "name": "Bash", "arguments": '{"command":"ls"}'},
        {"type": "function_call_output", "call_id": "toolu_01", "output": "a.txt\nb.txt"},
        {"role": "user", "content": [{"type": "input_text", "text": "and now?"}]},
    ]


def test_images_become_input_images_also_from_tool_results() -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    turn = tool_turn("")
    turn[1]["content"][0]["content"] = [{"type": "text", "text": "shot"}, image]
    body = convert({"messages": [{"role": "user", "content": [image, {"type": "text", "text": "see"}]}, *turn]})
    first = body["input"][0]["content"]
    assert first[0] == {"type": "input_image", "image_url": f"data:image/png;base64,{PNG}", "detail": "auto"}
    attached = body["input"][-1]["content"]
    assert [part["type"] for part in attached] == ["input_text", "input_image"]
    assert body["input"][-2] == {"type": "function_call_output", "call_id": "toolu_01", "output": "shot"}


def test_reasoning_asks_for_summaries_and_encrypted_content_without_server_state() -> None:
    body = convert({"messages": [{"role": "user", "content": "think"}]}, reasoning={"reasoning_effort": "high"})
    assert body["reasoning"] == {"effort": "high", "summary": "auto"}
    assert body["include"] == ["reasoning.encrypted_content"]
    assert body["store"] is False and "reasoning_effort" not in body


def test_our_thinking_blocks_come_back_as_reasoning_items_before_their_turn() -> None:
    messages = [
        {"role": "user", "content": "list"},
        *tool_turn(SIGNATURE_PREFIX + "gAAAAAB-first", "toolu_01"),
        *tool_turn(SIGNATURE_PREFIX + "gAAAAAB-second", "toolu_02", text=""),
    ]
    body = convert({"messages": messages, "tools": [BASH]}, reasoning={"reasoning_effort": "medium"})
    kinds = [item.get("type", "input") for item in body["input"]]
    assert kinds == [
        "input",
        "reasoning",
        "message",
        "function_call",
        "function_call_output",
        "reasoning",
        "function_call",
        "function_call_output",
    ]
    assert body["input"][1] == {
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "**Plan**\n\nList the files."}],
        "encrypted_content": "gAAAAAB-first",
    }
    assert body["input"][5]["encrypted_content"] == "gAAAAAB-second"


@pytest.mark.parametrize("signature", ["", "EqQBCkYIBxgCKkA-an-anthropic-signature", SIGNATURE_PREFIX])
def test_other_thinking_blocks_are_not_sent(signature: str) -> None:
    body = convert({"messages": [{"role": "user", "content": "list"}, *tool_turn(signature)], "tools": [BASH]})
    assert "reasoning" not in [item.get("type") for item in body["input"]]


def test_a_model_that_does_not_reason_gets_no_reasoning_items() -> None:
    messages = [{"role": "user", "content": "list"}, *tool_turn(SIGNATURE_PREFIX + "gAAAAAB-first")]
    body = convert({"messages": messages, "tools": [BASH]}, model="gpt-4o")
    assert [item.get("type", "input") for item in body["input"]] == [
        "input",
        "message",
        "function_call",
        "function_call_output",
    ]


def test_reasoning_the_server_did_not_issue_is_refused_by_the_fake() -> None:
    with pytest.raises(OpenAIError, match="could not be verified"):
        convert({"messages": [{"role": "user", "content": "x"}, *tool_turn(SIGNATURE_PREFIX + "forged")]})


def test_parameters_map_to_their_responses_names() -> None:
    body = convert(
        {
            "messages": [{"role": "user", "content": "x"}],
            "max_tokens": 1,
            "stop_sequences": ["END"],
            "top_k": 5,
            "metadata": {"user_id": "user-123"},
            "stream": True,
            "output_config": {"format": {"type": "json_schema", "schema": {"type": "object"}}},
        },
        model="gpt-4o",
    )
    assert body["max_output_tokens"] == 16  # the API's minimum; Claude Code's quota probe asks for 1
    assert body["stream"] is True and "stream_options" not in body
    assert "stop" not in body and "top_k" not in body and "user" not in body
    assert body["safety_identifier"] == body["prompt_cache_key"] == "user-123"
    assert body["text"] == {
        "format": {"type": "json_schema", "name": "output", "schema": {"type": "object"}, "strict": False}
    }


def test_what_the_core_refuses_is_still_refused() -> None:
    with pytest.raises(InvalidRequestError, match="web_search"):
        convert(
            {
                "messages": [{"role": "user", "content": "x"}],
                "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            }
        )
