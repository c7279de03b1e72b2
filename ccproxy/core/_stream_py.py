"""OpenAI `chat.completion.chunk` dicts -> Anthropic stream events, sans-IO (wire.md 4.3 and 4.10).

Decisions a reader should know:
- One block is open at a time and indices run 0, 1, 2, ... (Claude Code rejects anything else).
- Reasoning that arrives after text or a tool call has started is dropped: reopening a thinking block would
  split the answer into fragments (cc-switch#5692), and Anthropic never puts thinking after text in a message.
- A tool block opens once its id and name are known; argument fragments that came earlier are sent then. A
  block that would have to close while the open tool call's arguments are still incomplete JSON (interleaved
  tool indices, text after a tool call) waits in a queue instead, so no tool's arguments are cut in two.
- Whitespace-only text is held until real text follows and dropped if a tool call or the end comes first:
  models emit stray blanks around tool calls, and Anthropic rejects whitespace-only text blocks on replay.
- A tool call whose id never arrives gets a `toolu_` id derived from the message id (deterministic, no RNG).
- `message_delta` is held until usage arrives after the finish reason, or until `finish()`.

How a stream ends (wire.md 4.11 "Truncated streams"):
- `finish()` is for `data: [DONE]`: the upstream says the answer is complete. Servers send it only after the last
  token, and some never set a finish reason, so `[DONE]` without one is a normal end (`end_turn`, or `tool_use`
  after tool calls).
- `end_of_body()` is for the end of the body without `[DONE]`. After a finish reason that is a complete answer
  whose usage chunk or `[DONE]` was lost; without one the answer was cut (connection closed, close-delimited body
  cut short), and the client gets an `error` event instead of a truncated answer that looks complete.
- Tool arguments that are not valid JSON when the answer ends: after `finish_reason: "length"` they are passed on
  as they are, with `stop_reason: "max_tokens"` (exactly what Anthropic sends when it cuts a tool call at the
  token limit, so clients know the call is incomplete); after any other end the upstream sent a broken call, and
  the client gets an `error` event rather than a call it would run with arguments it cannot parse. convert_response
  does the same for non-stream answers.

Plain chunks without their parse (`feed_payload`, `learn_shape`): a chunk that only continues the open text block
(or the open tool call's arguments) is, byte for byte, the previous such chunk with another string (and, from
OpenAI, another random `obfuscation` padding). Its shape, learnt from a parsed chunk and proved by parsing it with
other strings in those places, lets the fused path take the string out of the bytes (and the staged path build
just its delta event: `payload_events`); anything else about the chunk
(a finish reason, a duplicate key, a string that is not one whole JSON string) makes it miss, and the chunk is
parsed as always.

Malformed chunks: every value is type-checked where the chunk is taken apart (a choice that is not an object, a
finish reason or text that is not a string, ...). What has a sensible reading is read that way, the rest is
ignored like an unknown field; errors are only raised for what the upstream reports as an error.
"""

from __future__ import annotations

import hashlib
from typing import Any

from orjson import dumps as orjson_dumps
from orjson import loads as orjson_loads

from ccproxy.core._sse_py import encode_events
from ccproxy.core._usage_py import anthropic_usage, error_from_body, stop_reason
from ccproxy.core.jsoncodec import dumps, dumps_text, loads
from ccproxy.core.plan import ResponseContext
from ccproxy.core.replay import message_events
from ccproxy.errors import ProxyError, UpstreamError

__all__ = ["StreamTranslator", "error_event"]

# Kinds of the open block.
_NONE = 0
_THINKING = 1
_TEXT = 2
_TOOL = 3

# OpenRouter `reasoning_details` item type -> the field holding its text. `reasoning.encrypted` has no
# Anthropic counterpart that could be replayed safely (its data may be another vendor's), so it is not shown.
DETAIL_TEXT_FIELDS: dict[str, str] = {"reasoning.text": "text", "reasoning.summary": "summary"}

# The key of a legacy `delta.function_call`; tool_calls indices are never negative.
_FUNCTION_CALL_KEY = -1

# The SSE bytes of a text or input_json delta event around its block index and its JSON string: exactly what
# encode_event writes for the event dict (same keys, same order, compact).
_DELTA_HEAD = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_TEXT_DELTA_MIDDLE = b',"delta":{"type":"text_delta","text":'
_ARGUMENTS_DELTA_MIDDLE = b',"delta":{"type":"input_json_delta","partial_json":'
_DELTA_TAIL = b"}}\n\n"

