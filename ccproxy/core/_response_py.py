"""A non-stream OpenAI chat completion -> an Anthropic message; a chunk stream folded into a completion.

Malformed completions: values are type-checked where the completion is taken apart. What has a sensible reading
is read that way (`usage` that is not an object = no usage, a finish reason that is not a string = none); what has
none (no choice 0, a message that is not an object) is an UpstreamError 502 naming the problem, and any other
failure to read the shape is one too, never an exception that would become a 500.

Tool arguments that are not valid JSON: after `finish_reason: "length"` the call was cut at the token limit, and it
is passed on under RAW_ARGUMENTS_KEY with `stop_reason: "max_tokens"`; after any other end the upstream sent a
broken call, which is an UpstreamError 502 (the stream translator does the same; see core/stream.py).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ccproxy.core._nesting_py import exceeds_depth
from ccproxy.core._stream_py import arguments_text, detail_text_field, generated_tool_id
from ccproxy.core._usage_py import anthropic_usage, error_from_body, stop_reason
from ccproxy.core.jsoncodec import NestingError, loads
from ccproxy.core.plan import ResponseContext
from ccproxy.errors import ProxyError, UpstreamError

__all__ = ["RAW_ARGUMENTS_KEY", "accumulate_chunks", "convert_response", "parse_completion", "tool_input"]

# Where tool arguments that are not a JSON object go. Claude Code validates tool input against the tool's
# schema, so the call fails with a validation error the model can see and retry, and the text stays visible in
# logs; `{}` would instead claim the model sent no arguments at all.
RAW_ARGUMENTS_KEY = "_raw_arguments"


def convert_response(completion: dict[str, Any], ctx: ResponseContext) -> dict[str, Any]:
    """The Anthropic message for an OpenAI chat completion (wire.md 4.10 response 8).

    Content order is thinking, text, tool_use. Raises UpstreamError for an error body or a malformed completion.
    """
    try:
        return _convert(completion, ctx)
    except ProxyError:
        raise
    except (AttributeError, IndexError, KeyError, TypeError, ValueError) as exc:
        # A shape no check above foresaw: still the upstream's fault, so a 502 and not a 500 with a traceback.
        raise UpstreamError(
            f"Upstream returned a completion ccproxy cannot read ({type(exc).__name__})", status=502
        ) from None


def _convert(completion: dict[str, Any], ctx: ResponseContext) -> dict[str, Any]:
    error = completion.get("error")
    if error:
        raise error_from_body(error)
    choice = _choice_zero(completion.get("choices"))
    if choice is None:
        if completion.get("object") == "error":  # vLLM's bare error object (its HTTP error body's shape)
            raise error_from_body(completion)
        raise UpstreamError("Upstream returned a completion without choices", status=502)
    finish_reason = choice.get("finish_reason")
    if not isinstance(finish_reason, str):
        finish_reason = None
    if finish_reason == "error":
        raise error_from_body(choice.get("error") or {"message": "Upstream ended the completion with an error"})
    message = choice.get("message")
    if not isinstance(message, dict):
        if message:
            raise UpstreamError(
                f"Upstream returned a completion whose message is a {type(message).__name__}, not an object",
                status=502,
            )
        message = {}
    tool_blocks = tool_use_blocks(message, ctx, cut=finish_reason == "length")
    content = thinking_blocks(message)
    text = message_text(message)
    # Whitespace-only text is dropped as in the stream: Anthropic rejects such blocks when they are replayed.
    if text and not text.isspace():
        content.append({"type": "text", "text": text})
    content.extend(tool_blocks)
    if not content:
        # Anthropic answers an empty completion with one empty text block; clients index content[0].
        content.append({"type": "text", "text": ""})
    return {
        "id": ctx.message_id,
        "type": "message",
        "role": "assistant",
        "model": ctx.model,
        "content": content,
        "stop_reason": stop_reason(finish_reason, bool(tool_blocks)),
        "stop_sequence": None,
        "usage": anthropic_usage(completion.get("usage"), ctx.input_tokens_estimate),
    }


def parse_completion(raw: bytes) -> dict[str, Any]:
    """An upstream answer body as the JSON object it must be, or an UpstreamError 502 saying what it is instead."""
    try:
        parsed = loads(raw)
    except ValueError:
        raise UpstreamError("Upstream answered with invalid JSON", status=502) from None
    if not isinstance(parsed, dict):
        raise UpstreamError("Upstream answered with an unexpected JSON value", status=502)
    return parsed


def thinking_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Thinking blocks: one per `reasoning_details` text/summary item (each with its own signature), else one
    from `reasoning_content` / `reasoning`. The signature is "" unless the upstream sent a real one."""
    blocks: list[dict[str, Any]] = []
    details = message.get("reasoning_details")
    if isinstance(details, list) and details:
        for detail in details:
            field = detail_text_field(detail)
            if field is None:
                continue
            text = detail.get(field)
            text = text if isinstance(text, str) else ""
            signature = detail.get("signature")
            signature = signature if isinstance(signature, str) else ""
            if text or signature:
                blocks.append({"type": "thinking", "thinking": text, "signature": signature})
        return blocks
    reasoning = message.get("reasoning_content") or message.get("reasoning")
    if isinstance(reasoning, str) and reasoning:
        blocks.append({"type": "thinking", "thinking": reasoning, "signature": ""})
    return blocks


