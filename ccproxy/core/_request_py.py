"""Anthropic Messages request -> OpenAI Chat Completions request (wire.md 4.10, "Request" rules 1-10).

The output is built from scratch, key by key, so Anthropic-only fields (`cache_control`, `citations`,
`context_management`, `output_config`, `service_tier`, `container`, `mcp_servers`, ...) can never leak
upstream.

Decisions (wire.md leaves these open):
- The system block Claude Code puts first, `x-anthropic-billing-header: cc_version=…; cc_entrypoint=…;`, is
  dropped: it changes with every CLI build and entry point, sits at the very start of the prompt and so would
  defeat the upstream's prefix-based prompt caching, and it means nothing to a non-Anthropic model.
- A failed tool result (`is_error: true`) is sent as `Error: <text>` (just `Error` when the result is empty):
  OpenAI tool messages have no error flag, and a plain prefix is what models are trained to read.
- Images and PDFs inside tool results cannot go in a tool message (text only), so they move to the user
  message that follows the tool messages, each group after a label naming the tool call. That user message
  also carries the turn's own text: one user message instead of two keeps strict-alternation chat templates
  (vLLM, llama.cpp) happy.
- Assistant text blocks are concatenated as they were streamed; a paragraph break is added only where a tool
  call or thinking block separated two texts (citation-split blocks stay one sentence).
- An assistant turn with neither text nor tool calls (e.g. thinking only) is not sent: OpenAI rejects it.
- `role: "system"` entries inside `messages` become system/developer messages in place; one that falls between
  tool calls and their results is held back until after the tool messages, because OpenAI wants them adjacent.
- Tool schemas are passed as given (`$schema`, `additionalProperties` included, which OpenAI accepts in
  non-strict mode); only a missing top-level `"type": "object"` is added, since OpenAI rejects a parameters
  schema without it.
- Anthropic-defined client tools (`bash_*`, `text_editor_*`, `memory_*`: no `input_schema`, the client runs them)
  become function tools with the schema Anthropic documents (core/client_tools.py), under the declared name.
  Server tools (`web_search_*`, `web_fetch_*`, `code_execution_*`, ...), computer use and unknown types are a 400
  naming the tool: sent as functions they would be called and never answered.
- `strict: true` on a tool becomes `strict: true` on the function only where the model takes it
  (`supports_strict_tools`); the schema is passed as given even then. OpenAI's strict mode also wants
  `additionalProperties: false` on every object and every property required: rewriting the schema to that would
  change what the client receives (optional fields arriving as null), so a schema that does not meet it gets the
  upstream's 400 naming the rule, which the client sees. Elsewhere `strict` is dropped.
- Structured output: `output_config.format`, or else the older top-level `output_format` (beta
  `structured-outputs-2025-11-13`, the same shape), becomes a non-strict `response_format` json_schema.
- `stop_sequences` beyond OpenAI's limit of 4 are cut to the first 4: the request still works, and the
  remaining sequences are a best-effort loss rather than a hard failure.
- Tool call ids longer than OpenAI's 40 characters (possible in histories from other providers) are shortened
  deterministically, to the same value in the assistant's tool call and in the tool message.
- `metadata.user_id`: Claude Code sends a JSON string `{"device_id", "account_uuid", "session_id"}`. It
  becomes a stable per-user value, a hash of device and account (`cc-` + 32 hex), so the upstream can
  attribute abuse and bucket prompt caching per user without seeing the raw identifiers; the session id is
  used only when neither is set. Any other string is forwarded truncated to 64 characters.
- `max_tokens: 0` (cache warming) becomes 1: OpenAI-compatible servers reject 0.
- `plan.reasoning` is merged last, so the reasoning hook has the final word on the fields it returns.
- `cache_control` is forwarded only where the model says so (`forward_cache_control`, e.g. Anthropic models behind
  OpenRouter), and then only on content parts: system text, message text/image/file parts, tool-result text; never
  on tools (Anthropic routes reject it there) nor on assistant turns (sent as one string). A block's marker goes on
  the last part made from it; the system prompt becomes a list of text parts and a lone text part stays a list, so
  the marker has somewhere to be. A tool result's marker (on the block or its last marked text) goes on the tool
  message's text; its images move to the next user message as usual. Without the capability nothing changes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

import orjson

from ccproxy.core.client_tools import client_tool_definition, is_computer_use, known_versions
from ccproxy.core.jsoncodec import Fragment, dumps_strict, dumps_text, loads
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.core.toolnames import OPENAI_TOOL_NAME_LIMIT, ToolNameMap
from ccproxy.errors import InvalidRequestError

__all__ = [
    "BILLING_HEADER_PREFIX",
    "MessageRun",
    "convert_request",
    "convert_system",
    "convert_tools",
    "output_format",
]

BILLING_HEADER_PREFIX = "x-anthropic-billing-header:"
OPENAI_MAX_STOP_SEQUENCES = 4
OPENAI_USER_LIMIT = 64
OPENAI_TOOL_CALL_ID_LIMIT = 40
_CALL_ID_HASH_LEN = 12
TOOL_ERROR_PREFIX = "Error: "
TOOL_ERROR_EMPTY = "Error"
TOOL_RESULT_ATTACHED = "(the result is attached in the next user message)"
REASONING_FORMAT = "anthropic-claude-v1"
CUSTOM_TOOL_TYPES = (None, "custom")

Part = dict[str, Any]
Message = dict[str, Any]


def _json(value: Any) -> str:
    # orjson called here, not through dumps_text's frame: a long conversation has a tool input per tool call.
    try:
        return orjson.dumps(value).decode("utf-8")
    except TypeError:
        return dumps_text(value)  # what orjson cannot write (a lone surrogate)


def _call_id(tool_use_id: str) -> str:
    """OpenAI rejects tool call ids over 40 characters; longer ones (from other providers) are shortened.

    The result depends only on the id, so a tool call and the tool message answering it always agree.
    """
    if len(tool_use_id) <= OPENAI_TOOL_CALL_ID_LIMIT:
        return tool_use_id
    digest = hashlib.sha256(tool_use_id.encode("utf-8")).hexdigest()[:_CALL_ID_HASH_LEN]
    return f"{tool_use_id[: OPENAI_TOOL_CALL_ID_LIMIT - _CALL_ID_HASH_LEN - 1]}_{digest}"


def _text_part(text: str) -> Part:
    return {"type": "text", "text": text}


def _user_content(parts: list[Part]) -> str | list[Part]:
    """A lone text part becomes plain string content, which every backend accepts (unless it carries a cache
    marker)."""
    if len(parts) == 1 and parts[0]["type"] == "text" and "cache_control" not in parts[0]:
        text: str = parts[0]["text"]
        return text
    return parts


# ------------------------------------------------------------------------------------------ content parts


class _PartConverter:
    """User-side blocks (text, image, document, search_result) -> OpenAI content parts; others are dropped."""

    def __init__(self, capabilities: ModelCapabilities) -> None:
        self._documents = capabilities.supports_documents

    def convert(self, blocks: list[dict[str, Any]]) -> list[Part]:
        parts: list[Part] = []
        for block in blocks:
            handler = _BLOCKS.get(block["type"])
            if handler is not None:
                parts.extend(handler(self, block))
        return parts

    def _text(self, block: dict[str, Any]) -> list[Part]:
        # Anthropic rejects empty text blocks; skipping them here is what keeps user messages non-empty.
        return [_text_part(block["text"])] if block["text"] else []

    def _image(self, block: dict[str, Any]) -> list[Part]:
        source = block["source"]
        if source["type"] == "base64":
            url = f"data:{source['media_type']};base64,{source['data']}"
        elif source["type"] == "url":
            url = source["url"]
        else:
            raise InvalidRequestError(
                f"image source type '{source['type']}' is not supported by this proxy: "
                "send the image as base64 or as a URL"
            )
        return [{"type": "image_url", "image_url": {"url": url}}]

    def _document(self, block: dict[str, Any]) -> list[Part]:
        source = block["source"]
        handler = _DOCUMENT_SOURCES.get(source["type"])
        if handler is None:
            raise InvalidRequestError(
                f"document source type '{source['type']}' is not supported by this proxy: "
                "send the document as base64 PDF or as plain text"
            )
        return handler(self, block, source)

    def _pdf(self, block: dict[str, Any], source: dict[str, Any]) -> list[Part]:
        if not self._documents:
            raise InvalidRequestError(
                "the upstream model cannot take PDF documents: send the document as plain text "
                "(a `text` document source) or use a model that supports files"
            )
        media_type = source.get("media_type") or "application/pdf"
        title = block.get("title") or "document"
        filename = title if title.lower().endswith(".pdf") else f"{title}.pdf"
        file_data = f"data:{media_type};base64,{source['data']}"
        return [{"type": "file", "file": {"filename": filename, "file_data": file_data}}]

    def _plain_text_document(self, block: dict[str, Any], source: dict[str, Any]) -> list[Part]:
        title = block.get("title")
        text: str = source["data"]
        if title:
            text = f"{title}\n\n{text}"
        return [_text_part(text)] if text else []

    def _content_document(self, block: dict[str, Any], source: dict[str, Any]) -> list[Part]:
        content = source["content"]
        if isinstance(content, str):
            return [_text_part(content)] if content else []
        return self.convert(content)

    def _search_result(self, block: dict[str, Any]) -> list[Part]:
        texts = [item.get("text", "") for item in block.get("content") or () if item.get("type") == "text"]
        header = " — ".join(str(value) for value in (block.get("title"), block.get("source")) if value)
        text = "\n\n".join(piece for piece in (header, "\n".join(texts)) if piece)
        return [_text_part(text)] if text else []


# What converts each block type and document source: the functions, called with the converter. A converter that
# kept its own bound methods in a dict would be a reference cycle, left to the garbage collector at the end of each
# request (with everything it holds) instead of being freed at once.
_BLOCKS: dict[str, Callable[[_PartConverter, dict[str, Any]], list[Part]]] = {
    "text": _PartConverter._text,
    "image": _PartConverter._image,
    "document": _PartConverter._document,
    "search_result": _PartConverter._search_result,
}
_DOCUMENT_SOURCES: dict[str, Callable[[_PartConverter, dict[str, Any], dict[str, Any]], list[Part]]] = {
    "base64": _PartConverter._pdf,
    "text": _PartConverter._plain_text_document,
    "content": _PartConverter._content_document,
}


class _CachingPartConverter(_PartConverter):
    """_PartConverter for `forward_cache_control` models: a block's `cache_control` goes on its last part."""

    def convert(self, blocks: list[dict[str, Any]]) -> list[Part]:
        parts: list[Part] = []
        for block in blocks:
            handler = _BLOCKS.get(block["type"])
            if handler is None:
                continue
            made = handler(self, block)
            cache_control = block.get("cache_control")
            if made and isinstance(cache_control, dict):
                made[-1] = {**made[-1], "cache_control": cache_control}
            parts.extend(made)
        return parts