# Text chunks read without parsing them (StreamTranslator.feed_payload): how many times per stream the shape of a
# plain text chunk is learnt (again: a provider whose chunks differ in more than their text, e.g. a `created` that
# moves, is given a few chances, not one per chunk), and the JSON key whose string value may differ as well
# (OpenAI's random-length padding, which nothing reads).
SHAPE_TRIES = 8
_CONTENT_KEY = b'"content":'
_ARGUMENTS_KEY = b'"arguments":'
_PADDING_KEY = b'"obfuscation":'
_QUOTE = 0x22


def detail_text_field(detail: Any) -> str | None:
    """The field holding the text of a `reasoning_details` item; None for kinds that are not shown."""
    kind = detail.get("type") if isinstance(detail, dict) else None
    return DETAIL_TEXT_FIELDS.get(kind) if isinstance(kind, str) else None


def error_event(ctx: ResponseContext, error: ProxyError) -> dict[str, Any]:
    """The `error` event that ends a failed stream; its message is what the client may see (ResponseContext)."""
    return {"type": "error", "error": {"type": error.error_type, "message": ctx.public_message(error.message)}}


def generated_tool_id(message_id: str, key: int) -> str:
    """A stable `toolu_` id for a tool call the upstream sent without one."""
    return "toolu_" + hashlib.sha256(f"{message_id}:{key}".encode()).hexdigest()[:24]


def arguments_text(arguments: Any) -> str:
    """Tool arguments as JSON text; a few backends send an object instead of a string."""
    if isinstance(arguments, str):
        return arguments
    if arguments is None:
        return ""
    return dumps_text(arguments)


class _ToolCall:
    """One upstream tool call, keyed by its OpenAI `index`."""

    __slots__ = ("args", "block", "checked", "closed", "complete", "id", "key", "name", "queued", "sent")

    def __init__(self, key: int) -> None:
        self.key = key
        self.id = ""
        self.name = ""
        self.args: list[str] = []
        # Fragments already sent as input_json_delta.
        self.sent = 0
        # Anthropic block index once started, else -1.
        self.block = -1
        self.queued = False
        self.closed = False
        # Cached answer of "are the arguments a complete JSON value", valid for `checked` fragments.
        self.checked = -1
        self.complete = False

    def arguments_complete(self) -> bool:
        if self.checked != len(self.args):
            self.checked = len(self.args)
            try:
                loads("".join(self.args))
                self.complete = True
            except ValueError:
                self.complete = False
        return self.complete


