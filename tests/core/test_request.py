"""Anthropic -> OpenAI request conversion, one test per rule of wire.md 4.10 "Request"."""

from __future__ import annotations

import copy
import gc
import json
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.core.toolnames import OPENAI_TOOL_NAME_LIMIT, ToolNameMap
from ccproxy.errors import InvalidRequestError

from .request_invariants import orphan_tool_messages, unanswered_tool_calls, unexpected_keys

UPSTREAM = "gpt-test"
BILLING = "x-anthropic-billing-header: cc_version=2.1.197.2e5; cc_entrypoint=cli;"
PNG = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
PDF = {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0xLjQ="}
LONG_NAME = "mcp__very_long_server_name_for_testing__" + "a_tool_with_an_extremely_long_descriptive_name"


def make_plan(*, stream: bool = False, reasoning: dict[str, Any] | None = None, **caps: Any) -> RequestPlan:
    return RequestPlan(
        upstream_model=UPSTREAM,
        capabilities=ModelCapabilities(**caps),
        stream=stream,
        tool_names=ToolNameMap(),
        reasoning=reasoning or {},
    )


def make_body(messages: list[Any] | None = None, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "messages": messages if messages is not None else [{"role": "user", "content": "Hello"}],
    }
    body.update(fields)
    return body


def convert(core: Core, body: dict[str, Any], **caps: Any) -> dict[str, Any]:
    return core.request.convert_request(body, make_plan(**caps))


def messages_of(core: Core, messages: list[Any], **caps: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = convert(core, make_body(messages), **caps)["messages"]
    return result


def tool_use(call_id: str, name: str = "Read", arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "tool_use", "id": call_id, "name": name, "input": arguments or {}}


def tool_result(call_id: str, content: Any = "ok", **extra: Any) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": call_id, "content": content, **extra}


def tool(name: str = "Read", **extra: Any) -> dict[str, Any]:
    schema = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
    return {"name": name, "description": f"The {name} tool", "input_schema": schema, **extra}


# ------------------------------------------------------------------------------------- whole body


def test_minimal_body_converts_exactly(core: Core) -> None:
    assert convert(core, make_body()) == {
        "model": UPSTREAM,
        "messages": [{"role": "user", "content": "Hello"}],
        "max_tokens": 1024,
    }


def test_input_body_is_not_mutated(core: Core) -> None:
    body = make_body(
        [
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}],
            },
            {"role": "assistant", "content": [tool_use("toolu_1", LONG_NAME, {"a": 1})]},
            {"role": "user", "content": [tool_result("toolu_1", [{"type": "image", "source": PNG}])]},
        ],
        system=[{"type": "text", "text": BILLING}, {"type": "text", "text": "sys"}],
        tools=[tool(LONG_NAME)],
        tool_choice={"type": "tool", "name": LONG_NAME},
    )
    snapshot = copy.deepcopy(body)
    convert(core, body)
    assert body == snapshot


@pytest.mark.parametrize("forward_cache_control", [False, True], ids=["plain", "caching"])
def test_a_conversion_leaves_no_reference_cycle_for_the_garbage_collector(
    core: Core, forward_cache_control: bool
) -> None:
    """Everything a conversion builds is freed when it is done, by reference counting: a converter holding its own
    bound methods was a cycle, and ~17 objects per request then waited for the collector (benchmarks/README.md)."""
    body = make_body(
        [
            {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "image", "source": PNG}]},
            {"role": "assistant", "content": [tool_use("toolu_1", LONG_NAME, {"a": 1})]},
            {"role": "user", "content": [tool_result("toolu_1"), {"type": "document", "source": PDF}]},
            {"role": "system", "content": "be brief"},
        ],
        system="sys",
        tools=[tool(LONG_NAME)],
    )
    gc.collect()
    gc.disable()
    try:
        convert(core, body, forward_cache_control=forward_cache_control, supports_documents=True)
        assert gc.collect() == 0
    finally:
        gc.enable()


# ------------------------------------------------------------------------------------- rule 1: unknown fields


