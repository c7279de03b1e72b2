"""The demo's in-process upstream: OpenAI Chat Completions answers (JSON or an event stream) made without a socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ccproxy import Upstream, UpstreamFailure, UpstreamRequest, UpstreamResponse
from ccproxy_demo.answers import DEMO_MODEL, Reply, reply_to

# Text is streamed in pieces of this many words, like a model would.
WORDS_PER_CHUNK = 4
CREATED = 1_700_000_000  # a fixed `created`: the answers are deterministic
JSON_HEADERS = {"content-type": "application/json"}
SSE_HEADERS = {"content-type": "text/event-stream"}


class DemoResponse(UpstreamResponse):
    """A body already made, given back once."""

    __slots__ = ("_chunks",)

    def __init__(self, headers: Mapping[str, str], chunks: list[bytes]) -> None:
        super().__init__(200, headers)
        self._chunks = chunks

    async def read(self, limit: int | None = None) -> bytes:
        body = b"".join(self._chunks)
        self._chunks = []
        return body if limit is None else body[:limit]

    async def iter_bytes(self) -> AsyncIterator[bytes]:
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            yield chunk

    async def aclose(self) -> None:
        self._chunks = []


class DemoUpstream(Upstream):
    """Answers `POST .../chat/completions` with the demo's reply and `GET .../models` with the demo model."""

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        if request.method == "GET" and request.path.endswith("/models"):
            listing = {"object": "list", "data": [{"id": DEMO_MODEL, "object": "model", "owned_by": "ccproxy-demo"}]}
            return DemoResponse(JSON_HEADERS, [json.dumps(listing).encode()])
        if request.method != "POST" or not request.path.endswith("/chat/completions"):
            raise UpstreamFailure(
                f"The demo provider answers chat completions only, not {request.method} {request.path}"
            )
        try:
            body = json.loads(request.body)
        except ValueError:
            raise UpstreamFailure("The demo provider received a body that is not JSON") from None
        if not isinstance(body, dict):
            raise UpstreamFailure("The demo provider received a body that is not a JSON object")
        reply = reply_to(body, len(request.body))
        model = str(body.get("model") or DEMO_MODEL)
        if request.stream:
            options = body.get("stream_options")
            with_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return DemoResponse(SSE_HEADERS, stream_chunks(reply, model, with_usage=with_usage))
        return DemoResponse(JSON_HEADERS, [json.dumps(completion(reply, model)).encode()])


def usage(reply: Reply) -> dict[str, int]:
    total = reply.prompt_tokens + reply.completion_tokens
    return {"prompt_tokens": reply.prompt_tokens, "completion_tokens": reply.completion_tokens, "total_tokens": total}


def completion(reply: Reply, model: str) -> dict[str, Any]:
    """The non-stream answer."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_call is not None:
        call = reply.tool_call
        function = {"name": call.name, "arguments": call.arguments}
        message["tool_calls"] = [{"id": call.id, "type": "function", "function": function}]
    choice = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
    return _envelope(reply, model, "chat.completion", [choice]) | {"usage": usage(reply)}


def stream_chunks(reply: Reply, model: str, *, with_usage: bool) -> list[bytes]:
    """The streamed answer as SSE events: reasoning and text in word pieces, the tool call's arguments in two."""
    deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
    deltas += [{"reasoning_content": piece} for piece in _pieces(reply.reasoning)]
    deltas += [{"content": piece} for piece in _pieces(reply.text)]
    if reply.tool_call is not None:
        call = reply.tool_call
        head = {"index": 0, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        half = len(call.arguments) // 2
        deltas.append({"tool_calls": [head]})
        for part in (call.arguments[:half], call.arguments[half:]):
            deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
    chunks = [_envelope(reply, model, "chat.completion.chunk", [{"index": 0, "delta": delta}]) for delta in deltas]
    finish = {"index": 0, "delta": {}, "finish_reason": reply.finish_reason}
    chunks.append(_envelope(reply, model, "chat.completion.chunk", [finish]))
    if with_usage:
        chunks.append(_envelope(reply, model, "chat.completion.chunk", []) | {"usage": usage(reply)})
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]


def _envelope(reply: Reply, model: str, kind: str, choices: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": reply.id, "object": kind, "created": CREATED, "model": model, "choices": choices}


def _pieces(text: str) -> list[str]:
    words = text.split(" ")
    return [
        " ".join(words[start : start + WORDS_PER_CHUNK]) + (" " if start + WORDS_PER_CHUNK < len(words) else "")
        for start in range(0, len(words), WORDS_PER_CHUNK)
        if text
    ]
