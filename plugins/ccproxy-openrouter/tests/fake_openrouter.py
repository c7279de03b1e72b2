"""A fake OpenRouter Chat Completions server that refuses what OpenRouter (and Claude behind it) refuses.

Run it as `python fake_openrouter.py --port 0 [--api-key KEY]`: it prints `PORT=<n>` once listening. Control surface:
`GET /_requests` (each request's headers, body, status, error) and `POST /_reset`.

What it refuses, with OpenRouter's own 400 wording (wire.md 4.8, peers.md problem 10/11):
- a `reasoning` object with both `effort` and `max_tokens`; `reasoning.enabled = false` for a model whose reasoning is
  mandatory (`openai/gpt-5*`, `deepseek/deepseek-r1*`, `minimax/*`);
- `cache_control` anywhere in `tools` (Anthropic routes reject it), one that is not `{"type": "ephemeral"}` (with an
  optional `ttl`), on an empty text part, or more than 4 of them; `cache_control` keys anywhere else than on a content
  part (a system/user/tool message's text part, an image or file part);
- for `anthropic/*` models with reasoning on: an assistant message with tool calls that does not carry, as
  `reasoning_details`, exactly the reasoning details this server sent with that answer (text, signature, format):
  Claude rejects a replayed thinking block whose signature does not match ("Invalid `signature` in `thinking`
  block"), and a tool-use turn without its thinking block; and `reasoning.max_tokens` not below `max_tokens`;
- a missing or wrong `Authorization: Bearer <key>` (401), and messages OpenAI-compatible servers refuse (a tool
  message that answers no open tool call, an assistant message with neither content nor tool calls).

What it answers, from markers in the user messages' text:
- `OR_TOOL_LOOP <n>` (in the first user message that has a marker): when `Bash` is offered, `n` rounds of one call
  (`echo or-round-<k>`), then the text `OR_LOOP_DONE` plus the tool outputs seen;
- every answer to a request with reasoning on (and not `exclude`d) starts with reasoning: `reasoning` and one
  `reasoning.text` detail whose signature arrives in a last detail of its own, as in the recorded streams;
- `OR_ERROR_BODY <code>`: HTTP 200 with `{"error": {"code": <code>, "message", "metadata"}}` (a stream gets it as its
  first event); `OR_CHOICE_ERROR <code>`: some text, then `finish_reason: "error"` with `choices[0].error`;
  `OR_STRING_ERROR`: some text, then a chunk with a top-level `{"error": {"code": "server_error", ...}}` and
  `finish_reason: "error"` (the shape OpenRouter documents for streams);
- `OR_IGNORE_STREAM`: a stream request is answered with the plain JSON completion;
- `OR_CACHE`: usage reports `cached_tokens` and `cache_write_tokens`;
- otherwise the text `FAKE_OPENROUTER_REPLY: <model>`.
Every answer's usage carries `cost` (COST_USD; with `OR_BYOK`, `is_byok` and the fee BYOK_FEE_USD as `cost`, and
BYOK_COST_USD as `cost_details.upstream_inference_cost`). `OR_CACHE` / `OR_BYOK` / `OR_TOOL_LOOP` are read from the
first user message that has a marker, the others from the last user message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

PROMPT_TOKENS = 2000
CACHED_TOKENS = 1500
CACHE_WRITE_TOKENS = 300
COMPLETION_TOKENS = 40
COST_USD = 0.0125
BYOK_FEE_USD = 0.0005
BYOK_COST_USD = 0.02
REASONING_FORMAT = "anthropic-claude-v1"
MANDATORY_REASONING = re.compile(r"^(?:openai/(?:gpt-5|o\d)|deepseek/deepseek-r1|minimax/)")
CHUNK_PAUSE_SECONDS = 0.002
# What OpenRouter adds to a provider's failure: who failed and its own answer.
PROVIDER_METADATA = {
    "provider_name": "Anthropic",
    "raw": json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
}
MAX_CACHE_MARKERS = 4


class OpenRouterError(Exception):
    """An error answer: status and OpenRouter's error body."""

    def __init__(self, status: int, message: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.metadata = metadata

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.status, "message": self.message}
        if self.metadata is not None:
            error["metadata"] = self.metadata
        return {"error": error}


def bad(message: str) -> OpenRouterError:
    return OpenRouterError(400, message)


def message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content if part.get("type") == "text")
    return ""