def _cached_text_parts(blocks: Any) -> list[Part]:
    """Non-empty text blocks as text parts, each with its `cache_control` (Anthropic rejects a marker on empty
    text)."""
    parts: list[Part] = []
    for block in blocks:
        if block["type"] == "text" and block["text"]:
            part = _text_part(block["text"])
            cache_control = block.get("cache_control")
            if isinstance(cache_control, dict):
                part["cache_control"] = cache_control
            parts.append(part)
    return parts


def _tool_message_content(text: str, block: dict[str, Any], parts: list[Part]) -> str | list[Part]:
    """A tool message's content with the tool result's cache marker: the block's own, else its last marked text."""
    cache_control = block.get("cache_control")
    if not isinstance(cache_control, dict):
        marked = [part["cache_control"] for part in parts if part["type"] == "text" and "cache_control" in part]
        cache_control = marked[-1] if marked else None
    if not text or cache_control is None:
        return text
    return [{"type": "text", "text": text, "cache_control": cache_control}]


# ------------------------------------------------------------------------------------------ assistant turns


def _no_reasoning(blocks: list[dict[str, Any]], calls_tools: bool) -> dict[str, Any]:
    return {}


def _reasoning_content(blocks: list[dict[str, Any]], calls_tools: bool) -> dict[str, Any]:
    """DeepSeek-style: the thinking text as one string (redacted blocks have no text to give). A message that calls
    tools always carries one, empty when the turn has no thinking (from before thinking was on, or thinking the client
    dropped): DeepSeek's thinking mode answers 400 for a tool-calling message without `reasoning_content`."""
    texts = [block["thinking"] for block in blocks if block["type"] == "thinking" and block["thinking"]]
    if texts:
        return {"reasoning_content": "\n\n".join(texts)}
    return {"reasoning_content": ""} if calls_tools else {}


