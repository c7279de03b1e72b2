"""OpenAI Responses API stream events -> the Anthropic stream grammar, one block open at a time.

Each upstream output item becomes at most one block, in the upstream's order, indices 0, 1, 2, ...:
- `reasoning`: a thinking block from `response.reasoning_summary_text.delta` (summary parts a paragraph apart); at
  `response.output_item.done` its `encrypted_content` arrives and is sent as the block's `signature_delta`
  (responses_answer.signature). A reasoning item with neither summary nor encrypted content makes no block.
- `message`: a text block from `response.output_text.delta` (and `response.refusal.delta`). Whitespace before the
  first real text is held, and dropped if no text follows (Anthropic rejects whitespace-only text blocks on replay).
- `function_call`: a tool_use block opened at `response.output_item.added` (call id and name are known then), its
  arguments streamed from `response.function_call_arguments.delta` as `input_json_delta`.
An item whose deltas never came is filled from its `response.output_item.done` copy.

The end: `response.completed` / `response.incomplete` close the message (stop reason and usage as in
responses_answer.py); `response.failed` and an `error` event become an UpstreamError (the client's `error` event); a
body that ends before any of them was cut off, and is an error too. Tool arguments that are not JSON at a normal end
are a 502, as in the core's translator; after `max_output_tokens` they are passed on as cut.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ccproxy import UpstreamError
from ccproxy.wire import Event, ResponseContext, WireStreamTranslator
from ccproxy_openai.responses_answer import failure, message_text, signature, stop_reason, summary_text, usage

# Kinds of the open block.
_THINKING = "thinking"
_TEXT = "text"
_TOOL = "tool_use"


class ResponsesStreamTranslator(WireStreamTranslator):
    """Feeds on Responses API stream events (their data objects), returns Anthropic events."""

    def __init__(self, ctx: ResponseContext) -> None:
        super().__init__(ctx)
        self._next_index = 0
        self._open: str | None = None
        # output_index of the item the open block belongs to.
        self._open_item: Any = None
        # The open thinking block's summary part, and whether it has text yet.
        self._summary_index: Any = None
        self._thinking_text = False
        # Items (by output_index) whose content was streamed as deltas.
        self._streamed: set[Any] = set()
        self._held_space: list[str] = []
        self._arguments: list[str] = []
        self._tool_uses = 0

    def feed(self, chunk: dict[str, Any]) -> list[Event]:
        if self.done:
            return []
        events = self.start()
        kind = chunk.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            handler(self, chunk, events)
        return events

    def complete(self) -> list[Event]:
        raise UpstreamError(
            "Upstream stream ended before the response was complete (no response.completed)", status=502
        )

    # -- items -------------------------------------------------------------------------------------------------

    def _on_item_added(self, chunk: dict[str, Any], events: list[Event]) -> None:
        item = chunk.get("item")
        self._close(events)
        if isinstance(item, dict) and item.get("type") == "function_call":
            self._open_tool(chunk.get("output_index"), item, events)

    def _on_item_done(self, chunk: dict[str, Any], events: list[Event]) -> None:
        item = chunk.get("item")
        if not isinstance(item, dict):
            return
        key = chunk.get("output_index")
        kind = item.get("type")
        if kind == "reasoning":
            self._reasoning_done(key, item, events)
        elif kind == "message":
            if key not in self._streamed:
                self._on_text(key, message_text(item), events)
            self._held_space = []
            self._close(events)
        elif kind == "function_call":
            if not (self._open == _TOOL and self._open_item == key):
                self._open_tool(key, item, events)
            arguments = item.get("arguments")
            if key not in self._streamed and isinstance(arguments, str) and arguments:
                self._send_arguments(arguments, events)
            if item.get("status") != "incomplete":  # cut at max_output_tokens: passed on as it is
                self._check_arguments()
            self._close(events)

    # -- reasoning ---------------------------------------------------------------------------------------------

    def _on_summary_delta(self, chunk: dict[str, Any], events: list[Event]) -> None:
        text = chunk.get("delta")
        if not isinstance(text, str) or not text:
            return
        key = chunk.get("output_index")
        self._streamed.add(key)
        self._thinking(key, events)
        part = chunk.get("summary_index")
        if self._thinking_text and part != self._summary_index:
            text = "\n\n" + text
        self._summary_index = part
        self._thinking_text = True
        events.append(_delta(self._next_index - 1, {"type": "thinking_delta", "thinking": text}))

    def _reasoning_done(self, key: Any, item: dict[str, Any], events: list[Event]) -> None:
        sealed = signature(item.get("encrypted_content"))
        text = "" if key in self._streamed else summary_text(item)
        if text or sealed:
            self._thinking(key, events)
            if text:
                events.append(_delta(self._next_index - 1, {"type": "thinking_delta", "thinking": text}))
            if sealed:
                events.append(_delta(self._next_index - 1, {"type": "signature_delta", "signature": sealed}))
        self._close(events)

    def _thinking(self, key: Any, events: list[Event]) -> None:
        """Open the thinking block of reasoning item `key` unless it is open."""
        if self._open != _THINKING or self._open_item != key:
            self._open_block(_THINKING, key, {"type": "thinking", "thinking": "", "signature": ""}, events)
            self._summary_index = None
            self._thinking_text = False

    # -- text --------------------------------------------------------------------------------------------------

    def _on_text_delta(self, chunk: dict[str, Any], events: list[Event]) -> None:
        text = chunk.get("delta")
        if isinstance(text, str) and text:
            key = chunk.get("output_index")
            self._streamed.add(key)
            self._on_text(key, text, events)

    def _on_text(self, key: Any, text: str, events: list[Event]) -> None:
        if not (self._open == _TEXT and self._open_item == key):
            if not text or text.isspace():
                self._held_space.append(text)
                return
            text = "".join(self._held_space) + text
            self._held_space = []
            self._open_block(_TEXT, key, {"type": "text", "text": ""}, events)
        events.append(_delta(self._next_index - 1, {"type": "text_delta", "text": text}))

    # -- function calls ----------------------------------------------------------------------------------------

    def _open_tool(self, key: Any, item: dict[str, Any], events: list[Event]) -> None:
        block = {
            "type": "tool_use",
            "id": item["call_id"],
            "name": self.ctx.tool_names.to_client(item["name"]),
            "input": {},
        }
        self._open_block(_TOOL, key, block, events)
        self._arguments = []
        self._tool_uses += 1

    def _on_arguments_delta(self, chunk: dict[str, Any], events: list[Event]) -> None:
        fragment = chunk.get("delta")
        key = chunk.get("output_index")
        if isinstance(fragment, str) and fragment and self._open == _TOOL and self._open_item == key:
            self._streamed.add(key)
            self._send_arguments(fragment, events)

    def _send_arguments(self, fragment: str, events: list[Event]) -> None:
        self._arguments.append(fragment)
        events.append(_delta(self._next_index - 1, {"type": "input_json_delta", "partial_json": fragment}))

    def _check_arguments(self) -> None:
        text = "".join(self._arguments)
        if not text.strip():
            return
        try:
            json.loads(text)
        except ValueError:
            raise UpstreamError(
                "Upstream ended the answer with tool arguments that are not valid JSON", status=502
            ) from None

    # -- the end -----------------------------------------------------------------------------------------------

    def _on_end(self, chunk: dict[str, Any], events: list[Event]) -> None:
        response = chunk.get("response")
        if not isinstance(response, dict):
            response = {}
        reason = stop_reason(response, self._tool_uses > 0)
        if self._open == _TOOL and reason != "max_tokens":
            self._check_arguments()
        self._close(events)
        delta = {"stop_reason": reason, "stop_sequence": None}
        events.append(
            {"type": "message_delta", "delta": delta, "usage": usage(response, self.ctx.input_tokens_estimate)}
        )
        events.append({"type": "message_stop"})
        self.finished()

    def _on_failed(self, chunk: dict[str, Any], events: list[Event]) -> None:
        response = chunk.get("response")
        raise failure(response.get("error") if isinstance(response, dict) else None)

    def _on_error(self, chunk: dict[str, Any], events: list[Event]) -> None:
        # OpenAI puts code and message on the event itself; some gateways nest them in `error`.
        nested = chunk.get("error")
        raise failure(nested if isinstance(nested, dict) else chunk)

    # -- blocks ------------------------------------------------------------------------------------------------

    def _open_block(self, kind: str, key: Any, content_block: dict[str, Any], events: list[Event]) -> None:
        self._close(events)
        events.append({"type": "content_block_start", "index": self._next_index, "content_block": content_block})
        self._next_index += 1
        self._open = kind
        self._open_item = key

    def _close(self, events: list[Event]) -> None:
        if self._open is None:
            return
        events.append({"type": "content_block_stop", "index": self._next_index - 1})
        self._open = None
        self._open_item = None


def _delta(index: int, delta: dict[str, Any]) -> Event:
    return {"type": "content_block_delta", "index": index, "delta": delta}


# Event type -> the translator method that handles it, called with the translator. Functions, not a translator's
# bound methods kept on it: those made every stream's translator a reference cycle, left for the garbage collector.
_HANDLERS: dict[str, Callable[[ResponsesStreamTranslator, dict[str, Any], list[Event]], None]] = {
    "response.output_item.added": ResponsesStreamTranslator._on_item_added,
    "response.reasoning_summary_text.delta": ResponsesStreamTranslator._on_summary_delta,
    "response.output_text.delta": ResponsesStreamTranslator._on_text_delta,
    "response.refusal.delta": ResponsesStreamTranslator._on_text_delta,
    "response.function_call_arguments.delta": ResponsesStreamTranslator._on_arguments_delta,
    "response.output_item.done": ResponsesStreamTranslator._on_item_done,
    "response.completed": ResponsesStreamTranslator._on_end,
    "response.incomplete": ResponsesStreamTranslator._on_end,
    "response.failed": ResponsesStreamTranslator._on_failed,
    "error": ResponsesStreamTranslator._on_error,
}