def test_anthropic_only_fields_never_reach_the_upstream(core: Core) -> None:
    cache = {"type": "ephemeral", "ttl": "1h"}
    body = make_body(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look", "cache_control": cache, "citations": []},
                    {"type": "image", "source": PNG, "cache_control": cache},
                    {"type": "brand_new_block", "payload": {"x": 1}},
                ],
            },
            {
                "role": "system",
                "content": [{"type": "text", "text": "in-conversation note", "cache_control": cache}],
                "output_config": {"effort": "low"},
            },
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                    {"type": "text", "text": "calling", "citations": [{"type": "char_location"}]},
                    {
                        "type": "server_tool_use",
                        "id": "srvtoolu_1",
                        "name": "web_search",
                        "input": {"q": "x"},
                    },
                    {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
                    {**tool_use("toolu_1", "Read", {"path": "a"}), "cache_control": cache},
                ],
            },
            {
                "role": "user",
                "content": [tool_result("toolu_1", "data", is_error=False, cache_control=cache)],
            },
        ],
        system=[
            {"type": "text", "text": BILLING},
            {"type": "text", "text": "be nice", "cache_control": cache},
        ],
        tools=[tool("Read", cache_control=cache, defer_loading=True)],
        tool_choice={"type": "auto", "disable_parallel_tool_use": True},
        thinking={"type": "enabled", "budget_tokens": 2048},
        metadata={"user_id": "user-1"},
        temperature=0.5,
        top_p=0.9,
        top_k=40,
        stop_sequences=["END"],
        stream=True,
        cache_control=cache,
        context_management={"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
        output_config={"effort": "high"},
        service_tier="auto",
        container="container_1",
        inference_geo="us",
        mcp_servers=[{"type": "url", "url": "https://mcp.example", "name": "m"}],
        betas=["x"],
        speed="fast",
        some_future_field={"nested": True},
    )
    out = convert(core, body, supports_top_k=True)
    assert unexpected_keys(out) == []
    assert set(out) == {
        "model", "messages", "max_tokens", "temperature", "top_p", "top_k", "stop", "user", "tools",
        "tool_choice", "parallel_tool_calls",
    }  # fmt: skip
    assert [message["role"] for message in out["messages"]] == [
        "system",
        "user",
        "system",
        "assistant",
        "tool",
    ]


# ------------------------------------------------------------------------------------- rule 2: system


def test_system_string_becomes_first_system_message(core: Core) -> None:
    out = convert(core, make_body(system="You are terse."))
    assert out["messages"][0] == {"role": "system", "content": "You are terse."}


def test_system_blocks_are_joined_and_billing_header_dropped(core: Core) -> None:
    system = [
        {"type": "text", "text": BILLING},
        {"type": "text", "text": "First.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Second."},
    ]
    out = convert(core, make_body(system=system))
    assert out["messages"][0] == {"role": "system", "content": "First.\n\nSecond."}
    assert "x-anthropic-billing-header" not in json.dumps(out)


def test_empty_system_emits_no_system_message(core: Core) -> None:
    out = convert(core, make_body(system=[{"type": "text", "text": BILLING}]))
    assert [message["role"] for message in out["messages"]] == ["user"]


def test_developer_role_for_system_prompt_and_in_conversation_system(core: Core) -> None:
    messages = [{"role": "user", "content": "hi"}, {"role": "system", "content": "note"}]
    out = convert(core, make_body(messages, system="sys"), system_role="developer")
    assert out["messages"] == [
        {"role": "developer", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "developer", "content": "note"},
    ]


def test_system_role_inside_messages_stays_in_place(core: Core) -> None:
    messages = [
        {"role": "user", "content": "first"},
        {"role": "system", "content": "agent list"},
        {
            "role": "system",
            "content": [{"type": "text", "text": "part one"}, {"type": "text", "text": "part two"}],
            "output_config": {"effort": "high"},
        },
        {"role": "assistant", "content": "answer"},
    ]
    assert messages_of(core, messages) == [
        {"role": "user", "content": "first"},
        {"role": "system", "content": "agent list"},
        {"role": "system", "content": "part one\n\npart two"},
        {"role": "assistant", "content": "answer"},
    ]