def _reasoning_details(blocks: list[dict[str, Any]], calls_tools: bool) -> dict[str, Any]:
    """OpenRouter-style: each block with its signature, so Anthropic models behind it verify the replay."""
    details: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        if block["type"] == "thinking":
            detail: dict[str, Any] = {"type": "reasoning.text", "text": block["thinking"]}
            if block.get("signature"):
                detail["signature"] = block["signature"]
        else:
            detail = {"type": "reasoning.encrypted", "data": block["data"]}
        detail["format"] = REASONING_FORMAT
        detail["index"] = index
        details.append(detail)
    return {"reasoning_details": details} if details else {}


# reasoning_replay -> the fields an assistant message gets from its thinking blocks (and whether it calls tools).
REASONING_REPLAY: dict[str, Callable[[list[dict[str, Any]], bool], dict[str, Any]]] = {
    "drop": _no_reasoning,
    "reasoning_content": _reasoning_content,
    "reasoning_details": _reasoning_details,
}


class _AssistantTurn:
    """Collects one assistant message's text, tool calls and thinking blocks."""

    def __init__(self, tool_names: ToolNameMap) -> None:
        self._tool_names = tool_names
        self.text = ""
        self.tool_calls: list[dict[str, Any]] = []
        self.call_names: dict[str, str] = {}  # tool_use id -> the client's tool name
        self.thinking: list[dict[str, Any]] = []
        self.long_names: list[str] = []  # tool names over the limit, as met
        self._separated = False  # a non-text block came after the last text

    def add(self, block: dict[str, Any]) -> None:
        # Tested in turn, not looked up in a table of bound methods: one turn per assistant message, and a long
        # conversation has hundreds (benchmarks/README.md, "Stop 17").
        kind = block["type"]
        if kind == "text":
            self.add_text(block["text"])
        elif kind == "tool_use":
            self._tool_use(block)
        elif kind == "thinking" or kind == "redacted_thinking":
            self.thinking.append(block)
        # server_tool_use, web_search_tool_result and unknown blocks are dropped, but still separate texts.
        self._separated = kind != "text"

    def add_text(self, text: str) -> None:
        if not text:
            return
        if self._separated and self.text and not self.text[-1].isspace():
            self.text += "\n\n"
        self.text += text

    def _tool_use(self, block: dict[str, Any]) -> None:
        self.call_names[block["id"]] = block["name"]
        name = block["name"]
        if len(name) > OPENAI_TOOL_NAME_LIMIT:  # a name that fits is sent as it is: no call for it
            self.long_names.append(name)
            name = self._tool_names.to_upstream(name)
        function = {"name": name, "arguments": _json(block["input"])}
        self.tool_calls.append({"id": _call_id(block["id"]), "type": "function", "function": function})