class StreamTranslator:
    """Feeds on OpenAI chunks, returns Anthropic events; one instance per response."""

    __slots__ = (
        "_arguments_head",
        "_arguments_key",
        "_arguments_shape",
        "_ctx",
        "_detail_index",
        "_done",
        "_finish_reason",
        "_held_space",
        "_next_index",
        "_open",
        "_open_tool",
        "_past_thinking",
        "_pending_text",
        "_shape",
        "_shape_text",
        "_shape_tries",
        "_signature",
        "_started",
        "_text_head",
        "_tool_blocks",
        "_tools",
        "_usage",
        "_waiting",
    )

    def __init__(self, ctx: ResponseContext, shapes: bool = False) -> None:
        """`shapes`: learn the shapes of plain chunks (`learn_shape`), for a caller that reads payloads with
        `feed_payload` / `payload_events` and calls `learn_shape` after each chunk it parses (StreamPipeline)."""
        self._ctx = ctx
        self._started = False
        self._done = False
        self._next_index = 0
        self._open = _NONE
        self._open_tool: _ToolCall | None = None
        # Real signature for the open thinking block, sent just before its content_block_stop.
        self._signature = ""
        # `index` of the reasoning_details item the open thinking block belongs to.
        self._detail_index: Any = None
        # Text or a tool call has started: reasoning from now on is dropped.
        self._past_thinking = False
        self._tools: dict[int, _ToolCall] = {}
        # Blocks waiting for the open tool call's arguments to complete; None stands for `_pending_text`.
        self._waiting: list[_ToolCall | None] = []
        self._pending_text: list[str] = []
        # Whitespace-only text received while no text block is open.
        self._held_space: list[str] = []
        self._tool_blocks = 0
        self._finish_reason: str | None = None
        self._usage: dict[str, Any] | None = None
        # SSE bytes before the JSON string of a text / input_json delta of the open block.
        self._text_head = b""
        self._arguments_head = b""
        # A plain text chunk's bytes around its text (and padding): (head, middle, tail); see feed_payload. The
        # same for an arguments chunk, and the tool call (`index`) it was learnt for.
        self._shape: tuple[bytes, bytes, bytes] | None = None
        self._arguments_shape: tuple[bytes, bytes, bytes] | None = None
        self._arguments_key = -2
        # The text (arguments) of the last chunk `_text_sse` (`_arguments_sse`) encoded while a shape may still be
        # learnt from it.
        self._shape_text: str | None = None
        self._shape_tries = SHAPE_TRIES if shapes else 0

    @property
    def done(self) -> bool:
        """True once message_stop or an error event has been produced; later input is ignored."""
        return self._done

    @property
    def upstream_usage(self) -> dict[str, Any] | None:
        """The last `usage` object the upstream sent, as it sent it (e.g. for its `cost`); None before one came."""
        return self._usage

    def start(self) -> list[dict[str, Any]]:
        """message_start and a ping: sent as soon as the upstream has answered 200."""
        if self._started:
            return []
        self._started = True
        ctx = self._ctx
        message: dict[str, Any] = {
            "id": ctx.message_id,
            "type": "message",
            "role": "assistant",
            "content": [],
            "model": ctx.model,
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {
                "input_tokens": ctx.input_tokens_estimate,
                "output_tokens": 1,
                "cache_creation_input_tokens": 0,
                "cache_read_input_tokens": 0,
            },
        }
        return [{"type": "message_start", "message": message}, {"type": "ping"}]

    def feed(self, chunk: dict[str, Any]) -> list[dict[str, Any]]:
        """Events for one parsed chunk. Raises UpstreamError for an error reported inside the stream."""
        if self._done:
            return []
        if self._shape_tries and self._open >= _TEXT:
            self._note_plain(chunk)  # the staged path learns shapes from the chunks it parses too
        error = chunk.get("error")
        if error:
            raise error_from_body(error)
        choices = chunk.get("choices")
        if not choices and chunk.get("object") == "error":  # vLLM's bare error object (its HTTP error body's shape)
            raise error_from_body(chunk)
        events = self.start() if not self._started else []
        if choices and type(choices) is list:
            choice = choices[0]
            # Only choice 0 is translated; a missing or null index means 0.
            if type(choice) is not dict or choice.get("index"):
                choice = _choice_zero(choices)
            if choice:
                self._on_choice(choice, events)
        usage = chunk.get("usage")
        if usage:
            self._on_usage(usage, events)
        return events

    def feed_sse(self, chunk: dict[str, Any]) -> bytes:
        """`feed` encoded: the SSE bytes of its events, as `encode_event` writes them.

        Most chunks only add text or tool arguments to the open block; those are encoded straight from the
        chunk, without building the event dicts. Everything else goes through `feed`.
        """
        if self._open >= _TEXT and not self._done:
            delta = _plain_delta(chunk)
            if delta is not None:
                encoded = self._text_sse(delta) if self._open == _TEXT else self._arguments_sse(delta)
                if encoded is not None:
                    return encoded
        return encode_events(self.feed(chunk))

    def finish(self) -> list[dict[str, Any]]:
        """Close everything at `data: [DONE]`; idempotent. Raises UpstreamError for broken tool arguments."""
        if self._done:
            return []
        events = self.start() if not self._started else []
        self._end(events)
        return events

    def end_of_body(self) -> list[dict[str, Any]]:
        """Close everything at the end of the upstream body when `[DONE]` did not come; idempotent.

        Raises UpstreamError when no finish reason arrived either: the answer was cut off.
        """
        if self._done:
            return []
        if self._finish_reason is None:
            raise UpstreamError(
                "Upstream stream ended before the answer was complete (no finish_reason and no [DONE])", status=502
            )
        return self.finish()

    def replay(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        """The events of a whole Anthropic message, for an upstream that answered with one completion."""
        if self._done:
            return []
        events = self.start() if not self._started else []
        events.extend(message_events(message))
        self._done = True
        return events

    def error_events(self, error: ProxyError) -> list[dict[str, Any]]:
        """The `error` event that ends a stream after a failure; nothing is closed (the client discards the
        message)."""
        if self._done:
            return []
        self._done = True
        return [error_event(self._ctx, error)]

    # -- encoded fast paths --------------------------------------------------------------------------------

    def feed_payload(self, payload: bytes) -> bytes | None:
        """`feed_sse` of the chunk in `payload`, without parsing it, when it only continues the open text block or
        the open tool call's arguments and is shaped like the last such chunk learnt (`learn_shape`): the same bytes
        outside its string (and outside OpenAI's padding string). None for anything else: the caller parses the
        payload and calls `feed_sse`, then `learn_shape`.

        Why this is the same: the bytes around the string are those of a chunk that took the text (or arguments)
        path, proved to parse with the string (and padding) in exactly these places; the string is one whole JSON
        string (parsed here, or it is not taken), so the chunk parses to that chunk with another string, and the
        path depends on nothing else but the open block (for arguments: the same open tool call, no block waiting),
        checked here too. Most chunks of a long answer or a long tool call are such chunks.
        """
        if self._done:
            return None
        if self._open == _TEXT:
            found = self._shaped_text(payload)
            return None if found is None else b"".join((self._text_head, _as_written(*found), _DELTA_TAIL))
        found = self._shaped_arguments(payload)
        return None if found is None else b"".join((self._arguments_head, _as_written(*found), _DELTA_TAIL))

    def learn_shape(self, payload: bytes, chunk: dict[str, Any]) -> bool:
        """After `feed_sse(chunk)` for `payload`: if that was a plain text or arguments chunk, keep where its string
        (and OpenAI's padding) sit in its bytes, proved by parsing the bytes with other strings there (see
        feed_payload). False once shapes cannot help this stream (none learnt, no tries left): the caller may stop
        offering payloads and chunks."""
        text = self._shape_text
        if text is not None:
            self._shape_text = None
            self._shape_tries -= 1
            arguments = self._open == _TOOL
            shape = _learnt_shape(payload, chunk, text, _ARGUMENTS_KEY if arguments else _CONTENT_KEY)
            if shape is not None and arguments and self._open_tool is not None:
                self._arguments_shape = shape
                self._arguments_key = self._open_tool.key
            elif shape is not None and not arguments:
                self._shape = shape
        return self._shape_tries > 0 or self._shape is not None or self._arguments_shape is not None

    def payload_events(self, payload: bytes) -> list[dict[str, Any]] | None:
        """`feed` of the chunk in `payload` without parsing it: `feed_payload` for the staged path, which needs the
        event (its one delta) rather than its bytes. None for anything else: parse it, `feed`, then `learn_shape`."""
        if self._done:
            return None
        if self._open == _TEXT:
            found = self._shaped_text(payload)
            if found is None:
                return None
            return [_delta(self._next_index - 1, {"type": "text_delta", "text": found[0]})]
        found = self._shaped_arguments(payload)
        if found is None or self._open_tool is None:
            return None
        return [_delta(self._open_tool.block, {"type": "input_json_delta", "partial_json": found[0]})]

    def _shaped_text(self, payload: bytes) -> tuple[str, bytes] | None:
        """The text of a chunk shaped like the learnt text chunk, and its JSON string as sent (see feed_payload)."""
        shape = self._shape
        return None if shape is None else _shaped_string(payload, shape)

    def _shaped_arguments(self, payload: bytes) -> tuple[str, bytes] | None:
        """The fragment of a chunk shaped like the learnt arguments chunk of the open tool call, and its JSON string,
        added to that call as `_on_arguments` adds it when no block is waiting (see feed_payload)."""
        tool = self._open_tool
        shape = self._arguments_shape
        if shape is None or tool is None or tool.key != self._arguments_key or not tool.name or self._waiting:
            return None
        found = _shaped_string(payload, shape)
        if found is not None:
            tool.args.append(found[0])
            tool.sent += 1
        return found

    def _note_plain(self, chunk: dict[str, Any]) -> None:
        """Before `feed` takes `chunk` apart: if `feed_sse` would have written it on a fast path (it only continues
        the open text block or tool call's arguments), note its string for `learn_shape`, as that path does."""
        delta = _plain_delta(chunk)
        if delta is None:
            return
        if self._open == _TEXT:
            self._shape_text = _plain_text(delta)
        elif self._open_tool is not None:
            self._shape_text = self._plain_fragment(delta, self._open_tool)

    def _plain_fragment(self, delta: dict[str, Any], tool: _ToolCall) -> str | None:
        """The arguments fragment of a delta that only continues the open tool call `tool`; None for any other."""
        calls = delta.get("tool_calls")
        if not tool.name or self._waiting or type(calls) is not list or len(calls) != 1:
            return None
        entry = calls[0]
        index = entry.get("index") if type(entry) is dict else None
        if type(index) is not int or index != tool.key or delta.get("content"):
            return None
        function = entry.get("function")
        fragment = function.get("arguments") if type(function) is dict else None
        if type(fragment) is not str or not fragment or _has_more_than_content(delta):
            return None
        return fragment

    def _text_sse(self, delta: dict[str, Any]) -> bytes | None:
        """A delta that only continues the open text block, encoded; None for any other delta."""
        text = _plain_text(delta)
        if text is None:
            return None
        if self._shape_tries:
            self._shape_text = text
        try:
            encoded = orjson_dumps(text)  # orjson itself: no Python frame per delta in the compiled core
        except TypeError:  # a lone surrogate: `dumps` escapes it
            encoded = dumps(text)
        return b"".join((self._text_head, encoded, _DELTA_TAIL))

    def _arguments_sse(self, delta: dict[str, Any]) -> bytes | None:
        """A delta that only continues the open tool call's arguments, encoded; None for any other delta."""
        tool = self._open_tool
        fragment = None if tool is None else self._plain_fragment(delta, tool)
        if tool is None or fragment is None:
            return None
        # What _on_arguments does for the open tool call when no block is waiting.
        tool.args.append(fragment)
        tool.sent += 1
        if self._shape_tries:
            self._shape_text = fragment
        try:
            encoded = orjson_dumps(fragment)
        except TypeError:  # a lone surrogate: `dumps` escapes it
            encoded = dumps(fragment)
        return b"".join((self._arguments_head, encoded, _DELTA_TAIL))

    # -- chunk parts -------------------------------------------------------------------------------------

    def _on_choice(self, choice: dict[str, Any], events: list[dict[str, Any]]) -> None:
        delta = choice.get("delta")
        if delta and type(delta) is dict:
            self._on_delta(delta, events)
        finish_reason = choice.get("finish_reason")
        if finish_reason and isinstance(finish_reason, str):
            self._on_finish_reason(finish_reason, choice, events)

    def _on_delta(self, delta: dict[str, Any], events: list[dict[str, Any]]) -> None:
        # Order inside one delta follows Anthropic's block order: thinking, text, tool calls.
        details = delta.get("reasoning_details")
        if details and type(details) is list:
            self._on_reasoning_details(details, events)
        else:
            # OpenRouter mirrors reasoning_details into `reasoning`; details win, they carry the signatures.
            reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            if reasoning and isinstance(reasoning, str):
                self._on_reasoning(reasoning, "", None, events)
        content = delta.get("content")
        if content:
            if isinstance(content, str):
                self._on_text(content, events)
            else:
                self._on_content_parts(content, events)
        refusal = delta.get("refusal")
        if refusal and isinstance(refusal, str):
            self._on_text(refusal, events)
        tool_calls = delta.get("tool_calls")
        if tool_calls and type(tool_calls) is list:
            for entry in tool_calls:
                if type(entry) is dict:
                    self._on_tool_fragment(entry, events)
        function_call = delta.get("function_call")
        if function_call and type(function_call) is dict:
            self._on_function_call(function_call, events)

    def _on_finish_reason(self, reason: str, choice: dict[str, Any], events: list[dict[str, Any]]) -> None:
        if reason == "error":
            raise error_from_body(choice.get("error") or {"message": "Upstream ended the stream with an error"})
        if self._finish_reason is None:
            if reason != "length":
                self._check_tool_arguments()
            self._finish_reason = reason
        self._flush_blocks(events)

    def _on_usage(self, usage: Any, events: list[dict[str, Any]]) -> None:
        if not isinstance(usage, dict):
            return
        self._usage = usage
        if self._finish_reason is not None:
            self._end(events)

    # -- reasoning -----------------------------------------------------------------------------------------

    def _on_reasoning_details(self, details: list[Any], events: list[dict[str, Any]]) -> None:
        for detail in details:
            field = detail_text_field(detail)
            if field is not None:
                text = detail.get(field)
                signature = detail.get("signature")
                self._on_reasoning(
                    text if isinstance(text, str) else "",
                    signature if isinstance(signature, str) else "",
                    detail.get("index"),
                    events,
                )

    def _on_reasoning(self, text: str, signature: str, detail_index: Any, events: list[dict[str, Any]]) -> None:
        if self._past_thinking or not (text or signature):
            return
        if self._open != _THINKING or (detail_index is not None and detail_index != self._detail_index):
            self._open_block(_THINKING, {"type": "thinking", "thinking": "", "signature": ""}, events)
            self._detail_index = detail_index
        if text:
            events.append(_delta(self._next_index - 1, {"type": "thinking_delta", "thinking": text}))
        if signature:
            self._signature = signature

    # -- text ------------------------------------------------------------------------------------------------

    def _on_text(self, text: str, events: list[dict[str, Any]]) -> None:
        if self._open == _TEXT:
            events.append(_delta(self._next_index - 1, {"type": "text_delta", "text": text}))
            return
        if text.isspace():
            self._held_space.append(text)
            return
        if self._held_space:
            text = "".join(self._held_space) + text
            self._held_space = []
        self._past_thinking = True
        if self._pending_text:
            self._pending_text.append(text)
        elif self._blocked(events):
            self._pending_text.append(text)
            self._waiting.append(None)
        else:
            self._start_text(text, events)

    def _on_content_parts(self, parts: Any, events: list[dict[str, Any]]) -> None:
        # Mistral-style content arrays; only text parts have an Anthropic stream counterpart.
        for part in parts if isinstance(parts, list) else ():
            text = part.get("text") if isinstance(part, dict) and part.get("type") == "text" else None
            if text and isinstance(text, str):
                self._on_text(text, events)

    def _start_text(self, text: str, events: list[dict[str, Any]]) -> None:
        self._open_block(_TEXT, {"type": "text", "text": ""}, events)
        events.append(_delta(self._next_index - 1, {"type": "text_delta", "text": text}))

    # -- tool calls ----------------------------------------------------------------------------------------

    def _on_tool_fragment(self, entry: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self._past_thinking = True
        tool = self._tool(entry)
        function = entry.get("function")
        if type(function) is not dict:
            function = {}
        call_id = entry.get("id")
        if not tool.id and call_id and isinstance(call_id, str):
            tool.id = call_id
        name = function.get("name")
        if not tool.name and name and isinstance(name, str):
            tool.name = name
        arguments = function.get("arguments")
        if arguments:
            self._on_arguments(tool, arguments_text(arguments), events)
        if tool.block < 0 and not tool.queued and tool.id and tool.name:
            self._admit_tool(tool, events)

    def _on_function_call(self, function_call: dict[str, Any], events: list[dict[str, Any]]) -> None:
        # The deprecated single-call form never carries an id.
        if _FUNCTION_CALL_KEY not in self._tools:
            tool = self._tools[_FUNCTION_CALL_KEY] = _ToolCall(_FUNCTION_CALL_KEY)
            tool.id = generated_tool_id(self._ctx.message_id, _FUNCTION_CALL_KEY)
        self._on_tool_fragment({"index": _FUNCTION_CALL_KEY, "function": function_call}, events)

    def _tool(self, entry: dict[str, Any]) -> _ToolCall:
        key = entry.get("index")
        if not isinstance(key, int):
            key = self._key_without_index(entry)
        tool = self._tools.get(key)
        if tool is None:
            tool = self._tools[key] = _ToolCall(key)
        return tool

    def _key_without_index(self, entry: dict[str, Any]) -> int:
        # Backends that omit `index` send each call whole, or continue the last one without an id.
        call_id = entry.get("id")
        for tool in self._tools.values():
            if call_id and tool.id == call_id:
                return tool.key
        if call_id or not self._tools:
            return max(self._tools, default=-1) + 1
        return next(reversed(self._tools))

    def _on_arguments(self, tool: _ToolCall, fragment: str, events: list[dict[str, Any]]) -> None:
        if tool.closed:
            # Only possible after the finish reason or once the arguments already formed complete JSON;
            # appending to a closed block is impossible, and these fragments are in practice whitespace.
            return
        tool.args.append(fragment)
        if tool is self._open_tool:
            tool.sent += 1
            events.append(_delta(tool.block, {"type": "input_json_delta", "partial_json": fragment}))
            if self._waiting and tool.arguments_complete():
                self._drain(events, force=False)

    def _admit_tool(self, tool: _ToolCall, events: list[dict[str, Any]]) -> None:
        self._admit_earlier_without_id(tool.key, events)
        if self._blocked(events):
            tool.queued = True
            self._waiting.append(tool)
        else:
            self._start_tool(tool, events)

    def _admit_earlier_without_id(self, key: int, events: list[dict[str, Any]]) -> None:
        # OpenAI sends a call's id with its name in the first fragment: an earlier call that has a name and
        # still no id when a later one begins will never get one; starting it now keeps the upstream's order.
        for earlier in sorted(self._tools):
            tool = self._tools[earlier]
            if earlier < key and tool.block < 0 and not tool.queued and tool.name and not tool.id:
                tool.id = generated_tool_id(self._ctx.message_id, earlier)
                self._admit_tool(tool, events)

    def _start_tool(self, tool: _ToolCall, events: list[dict[str, Any]]) -> None:
        if not tool.id:
            tool.id = generated_tool_id(self._ctx.message_id, tool.key)
        block = {
            "type": "tool_use",
            "id": tool.id,
            "name": self._ctx.tool_names.to_client(tool.name),
            "input": {},
        }
        self._open_block(_TOOL, block, events)
        tool.block = self._next_index - 1
        tool.queued = False
        self._open_tool = tool
        self._tool_blocks += 1
        if tool.sent < len(tool.args):
            buffered = "".join(tool.args[tool.sent :])
            tool.sent = len(tool.args)
            events.append(_delta(tool.block, {"type": "input_json_delta", "partial_json": buffered}))

    # -- block lifecycle -------------------------------------------------------------------------------------

    def _blocked(self, events: list[dict[str, Any]]) -> bool:
        """Whether a new block must wait because the open tool call's arguments are incomplete."""
        tool = self._open_tool
        if tool is None or tool.arguments_complete():
            if self._waiting:
                self._drain(events, force=False)
                tool = self._open_tool
                return tool is not None and not tool.arguments_complete()
            return False
        return True

    def _drain(self, events: list[dict[str, Any]], force: bool) -> None:
        """Open the waiting blocks in arrival order, stopping at an incomplete tool call unless forced."""
        while self._waiting:
            tool = self._open_tool
            if not force and tool is not None and not tool.arguments_complete():
                return
            item = self._waiting.pop(0)
            if item is None:
                text = "".join(self._pending_text)
                self._pending_text = []
                self._start_text(text, events)
            else:
                self._start_tool(item, events)

    def _open_block(self, kind: int, content_block: dict[str, Any], events: list[dict[str, Any]]) -> None:
        self._close_block(events)
        index = self._next_index
        events.append({"type": "content_block_start", "index": index, "content_block": content_block})
        self._next_index += 1
        if kind == _TEXT:
            self._text_head = _DELTA_HEAD + str(index).encode() + _TEXT_DELTA_MIDDLE
        elif kind == _TOOL:
            self._arguments_head = _DELTA_HEAD + str(index).encode() + _ARGUMENTS_DELTA_MIDDLE
        self._open = kind
        if kind == _TOOL:
            self._held_space = []
        if kind != _THINKING:
            self._past_thinking = True

    def _close_block(self, events: list[dict[str, Any]]) -> None:
        if self._open == _NONE:
            return
        index = self._next_index - 1
        if self._signature:
            events.append(_delta(index, {"type": "signature_delta", "signature": self._signature}))
            self._signature = ""
        if self._open_tool is not None:
            self._open_tool.closed = True
            self._open_tool = None
        events.append({"type": "content_block_stop", "index": index})
        self._open = _NONE

    def _flush_blocks(self, events: list[dict[str, Any]]) -> None:
        """Start every tool call still waiting for its id (or for its turn), then close the open block."""
        for key in sorted(self._tools):
            tool = self._tools[key]
            if tool.block < 0 and not tool.queued and (tool.name or tool.args):
                tool.queued = True
                self._waiting.append(tool)
        self._drain(events, force=True)
        self._close_block(events)

    def _check_tool_arguments(self) -> None:
        """Raise UpstreamError when a tool call's arguments are not valid JSON now that the answer has ended."""
        for tool in self._tools.values():
            if tool.args and not tool.arguments_complete() and "".join(tool.args).strip():
                name = self._ctx.tool_names.to_client(tool.name)
                raise UpstreamError(
                    f"Upstream ended the answer with arguments for tool {name!r} that are not valid JSON", status=502
                )

    def _end(self, events: list[dict[str, Any]]) -> None:
        if self._finish_reason != "length":
            self._check_tool_arguments()
        self._flush_blocks(events)
        usage = anthropic_usage(self._usage, self._ctx.input_tokens_estimate)
        reason = stop_reason(self._finish_reason, self._tool_blocks > 0)
        events.append(
            {"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": None}, "usage": usage}
        )
        events.append({"type": "message_stop"})
        self._done = True


def _delta(index: int, delta: dict[str, Any]) -> dict[str, Any]:
    return {"type": "content_block_delta", "index": index, "delta": delta}


def _shaped_string(payload: bytes, shape: tuple[bytes, bytes, bytes]) -> tuple[str, bytes] | None:
    """The string of a chunk shaped like `shape` (see StreamTranslator.feed_payload) and its JSON string as sent;
    None when `payload` is not so shaped, the string is empty, or either string is not one whole JSON string."""
    head, middle, tail = shape
    if not payload.startswith(head) or not payload.endswith(tail):
        return None
    end = len(payload) - len(tail)
    if middle:
        at = payload.find(middle, len(head), end)
        if at < 0:
            return None
        token = payload[len(head) : at]
        padding = payload[at + len(middle) : end]
        if len(padding) < 2 or padding[0] != _QUOTE or padding[-1] != _QUOTE:
            return None
        try:
            orjson_loads(padding)  # one whole JSON string, as the parser would demand
        except ValueError:
            return None
    else:
        token = payload[len(head) : end]
    if len(token) < 3 or token[0] != _QUOTE or token[-1] != _QUOTE:  # `""` carries nothing: feed decides
        return None
    try:
        text = orjson_loads(token)
    except ValueError:  # not one JSON string (or one orjson refuses): the parser decides
        return None
    return text, token


def _as_written(text: str, token: bytes) -> bytes:
    """`text` as orjson writes it, from its JSON string as sent: without escapes that is the token itself (valid
    UTF-8, no quote or control character); escapes may be written otherwise (`\\u00e9`), so those are written anew.
    Only the encoded path needs this: the staged path's events carry the text."""
    return dumps(text) if b"\\" in token else token


def _learnt_shape(payload: bytes, chunk: dict[str, Any], text: str, key: bytes) -> tuple[bytes, bytes, bytes] | None:
    """Where `text`, the value of `key` (content or arguments), and the chunk's padding sit in `payload`, if that is
    found once each and proved (`_proved`)."""
    try:
        token = orjson_dumps(text)
    except TypeError:
        return None
    at, key = _found_once(payload, key, token)
    if at < 0:  # written otherwise (escapes), or twice: not learnt
        return None
    head = payload[: at + len(key)]
    rest = payload[at + len(key) + len(token) :]
    padding = chunk.get("obfuscation")
    middle = b""
    if type(padding) is str:
        padding_token = orjson_dumps(padding)
        cut, padding_key = _found_once(rest, _PADDING_KEY, padding_token)
        if cut < 0:
            return None
        middle = rest[: cut + len(padding_key)]
        rest = rest[cut + len(padding_key) + len(padding_token) :]
    return (head, middle, rest) if _proved(chunk, head, middle, rest, key == _ARGUMENTS_KEY) else None


def _found_once(payload: bytes, key: bytes, token: bytes) -> tuple[int, bytes]:
    """Where `key` (`"name":`) directly followed by `token` is in `payload`, the only such place, and the key as
    written there: compact, or with a blank after the colon (Python's json.dumps); -1 when not so found."""
    for written in (key, key + b" "):
        marker = written + token
        at = payload.find(marker)
        if at >= 0:
            return (at, written) if payload.find(marker, at + 1) < 0 else (-1, written)
    return -1, key


def _proved(chunk: dict[str, Any], head: bytes, middle: bytes, tail: bytes, arguments: bool) -> bool:
    """Whether `head "a" middle "b" tail` (no middle: `head "a" tail`) parses to `chunk` with its text (arguments)
    "a" and its padding "b": then any strings in those places give `chunk` with those strings there."""
    probe = b"".join((head, b'"a"', middle, b'"b"', tail) if middle else (head, b'"a"', tail))
    try:
        parsed = orjson_loads(probe)
    except ValueError:
        return False
    holder, name = _string_holder(parsed, arguments)
    original, _ = _string_holder(chunk, arguments)
    if holder is None or original is None or holder.get(name) != "a":
        return False
    if middle and parsed.get("obfuscation") != "b":
        return False
    holder[name] = original[name]
    if middle:
        parsed["obfuscation"] = chunk["obfuscation"]
    return bool(parsed == chunk)


def _string_holder(chunk: Any, arguments: bool) -> tuple[dict[str, Any] | None, str]:
    """The dict holding a plain chunk's text (the delta) or arguments (the one tool call's function), and the key."""
    delta = _plain_delta(chunk) if type(chunk) is dict else None
    if delta is None or not arguments:
        return delta, "content"
    calls = delta.get("tool_calls")
    entry = calls[0] if type(calls) is list and len(calls) == 1 else None
    function = entry.get("function") if type(entry) is dict else None
    return (function if type(function) is dict else None), "arguments"


def _plain_delta(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """The delta of a chunk that holds choice 0 and nothing else to act on (no finish reason, usage or error)."""
    choices = chunk.get("choices")
    if type(choices) is not list or len(choices) != 1 or chunk.get("usage") or chunk.get("error"):
        return None
    choice = choices[0]
    if type(choice) is not dict or choice.get("index") or choice.get("finish_reason"):
        return None
    delta = choice.get("delta")
    return delta if type(delta) is dict else None


def _plain_text(delta: dict[str, Any]) -> str | None:
    """The text of a delta that only continues an open text block; None for any other."""
    text = delta.get("content")
    if type(text) is not str or not text or delta.get("tool_calls") or _has_more_than_content(delta):
        return None
    return text


def _has_more_than_content(delta: dict[str, Any]) -> bool:
    """Whether a delta holds parts that `feed` acts on besides content and tool calls. Plain reasoning is not
    one of them: a text or tool block is open, so `feed` would drop it."""
    return bool(delta.get("refusal") or delta.get("function_call") or delta.get("reasoning_details"))


def _choice_zero(choices: list[Any]) -> dict[str, Any] | None:
    for choice in choices:
        if type(choice) is dict and not choice.get("index"):
            return choice
    return None
