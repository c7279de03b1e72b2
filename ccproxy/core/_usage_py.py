"""OpenAI finish reasons, usage and in-body errors in Anthropic terms; shared by stream and non-stream."""

from __future__ import annotations

from typing import Any

from ccproxy.core.error_detail import error_message
from ccproxy.core.overflow import prompt_too_long
from ccproxy.errors import UpstreamError, upstream_error

__all__ = ["anthropic_usage", "error_from_body", "stop_reason", "upstream_cost"]

# Anthropic has a value for each OpenAI reason; anything unknown (e.g. vendor-specific) is a normal end.
_STOP_REASONS: dict[str, str] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def stop_reason(finish_reason: Any, has_tool_use: bool) -> str:
    """The Anthropic `stop_reason` for an OpenAI `finish_reason` (None = the stream ended without one; a value
    that is not a string is read as none).

    Some backends (GLM, llama.cpp builds, Ollama) say `stop` after emitting tool calls; Claude Code only runs
    tools when it sees `tool_use`, so a plain end with tool calls becomes `tool_use`.
    """
    mapped = _STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) else "end_turn"
    if mapped == "end_turn" and has_tool_use:
        return "tool_use"
    return mapped


def _int(value: Any) -> int:
    # bool is an int subclass but never a token count.
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def anthropic_usage(usage: Any, input_tokens_estimate: int) -> dict[str, int]:
    """Anthropic usage from OpenAI usage (None, or anything that is not an object = the upstream reported none).

    OpenAI's `prompt_tokens` includes cached tokens while Anthropic's `input_tokens` excludes cache reads and
    writes, so those are subtracted. Without usage the output count is unknown and reported as 0 rather than
    guessed.
    """
    if not usage or not isinstance(usage, dict):
        return {
            "input_tokens": input_tokens_estimate,
            "output_tokens": 0,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
    details = usage.get("prompt_tokens_details")
    if not isinstance(details, dict):
        details = {}
    cache_read = _int(details.get("cached_tokens"))
    # OpenRouter reports writes in prompt_tokens_details; some gateways pass Anthropic's own field through.
    cache_creation = _int(details.get("cache_write_tokens")) or _int(usage.get("cache_creation_input_tokens"))
    return {
        "input_tokens": max(_int(usage.get("prompt_tokens")) - cache_read - cache_creation, 0),
        "output_tokens": _int(usage.get("completion_tokens")),
        "cache_creation_input_tokens": cache_creation,
        "cache_read_input_tokens": cache_read,
    }


def _dollars(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf"):
        return float(value)
    return None


def upstream_cost(usage: Any) -> float | None:
    """What the upstream says the request cost, in US dollars (OpenRouter's `usage.cost`, in credits = dollars);
    None when it says nothing usable.

    With a key of your own at the vendor (`is_byok`), `cost` is only OpenRouter's fee and the vendor bills
    `cost_details.upstream_inference_cost` on top, so the two are added.
    """
    if not isinstance(usage, dict):
        return None
    cost = _dollars(usage.get("cost"))
    if cost is None or usage.get("is_byok") is not True:
        return cost
    details = usage.get("cost_details")
    inference = _dollars(details.get("upstream_inference_cost")) if isinstance(details, dict) else None
    return cost + (inference or 0.0)


def error_from_body(error: Any) -> UpstreamError:
    """The exception for an `error` object found in a 200 body or stream chunk (OpenRouter, CCR-style).

    OpenRouter's `code` is an HTTP status; OpenAI-style string codes (e.g. `server_error`) say nothing about
    the status, so those become 502. A context overflow becomes Anthropic's 400 (core/overflow.py).
    """
    overflow = prompt_too_long(error)
    if overflow is not None:
        return UpstreamError(overflow, status=400)
    if not isinstance(error, dict):
        return upstream_error(502, str(error) if error else "Upstream reported an error")
    code = error.get("code")
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    status = code if isinstance(code, int) and not isinstance(code, bool) and 400 <= code <= 599 else 502
    return upstream_error(status, error_message(error))