def test_system_message_between_tool_call_and_result_waits_for_the_tool_messages(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_1")]},
        {"role": "system", "content": "reminder"},
        {"role": "user", "content": [tool_result("toolu_1", "done"), {"type": "text", "text": "next"}]},
    ]
    converted = messages_of(core, messages)
    assert [message["role"] for message in converted] == ["user", "assistant", "tool", "system", "user"]
    assert converted[3]["content"] == "reminder"
    assert unanswered_tool_calls(converted) == []


# ------------------------------------------------------------------------------------- rule 3: user turns


def test_parallel_tool_results_become_tool_messages_in_order(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a"), tool_use("toolu_b"), tool_use("toolu_c")]},
        {
            "role": "user",
            "content": [
                tool_result("toolu_a", "A"),
                tool_result("toolu_b", "B"),
                tool_result("toolu_c", "C"),
            ],
        },
    ]
    converted = messages_of(core, messages)
    assert converted[2:] == [
        {"role": "tool", "tool_call_id": "toolu_a", "content": "A"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "B"},
        {"role": "tool", "tool_call_id": "toolu_c", "content": "C"},
    ]
    assert unanswered_tool_calls(converted) == []


def test_text_beside_tool_results_follows_the_tool_messages(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a"), tool_use("toolu_b")]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "before"},
                tool_result("toolu_a", "A"),
                tool_result("toolu_b", "B"),
                {"type": "text", "text": "after"},
            ],
        },
    ]
    converted = messages_of(core, messages)
    assert [message["role"] for message in converted] == ["user", "assistant", "tool", "tool", "user"]
    assert converted[4] == {
        "role": "user",
        "content": [{"type": "text", "text": "before"}, {"type": "text", "text": "after"}],
    }


def test_only_tool_results_emit_no_user_message(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a")]},
        {"role": "user", "content": [tool_result("toolu_a", "A")]},
    ]
    assert [message["role"] for message in messages_of(core, messages)] == ["user", "assistant", "tool"]


def test_tool_result_text_list_is_joined_with_newlines(core: Core) -> None:
    content = [{"type": "text", "text": "line 1"}, {"type": "text", "text": "line 2"}]
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a")]},
        {"role": "user", "content": [tool_result("toolu_a", content)]},
    ]
    assert messages_of(core, messages)[2]["content"] == "line 1\nline 2"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("file not found", "Error: file not found"),
        ([{"type": "text", "text": "boom"}], "Error: boom"),
        ("", "Error"),
        (None, "Error"),
    ],
)
def test_is_error_prefixes_the_tool_text(core: Core, content: Any, expected: str) -> None:
    result: dict[str, Any] = {"type": "tool_result", "tool_use_id": "toolu_a", "is_error": True}
    if content is not None:
        result["content"] = content
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a")]},
        {"role": "user", "content": [result]},
    ]
    assert messages_of(core, messages)[2] == {"role": "tool", "tool_call_id": "toolu_a", "content": expected}


def test_is_error_false_leaves_text_alone(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a")]},
        {"role": "user", "content": [tool_result("toolu_a", "fine", is_error=False)]},
    ]
    assert messages_of(core, messages)[2]["content"] == "fine"


def test_images_in_tool_results_move_to_a_following_user_message(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a", "Screenshot"), tool_use("toolu_b", "Read")]},
        {
            "role": "user",
            "content": [
                tool_result("toolu_a", [{"type": "text", "text": "captured"}, {"type": "image", "source": PNG}]),
                tool_result("toolu_b", "plain"),
                {"type": "text", "text": "what do you see?"},
            ],
        },
    ]
    converted = messages_of(core, messages)
    assert converted[2:] == [
        {"role": "tool", "tool_call_id": "toolu_a", "content": "captured"},
        {"role": "tool", "tool_call_id": "toolu_b", "content": "plain"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Attachments from the Screenshot tool result (toolu_a):"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "text", "text": "what do you see?"},
            ],
        },
    ]
    assert unanswered_tool_calls(converted) == []


def test_image_only_tool_result_says_where_the_image_went(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a")]},
        {"role": "user", "content": [tool_result("toolu_a", [{"type": "image", "source": PNG}])]},
    ]
    converted = messages_of(core, messages)
    assert converted[2] == {
        "role": "tool",
        "tool_call_id": "toolu_a",
        "content": "(the result is attached in the next user message)",
    }
    assert converted[3]["role"] == "user"
    assert [part["type"] for part in converted[3]["content"]] == ["text", "image_url"]


