"""The text of a request or an answer that rules look at: every string a person or a tool wrote, each replaceable.

Visited: the system prompt; in every message, text, thinking, tool results (text and nested blocks), tool inputs
(every string value at any depth; keys are left alone, they are the tool's schema), plain-text documents and the
titles / contexts of documents and search results. Not visited: images and PDFs (binary), redacted thinking and
signatures (opaque), ids, tool names, and the tool definitions (`tools`): those come from the client software, not
from the user (Claude Code sends the same ~30 KB of them with every request, and broad patterns would refuse every
request because of them).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

# fn(text) -> the replacement, or None to leave the text as it is.
Visit = Callable[[str], str | None]

_TEXT_KEYS = ("text", "thinking", "title", "context")
_OPAQUE_BLOCKS = frozenset({"image", "redacted_thinking"})


class CleanMessages:
    """Messages one rule found nothing in, by identity. ccproxy shares the messages a conversation repeats between its
    requests, unchanged (`GuardrailContext.reused_messages`), so the rule need not read them again. Each is held
    while remembered, so its id names it; the oldest are forgotten first."""

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._held: dict[int, Any] = {}

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, message: Any) -> bool:
        return self._held.get(id(message)) is message

    def add(self, message: Any) -> None:
        held = self._held
        held[id(message)] = message
        if len(held) > self.limit:
            del held[next(iter(held))]


def walk_request(body: dict[str, Any], visit: Visit, clean: CleanMessages | None = None, reused: int = 0) -> None:
    """Visit the text of an Anthropic request (system and messages), replacing it. The system prompt is replaced in
    place; a message with text to replace is replaced by a copy in the request's list, never changed itself: ccproxy
    shares the messages a conversation repeats between its requests (`Guardrail.amends_messages`). With `clean`,
    the first `reused` messages (shared ones) are skipped when `clean` holds them, and remembered there when nothing
    in them is replaced."""
    _content(body, "system", visit)
    messages = body.get("messages")
    if not isinstance(messages, list):
        return
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        remember = clean if index < reused else None
        if remember is not None and message in remember:
            continue
        replacements = _replacements(message, visit)
        if replacements:
            copied = copy.deepcopy(message)
            _content(copied, "content", replacements.get)
            messages[index] = copied
        elif remember is not None:
            remember.add(message)


def _replacements(message: dict[str, Any], visit: Visit) -> dict[str, str]:
    """What `visit` replaces in `message`'s text (each text visited once, as in place), leaving it as it is."""
    found: dict[str, str] = {}

    def probe(text: str) -> None:
        replaced = visit(text)
        if replaced is not None:
            found[text] = replaced

    _content(message, "content", probe)
    return found


def walk_message(message: dict[str, Any], visit: Visit) -> None:
    """Visit the text of an Anthropic answer (its content blocks), replacing in place."""
    _content(message, "content", visit)


def _content(parent: dict[str, Any], key: str, visit: Visit) -> None:
    """`parent[key]`: a string, or a list of content blocks."""
    value = parent.get(key)
    if isinstance(value, str):
        _replace(parent, key, value, visit)
    elif isinstance(value, list):
        for block in value:
            if isinstance(block, dict):
                _block(block, visit)


def _block(block: dict[str, Any], visit: Visit) -> None:
    if block.get("type") in _OPAQUE_BLOCKS:
        return
    for key in _TEXT_KEYS:
        value = block.get(key)
        if isinstance(value, str):
            _replace(block, key, value, visit)
    if "input" in block:  # tool_use, server_tool_use
        _replace_value(block, "input", visit)
    if "content" in block:  # tool_result, search_result, web_search_tool_result
        _content(block, "content", visit)
    source = block.get("source")
    if isinstance(source, dict):  # documents: plain text, or content blocks
        if source.get("type") == "text" and isinstance(source.get("data"), str):
            _replace(source, "data", source["data"], visit)
        elif source.get("type") == "content":
            _content(source, "content", visit)


def _json_value(value: Any, visit: Visit) -> Any:
    """Every string value inside a JSON value, replaced where `visit` says so."""
    if isinstance(value, str):
        replaced = visit(value)
        return value if replaced is None else replaced
    if isinstance(value, dict):
        for key in value:
            _replace_value(value, key, visit)
    elif isinstance(value, list):
        for position in range(len(value)):
            _replace_value(value, position, visit)
    return value


def _replace_value(parent: Any, key: Any, visit: Visit) -> None:
    """`parent[key]` with its strings replaced: written back only when it is another value (a string)."""
    value = parent[key]
    replaced = _json_value(value, visit)
    if replaced is not value:
        parent[key] = replaced


def _replace(parent: dict[str, Any], key: str, value: str, visit: Visit) -> None:
    replaced = visit(value)
    if replaced is not None:
        parent[key] = replaced
