"""`cache_control` forwarded on content parts for models that take it (`forward_cache_control`, e.g. Anthropic models
behind OpenRouter), never on tools; unchanged conversion for every other model."""

from __future__ import annotations

import json
from typing import Any

from ccproxy.core._twins import Core
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.core.request import BILLING_HEADER_PREFIX

EPHEMERAL = {"type": "ephemeral"}
HOUR = {"type": "ephemeral", "ttl": "1h"}
FORWARD = ModelCapabilities(forward_cache_control=True, supports_documents=True)

TOOL = {
    "name": "Bash",
    "description": "Run a command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
    "cache_control": EPHEMERAL,
}


def claude_code_body() -> dict[str, Any]:
    """The places Claude Code puts markers: system blocks, a system message, the last user text, a tool result."""
    return {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1000,
        "system": [
            {"type": "text", "text": f"{BILLING_HEADER_PREFIX} cc_version=2.1.332; cc_entrypoint=cli;"},
            {"type": "text", "text": "You are Claude Code.", "cache_control": HOUR},
            {"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL},
        ],
        "tools": [TOOL],
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Run ls", "cache_control": EPHEMERAL}]},
            {"role": "system", "content": [{"type": "text", "text": "Reminder.", "cache_control": EPHEMERAL}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt", "cache_control": EPHEMERAL}
                ],
            },
        ],
    }


def convert(core: Core, body: dict[str, Any], capabilities: ModelCapabilities = FORWARD) -> dict[str, Any]:
    plan = RequestPlan(upstream_model="anthropic/claude-sonnet-4.5", capabilities=capabilities, stream=False)
    converted: dict[str, Any] = core.request.convert_request(body, plan)
    return converted


def test_system_blocks_become_text_parts_with_their_markers(core: Core) -> None:
    messages = convert(core, claude_code_body())["messages"]
    assert messages[0] == {
        "role": "system",
        "content": [
            {"type": "text", "text": "You are Claude Code.", "cache_control": HOUR},
            {"type": "text", "text": "Be brief.", "cache_control": EPHEMERAL},
        ],
    }


def test_a_marked_lone_user_text_stays_a_part_and_a_system_message_keeps_its_marker(core: Core) -> None:
    messages = convert(core, claude_code_body())["messages"]
    assert messages[1] == {
        "role": "user",
        "content": [{"type": "text", "text": "Run ls", "cache_control": EPHEMERAL}],
    }
    assert messages[2] == {
        "role": "system",
        "content": [{"type": "text", "text": "Reminder.", "cache_control": EPHEMERAL}],
    }


def test_a_tool_result_marker_goes_on_the_tool_message_text(core: Core) -> None:
    tool = convert(core, claude_code_body())["messages"][-1]
    assert tool == {
        "role": "tool",
        "tool_call_id": "toolu_1",
        "content": [{"type": "text", "text": "a.txt", "cache_control": EPHEMERAL}],
    }


def test_a_marker_on_a_tool_result_text_block_is_kept(core: Core) -> None:
    body = claude_code_body()
    result = body["messages"][-1]["content"][0]
    del result["cache_control"]
    result["content"] = [{"type": "text", "text": "one"}, {"type": "text", "text": "two", "cache_control": HOUR}]
    tool = convert(core, body)["messages"][-1]
    assert tool["content"] == [{"type": "text", "text": "one\ntwo", "cache_control": HOUR}]


def test_an_empty_tool_result_carries_no_marker(core: Core) -> None:
    # Anthropic refuses cache_control on an empty text block.
    body = claude_code_body()
    body["messages"][-1]["content"][0]["content"] = ""
    assert convert(core, body)["messages"][-1]["content"] == ""


def test_images_and_documents_carry_their_markers(core: Core) -> None:
    body = claude_code_body()
    image = {"type": "image", "source": {"type": "url", "url": "https://x/cat.png"}, "cache_control": EPHEMERAL}
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        "cache_control": EPHEMERAL,
    }
    body["messages"][0]["content"] = [image, pdf, {"type": "text", "text": "What is this?"}]
    parts = convert(core, body)["messages"][1]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "https://x/cat.png"}, "cache_control": EPHEMERAL}
    assert parts[1]["type"] == "file" and parts[1]["cache_control"] == EPHEMERAL
    assert parts[2] == {"type": "text", "text": "What is this?"}


def test_tools_never_carry_a_marker(core: Core) -> None:
    converted = convert(core, claude_code_body())
    assert "cache_control" not in json.dumps(converted["tools"])
    assert converted["tools"][0]["function"]["name"] == "Bash"


def test_without_the_capability_no_marker_is_sent_and_the_shapes_are_unchanged(core: Core) -> None:
    converted = convert(core, claude_code_body(), ModelCapabilities())
    assert "cache_control" not in json.dumps(converted)
    messages = converted["messages"]
    assert messages[0] == {"role": "system", "content": "You are Claude Code.\n\nBe brief."}
    assert messages[1] == {"role": "user", "content": "Run ls"}
    assert messages[-1] == {"role": "tool", "tool_call_id": "toolu_1", "content": "a.txt"}


def test_a_string_system_prompt_stays_a_string_and_unmarked_text_stays_plain(core: Core) -> None:
    body = {"model": "m", "max_tokens": 10, "system": "Be brief.", "messages": [{"role": "user", "content": "Hi"}]}
    assert convert(core, body)["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
    ]