def test_user_images_base64_and_url(core: Core) -> None:
    content = [
        {"type": "image", "source": PNG},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {"type": "text", "text": "compare"},
    ]
    assert messages_of(core, [{"role": "user", "content": content}]) == [
        {
            "role": "user",
            "content": [
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
                {"type": "text", "text": "compare"},
            ],
        }
    ]


def test_image_file_source_is_refused(core: Core) -> None:
    content = [{"type": "image", "source": {"type": "file", "file_id": "file_1"}}]
    with pytest.raises(InvalidRequestError, match="image source type 'file'") as caught:
        messages_of(core, [{"role": "user", "content": content}])
    assert caught.value.status == 400


def test_single_text_part_is_plain_string_and_empty_texts_are_dropped(core: Core) -> None:
    content = [{"type": "text", "text": ""}, {"type": "text", "text": "only"}]
    assert messages_of(core, [{"role": "user", "content": content}]) == [{"role": "user", "content": "only"}]


def test_empty_user_message_is_never_emitted(core: Core) -> None:
    messages = [
        {"role": "user", "content": "hi"},
        {"role": "user", "content": ""},
        {"role": "user", "content": [{"type": "text", "text": ""}, {"type": "mystery"}]},
    ]
    assert messages_of(core, messages) == [{"role": "user", "content": "hi"}]


def test_consecutive_user_messages_are_not_merged(core: Core) -> None:
    messages = [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]
    assert messages_of(core, messages) == [{"role": "user", "content": "one"}, {"role": "user", "content": "two"}]


# ------------------------------------------------------------------------------------- documents


def test_pdf_document_becomes_a_file_part_when_supported(core: Core) -> None:
    content = [{"type": "document", "source": PDF, "title": "report"}, {"type": "text", "text": "summarise"}]
    converted = messages_of(core, [{"role": "user", "content": content}], supports_documents=True)
    assert converted[0]["content"][0] == {
        "type": "file",
        "file": {"filename": "report.pdf", "file_data": "data:application/pdf;base64,JVBERi0xLjQ="},
    }


def test_pdf_document_without_support_is_a_400(core: Core) -> None:
    content = [{"type": "document", "source": PDF}]
    with pytest.raises(InvalidRequestError, match="cannot take PDF documents") as caught:
        messages_of(core, [{"role": "user", "content": content}])
    assert caught.value.status == 400
    assert caught.value.error_type == "invalid_request_error"


def test_plain_text_document_is_a_text_part_everywhere(core: Core) -> None:
    source = {"type": "text", "media_type": "text/plain", "data": "The contents."}
    content = [
        {"type": "document", "source": source, "title": "notes.txt"},
        {"type": "text", "text": "read it"},
    ]
    converted = messages_of(core, [{"role": "user", "content": content}])
    assert converted[0]["content"] == [
        {"type": "text", "text": "notes.txt\n\nThe contents."},
        {"type": "text", "text": "read it"},
    ]


def test_content_document_contributes_its_blocks(core: Core) -> None:
    source = {
        "type": "content",
        "content": [{"type": "text", "text": "chunk"}, {"type": "image", "source": PNG}],
    }
    converted = messages_of(core, [{"role": "user", "content": [{"type": "document", "source": source}]}])
    assert [part["type"] for part in converted[0]["content"]] == ["text", "image_url"]


def test_url_document_is_refused(core: Core) -> None:
    source = {"type": "url", "url": "https://example.com/a.pdf"}
    with pytest.raises(InvalidRequestError, match="document source type 'url'"):
        messages_of(
            core, [{"role": "user", "content": [{"type": "document", "source": source}]}], supports_documents=True
        )


def test_pdf_in_tool_result_moves_to_user_message(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a")]},
        {"role": "user", "content": [tool_result("toolu_a", [{"type": "document", "source": PDF}])]},
    ]
    converted = messages_of(core, messages, supports_documents=True)
    assert converted[2]["role"] == "tool"
    assert converted[3]["content"][1]["type"] == "file"


# ------------------------------------------------------------------------------------- rule 4: assistant


