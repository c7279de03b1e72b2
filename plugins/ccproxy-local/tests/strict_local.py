"""What a local server with strict request validation refuses (vLLM's pydantic models with unknown fields forbidden):
Anthropic-only fields anywhere in a chat completion request, and content parts it does not know."""

from __future__ import annotations

from typing import Any

# OpenAI's Chat Completions fields plus the sampling extras vLLM, SGLang and llama.cpp take.
TOP_LEVEL = frozenset(
    {
        "model", "messages", "frequency_penalty", "logit_bias", "logprobs", "max_completion_tokens", "max_tokens",
        "n", "parallel_tool_calls", "presence_penalty", "response_format", "seed", "stop", "stream",
        "stream_options", "temperature", "tool_choice", "tools", "top_logprobs", "top_p", "user",
        "top_k", "min_p", "repetition_penalty", "chat_template_kwargs",
    }
)  # fmt: skip
MESSAGE = {
    "system": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "name", "tool_calls"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
}
PARTS = {"text": frozenset({"type", "text"}), "image_url": frozenset({"type", "image_url"})}
TOOL = frozenset({"type", "function"})
FUNCTION = frozenset({"name", "description", "parameters"})
STREAM_OPTIONS = frozenset({"include_usage", "continuous_usage_stats"})


def problems(body: Any) -> list[str]:
    """Every field the server would refuse, as `loc: message` lines (empty: the request is accepted)."""
    if not isinstance(body, dict):
        return ["body: Input should be a valid dictionary"]
    found = _extra(body, TOP_LEVEL, "body")
    for at, message in enumerate(body.get("messages") or []):
        found += _message(message, f"body.messages.{at}")
    for at, tool in enumerate(body.get("tools") or []):
        found += _extra(tool, TOOL, f"body.tools.{at}")
        found += _extra(tool.get("function") or {}, FUNCTION, f"body.tools.{at}.function")
    found += _extra(body.get("stream_options") or {}, STREAM_OPTIONS, "body.stream_options")
    return found


def _message(message: dict[str, Any], where: str) -> list[str]:
    allowed = MESSAGE.get(message.get("role", ""))
    if allowed is None:
        return [f"{where}.role: Input should be 'system', 'user', 'assistant' or 'tool'"]
    found = _extra(message, allowed, where)
    content = message.get("content")
    if isinstance(content, list):
        for at, part in enumerate(content):
            fields = PARTS.get(part.get("type", "")) if isinstance(part, dict) else None
            if fields is None:
                found.append(
                    f"{where}.content.{at}.type: Input tag {part.get('type')!r} found using 'type' does not match"
                )
            else:
                found += _extra(part, fields, f"{where}.content.{at}")
    return found


def _extra(value: dict[str, Any], allowed: frozenset[str], where: str) -> list[str]:
    return [f"{where}.{key}: Extra inputs are not permitted" for key in value if key not in allowed]


def error_body(found: list[str]) -> dict[str, Any]:
    """vLLM's 400 answer for a request that failed validation."""
    message = f"{len(found)} validation errors for ChatCompletionRequest\n" + "\n".join(found)
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}
