"""A strict checker of Anthropic stream event sequences (what Claude Code enforces) and an accumulator."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterable
from typing import Any

# Every `stop_reason` the Messages API documents (wire.md 4.2).
STOP_REASONS = frozenset(
    {
        "end_turn",
        "max_tokens",
        "stop_sequence",
        "tool_use",
        "pause_turn",
        "refusal",
        "model_context_window_exceeded",
    }
)
# Which delta types each block type accepts (wire.md 4.3; "Content block is not a thinking block" otherwise).
DELTAS_FOR_BLOCK: dict[str, frozenset[str]] = {
    "text": frozenset({"text_delta"}),
    "tool_use": frozenset({"input_json_delta"}),
    "thinking": frozenset({"thinking_delta", "signature_delta"}),
}


class StreamGrammarError(AssertionError):
    """The event sequence is one a strict client (Claude Code, the anthropic SDK) would reject."""


class _OpenBlock:
    __slots__ = ("index", "kind", "signed", "text")

    def __init__(self, index: int, kind: str) -> None:
        self.index = index
        self.kind = kind
        self.text = ""
        self.signed = False


class GrammarChecker:
    """Checks events one at a time; call `end()` after the last one."""

    def __init__(self) -> None:
        self.started = False
        self.next_index = 0
        self.open: _OpenBlock | None = None
        self.message_delta_seen = False
        self.finished = False
        self.position = -1
        self._handlers: dict[str, Callable[[dict[str, Any]], None]] = {
            "message_start": self._message_start,
            "ping": self._ping,
            "content_block_start": self._block_start,
            "content_block_delta": self._block_delta,
            "content_block_stop": self._block_stop,
            "message_delta": self._message_delta,
            "message_stop": self._message_stop,
            "error": self._error,
        }

    def fail(self, message: str) -> None:
        raise StreamGrammarError(f"event #{self.position}: {message}")

    def event(self, event: dict[str, Any]) -> None:
        self.position += 1
        if self.finished:
            self.fail(f"{event.get('type')!r} after the stream ended")
        handler = self._handlers.get(str(event.get("type")))
        if handler is None:
            self.fail(f"unknown event type {event.get('type')!r}")
            return
        handler(event)

    def end(self) -> None:
        if not self.finished:
            self.fail("the stream ended without message_stop or error")

    def _require_started(self, what: str) -> None:
        if not self.started:
            self.fail(f"{what} before message_start")

    def _message_start(self, event: dict[str, Any]) -> None:
        if self.started:
            self.fail("second message_start")
        self.started = True
        message = event.get("message")
        if not isinstance(message, dict):
            self.fail("message_start without a message")
            return
        expected: dict[str, Any] = {
            "type": "message",
            "role": "assistant",
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        for key, value in expected.items():
            if message.get(key, "<missing>") != value:
                self.fail(f"message_start.message.{key} is {message.get(key, '<missing>')!r}, not {value!r}")
        if not isinstance(message.get("id"), str) or not message["id"]:
            self.fail("message_start.message.id missing")
        if not isinstance(message.get("model"), str):
            self.fail("message_start.message.model missing")
        usage = message.get("usage")
        if not isinstance(usage, dict) or not isinstance(usage.get("input_tokens"), int):
            self.fail("message_start.message.usage.input_tokens missing")
        elif not isinstance(usage.get("output_tokens"), int):
            self.fail("message_start.message.usage.output_tokens missing")

    def _ping(self, event: dict[str, Any]) -> None:
        self._require_started("ping")

    def _block_start(self, event: dict[str, Any]) -> None:
        self._require_started("content_block_start")
        if self.open is not None:
            self.fail(f"content_block_start while block {self.open.index} is open")
        if self.message_delta_seen:
            self.fail("content_block_start after message_delta")
        if event.get("index") != self.next_index:
            self.fail(f"content_block_start index {event.get('index')!r}, expected {self.next_index}")
        block = event.get("content_block")
        kind = block.get("type") if isinstance(block, dict) else None
        if not isinstance(block, dict) or kind not in DELTAS_FOR_BLOCK:
            self.fail(f"content_block_start with block {block!r}")
            return
        self._check_new_block(kind, block)
        self.open = _OpenBlock(self.next_index, kind)
        self.next_index += 1

    def _check_new_block(self, kind: str, block: dict[str, Any]) -> None:
        if kind == "text" and block.get("text") != "":
            self.fail("a text block must start empty")
        if kind == "thinking" and (block.get("thinking") != "" or block.get("signature", "") != ""):
            self.fail("a thinking block must start empty")
        if kind == "tool_use":
            if not isinstance(block.get("id"), str) or not block["id"]:
                self.fail("tool_use block without an id")
            if not isinstance(block.get("name"), str):
                self.fail("tool_use block without a name")
            if block.get("input") != {}:
                self.fail("tool_use block must start with input {}")

    def _block_delta(self, event: dict[str, Any]) -> None:
        self._require_started("content_block_delta")
        block = self.open
        if block is None or event.get("index") != block.index:
            self.fail(f"delta for block {event.get('index')!r}, which is not the open block")
            return
        delta = event.get("delta")
        kind = delta.get("type") if isinstance(delta, dict) else None
        if not isinstance(delta, dict) or kind not in DELTAS_FOR_BLOCK[block.kind]:
            self.fail(f"{kind!r} delta in a {block.kind} block")
            return
        if block.signed:
            self.fail("a thinking block received a delta after its signature")
        field = {
            "text_delta": "text",
            "input_json_delta": "partial_json",
            "thinking_delta": "thinking",
            "signature_delta": "signature",
        }[kind]
        value = delta.get(field)
        if not isinstance(value, str):
            self.fail(f"{kind} without a string {field}")
            return
        if kind == "signature_delta":
            if not value:
                self.fail("empty signature_delta")
            block.signed = True
        block.text += value if kind != "signature_delta" else ""

    def _block_stop(self, event: dict[str, Any]) -> None:
        self._require_started("content_block_stop")
        if self.open is None or event.get("index") != self.open.index:
            self.fail(f"content_block_stop for block {event.get('index')!r}, which is not the open block")
            return
        if self.open.kind == "text" and not self.open.text:
            self.fail("empty text block")
        self.open = None

    def _message_delta(self, event: dict[str, Any]) -> None:
        self._require_started("message_delta")
        if self.open is not None:
            self.fail(f"message_delta while block {self.open.index} is open")
        if self.message_delta_seen:
            self.fail("second message_delta")
        self.message_delta_seen = True
        delta = event.get("delta")
        if not isinstance(delta, dict) or delta.get("stop_reason") not in STOP_REASONS:
            self.fail(f"message_delta without a valid stop_reason: {delta!r}")
        usage = event.get("usage")
        if not isinstance(usage, dict) or not isinstance(usage.get("output_tokens"), int):
            self.fail("message_delta.usage.output_tokens missing")

    def _message_stop(self, event: dict[str, Any]) -> None:
        self._require_started("message_stop")
        if not self.message_delta_seen:
            self.fail("message_stop without message_delta")
        self.finished = True

    def _error(self, event: dict[str, Any]) -> None:
        error = event.get("error")
        if not isinstance(error, dict) or not isinstance(error.get("type"), str):
            self.fail("error event without error.type")
        elif not isinstance(error.get("message"), str):
            self.fail("error event without error.message")
        self.finished = True


def check_stream(events: Iterable[dict[str, Any]]) -> None:
    """Raise StreamGrammarError unless `events` is a complete, well-formed Anthropic stream."""
    checker = GrammarChecker()
    for event in events:
        checker.event(event)
    checker.end()


def accumulate(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The final message a client builds from the events (as the anthropic SDK does).

    Tool input is the JSON of the joined partial_json (`""` -> `{}`); message_delta usage overrides
    message_start usage field by field. An error event raises StreamGrammarError.
    """
    message: dict[str, Any] = {}
    partial: dict[int, list[str]] = {}
    for event in events:
        kind = event["type"]
        if kind == "message_start":
            message = copy.deepcopy(event["message"])
        elif kind == "content_block_start":
            message["content"].append(copy.deepcopy(event["content_block"]))
            partial[event["index"]] = []
        elif kind == "content_block_delta":
            _apply_delta(message["content"][event["index"]], event["delta"], partial[event["index"]])
        elif kind == "content_block_stop":
            block = message["content"][event["index"]]
            if block["type"] == "tool_use":
                joined = "".join(partial[event["index"]])
                block["input"] = json.loads(joined) if joined else {}
        elif kind == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
            message["stop_sequence"] = event["delta"].get("stop_sequence")
            message["usage"].update(event.get("usage") or {})
        elif kind == "error":
            raise StreamGrammarError(f"stream ended with an error: {event['error']!r}")
    return message