def test_assistant_text_blocks_join_and_tool_use_becomes_tool_calls(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "According to the doc, "},
                {"type": "text", "text": "it works."},
                tool_use("toolu_a", "Read", {"path": "/tmp/ü/a.txt", "n": 1}),
            ],
        },
        {"role": "user", "content": [tool_result("toolu_a")]},
    ]
    assert messages_of(core, messages)[1] == {
        "role": "assistant",
        "content": "According to the doc, it works.",
        "tool_calls": [
            {
                "id": "toolu_a",
                "type": "function",
                "function": {"name": "Read", "arguments": '{"path":"/tmp/ü/a.txt","n":1}'},
            }
        ],
    }


def test_texts_separated_by_another_block_get_a_paragraph_break(core: Core) -> None:
    content = [
        {"type": "text", "text": "Let me check."},
        {"type": "thinking", "thinking": "...", "signature": "s"},
        {"type": "text", "text": "Done."},
    ]
    converted = messages_of(core, [{"role": "user", "content": "go"}, {"role": "assistant", "content": content}])
    assert converted[1]["content"] == "Let me check.\n\nDone."


def test_assistant_with_only_tool_calls_has_null_content(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a")]},
        {"role": "user", "content": [tool_result("toolu_a")]},
    ]
    assert messages_of(core, messages)[1]["content"] is None


def test_assistant_string_content_and_prefill(core: Core) -> None:
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "content": "{"}]
    assert messages_of(core, messages)[1] == {"role": "assistant", "content": "{"}


def test_assistant_with_nothing_to_send_is_skipped(core: Core) -> None:
    content = [{"type": "thinking", "thinking": "only thoughts", "signature": "s"}]
    messages = [{"role": "user", "content": "go"}, {"role": "assistant", "content": content}]
    assert messages_of(core, messages) == [{"role": "user", "content": "go"}]


def test_server_tool_history_blocks_are_dropped(core: Core) -> None:
    content = [
        {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {"query": "x"}},
        {"type": "web_search_tool_result", "tool_use_id": "srvtoolu_1", "content": []},
        {"type": "text", "text": "Found it."},
    ]
    converted = messages_of(core, [{"role": "user", "content": "go"}, {"role": "assistant", "content": content}])
    assert converted[1] == {"role": "assistant", "content": "Found it."}


def test_long_tool_call_ids_are_shortened_consistently(core: Core) -> None:
    long_id = "toolu_bdrk_" + "x" * 60
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use(long_id)]},
        {"role": "user", "content": [tool_result(long_id)]},
    ]
    converted = messages_of(core, messages)
    call_id = converted[1]["tool_calls"][0]["id"]
    assert len(call_id) == 40
    assert converted[2]["tool_call_id"] == call_id
    assert unanswered_tool_calls(converted) == []


# ------------------------------------------------------------------------------------- thinking replay

THINKING_TURN = [
    {"role": "user", "content": "go"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "step one", "signature": "sig-1"},
            {"type": "redacted_thinking", "data": "ENCRYPTED"},
            {"type": "thinking", "thinking": "step two", "signature": "sig-2"},
            tool_use("toolu_a"),
        ],
    },
    {"role": "user", "content": [tool_result("toolu_a")]},
]


def test_thinking_is_dropped_by_default(core: Core) -> None:
    assistant = messages_of(core, THINKING_TURN)[1]
    assert set(assistant) == {"role", "content", "tool_calls"}


def test_thinking_replayed_as_reasoning_content(core: Core) -> None:
    assistant = messages_of(core, THINKING_TURN, reasoning_replay="reasoning_content")[1]
    assert assistant["reasoning_content"] == "step one\n\nstep two"
    assert "reasoning_details" not in assistant


def test_a_tool_call_without_thinking_still_carries_reasoning_content(core: Core) -> None:
    """DeepSeek's thinking mode answers 400 for a tool-calling assistant message without `reasoning_content` (a turn
    from before thinking was on, or whose thinking the client dropped): such a message gets an empty one. A message
    without tool calls gets none, and the other replays add nothing."""
    tool_turn = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me look."}, tool_use("toolu_a")]},
        {"role": "user", "content": [tool_result("toolu_a")]},
    ]
    text_turn = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "more"},
    ]
    assert messages_of(core, tool_turn, reasoning_replay="reasoning_content")[1]["reasoning_content"] == ""
    assert "reasoning_content" not in messages_of(core, text_turn, reasoning_replay="reasoning_content")[1]
    assert set(messages_of(core, tool_turn, reasoning_replay="reasoning_details")[1]) == {
        "role",
        "content",
        "tool_calls",
    }
    assert set(messages_of(core, tool_turn)[1]) == {"role", "content", "tool_calls"}