# ------------------------------------------------------------------------------------------ messages


class MessageRun:
    """The conversion of a body's first `count` messages (`sources`, these very objects), kept for the next turn of
    its conversation: the OpenAI messages they became as JSON (comma-separated, b"" for none) and the converter's
    state after them. Shared between requests: never changed."""

    __slots__ = ("awaiting", "call_names", "count", "encoded", "held", "long_names", "sources")

    def __init__(
        self,
        count: int,
        sources: tuple[Any, ...],
        encoded: bytes,
        awaiting: bool,
        held: tuple[Message, ...],
        call_names: dict[str, str],
        long_names: tuple[str, ...],
    ) -> None:
        self.count = count
        self.sources = sources
        self.encoded = encoded
        self.awaiting = awaiting
        self.held = held
        self.call_names = call_names
        self.long_names = long_names


class _RunWriter:
    """Writes the converted messages (after the leading system message) into one JSON fragment as runs are kept,
    so that each is written once: the output list then holds the fragment in their place."""

    def __init__(self, output: list[Any], keep_at: tuple[int, ...], kept: list[MessageRun] | None) -> None:
        self._output = output
        self._keep_at = keep_at if kept is not None else ()
        self._kept = kept
        self._base = len(output)  # where the messages start (after the system message)
        self._encoded = b""

    def resume(self, start: MessageRun) -> None:
        if start.encoded:
            self._output.append(Fragment(start.encoded))
        self._encoded = start.encoded

    def wanted(self, count: int) -> bool:
        return count in self._keep_at

    def encode(self) -> bytes | None:
        """The JSON of every converted message so far; the output then holds it as one fragment."""
        output, base = self._output, self._base
        written = [self._encoded] if self._encoded else []
        for message in output[base + len(written) :]:  # those converted since
            one = dumps_strict(message)
            if one is None:
                self._keep_at = ()  # orjson cannot write it (a lone surrogate): nothing is kept for this body
                return None
            written.append(one)
        encoded = b",".join(written)
        del output[base:]
        if encoded:
            output.append(Fragment(encoded))
        self._encoded = encoded
        return encoded

    def keep(self, run: MessageRun | None) -> None:
        if run is not None and self._kept is not None:
            self._kept.append(run)