def message_text(message: dict[str, Any]) -> str:
    """`content` (a string or text parts) followed by `refusal`, which Anthropic has no separate field for."""
    content = message.get("content")
    if isinstance(content, list):
        content = "".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
        )
    text = content if isinstance(content, str) else ""
    refusal = message.get("refusal")
    return text + refusal if isinstance(refusal, str) else text


def tool_use_blocks(message: dict[str, Any], ctx: ResponseContext, cut: bool = False) -> list[dict[str, Any]]:
    """tool_use blocks for `tool_calls` (and the deprecated `function_call`), names mapped back.

    `cut`: the answer ended at the token limit, so arguments that are not valid JSON are a call cut short rather
    than an UpstreamError (see the module docstring).
    """
    calls = message.get("tool_calls")
    blocks: list[dict[str, Any]] = []
    for position, call in enumerate(calls if isinstance(calls, list) else ()):
        if isinstance(call, dict):
            key = call.get("index")
            key = key if isinstance(key, int) else position
            blocks.append(_tool_use(call.get("id"), call.get("function"), key, ctx, cut))
    function_call = message.get("function_call")
    if isinstance(function_call, dict):
        blocks.append(_tool_use(None, function_call, -1, ctx, cut))
    return blocks


def _tool_use(call_id: Any, function: Any, key: int, ctx: ResponseContext, cut: bool) -> dict[str, Any]:
    function = function if isinstance(function, dict) else {}
    name = function.get("name")
    name = ctx.tool_names.to_client(name if isinstance(name, str) else "")
    arguments = function.get("arguments")
    if not cut and not _is_json(arguments):
        raise UpstreamError(f"Upstream returned arguments for tool {name!r} that are not valid JSON", status=502)
    return {
        "type": "tool_use",
        "id": call_id if isinstance(call_id, str) and call_id else generated_tool_id(ctx.message_id, key),
        "name": name,
        "input": tool_input(arguments),
    }


def _is_json(arguments: Any) -> bool:
    """Whether tool arguments are a JSON value (or nothing, which is `{}`)."""
    if not isinstance(arguments, str) or not arguments.strip():
        return True
    try:
        loads(arguments)
    except NestingError:
        return True  # valid JSON, only too deep to unpack: tool_input keeps it as text
    except ValueError:
        return False
    return True


def tool_input(arguments: Any) -> dict[str, Any]:
    """Tool arguments as the object Anthropic's `input` must be.

    Empty arguments are `{}`; a JSON string holding JSON (double-encoded, seen from some models) is unwrapped;
    anything else that is not an object is kept as text under RAW_ARGUMENTS_KEY.
    """
    if isinstance(arguments, dict):
        return arguments
    text = arguments_text(arguments)
    if not text.strip():
        return {}
    value = _loads(text)
    if isinstance(value, str):
        value = _loads(value)
    # Arguments nested deeper than a request may be are kept as text too: the message must stay serialisable.
    return value if isinstance(value, dict) and not exceeds_depth(value) else {RAW_ARGUMENTS_KEY: text}


def _loads(text: str) -> Any:
    try:
        return loads(text)
    except ValueError:
        return None