def test_thinking_replayed_as_reasoning_details(core: Core) -> None:
    assistant = messages_of(core, THINKING_TURN, reasoning_replay="reasoning_details")[1]
    assert assistant["reasoning_details"] == [
        {
            "type": "reasoning.text",
            "text": "step one",
            "signature": "sig-1",
            "format": "anthropic-claude-v1",
            "index": 0,
        },
        {"type": "reasoning.encrypted", "data": "ENCRYPTED", "format": "anthropic-claude-v1", "index": 1},
        {
            "type": "reasoning.text",
            "text": "step two",
            "signature": "sig-2",
            "format": "anthropic-claude-v1",
            "index": 2,
        },
    ]
    assert "reasoning_content" not in assistant


# ------------------------------------------------------------------------------------- rules 5, 9, 10: tools


def test_custom_tool_becomes_function_with_schema_as_given(core: Core) -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {"path": {"type": "string", "cache_control": "a property named like an Anthropic key"}},
        "additionalProperties": False,
    }
    tools = [{"name": "Read", "description": "Read a file", "input_schema": schema, "type": "custom"}]
    out = convert(core, make_body(tools=tools))
    assert out["tools"] == [
        {"type": "function", "function": {"name": "Read", "description": "Read a file", "parameters": schema}}
    ]
    assert out["tools"][0]["function"]["parameters"] is schema


def test_schema_without_type_gets_object_type_and_missing_description_is_omitted(core: Core) -> None:
    tools = [{"name": "Ping", "input_schema": {"properties": {}}}]
    assert convert(core, make_body(tools=tools))["tools"] == [
        {"type": "function", "function": {"name": "Ping", "parameters": {"type": "object", "properties": {}}}}
    ]


@pytest.mark.parametrize(
    ("tool_type", "name"),
    [
        ("web_search_20250305", "web_search"),
        ("web_fetch_20250910", "web_fetch"),
        ("code_execution_20250825", "code_execution"),
        ("something_new_20300101", "future"),
    ],
)
def test_server_tools_are_a_clear_400(core: Core, tool_type: str, name: str) -> None:
    tools = [tool("Read"), {"type": tool_type, "name": name}]
    with pytest.raises(InvalidRequestError) as caught:
        convert(core, make_body(tools=tools))
    assert caught.value.status == 400
    assert f"server tool '{name}' ({tool_type}) is not supported by this proxy" in caught.value.message


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Read"}, {"type": "function", "function": {"name": "Read"}}),
    ],
)
def test_tool_choice_variants(core: Core, choice: dict[str, Any], expected: Any) -> None:
    out = convert(core, make_body(tools=[tool("Read")], tool_choice=choice))
    assert out["tool_choice"] == expected
    assert "parallel_tool_calls" not in out


@pytest.mark.parametrize("kind", ["auto", "any", "tool"])
def test_disable_parallel_tool_use_sets_parallel_tool_calls_false(core: Core, kind: str) -> None:
    choice = {"type": kind, "name": "Read", "disable_parallel_tool_use": True}
    assert convert(core, make_body(tools=[tool("Read")], tool_choice=choice))["parallel_tool_calls"] is False


def test_disable_parallel_tool_use_false_is_not_forwarded(core: Core) -> None:
    choice = {"type": "auto", "disable_parallel_tool_use": False}
    assert "parallel_tool_calls" not in convert(core, make_body(tools=[tool("Read")], tool_choice=choice))


@pytest.mark.parametrize("tools", [None, []])
def test_no_tools_means_no_tool_choice_nor_parallel_tool_calls(core: Core, tools: list[Any] | None) -> None:
    fields: dict[str, Any] = {"tool_choice": {"type": "any", "disable_parallel_tool_use": True}}
    if tools is not None:
        fields["tools"] = tools
    out = convert(core, make_body(**fields))
    assert not {"tools", "tool_choice", "parallel_tool_calls"} & set(out)