class _MessageConverter:
    """The `messages` array -> OpenAI messages. One instance per request: it tracks the open tool calls."""

    def __init__(self, plan: RequestPlan) -> None:
        capabilities = plan.capabilities
        self._system_role = capabilities.system_role
        self._replay = REASONING_REPLAY[capabilities.reasoning_replay]
        self._tool_names = plan.tool_names
        self._cache = capabilities.forward_cache_control
        self._parts = (_CachingPartConverter if self._cache else _PartConverter)(capabilities)
        self.messages: list[Message] = []
        self._awaiting_results = False  # the last assistant message made tool calls not yet answered
        self._held: list[Message] = []  # system messages that arrived while tool results were awaited
        self._call_names: dict[str, str] = {}  # tool_use id -> tool name, to label attachments
        self._long_names: list[str] = []  # tool_use names over the limit, as met (what a MessageRun replays)

    def convert(
        self,
        system: Any,
        messages: list[dict[str, Any]],
        made_system: Any = None,
        start: MessageRun | None = None,
        keep_at: tuple[int, ...] = (),
        kept: list[MessageRun] | None = None,
    ) -> list[Message]:
        """The OpenAI messages. `start`: the conversion of the first `start.count` of `messages`, kept from an
        earlier request whose first messages were these very objects: it is put in as JSON and the conversion goes
        on from its state. `keep_at`: after how many messages to keep the conversion so far in `kept`."""
        if made_system is not None:  # the top-level system message, converted (and serialised) elsewhere
            self.messages.append(made_system)
        else:
            self._emit_system(_system_parts(system) if self._cache else _system_text(system))
        if start is None and not keep_at:  # the usual case: nothing to start from, nothing to keep
            roles = _ROLES
            for message in messages:
                roles[message["role"]](self, message["content"])
            self._release_held()
            return self.messages
        first = 0
        writer = _RunWriter(self.messages, keep_at, kept)
        if start is not None:
            first = start.count
            self._resume(start)
            writer.resume(start)
        for index in range(first, len(messages)):
            if writer.wanted(index):
                writer.keep(self._run(messages, index, writer))
            message = messages[index]
            _ROLES[message["role"]](self, message["content"])
        if writer.wanted(len(messages)):
            writer.keep(self._run(messages, len(messages), writer))
        self._release_held()
        return self.messages

    def _resume(self, start: MessageRun) -> None:
        self._awaiting_results = start.awaiting
        self._held = list(start.held)
        self._call_names = dict(start.call_names)
        for name in start.long_names:  # the map gets what converting the run would have put in it
            self._tool_names.to_upstream(name)
        self._long_names = list(start.long_names)

    def _run(self, messages: list[dict[str, Any]], count: int, writer: _RunWriter) -> MessageRun | None:
        """The conversion of the first `count` messages, as it stands (None: orjson cannot write it)."""
        encoded = writer.encode()
        if encoded is None:
            return None
        return MessageRun(
            count,
            tuple(messages[:count]),
            encoded,
            self._awaiting_results,
            tuple(self._held),
            dict(self._call_names),
            tuple(self._long_names),
        )

    def _release_held(self) -> None:
        self._awaiting_results = False
        self.messages.extend(self._held)
        self._held.clear()

    def _emit_system(self, content: str | list[Part]) -> None:
        if not content:
            return
        message = {"role": self._system_role, "content": content}
        (self._held if self._awaiting_results else self.messages).append(message)

    def _system(self, content: str | list[dict[str, Any]]) -> None:
        if isinstance(content, str):
            self._emit_system(content)
        elif self._cache:
            self._emit_system(_cached_text_parts(content))
        else:
            self._emit_system(
                "\n\n".join(block["text"] for block in content if block["type"] == "text" and block["text"])
            )

    def _user(self, content: str | list[dict[str, Any]]) -> None:
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        attachments: list[Part] = []
        for block in blocks:
            if block["type"] == "tool_result":
                attachments.extend(self._tool_result(block))
        self._release_held()
        parts = attachments + self._parts.convert([block for block in blocks if block["type"] != "tool_result"])
        if parts:
            self.messages.append({"role": "user", "content": _user_content(parts)})

    def _tool_result(self, block: dict[str, Any]) -> list[Part]:
        """Emit the tool message; return its images/files, labelled, for the following user message."""
        content = block.get("content")
        parts: list[Part] = []
        if isinstance(content, str):
            text, media = content, []
        else:
            parts = self._parts.convert(content or [])
            text = "\n".join(part["text"] for part in parts if part["type"] == "text")
            media = [part for part in parts if part["type"] != "text"]
        if block.get("is_error"):
            text = f"{TOOL_ERROR_PREFIX}{text}" if text else TOOL_ERROR_EMPTY
        elif media and not text:
            text = TOOL_RESULT_ATTACHED
        call_id = block["tool_use_id"]
        tool_content = _tool_message_content(text, block, parts) if self._cache else text
        self.messages.append({"role": "tool", "tool_call_id": _call_id(call_id), "content": tool_content})
        return [_text_part(self._attachment_label(call_id)), *media] if media else []

    def _attachment_label(self, call_id: str) -> str:
        name = self._call_names.get(call_id)
        return (
            f"Attachments from the {name} tool result ({call_id}):"
            if name
            else f"Attachments from tool result {call_id}:"
        )

    def _assistant(self, content: str | list[dict[str, Any]]) -> None:
        self._release_held()  # results never came (invalid history): at least keep the system text
        turn = _AssistantTurn(self._tool_names)
        if isinstance(content, str):
            turn.add_text(content)
        else:
            for block in content:
                turn.add(block)
        if not turn.text and not turn.tool_calls:
            return
        message: Message = {"role": "assistant", "content": turn.text or None}
        if turn.tool_calls:
            message["tool_calls"] = turn.tool_calls
            self._awaiting_results = True
            self._call_names.update(turn.call_names)
            self._long_names += turn.long_names
        message.update(self._replay(turn.thinking, bool(turn.tool_calls)))
        self.messages.append(message)


