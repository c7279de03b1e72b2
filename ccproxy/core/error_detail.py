"""What an upstream's `error` object says, as one line for the client: its message and OpenRouter's `metadata`.

OpenRouter wraps a provider's failure as `{"code", "message": "Provider returned error", "metadata":
{"provider_name", "raw"}}`, where only `raw` (the provider's own body, a string or an object) says what went wrong,
and a moderation refusal as `{"code": 403, "metadata": {"reasons": [...], "flagged_input": ...}}`. The provider's name,
its raw answer (shortened) and the moderation reasons are appended to the message; `flagged_input` is not (it echoes
the user's own text). Errors are redacted where they leave the process, like every other message.
"""

from __future__ import annotations

from typing import Any

from ccproxy.core.jsoncodec import dumps_text

__all__ = ["FALLBACK_MESSAGE", "error_message"]

FALLBACK_MESSAGE = "Upstream reported an error"
MAX_RAW = 500  # characters of a provider's raw answer quoted


def error_message(error: dict[str, Any], fallback: str = FALLBACK_MESSAGE) -> str:
    """`error["message"]` (else `detail`, else `fallback`), with what OpenRouter's `metadata` adds in parentheses."""
    message = error.get("message") or error.get("detail")
    text = message if isinstance(message, str) and message else fallback
    metadata = error.get("metadata")
    extras = _metadata_extras(metadata) if isinstance(metadata, dict) else []
    return f"{text} ({'; '.join(extras)})" if extras else text


def _metadata_extras(metadata: dict[str, Any]) -> list[str]:
    extras: list[str] = []
    provider = metadata.get("provider_name")
    raw = metadata.get("raw")
    if raw is not None and not isinstance(raw, str):
        raw = dumps_text(raw)
    if isinstance(raw, str) and raw.strip():
        raw = raw.strip()
        quoted = raw if len(raw) <= MAX_RAW else raw[:MAX_RAW] + "..."
        extras.append(f"{provider}: {quoted}" if isinstance(provider, str) and provider else quoted)
    elif isinstance(provider, str) and provider:
        extras.append(f"provider: {provider}")
    reasons = metadata.get("reasons")
    if isinstance(reasons, list) and reasons and all(isinstance(reason, str) for reason in reasons):
        extras.append("flagged for: " + ", ".join(reasons))
    return extras