def _marker(text: str, name: str) -> re.Match[str] | None:
    return re.search(rf"(?<![A-Za-z0-9]){name}(?:\s+(\d+))?(?![A-Za-z0-9])", text)


# -- the rules --------------------------------------------------------------------------------------------------


class Rules:
    """OpenRouter's refusals; remembers the reasoning details it sent, to check they come back unchanged."""

    def __init__(self) -> None:
        self.issued: dict[str, dict[str, Any]] = {}  # tool call id -> the reasoning_details sent with it

    def check(self, body: dict[str, Any]) -> None:
        if not isinstance(body.get("model"), str) or not isinstance(body.get("messages"), list) or not body["messages"]:
            raise bad("model and messages are required")
        self._reasoning(body)
        self._tools(body.get("tools"))
        self._messages(body["messages"])
        if body["model"].startswith("anthropic/") and self._reasoning_on(body):
            self._replayed(body["messages"])

    def _reasoning(self, body: dict[str, Any]) -> None:
        reasoning = body.get("reasoning")
        if reasoning is None:
            return
        if not isinstance(reasoning, dict):
            raise bad("reasoning must be an object")
        if "effort" in reasoning and "max_tokens" in reasoning:
            raise bad("Only one of reasoning.effort and reasoning.max_tokens can be specified")
        if reasoning.get("enabled") is False and MANDATORY_REASONING.match(body["model"]):
            raise bad("Reasoning is mandatory for this endpoint and cannot be disabled.")
        budget = reasoning.get("max_tokens")
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        anthropic = body["model"].startswith("anthropic/")
        if anthropic and isinstance(budget, int) and isinstance(limit, int) and budget >= limit:
            raise bad(f"`max_tokens` must be greater than `thinking.budget_tokens` ({limit} <= {budget})")

    @staticmethod
    def _reasoning_on(body: dict[str, Any]) -> bool:
        reasoning = body.get("reasoning")
        return isinstance(reasoning, dict) and reasoning.get("enabled") is not False

    def _tools(self, tools: Any) -> None:
        if tools is not None and "cache_control" in json.dumps(tools):
            raise bad("tools.0.custom.cache_control: Extra inputs are not permitted")

    def _messages(self, messages: list[dict[str, Any]]) -> None:
        markers = 0
        open_calls: set[str] = set()
        for index, message in enumerate(messages):
            if "cache_control" in message:
                raise bad(f"messages.{index}.cache_control: put cache_control on content parts")
            role = message.get("role")
            if role == "assistant":
                if not message.get("content") and not message.get("tool_calls"):
                    raise bad(f"messages.{index}: an assistant message needs content or tool_calls")
                open_calls = {call["id"] for call in message.get("tool_calls") or ()}
            elif role == "tool" and message.get("tool_call_id") not in open_calls:
                raise bad(f"messages.{index}: tool message answers no tool call of the assistant before it")
            content = message.get("content")
            if isinstance(content, list):
                markers += self._parts(index, content)
        if markers > MAX_CACHE_MARKERS:
            raise bad(f"A maximum of {MAX_CACHE_MARKERS} blocks with cache_control may be provided. Found {markers}.")

    def _parts(self, index: int, parts: list[dict[str, Any]]) -> int:
        markers = 0
        for part in parts:
            marker = part.get("cache_control")
            if marker is None:
                continue
            if not isinstance(marker, dict) or marker.get("type") != "ephemeral" or set(marker) - {"type", "ttl"}:
                raise bad(f"messages.{index}: cache_control must be {{'type': 'ephemeral'}}")
            if part.get("type") == "text" and not part.get("text"):
                raise bad(f"messages.{index}: cache_control cannot be set for empty text blocks")
            markers += 1
        return markers

    def _replayed(self, messages: list[dict[str, Any]]) -> None:
        """Every assistant tool-use turn this server answered must come back with its reasoning details as sent."""
        for index, message in enumerate(messages):
            if message.get("role") != "assistant" or not message.get("tool_calls"):
                continue
            sent = self.issued.get(message["tool_calls"][0]["id"])
            if sent is None:
                continue  # not one of ours (another backend's history): nothing to compare
            back = message.get("reasoning_details")
            if not back:
                raise bad(
                    f"messages.{index}.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
                    "`tool_use`. When `thinking` is enabled, a final `assistant` message must start with a "
                    "thinking block"
                )
            if _comparable(back) != _comparable(sent):
                raise bad(f"messages.{index}.content.0: Invalid `signature` in `thinking` block")

    def remember(self, reply: Reply) -> None:
        if reply.details and reply.tool_calls:
            self.issued[reply.tool_calls[0].id] = reply.details