def _choice_zero(choices: Any) -> dict[str, Any] | None:
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and not choice.get("index"):
            return choice
    return None


# -- folding a stream ---------------------------------------------------------------------------------------


class _Fold:
    """The state of accumulate_chunks: choice 0's message being rebuilt from deltas."""

    __slots__ = (
        "choice_error",
        "details",
        "fields",
        "finish_reason",
        "function_call",
        "head",
        "tools",
        "usage",
    )

    def __init__(self) -> None:
        self.head: dict[str, Any] = {}
        # Concatenated string fields of the message: content, refusal, reasoning_content, reasoning.
        self.fields: dict[str, list[str]] = {}
        self.details: dict[Any, dict[str, Any]] = {}
        self.tools: dict[int, dict[str, Any]] = {}
        self.function_call: dict[str, Any] | None = None
        self.finish_reason: str | None = None
        self.choice_error: Any = None
        self.usage: dict[str, Any] | None = None

    def chunk(self, chunk: dict[str, Any]) -> None:
        if not self.head:
            self.head = {key: chunk[key] for key in ("id", "created", "model") if key in chunk}
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choice = _choice_zero(chunk.get("choices"))
        if choice is None:
            return
        delta = choice.get("delta")
        if isinstance(delta, dict):
            self.delta(delta)
        if choice.get("finish_reason") and self.finish_reason is None:
            self.finish_reason = choice["finish_reason"]
            self.choice_error = choice.get("error")

    def delta(self, delta: dict[str, Any]) -> None:
        for key in ("content", "refusal", "reasoning_content", "reasoning"):
            value = delta.get(key)
            if isinstance(value, list):
                value = message_text({"content": value})
            if isinstance(value, str) and value:
                self.fields.setdefault(key, []).append(value)
        for detail in delta.get("reasoning_details") or ():
            if isinstance(detail, dict):
                self.detail(detail)
        for call in delta.get("tool_calls") or ():
            if isinstance(call, dict):
                self.tool_call(call)
        if isinstance(delta.get("function_call"), dict):
            self.function_call = self.function_call or {"name": "", "arguments": ""}
            self.merge_function(self.function_call, delta["function_call"])

    def detail(self, detail: dict[str, Any]) -> None:
        merged = self.details.setdefault(detail.get("index"), {"type": detail.get("type")})
        for key, value in detail.items():
            if key in ("text", "summary", "data") and isinstance(value, str):
                merged[key] = merged.get(key, "") + value
            elif (value is not None and key not in merged) or (key == "signature" and value):
                merged[key] = value

    def tool_call(self, call: dict[str, Any]) -> None:
        index = call.get("index")
        key = index if isinstance(index, int) else len(self.tools)
        tool = self.tools.setdefault(key, {"index": key, "id": "", "type": "function", "function": {}})
        if call.get("id") and not tool["id"]:
            tool["id"] = call["id"]
        self.merge_function(tool["function"], call.get("function"))

    @staticmethod
    def merge_function(target: dict[str, Any], fragment: Any) -> None:
        if not isinstance(fragment, dict):
            return
        if fragment.get("name") and not target.get("name"):
            target["name"] = fragment["name"]
        if fragment.get("arguments"):
            target["arguments"] = target.get("arguments", "") + arguments_text(fragment["arguments"])

    def completion(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": None}
        for key, parts in self.fields.items():
            message[key] = "".join(parts)
        if self.details:
            message["reasoning_details"] = list(self.details.values())
        if self.tools:
            message["tool_calls"] = [self.tools[key] for key in sorted(self.tools)]
        if self.function_call is not None:
            message["function_call"] = self.function_call
        choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": self.finish_reason}
        if self.choice_error is not None:
            choice["error"] = self.choice_error
        return {**self.head, "object": "chat.completion", "choices": [choice], "usage": self.usage}


def accumulate_chunks(chunks: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The non-stream completion equivalent to an OpenAI chunk stream (choice 0 only).

    A chunk with a top-level `error` ends the fold and the result carries that error, so convert_response
    raises just as StreamTranslator.feed would.
    """
    fold = _Fold()
    for chunk in chunks:
        if chunk.get("error"):
            return {**fold.completion(), "error": chunk["error"]}
        fold.chunk(chunk)
    return fold.completion()