def test_long_tool_names_are_shortened_and_mapped_back(core: Core) -> None:
    plan = make_plan()
    history_only = "mcp__history__" + "b" * 70
    body = make_body(
        [
            {"role": "user", "content": "go"},
            {
                "role": "assistant",
                "content": [tool_use("toolu_a", LONG_NAME), tool_use("toolu_b", history_only)],
            },
            {"role": "user", "content": [tool_result("toolu_a"), tool_result("toolu_b")]},
        ],
        tools=[tool(LONG_NAME), tool("Read")],
        tool_choice={"type": "tool", "name": LONG_NAME},
    )
    out = core.request.convert_request(body, plan)
    short = out["tools"][0]["function"]["name"]
    assert len(LONG_NAME) > OPENAI_TOOL_NAME_LIMIT >= len(short)
    assert out["tools"][1]["function"]["name"] == "Read"
    assert out["tool_choice"] == {"type": "function", "function": {"name": short}}
    calls = out["messages"][1]["tool_calls"]
    assert calls[0]["function"]["name"] == short
    assert len(calls[1]["function"]["name"]) <= OPENAI_TOOL_NAME_LIMIT
    assert plan.tool_names.to_client(short) == LONG_NAME
    assert plan.tool_names.to_client(calls[1]["function"]["name"]) == history_only
    assert plan.tool_names.to_client("Read") == "Read"


def test_short_tool_names_leave_the_map_empty(core: Core) -> None:
    plan = make_plan()
    core.request.convert_request(make_body(tools=[tool("Read"), tool("Bash")]), plan)
    assert not plan.tool_names


# ------------------------------------------------------------------------------------- rules 6, 7: parameters


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
def test_max_tokens_parameter_name_per_capability(core: Core, param: str) -> None:
    out = convert(core, make_body(max_tokens=32000), max_tokens_param=param)
    assert out[param] == 32000
    assert {"max_tokens", "max_completion_tokens"} & set(out) == {param}


@pytest.mark.parametrize(
    ("requested", "limit", "expected"),
    [(64000, 16384, 16384), (8192, 16384, 8192), (64000, None, 64000), (0, None, 1), (0, 100, 1)],
)
def test_max_tokens_clamped_only_to_the_model_limit(
    core: Core, requested: int, limit: int | None, expected: int
) -> None:
    assert convert(core, make_body(max_tokens=requested), max_output_tokens=limit)["max_tokens"] == expected


def test_sampling_parameters_forwarded_when_supported(core: Core) -> None:
    body = make_body(temperature=0.2, top_p=0.8, top_k=20, stop_sequences=["\n\nHuman:", "END"])
    out = convert(core, body, supports_top_k=True)
    assert (out["temperature"], out["top_p"], out["top_k"], out["stop"]) == (
        0.2,
        0.8,
        20,
        ["\n\nHuman:", "END"],
    )


@pytest.mark.parametrize("temperature", [0.0, 0.7, 1, 1.0])
def test_temperature_and_top_p_dropped_for_reasoning_models(core: Core, temperature: float) -> None:
    out = convert(core, make_body(temperature=temperature, top_p=0.5), supports_temperature=False, supports_top_p=False)
    assert "temperature" not in out
    assert "top_p" not in out


def test_top_k_only_when_supported(core: Core) -> None:
    assert "top_k" not in convert(core, make_body(top_k=5))
    assert convert(core, make_body(top_k=5), supports_top_k=True)["top_k"] == 5


def test_stop_sequences_capped_at_four_and_dropped_when_unsupported(core: Core) -> None:
    stops = ["a", "b", "c", "d", "e", "f"]
    assert convert(core, make_body(stop_sequences=stops))["stop"] == ["a", "b", "c", "d"]
    assert "stop" not in convert(core, make_body(stop_sequences=stops), supports_stop=False)
    assert "stop" not in convert(core, make_body(stop_sequences=[]))


