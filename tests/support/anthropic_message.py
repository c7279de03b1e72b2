"""A strict checker of a non-stream Anthropic message: what a client may rely on (wire.md 4.2)."""

from __future__ import annotations

from typing import Any

from tests.support.anthropic_stream import STOP_REASONS

USAGE_FIELDS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")


class MessageShapeError(AssertionError):
    """The message is not one a strict client (the anthropic SDK's types, Claude Code) would accept."""


def _require(condition: bool, what: str) -> None:
    if not condition:
        raise MessageShapeError(what)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def check_block(block: Any) -> None:
    _require(isinstance(block, dict), f"content block {block!r} is not an object")
    kind = block.get("type")
    if kind == "text":
        _require(_is_str(block.get("text")), f"text block without string text: {block!r}")
    elif kind == "thinking":
        _require(_is_str(block.get("thinking")), f"thinking block without string thinking: {block!r}")
        _require(_is_str(block.get("signature")), f"thinking block without string signature: {block!r}")
    elif kind == "tool_use":
        _require(_is_str(block.get("id")) and bool(block["id"]), f"tool_use block without an id: {block!r}")
        _require(_is_str(block.get("name")), f"tool_use block without a string name: {block!r}")
        _require(isinstance(block.get("input"), dict), f"tool_use input is not an object: {block!r}")
    else:
        raise MessageShapeError(f"unexpected content block type {kind!r}")


def check_message(message: Any) -> None:
    """Raise MessageShapeError unless `message` is a complete, well-formed Anthropic message."""
    _require(isinstance(message, dict), "the message is not an object")
    _require(message.get("type") == "message" and message.get("role") == "assistant", "not an assistant message")
    _require(_is_str(message.get("id")) and message["id"].startswith("msg_"), "message id missing")
    _require(_is_str(message.get("model")), "model missing")
    _require(message.get("stop_reason") in STOP_REASONS, f"invalid stop_reason {message.get('stop_reason')!r}")
    _require("stop_sequence" in message, "stop_sequence missing")
    content = message.get("content")
    _require(isinstance(content, list) and bool(content), "content is not a non-empty list")
    for block in content:
        check_block(block)
    kinds = [block["type"] for block in content]
    order = {"thinking": 0, "text": 1, "tool_use": 2}
    _require(kinds == sorted(kinds, key=order.__getitem__), f"blocks out of order: {kinds}")
    usage = message.get("usage")
    _require(isinstance(usage, dict), "usage missing")
    for field in USAGE_FIELDS:
        value = usage.get(field)
        _require(type(value) is int and value >= 0, f"usage.{field} is {value!r}")