def _apply_delta(block: dict[str, Any], delta: dict[str, Any], partial: list[str]) -> None:
    kind = delta["type"]
    if kind == "text_delta":
        block["text"] += delta["text"]
    elif kind == "thinking_delta":
        block["thinking"] += delta["thinking"]
    elif kind == "signature_delta":
        block["signature"] = delta["signature"]
    elif kind == "input_json_delta":
        partial.append(delta["partial_json"])


def parse_sse(data: bytes) -> list[dict[str, Any]]:
    """Anthropic SSE bytes -> event dicts, checking the framing: `event: <type>`, then one `data` line whose
    JSON `type` is the same, events separated by one blank line."""
    events = []
    text = data.decode("utf-8")
    if not text.endswith("\n\n"):
        raise StreamGrammarError("SSE body does not end with a blank line")
    for block in text[:-2].split("\n\n"):
        lines = block.split("\n")
        if len(lines) != 2 or not lines[0].startswith("event: ") or not lines[1].startswith("data: "):
            raise StreamGrammarError(f"malformed SSE event {block!r}")
        event = json.loads(lines[1][len("data: ") :])
        if event.get("type") != lines[0][len("event: ") :]:
            raise StreamGrammarError(f"event name {lines[0]!r} does not match data type {event.get('type')!r}")
        events.append(event)
    return events


def streamed_message(raw: bytes) -> dict[str, Any]:
    """The message a strict client assembles from an SSE body, after checking the stream grammar."""
    events = parse_sse(raw)
    check_stream(events)
    return accumulate(events)


def wire_text(message: dict[str, Any]) -> str:
    return "".join(block["text"] for block in message["content"] if block["type"] == "text")