def test_metadata_user_id_plain_string_is_truncated_to_64(core: Core) -> None:
    assert convert(core, make_body(metadata={"user_id": "alice"}))["user"] == "alice"
    legacy = "user_" + "f" * 64 + "_account_" + "1" * 36 + "_session_" + "2" * 36
    assert convert(core, make_body(metadata={"user_id": legacy}))["user"] == legacy[:64]


def test_claude_code_json_user_id_becomes_a_stable_hash(core: Core) -> None:
    def user_for(session: str, device: str = "d" * 64) -> str:
        raw = json.dumps({"device_id": device, "account_uuid": "", "session_id": session})
        value: str = convert(core, make_body(metadata={"user_id": raw}))["user"]
        return value

    first = user_for("a4671bd8-a4d0-4d62-a8ee-cbf42f543ffd")
    assert first.startswith("cc-")
    assert len(first) == 35
    assert "d" * 16 not in first
    assert user_for("0d66364d-c457-4278-8bcf-111d8e37d09a") == first  # stable across sessions
    assert user_for("a4671bd8-a4d0-4d62-a8ee-cbf42f543ffd", device="e" * 64) != first


def test_claude_code_json_user_id_without_identity_uses_the_session(core: Core) -> None:
    raw = json.dumps({"device_id": "", "account_uuid": "", "session_id": "sess-1"})
    assert convert(core, make_body(metadata={"user_id": raw}))["user"] == "sess-1"


@pytest.mark.parametrize("metadata", [None, {}, {"user_id": None}, {"user_id": ""}])
def test_no_user_id_means_no_user(core: Core, metadata: dict[str, Any] | None) -> None:
    assert "user" not in convert(core, make_body(metadata=metadata))


def test_brace_string_that_is_not_json_is_forwarded_as_is(core: Core) -> None:
    assert convert(core, make_body(metadata={"user_id": "{not json"}))["user"] == "{not json"


def test_stream_adds_stream_options(core: Core) -> None:
    out = core.request.convert_request(make_body(stream=True), make_plan(stream=True))
    assert out["stream"] is True
    assert out["stream_options"] == {"include_usage": True}


def test_non_stream_plan_sends_no_stream_fields(core: Core) -> None:
    out = core.request.convert_request(make_body(stream=False), make_plan(stream=False))
    assert "stream" not in out
    assert "stream_options" not in out


def test_reasoning_fields_are_merged_last(core: Core) -> None:
    plan = make_plan(reasoning={"reasoning_effort": "high"})
    out = core.request.convert_request(make_body(thinking={"type": "enabled", "budget_tokens": 20000}), plan)
    assert out["reasoning_effort"] == "high"
    assert "thinking" not in out


def test_count_tokens_body_without_max_tokens_converts(core: Core) -> None:
    body = {"model": "claude-opus-4-8", "messages": [{"role": "user", "content": "foo"}], "tools": []}
    out = convert(core, body)
    assert out == {"model": UPSTREAM, "messages": [{"role": "user", "content": "foo"}]}


def test_whole_conversation_pairs_every_tool_call(core: Core) -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [tool_use("toolu_a"), tool_use("toolu_b")]},
        {"role": "user", "content": [tool_result("toolu_a"), tool_result("toolu_b", is_error=True)]},
        {"role": "assistant", "content": [{"type": "text", "text": "again"}, tool_use("toolu_c")]},
        {"role": "user", "content": [tool_result("toolu_c", [{"type": "image", "source": PNG}])]},
        {"role": "assistant", "content": "done"},
    ]
    converted = messages_of(core, messages)
    assert unanswered_tool_calls(converted) == []
    assert orphan_tool_messages(converted) == []


def test_structured_output_becomes_response_format(core: Core) -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    body = {
        "model": "claude-opus-4-8",
        "max_tokens": 100,
        "messages": [{"role": "user", "content": "Name this session"}],
        "output_config": {"effort": "high", "format": {"type": "json_schema", "schema": schema}},
    }
    out = core.request.convert_request(body, RequestPlan("gpt-4o", ModelCapabilities(), stream=False))
    assert out["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": False},
    }
    assert "output_config" not in out
    body["output_config"] = {"effort": "high"}
    assert "response_format" not in core.request.convert_request(
        body, RequestPlan("gpt-4o", ModelCapabilities(), stream=False)
    )