# A message's role -> what converts it, called with the converter (see _BLOCKS for why not bound methods).
_ROLES: dict[str, Callable[[_MessageConverter, Any], None]] = {
    "user": _MessageConverter._user,
    "assistant": _MessageConverter._assistant,
    "system": _MessageConverter._system,
}


def _system_blocks(system: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The top-level `system`'s non-empty text blocks, without Claude Code's billing-header block."""
    return [
        block
        for block in system
        if block["type"] == "text" and block["text"] and not block["text"].startswith(BILLING_HEADER_PREFIX)
    ]


def _system_text(system: Any) -> str:
    """The top-level `system` as one string."""
    if not system:
        return ""
    if isinstance(system, str):
        return system
    return "\n\n".join(block["text"] for block in _system_blocks(system))


def _system_parts(system: Any) -> str | list[Part]:
    """The top-level `system` as text parts carrying their cache markers (a plain string stays one)."""
    if not system:
        return ""
    if isinstance(system, str):
        return system
    return _cached_text_parts(_system_blocks(system))


# ------------------------------------------------------------------------------------------ tools


def _parameters(schema: dict[str, Any]) -> dict[str, Any]:
    return schema if "type" in schema else {"type": "object", **schema}


def _unsupported_tool(index: int, tool: dict[str, Any]) -> InvalidRequestError:
    kind = tool.get("type")
    versions = known_versions(kind)
    if versions or is_computer_use(kind):
        reason = (
            f"the versions it converts are {', '.join(versions)}"
            if versions
            else "computer use needs a model trained on Anthropic's screenshot-and-action loop, which the "
            "OpenAI-compatible upstream is not"
        )
        return InvalidRequestError(
            f"tools.{index}: tool '{tool['name']}' ({kind}) is not supported by this proxy: {reason}; "
            "remove it from `tools`"
        )
    return InvalidRequestError(
        f"tools.{index}: server tool '{tool['name']}' ({kind}) is not supported by this proxy: the "
        "upstream is an OpenAI-compatible Chat Completions API without Anthropic server tools; "
        "remove it from `tools`"
    )


def _tool(index: int, tool: dict[str, Any], tool_names: ToolNameMap, strict_tools: bool) -> dict[str, Any]:
    if tool.get("type") in CUSTOM_TOOL_TYPES:
        description, parameters = tool.get("description"), _parameters(tool["input_schema"])
    else:
        definition = client_tool_definition(tool)
        if definition is None:
            raise _unsupported_tool(index, tool)
        description, parameters = definition
    function: dict[str, Any] = {"name": tool_names.to_upstream(tool["name"])}
    if description:
        function["description"] = description
    function["parameters"] = parameters
    if strict_tools and tool.get("strict") is True:
        function["strict"] = True
    return {"type": "function", "function": function}


TOOL_CHOICE: dict[str, Callable[[dict[str, Any], ToolNameMap], Any]] = {
    "auto": lambda choice, names: "auto",
    "any": lambda choice, names: "required",
    "none": lambda choice, names: "none",
    "tool": lambda choice, names: {
        "type": "function",
        "function": {"name": names.to_upstream(choice["name"])},
    },
}


def convert_tools(tools: list[dict[str, Any]], tool_names: ToolNameMap, strict_tools: bool) -> list[dict[str, Any]]:
    """The `tools` list alone, in OpenAI's shape; long names go into `tool_names`, in order."""
    return [_tool(index, tool, tool_names, strict_tools) for index, tool in enumerate(tools)]


def _tool_fields(body: dict[str, Any], tool_names: ToolNameMap, strict_tools: bool, made_tools: Any) -> dict[str, Any]:
    """`tools`, `tool_choice` and `parallel_tool_calls`; nothing at all when there are no tools."""
    tools = body.get("tools")
    if not tools:
        return {}
    fields: dict[str, Any] = {
        "tools": convert_tools(tools, tool_names, strict_tools) if made_tools is None else made_tools
    }
    choice = body.get("tool_choice")
    if choice:
        fields["tool_choice"] = TOOL_CHOICE[choice["type"]](choice, tool_names)
        if choice.get("disable_parallel_tool_use"):
            fields["parallel_tool_calls"] = False
    return fields


# ------------------------------------------------------------------------------------------ parameters


def _max_tokens(value: int, capabilities: ModelCapabilities) -> int:
    value = max(value, 1)
    if capabilities.max_output_tokens is not None:
        value = min(value, capabilities.max_output_tokens)
    return value


def _sampling_fields(body: dict[str, Any], capabilities: ModelCapabilities) -> dict[str, Any]:
    """temperature / top_p / top_k / stop, each only where the model takes it."""
    fields: dict[str, Any] = {}
    if capabilities.supports_temperature and body.get("temperature") is not None:
        fields["temperature"] = body["temperature"]
    if capabilities.supports_top_p and body.get("top_p") is not None:
        fields["top_p"] = body["top_p"]
    if capabilities.supports_top_k and body.get("top_k") is not None:
        fields["top_k"] = body["top_k"]
    stops = body.get("stop_sequences")
    if capabilities.supports_stop and stops:
        fields["stop"] = stops[:OPENAI_MAX_STOP_SEQUENCES]
    return fields


# A session's `user_id` is the same on every request: parsed and hashed once (hashlib's SHA-256 set-up alone was
# ~8 µs of each Claude Code request, benchmarks/README.md "Stop 17").
@lru_cache(maxsize=256)
def _claude_code_user(raw: str) -> str | None:
    """A stable per-user value from Claude Code's JSON `user_id`, or None when `raw` is not that shape."""
    try:
        parsed = loads(raw)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    identity = [str(parsed.get(key) or "") for key in ("device_id", "account_uuid")]
    if any(identity):
        return "cc-" + hashlib.sha256(":".join(identity).encode("utf-8")).hexdigest()[:32]
    session = parsed.get("session_id")
    return str(session) if session else None


def _user_field(metadata: Any) -> str | None:
    raw = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not raw:
        return None
    user = _claude_code_user(raw) if raw.startswith("{") else None
    return (user or raw)[:OPENAI_USER_LIMIT]


# ------------------------------------------------------------------------------------------ entry point


def output_format(body: Mapping[str, Any]) -> Any:
    """The structured-output format: `output_config.format`, else the older top-level `output_format`."""
    output_config = body.get("output_config")
    spec = output_config.get("format") if isinstance(output_config, dict) else None
    return spec if spec is not None else body.get("output_format")


def _response_format(body: dict[str, Any]) -> dict[str, Any] | None:
    """The structured output (Claude Code's session-title request uses it) as a `response_format`."""
    spec = output_format(body)
    if not isinstance(spec, dict) or spec.get("type") != "json_schema" or not isinstance(spec.get("schema"), dict):
        return None
    # Not strict: OpenAI's strict mode rejects schemas Anthropic accepts (optional properties, open objects).
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": spec["schema"], "strict": False}}


def convert_system(system: Any, capabilities: ModelCapabilities) -> Message | None:
    """The message the top-level `system` becomes (it leads `messages`), or None when it has no text."""
    content = _system_parts(system) if capabilities.forward_cache_control else _system_text(system)
    return {"role": capabilities.system_role, "content": content} if content else None


def convert_request(
    body: dict[str, Any],
    plan: RequestPlan,
    made_tools: Any = None,
    made_system: Any = None,
    start: MessageRun | None = None,
    keep_at: tuple[int, ...] = (),
    kept: list[MessageRun] | None = None,
) -> dict[str, Any]:
    """The OpenAI Chat Completions body for a validated Anthropic Messages body; fills `plan.tool_names`.

    `made_tools` / `made_system`: what `convert_tools` / `convert_system` made of this body's tools and system,
    made elsewhere (e.g. cached as serialised bytes); put in as given. Whoever passes `made_tools` has already
    filled `plan.tool_names` with the tools' names, in order. `start` / `keep_at` / `kept`: the conversion of the
    first messages starts from a MessageRun kept for an earlier request whose first `start.count` messages were
    these very objects, converted with equal capabilities; runs after `keep_at` messages are appended to `kept`
    (ccproxy/splice.py). Then `messages` holds orjson Fragments in the place of converted messages."""
    capabilities = plan.capabilities
    # Tools first: their names seed the map that tool_use blocks in the history are then shortened with.
    tool_fields = _tool_fields(body, plan.tool_names, capabilities.supports_strict_tools, made_tools)
    out: dict[str, Any] = {
        "model": plan.upstream_model,
        "messages": _MessageConverter(plan).convert(
            body.get("system"), body["messages"], made_system, start, keep_at, kept
        ),
    }
    out.update(tool_fields)
    if body.get("max_tokens") is not None:  # absent only in count_tokens bodies
        out[capabilities.max_tokens_param] = _max_tokens(body["max_tokens"], capabilities)
    out.update(_sampling_fields(body, capabilities))
    user = _user_field(body.get("metadata"))
    if user:
        out["user"] = user
    response_format = _response_format(body)
    if response_format:
        out["response_format"] = response_format
    if plan.stream:
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    out.update(plan.reasoning)
    return out
