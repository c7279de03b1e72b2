"""An OpenAI Responses API answer (a `response` object) -> an Anthropic message; the parts the stream shares.

- Output items in order: `reasoning` -> a thinking block (its summary texts, its `encrypted_content` as the
  signature, marked with SIGNATURE_PREFIX so the request side recognises it when Claude Code sends it back);
  `message` -> text (`output_text`, and `refusal`, which Anthropic has no field for); `function_call` -> tool_use
  (`call_id` as the id, the tool name mapped back). Other item types (web search calls, ...) have no Anthropic
  counterpart here and are skipped.
- `status`: `completed` -> `end_turn` (`tool_use` after function calls); `incomplete` -> `max_tokens` for
  `max_output_tokens`, `refusal` for `content_filter`; `failed` -> the error it carries (rate limits 429, refused
  prompts and images 400, anything else 502, a context overflow Anthropic's 400).
- usage: `input_tokens` includes the cached ones (`input_tokens_details.cached_tokens`), which Anthropic counts
  apart as cache reads.
"""

from __future__ import annotations

from typing import Any

from ccproxy import ProxyError, UpstreamError
from ccproxy.wire import ResponseContext, anthropic_usage, error_from_body, tool_input, unreadable

# Marks a thinking block's signature as an encrypted reasoning item of this wire (never an Anthropic signature,
# which is base64: no `:`).
SIGNATURE_PREFIX = "openai-responses:"
# `incomplete_details.reason` -> stop_reason.
_INCOMPLETE_REASONS = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}
# `error.code` of a failed response -> HTTP status (others: 502, the upstream's fault).
_FAILED_STATUS = {"rate_limit_exceeded": 429, "invalid_prompt": 400, "invalid_image": 400, "invalid_base64_image": 400}


def signature(encrypted_content: Any) -> str:
    """The thinking block signature that carries an encrypted reasoning item ("" without one)."""
    return SIGNATURE_PREFIX + encrypted_content if isinstance(encrypted_content, str) and encrypted_content else ""


def encrypted_reasoning(block_signature: Any) -> str | None:
    """The encrypted reasoning a signature carries; None for a signature this wire did not make."""
    if isinstance(block_signature, str) and block_signature.startswith(SIGNATURE_PREFIX):
        return block_signature[len(SIGNATURE_PREFIX) :] or None
    return None


def summary_text(item: dict[str, Any]) -> str:
    """A reasoning item's summary parts as one text, a paragraph apart."""
    summary = item.get("summary")
    texts = [part.get("text") for part in summary if isinstance(part, dict)] if isinstance(summary, list) else []
    return "\n\n".join(text for text in texts if isinstance(text, str) and text)


def message_text(item: dict[str, Any]) -> str:
    """A message item's output_text and refusal parts, joined."""
    content = item.get("content")
    texts: list[str] = []
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict):
            text = part.get("text") if part.get("type") == "output_text" else part.get("refusal")
            if isinstance(text, str):
                texts.append(text)
    return "".join(texts)


def usage(response: dict[str, Any], input_tokens_estimate: int) -> dict[str, int]:
    """Anthropic usage for a response's `usage` (the core's mapping, given Chat Completions names)."""
    found = response.get("usage")
    if not isinstance(found, dict):
        return anthropic_usage(None, input_tokens_estimate)
    details = found.get("input_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    chat_usage = {
        "prompt_tokens": found.get("input_tokens"),
        "completion_tokens": found.get("output_tokens"),
        "prompt_tokens_details": {"cached_tokens": cached},
    }
    return anthropic_usage(chat_usage, input_tokens_estimate)


def stop_reason(response: dict[str, Any], has_tool_use: bool) -> str:
    """The Anthropic stop_reason for a completed or incomplete response."""
    if response.get("status") == "incomplete":
        details = response.get("incomplete_details")
        reason = details.get("reason") if isinstance(details, dict) else None
        return _INCOMPLETE_REASONS.get(reason, "end_turn") if isinstance(reason, str) else "end_turn"
    return "tool_use" if has_tool_use else "end_turn"


def failure(error: Any) -> UpstreamError:
    """The exception for the `error` of a failed response or an `error` stream event."""
    if isinstance(error, dict):
        code = error.get("code")
        status = _FAILED_STATUS.get(code) if isinstance(code, str) else None
        if status is not None and isinstance(error.get("message"), str):
            return UpstreamError(error["message"], status=status)
    return error_from_body(error or {"message": "Upstream reported a failed response"})


def convert_response(answer: dict[str, Any], ctx: ResponseContext) -> dict[str, Any]:
    """The Anthropic message for a Responses API `response` object."""
    try:
        return _convert(answer, ctx)
    except ProxyError:
        raise
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        raise unreadable("a response", exc) from None


def _convert(answer: dict[str, Any], ctx: ResponseContext) -> dict[str, Any]:
    if answer.get("error") or answer.get("status") == "failed":
        raise failure(answer.get("error"))
    output = answer.get("output")
    if not isinstance(output, list):
        raise UpstreamError("Upstream returned a response without an `output` list", status=502)
    content: list[dict[str, Any]] = []
    tool_uses = 0
    for item in output:
        block = _block(item, ctx) if isinstance(item, dict) else None
        if block is not None:
            content.append(block)
            tool_uses += block["type"] == "tool_use"
    if not content:
        content.append({"type": "text", "text": ""})
    return {
        "id": ctx.message_id,
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": stop_reason(answer, tool_uses > 0),
        "stop_sequence": None,
        "usage": usage(answer, ctx.input_tokens_estimate),
    }


def _block(item: dict[str, Any], ctx: ResponseContext) -> dict[str, Any] | None:
    kind = item.get("type")
    if kind == "reasoning":
        text, sealed = summary_text(item), signature(item.get("encrypted_content"))
        return {"type": "thinking", "thinking": text, "signature": sealed} if text or sealed else None
    if kind == "message":
        text = message_text(item)
        # Whitespace-only text is dropped, as the core does: Anthropic rejects such blocks when they are replayed.
        return {"type": "text", "text": text} if text and not text.isspace() else None
    if kind == "function_call":
        return {
            "type": "tool_use",
            "id": item["call_id"],
            "name": ctx.tool_names.to_client(item["name"]),
            "input": tool_input(item.get("arguments")),
        }
    return None
