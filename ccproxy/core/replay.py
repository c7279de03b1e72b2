"""A whole Anthropic message as the events of its stream: for an upstream that answers a stream request at once."""

from __future__ import annotations

from typing import Any

from ccproxy.core.jsoncodec import dumps_text


def message_events(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Every event after `message_start` for `message` (a convert_response result), up to `message_stop`.

    Each block is started empty and filled by one delta, as a stream would; an empty text block is left out,
    because a streamed text block is never empty (and Claude Code rejects one).
    """
    events: list[dict[str, Any]] = []
    index = 0
    for block in message["content"]:
        deltas = _block_deltas(block)
        if deltas is None:
            continue
        events.append({"type": "content_block_start", "index": index, "content_block": _empty(block)})
        events.extend({"type": "content_block_delta", "index": index, "delta": delta} for delta in deltas)
        events.append({"type": "content_block_stop", "index": index})
        index += 1
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": message.get("stop_sequence")}
    events.append({"type": "message_delta", "delta": delta, "usage": message["usage"]})
    events.append({"type": "message_stop"})
    return events


def _block_deltas(block: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The deltas that fill `block`; None for a block a stream would not carry."""
    kind = block["type"]
    if kind == "text":
        return [{"type": "text_delta", "text": block["text"]}] if block["text"] else None
    if kind == "thinking":
        deltas = [{"type": "thinking_delta", "thinking": block["thinking"]}] if block["thinking"] else []
        if block["signature"]:
            deltas.append({"type": "signature_delta", "signature": block["signature"]})
        return deltas
    if kind == "tool_use":
        return [{"type": "input_json_delta", "partial_json": dumps_text(block["input"])}] if block["input"] else []
    return None


def _empty(block: dict[str, Any]) -> dict[str, Any]:
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": ""}
    if kind == "thinking":
        return {"type": "thinking", "thinking": "", "signature": ""}
    return {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