def _comparable(details: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [(d.get("type"), d.get("text"), d.get("signature"), d.get("format")) for d in details]


# -- the answers ------------------------------------------------------------------------------------------------


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: "toolu_vrtx_" + secrets.token_hex(10))


@dataclass
class Reply:
    """What the fake model answers to one request."""

    text: str = ""
    reasoning: str = ""
    details: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    cached: bool = False
    byok: bool = False
    error_body: int | None = None
    choice_error: int | None = None
    string_error: bool = False
    ignore_stream: bool = False

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    def usage(self) -> dict[str, Any]:
        usage: dict[str, Any] = {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS,
            "cost": BYOK_FEE_USD if self.byok else COST_USD,
            "is_byok": self.byok,
            "prompt_tokens_details": {
                "cached_tokens": CACHED_TOKENS if self.cached else 0,
                "cache_write_tokens": CACHE_WRITE_TOKENS if self.cached else 0,
                "audio_tokens": 0,
                "video_tokens": 0,
            },
            "cost_details": {"upstream_inference_cost": BYOK_COST_USD if self.byok else COST_USD},
            "completion_tokens_details": {"reasoning_tokens": 10 if self.reasoning else 0, "image_tokens": 0},
        }
        return usage

    def think(self, text: str) -> None:
        signature = hashlib.sha256(text.encode()).hexdigest()
        self.reasoning = text
        self.details = [
            {"type": "reasoning.text", "text": text, "format": REASONING_FORMAT, "index": 0, "signature": signature}
        ]


def script(body: dict[str, Any]) -> Reply:
    messages = body["messages"]
    last_user = next((m for m in reversed(messages) if m["role"] == "user"), {})
    text = message_text(last_user)
    first_user = next((message_text(m) for m in messages if m["role"] == "user" and "OR_" in message_text(m)), text)
    reply = Reply(cached=bool(_marker(first_user, "OR_CACHE")), byok=bool(_marker(first_user, "OR_BYOK")))
    reasoning = body.get("reasoning")
    wants_reasoning = isinstance(reasoning, dict) and reasoning.get("enabled") is not False
    if wants_reasoning and not reasoning.get("exclude"):
        reply.think(f"Thinking about round {sum(m['role'] == 'tool' for m in messages)} " + secrets.token_hex(4))
    for name, attribute in (("OR_ERROR_BODY", "error_body"), ("OR_CHOICE_ERROR", "choice_error")):
        found = _marker(text, name)
        if found:
            setattr(reply, attribute, int(found.group(1) or 502))
    reply.string_error = bool(_marker(text, "OR_STRING_ERROR"))
    reply.ignore_stream = bool(_marker(text, "OR_IGNORE_STREAM"))
    loop = _marker(first_user, "OR_TOOL_LOOP")
    outputs = [message_text(m) for m in messages if m["role"] == "tool"]
    offers_bash = any(tool["function"]["name"] == "Bash" for tool in body.get("tools") or ())
    if loop and offers_bash and len(outputs) < int(loop.group(1) or 2):
        reply.tool_calls = [ToolCall("Bash", {"command": f"echo or-round-{len(outputs) + 1}"})]
    elif loop:
        reply.text = "OR_LOOP_DONE " + " | ".join(output.strip() for output in outputs)
    else:
        reply.text = f"FAKE_OPENROUTER_REPLY: {body['model']}"
    return reply


def _envelope(model: str, choices: list[dict[str, Any]], ident: str) -> dict[str, Any]:
    return {
        "id": ident,
        "provider": "Anthropic",
        "model": model,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "choices": choices,
    }


