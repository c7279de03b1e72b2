"""Structural checks on converted OpenAI request bodies, shared by the request conversion tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

# Every key the converter may write, at any depth outside a tool's `parameters` (a client JSON Schema).
OPENAI_KEYS = frozenset(
    {
        "model", "messages", "max_tokens", "max_completion_tokens", "temperature", "top_p", "top_k", "stop",
        "stream", "stream_options", "include_usage", "tools", "tool_choice", "parallel_tool_calls", "user",
        "role", "content", "type", "text", "image_url", "url", "file", "filename", "file_data", "tool_calls",
        "id", "function", "name", "arguments", "description", "parameters", "tool_call_id",
        "reasoning_content", "reasoning_details", "signature", "format", "index", "data",
        "response_format", "json_schema", "schema", "strict",
    }
)  # fmt: skip
# Keys that only Anthropic understands; none may reach the upstream.
ANTHROPIC_ONLY_KEYS = frozenset(
    {
        "cache_control", "citations", "context_management", "output_config", "service_tier", "container",
        "inference_geo", "mcp_servers", "betas", "speed", "thinking", "metadata", "system", "stop_sequences",
        "input_schema", "tool_use_id", "is_error", "source", "media_type", "disable_parallel_tool_use",
        "output_format", "defer_loading", "budget_tokens",
    }
)  # fmt: skip


def walk_keys(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, key) for every dict key, not descending into client JSON Schemas (tool `parameters`, output `schema`)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            if key not in ("parameters", "schema"):
                yield from walk_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from walk_keys(item, f"{path}.{index}")


def unexpected_keys(body: dict[str, Any], extra: frozenset[str] = frozenset()) -> list[str]:
    allowed = OPENAI_KEYS | extra
    return [f"{path}.{key}" for path, key in walk_keys(body) if key not in allowed or key in ANTHROPIC_ONLY_KEYS]


def unanswered_tool_calls(messages: list[dict[str, Any]]) -> list[str]:
    """Tool call ids not answered by the tool messages that immediately follow their assistant message."""
    problems: list[str] = []
    for index, message in enumerate(messages):
        calls = [call["id"] for call in message.get("tool_calls") or ()]
        answered: list[str] = []
        for following in messages[index + 1 :]:
            if following["role"] != "tool":
                break
            answered.append(following["tool_call_id"])
        problems.extend(call for call in calls if call not in answered)
    return problems


def orphan_tool_messages(messages: list[dict[str, Any]]) -> list[int]:
    """Indices of tool messages that do not follow an assistant tool call with their id."""
    orphans: list[int] = []
    open_calls: set[str] = set()
    for index, message in enumerate(messages):
        if message["role"] == "tool":
            if message["tool_call_id"] not in open_calls:
                orphans.append(index)
            open_calls.discard(message["tool_call_id"])
            continue
        open_calls = {call["id"] for call in message.get("tool_calls") or ()}
    return orphans


def message_texts(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content or () if part.get("type") == "text")