def chunks(reply: Reply, model: str) -> Iterator[dict[str, Any]]:
    """The streamed answer, shaped like the recorded OpenRouter streams (reasoning_details, then the signature)."""
    ident = "gen-" + secrets.token_hex(10)

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        delta = {"role": "assistant", "content": "", **delta}
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "native_finish_reason": finish}
        return _envelope(model, [choice], ident)

    if reply.details:
        detail = reply.details[0]
        half = len(reply.reasoning) // 2
        for piece in (reply.reasoning[:half], reply.reasoning[half:]):
            piece_detail = {"type": "reasoning.text", "text": piece, "format": REASONING_FORMAT, "index": 0}
            yield chunk({"reasoning": piece, "reasoning_details": [piece_detail]})
        signed = {"type": "reasoning.text", "signature": detail["signature"], "format": REASONING_FORMAT, "index": 0}
        yield chunk({"reasoning": "", "reasoning_details": [signed]})
    if reply.text:
        yield chunk({"content": reply.text[:5]})
        yield chunk({"content": reply.text[5:]})
    if reply.choice_error is not None:
        failing = chunk({}, "error")
        failing["choices"][0]["error"] = {"code": reply.choice_error, "message": "Provider returned error"}
        yield failing
        return
    if reply.string_error:
        failing = chunk({}, "error")
        failing["error"] = {"code": "server_error", "message": "Provider disconnected unexpectedly"}
        yield failing
        return
    for index, call in enumerate(reply.tool_calls):
        head = {"index": index, "id": call.id, "type": "function", "function": {"name": call.name, "arguments": ""}}
        yield chunk({"content": None, "tool_calls": [head]})
        arguments = json.dumps(call.arguments)
        yield chunk({"content": None, "tool_calls": [{"index": index, "function": {"arguments": arguments}}]})
    yield chunk({}, reply.finish_reason)
    last = chunk({}, reply.finish_reason)
    last["usage"] = reply.usage()
    yield last


def completion(reply: Reply, model: str) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.text or None, "refusal": None}
    if reply.details:
        message["reasoning"] = reply.reasoning
        message["reasoning_details"] = reply.details
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": c.id,
                "type": "function",
                "index": i,
                "function": {"name": c.name, "arguments": json.dumps(c.arguments)},
            }
            for i, c in enumerate(reply.tool_calls)
        ]
    choice: dict[str, Any] = {"index": 0, "message": message, "finish_reason": reply.finish_reason}
    if reply.choice_error is not None:
        choice.update(finish_reason="error", error={"code": reply.choice_error, "message": "Provider returned error"})
    answer = _envelope(model, [choice], "gen-" + secrets.token_hex(10))
    answer.update(object="chat.completion", usage=reply.usage())
    return answer


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    return f"data: {payload}\n\n".encode()


# -- the server -------------------------------------------------------------------------------------------------


class FakeOpenRouter:
    def __init__(self, api_key: str | None) -> None:
        self.api_key = api_key
        self.records: list[dict[str, Any]] = []
        self.rules = Rules()

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/api/v1/chat/completions", self.chat_completions)
        app.router.add_get("/_requests", self.list_requests)
        app.router.add_post("/_reset", self.reset)
        return app

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.records})

    async def reset(self, request: web.Request) -> web.Response:
        self.records.clear()
        self.rules = Rules()
        return web.json_response({"ok": True})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        body = json.loads(await request.read())
        headers = {name.lower(): value for name, value in request.headers.items()}
        record: dict[str, Any] = {"path": request.path, "headers": headers, "body": body, "status": None, "error": None}
        self.records.append(record)
        try:
            if self.api_key is not None and headers.get("authorization") != f"Bearer {self.api_key}":
                raise OpenRouterError(401, "No auth credentials found")
            self.rules.check(body)
            reply = script(body)
        except OpenRouterError as exc:
            record.update(status=exc.status, error=exc.message)
            return web.json_response(exc.body(), status=exc.status)
        record["status"] = 200
        self.rules.remember(reply)
        if reply.error_body is not None:
            error = OpenRouterError(reply.error_body, "Provider returned error", PROVIDER_METADATA)
            record["error"] = error.message
            if not body.get("stream"):
                return web.json_response(error.body())
            return await self._stream(request, [error.body()])
        if body.get("stream") and not reply.ignore_stream:
            return await self._stream(request, list(chunks(reply, body["model"])), done=True)
        return web.json_response(completion(reply, body["model"]))

    async def _stream(
        self, request: web.Request, events: list[dict[str, Any]], *, done: bool = False
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        await response.write(b": OPENROUTER PROCESSING\n\n")
        for event in events:
            await response.write(sse(event))
            await asyncio.sleep(CHUNK_PAUSE_SECONDS)
        if done:
            await response.write(sse("[DONE]"))
        await response.write_eof()
        return response


async def serve(host: str, port: int, api_key: str | None) -> None:
    runner = web.AppRunner(FakeOpenRouter(api_key).app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"PORT={runner.addresses[0][1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.api_key))


if __name__ == "__main__":
    main()
