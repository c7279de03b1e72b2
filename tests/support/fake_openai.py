"""A fake OpenAI Chat Completions server for end-to-end tests, scripted by markers in the last user message.

Run it as `python -m tests.support.fake_openai --port 0 [--api-key KEY] [--basic-auth USER:PASSWORD]`: it prints
`PORT=<n>` once listening. `--basic-auth` makes it require `Authorization: Basic ...` with those credentials on every
OpenAI path (401 otherwise), like a server behind `OPENAI_BASE_URL=http://user:password@host/v1`.

Behaviour, from markers matched as whole words in the text of the LAST `role: user` message:
- tool messages after the last assistant message -> `TOOL_RESULT_SEEN: <tool contents, one per line>`
- `FAIL_<status>` -> that HTTP status with an OpenAI error body (429 adds `Retry-After: 7`);
  `FAIL_<status>_ONCE` fails only the first request carrying that exact prompt (for retry tests);
  `ECHO_KEY` -> 401 whose message repeats the presented key in full, as some providers do
- `SLOW_<seconds>` (or `SLOW`, 30 s) -> wait before answering
- `MIDSTREAM_ERROR` -> HTTP 200, some text, then an in-stream `{"error": {...}}` data event (OpenRouter style)
- `HANG_STREAM` -> a few chunks, then silence until the client goes away (recorded as `"cancelled": true`)
- `USE_BASH`, `USE_TWO_TOOLS`, `USE_READ [path]` -> tool calls; `THINK` -> `reasoning_content` first;
  `CACHED` -> `prompt_tokens_details.cached_tokens`; otherwise the text `FAKE_OPENAI_REPLY: <model>`.
- `CALL_TOOL <name> <JSON object>` -> one call of the declared function `<name>` with that object as its arguments
  (the JSON runs to the end of the line); no call when the request declares no such function.

Upstream faults for context overflow and key redaction (one block, `ScriptedFaults` below):
- `CONTEXT_OVERFLOW_<NAME>` -> that server's real context-overflow answer (tests/support/vendor_errors.py names them:
  OPENAI, VLLM, LLAMACPP, OLLAMA, OPENROUTER, DEEPSEEK, ...); `CONTEXT_OVERFLOW_FIT` -> vLLM's "max_tokens is too
  large" unless the requested output fits its window next to the prompt, else the normal reply
- `IN_BAND` -> any scripted error comes inside an HTTP 200: as the JSON body, or as the first event of the stream
- `LEAK_KEY_FINISH_ERROR` -> some text, then `finish_reason: "error"` with a `choices[0].error` quoting the key
- `LEAK_KEY_BAD_HTTP` -> a malformed HTTP status line quoting the key (HTTP clients put it in their exception text)
- Upstream faults (answers a well-behaved server never sends; see the block "upstream faults" below):
  `IGNORE_STREAM` -> a stream request answered with the plain JSON completion (with `MIDSTREAM_ERROR`: HTTP 200 and
  an `{"error": ...}` body); `TRUNCATE_STREAM` -> the stream ends after the first text pieces, without finish_reason
  or `[DONE]`; `HTML_BODY` -> HTTP 200 with an HTML page; `EMPTY_BODY` -> HTTP 200 `text/event-stream` with an empty
  body; `BAD_TOOL_JSON` -> a Bash tool call whose arguments are cut-off JSON, finish_reason `tool_calls`.
- Paced streams (see the block "paced streams" below): `TRICKLE` -> after the first pieces, one byte of an SSE
  comment line every 0.1 s until the client goes away (each byte well within any read timeout);
  `LONG_STREAM_<seconds>` -> a text piece every 0.2 s for that long, then the normal end of the answer.
- Echo in pieces (see the block "echo in pieces" below): `ECHO_PIECES <base64>` -> the answer text is the decoded
  text, streamed in pieces of 3 characters (base64 so a guardrail that redacts prompts never sees it; small pieces
  so a secret in it is split across many deltas).

Server modes, for tests of several backends at once (one block, `ServerMode` below): the whole server, whatever the
prompt, `--fail-status N` answers every chat completion with that status and an OpenAI error body (only the first
`--fail-times K` of them when K > 0; `--retry-after S` adds that header), `--delay S` waits S seconds before any
answer. `POST /_mode` with `{"fail_status": ..., "fail_times": ..., "retry_after": ..., "delay": ...}` replaces the
mode at run time (and restarts the count of failures); `{}` is a healthy server again.

Reasoning vendors (one block, tests/support/reasoning_vendors.py): a request for a DeepSeek V4 model
(`deepseek-v4*`) or a Mistral model (`mistral*`, `magistral*`, ...) is validated by that vendor's rules instead of
OpenAI's — DeepSeek's 400 when thinking mode is on and an assistant tool-call message lacks `reasoning_content`,
Mistral's 422 for any reasoning field — and a DeepSeek V4 answer in thinking mode streams `reasoning_content` first;
`TOOL_ROUNDS_<n>` (DeepSeek V4) makes a Bash tool loop of n rounds. See that module's docstring.

Requests are validated like api.openai.com does (openai_rules.py), so bad conversions fail loudly.
Control surface: `GET /_requests` (each request's headers, body, status, cancelled) and `POST /_reset`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import re
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .openai_rules import OpenAIError, RequestValidator, invalid
from .reasoning_vendors import vendor_rules
from .vendor_errors import OVERFLOW_ERRORS, VLLM_PROMPT_TOKENS, VLLM_WINDOW, vllm_max_tokens_too_large

PROMPT_TOKENS = 1234
CACHED_TOKENS = 1000
COMPLETION_TOKENS = 56
REASONING_TOKENS = 20
RETRY_AFTER_SECONDS = "7"
DEFAULT_SLOW_SECONDS = 30.0
MAX_HANG_SECONDS = 300.0
FAKE_REASONING = "Let me think about this step by step."
MIDSTREAM_ERROR = {"code": 502, "message": "provider died"}
BASH_ARGUMENTS = {"command": "echo fake-tool-output", "description": "Echo a marker"}
WEATHER_CITIES = ("Paris", "Tokyo")
# Pause between SSE writes so the client sees the stream arrive in many TCP reads, as from a real server.
CHUNK_PAUSE_SECONDS = 0.002

ERROR_TEMPLATES: dict[int, tuple[str, str, str | None]] = {
    400: ("invalid_request_error", "Invalid request (FAIL_400 marker).", None),
    401: ("invalid_request_error", "Incorrect API key provided: sk-fa***ake.", "invalid_api_key"),
    403: (
        "invalid_request_error",
        "Country, region, or territory not supported",
        "unsupported_country_region_territory",
    ),
    404: (
        "invalid_request_error",
        "The model `fake` does not exist or you do not have access to it.",
        "model_not_found",
    ),
    413: ("invalid_request_error", "Request too large (FAIL_413 marker).", "request_too_large"),
    429: ("requests", "Rate limit reached for requests (FAIL_429 marker).", "rate_limit_exceeded"),
    500: ("server_error", "The server had an error while processing your request.", None),
    502: ("server_error", "Bad gateway.", None),
    503: ("server_error", "The engine is currently overloaded, please try again later.", None),
    504: ("server_error", "Gateway timeout.", None),
}


@dataclass
class ToolCall:
    """One scripted function call."""

    name: str
    arguments: dict[str, Any]
    id: str = field(default_factory=lambda: "call_" + secrets.token_hex(12))
    # Arguments text sent instead of the JSON of `arguments` (BAD_TOOL_JSON).
    raw_arguments: str | None = None

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments) if self.raw_arguments is None else self.raw_arguments


@dataclass
class Reply:
    """What the fake model answers to one request."""

    text: str = ""
    reasoning: str = ""
    tool_calls: list[ToolCall] = field(default_factory=list)
    cached: bool = False
    delay: float = 0.0
    hang: bool = False
    midstream_error: bool = False
    stream_faults: frozenset[str] = frozenset()
    error: OpenAIError | None = None
    faults: ScriptedFaults = field(default_factory=lambda: ScriptedFaults())
    piece_chars: int = 0  # stream the text in pieces of this many characters (0: three pieces)
    pace: StreamPace | None = None  # TRICKLE / LONG_STREAM_<s> (the block "paced streams" below)

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    def usage(self) -> dict[str, Any]:
        cached = CACHED_TOKENS if self.cached else 0
        reasoning = REASONING_TOKENS if self.reasoning else 0
        return {
            "prompt_tokens": PROMPT_TOKENS,
            "completion_tokens": COMPLETION_TOKENS + reasoning,
            "total_tokens": PROMPT_TOKENS + COMPLETION_TOKENS + reasoning,
            "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": reasoning,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }


def message_text(message: dict[str, Any]) -> str:
    """The text of a message: its string content or its text parts joined."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(part["text"] for part in content if part.get("type") == "text")
    return ""


def _marker(text: str, name: str) -> re.Match[str] | None:
    return re.search(rf"(?<![A-Za-z0-9]){name}(?![A-Za-z0-9])", text)


class Script:
    """Decides the reply for a validated request from the markers in its last user message."""

    def __init__(self) -> None:
        self.failed_once: set[str] = set()

    def reply(self, body: dict[str, Any], presented_key: str = "") -> Reply:
        messages: list[dict[str, Any]] = body["messages"]
        tool_results = self._trailing_tool_results(messages)
        text = self._last_user_text(messages)
        reply = Reply(cached=_marker(text, "CACHED") is not None, delay=self._delay(text))
        if tool_results:
            reply.text = "TOOL_RESULT_SEEN: " + "\n".join(tool_results)
            return reply
        reply.error = self._error(text)
        if _marker(text, "ECHO_KEY"):
            message = f"Incorrect API key provided: {presented_key}."
            reply.error = OpenAIError(401, message, code="invalid_api_key")
        reply.faults = ScriptedFaults.from_prompt(text, body, presented_key)
        reply.error = reply.faults.overflow or reply.error
        reply.hang = _marker(text, "HANG_STREAM") is not None
        reply.pace = StreamPace.from_prompt(text)
        reply.midstream_error = _marker(text, "MIDSTREAM_ERROR") is not None
        reply.stream_faults = frozenset(name for name in FAULT_MARKERS if _marker(text, name))
        if _marker(text, "THINK"):
            reply.reasoning = FAKE_REASONING
        reply.tool_calls = named_tool_calls(text, body.get("tools")) or self._tool_calls(text, messages)
        if not reply.tool_calls:
            reply.text = f"FAKE_OPENAI_REPLY: {body['model']}"
            echo_in_pieces(text, reply)
        return reply

    def _trailing_tool_results(self, messages: list[dict[str, Any]]) -> list[str]:
        results: list[str] = []
        for message in reversed(messages):
            if message["role"] == "assistant":
                break
            if message["role"] == "tool":
                results.append(message_text(message))
        return results[::-1]

    def _last_user_text(self, messages: list[dict[str, Any]]) -> str:
        for message in reversed(messages):
            if message["role"] == "user":
                return message_text(message)
        return ""

    def _delay(self, text: str) -> float:
        match = re.search(r"(?<![A-Za-z0-9])SLOW(?:_(\d+(?:\.\d+)?))?(?![A-Za-z0-9.])", text)
        if match is None:
            return 0.0
        return float(match.group(1)) if match.group(1) else DEFAULT_SLOW_SECONDS

    def _error(self, text: str) -> OpenAIError | None:
        match = re.search(r"(?<![A-Za-z0-9])FAIL_(\d{3})(_ONCE)?(?![A-Za-z0-9])", text)
        if match is None:
            return None
        if match.group(2):
            if text in self.failed_once:
                return None
            self.failed_once.add(text)
        return scripted_error(int(match.group(1)))

    def _tool_calls(self, text: str, messages: list[dict[str, Any]]) -> list[ToolCall]:
        if _marker(text, "BAD_TOOL_JSON"):
            return [ToolCall("Bash", dict(BASH_ARGUMENTS), raw_arguments=BAD_TOOL_ARGUMENTS)]
        if _marker(text, "USE_BASH"):
            return [ToolCall("Bash", dict(BASH_ARGUMENTS))]
        if _marker(text, "USE_TWO_TOOLS"):
            return [ToolCall("get_weather", {"city": city}) for city in WEATHER_CITIES]
        if _marker(text, "USE_READ"):
            return [ToolCall("Read", {"file_path": self._read_path(text, messages)})]
        return []

    def _read_path(self, text: str, messages: list[dict[str, Any]]) -> str:
        """The first path-like word after USE_READ, made absolute with the prompt's working directory."""
        after = text.split("USE_READ", 1)[1]
        path = next((w for w in re.findall(r"[\w./~-]+", after) if "/" in w or re.search(r"\.\w+$", w)), "note.txt")
        if path.startswith("/"):
            return path
        for message in messages:
            if message["role"] in ("system", "developer"):
                found = re.search(r"[Ww]orking directory: (/\S+)", message_text(message))
                if found:
                    return f"{found.group(1).rstrip('/')}/{path}"
        return path


# -- calls of a function by name (Anthropic-defined client tools: bash, text editor, memory) ----------------------

CALL_TOOL = re.compile(r"(?<![A-Za-z0-9])CALL_TOOL\s+([A-Za-z0-9_-]+)\s+(\{.*\})")


def named_tool_calls(text: str, tools: list[dict[str, Any]] | None) -> list[ToolCall]:
    """The call a `CALL_TOOL <name> <JSON object>` marker asks for, if the request declares that function."""
    match = CALL_TOOL.search(text)
    if match is None:
        return []
    declared = {tool["function"]["name"] for tool in tools or ()}
    if match.group(1) not in declared:
        return []
    return [ToolCall(match.group(1), json.loads(match.group(2)))]


# ----------------------------------------------------------------------------------------------------------------


def scripted_error(status: int) -> OpenAIError:
    """The OpenAI error for a FAIL_<status> marker."""
    error_type, message, code = ERROR_TEMPLATES.get(status, ("server_error", f"Scripted error {status}.", None))
    headers = {"Retry-After": RETRY_AFTER_SECONDS} if status == 429 else {}
    return OpenAIError(status, message, error_type=error_type, code=code, headers=headers)


class ChunkWriter:
    """Builds the chat.completion.chunk objects of one streamed answer, in OpenAI's order and shape."""

    def __init__(self, model: str, include_usage: bool) -> None:
        self.id = "chatcmpl-" + secrets.token_hex(14)
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        chunk = self._envelope([{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}])
        if self.include_usage:
            chunk["usage"] = None
        return chunk

    def usage_chunk(self, usage: dict[str, Any]) -> dict[str, Any]:
        chunk = self._envelope([])
        chunk["usage"] = usage
        return chunk

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_fake",
            "choices": choices,
            "obfuscation": secrets.token_urlsafe(6),
        }

    def opening(self, reply: Reply) -> Iterator[dict[str, Any]]:
        """The role chunk, reasoning pieces and text pieces."""
        yield self.chunk({"role": "assistant", "content": "", "refusal": None})
        for piece in split_pieces(reply.reasoning):
            yield self.chunk({"content": None, "reasoning_content": piece})
        for piece in split_pieces(reply.text) if not reply.piece_chars else pieces_of(reply.text, reply.piece_chars):
            yield self.chunk({"content": piece})

    def tool_calls(self, reply: Reply) -> Iterator[dict[str, Any]]:
        for index, call in enumerate(reply.tool_calls):
            head = {
                "index": index,
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": ""},
            }
            yield self.chunk({"tool_calls": [head]})
            for piece in split_pieces(call.arguments_json, 4):
                yield self.chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})

    def closing(self, reply: Reply) -> Iterator[dict[str, Any]]:
        yield self.chunk({}, reply.finish_reason)
        if self.include_usage:
            yield self.usage_chunk(reply.usage())


def split_pieces(text: str, count: int = 3) -> list[str]:
    """`text` cut into `count` non-empty pieces (fewer when it is short), like tokens arriving one by one."""
    if not text:
        return []
    size = max(1, -(-len(text) // count))
    return [text[start : start + size] for start in range(0, len(text), size)]


def completion(reply: Reply, model: str) -> dict[str, Any]:
    """The non-streaming chat.completion object for `reply`."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text or None,
        "refusal": None,
        "annotations": [],
    }
    if reply.reasoning:
        message["reasoning_content"] = reply.reasoning
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments_json}}
            for c in reply.tool_calls
        ]
    return {
        "id": "chatcmpl-" + secrets.token_hex(14),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reply.finish_reason}],
        "usage": reply.usage(),
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def sse(data: dict[str, Any] | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return f"data: {payload}\n\n".encode()


# --- scripted upstream faults: context overflow and in-band errors that quote the key ---------------------------


class VendorAnswer(OpenAIError):
    """An error answered with a vendor's own body (not always OpenAI's shape)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(status, json.dumps(body))
        self.vendor_body = body

    def body(self) -> dict[str, Any]:
        return self.vendor_body


@dataclass
class ScriptedFaults:
    """The faults a prompt asks for (see the module docstring): how the answer goes wrong, if it does."""

    overflow: OpenAIError | None = None
    in_band: bool = False
    finish_error: str = ""
    bad_http: str = ""

    @classmethod
    def from_prompt(cls, text: str, body: dict[str, Any], presented_key: str) -> ScriptedFaults:
        faults = cls(in_band=_marker(text, "IN_BAND") is not None)
        named = re.search(r"(?<![A-Za-z0-9])CONTEXT_OVERFLOW_([A-Z0-9_]+)", text)
        if named and named.group(1) == "FIT":
            faults.overflow = cls._unless_output_fits(body)
        elif named and named.group(1) in OVERFLOW_ERRORS:
            found = OVERFLOW_ERRORS[named.group(1)]
            faults.overflow = VendorAnswer(found.status, found.body)
        if _marker(text, "LEAK_KEY_FINISH_ERROR"):
            faults.finish_error = f"Provider rejected the request made with key {presented_key}"
        if _marker(text, "LEAK_KEY_BAD_HTTP"):
            faults.bad_http = f"HTTP/1.1 2x0 {presented_key}\r\n\r\n"
        return faults

    @staticmethod
    def _unless_output_fits(body: dict[str, Any]) -> OpenAIError | None:
        requested = body.get("max_completion_tokens") or body.get("max_tokens") or 0
        if VLLM_PROMPT_TOKENS + requested <= VLLM_WINDOW:
            return None
        return VendorAnswer(400, vllm_max_tokens_too_large(requested))

    async def answer_in_band(
        self, request: web.Request, error: OpenAIError, body: dict[str, Any], record: dict[str, Any]
    ) -> web.StreamResponse:
        """HTTP 200 carrying `error`: the JSON body, or the first (and only) event of the stream."""
        record.update(status=200, error=error.message)
        if not body.get("stream"):
            return web.json_response(error.body())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        await response.write(sse(error.body()))
        await response.write_eof()
        return response

    def finish_chunk(self, writer: ChunkWriter) -> dict[str, Any]:
        """OpenRouter's way of ending a stream with an error: `finish_reason: "error"` and `choices[0].error`."""
        chunk = writer.chunk({}, "error")
        chunk["choices"][0]["error"] = {"code": 502, "message": self.finish_error}
        return chunk

    def finish(self, answer: dict[str, Any]) -> dict[str, Any]:
        """The non-stream completion, ended with an error when one is scripted."""
        if self.finish_error:
            choice = answer["choices"][0]
            choice.update(finish_reason="error", error={"code": 502, "message": self.finish_error})
        return answer

    async def answer_bad_http(self, request: web.Request, record: dict[str, Any]) -> web.StreamResponse:
        """Raw bytes that are not HTTP, then a closed connection; aiohttp's handler output goes nowhere."""
        record.update(status=0, error="malformed HTTP")
        transport = request.transport
        if transport is not None:
            transport.write(self.bad_http.encode())
            transport.close()
        return web.Response()


class RecordingFake:
    """What every fake upstream server of the suite shares: the requests it saw (`GET /_requests`) and a way to
    forget them between tests (`POST /_reset`)."""

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key
        self.records: list[dict[str, Any]] = []

    def recording_app(self) -> web.Application:
        """An aiohttp app with the two test-control routes; the fake adds its API's routes."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_requests", self.list_requests)
        app.router.add_post("/_reset", self.reset)
        return app

    async def list_requests(self, request: web.Request) -> web.Response:
        return web.json_response({"requests": self.records})

    async def reset(self, request: web.Request) -> web.Response:
        self.records.clear()
        self.forget()
        return web.json_response({"ok": True})

    def forget(self) -> None:
        """What else `POST /_reset` clears besides the records (nothing by default)."""


class FakeOpenAI(RecordingFake):
    """The server state and its aiohttp handlers."""

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__(api_key)
        self.validator = RequestValidator()
        self.script = Script()

    def app(self) -> web.Application:
        app = self.recording_app()
        app.router.add_post("/v1/chat/completions", self.chat_completions)
        app.router.add_get("/v1/models", self.models)
        return app

    def forget(self) -> None:
        self.script = Script()

    async def models(self, request: web.Request) -> web.Response:
        self._authorize(request)
        names = ["gpt-5", "gpt-5-mini", "gpt-4o", "gpt-4o-mini", "o4-mini"]
        data = [{"id": name, "object": "model", "created": 1700000000, "owned_by": "openai"} for name in names]
        return web.json_response({"object": "list", "data": data})

    async def chat_completions(self, request: web.Request) -> web.StreamResponse:
        record = await self._record(request)
        try:
            response = await self._answer(request, record)
        except OpenAIError as exc:
            record.update(status=exc.status, error=exc.message)
            return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
        except asyncio.CancelledError:
            # aiohttp cancels the handler when the client disconnects (handler_cancellation=True).
            record["cancelled"] = True
            raise
        record["completed"] = not record["cancelled"]
        return response

    async def _record(self, request: web.Request) -> dict[str, Any]:
        if "record" in request:  # recorded already by a server mode (ServerMode below)
            recorded: dict[str, Any] = request["record"]
            return recorded
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode("utf-8", "replace")
        record: dict[str, Any] = {
            "seq": len(self.records),
            "method": request.method,
            "path": request.path,
            "query": request.query_string,
            "headers": {name.lower(): value for name, value in request.headers.items()},
            "body": body,
            "status": None,
            "error": None,
            "cancelled": False,
            "completed": False,
        }
        self.records.append(record)
        return record

    def _authorize(self, request: web.Request) -> None:
        if self.api_key is None:
            return
        if request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise OpenAIError(
                401,
                "Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.",
                code="invalid_api_key",
            )

    async def _answer(self, request: web.Request, record: dict[str, Any]) -> web.StreamResponse:
        self._authorize(request)
        if not request.content_type == "application/json":
            raise invalid("Invalid content type; expected application/json.")
        body = record["body"]
        vendor = vendor_rules(body)  # reasoning vendors: their rules instead of OpenAI's (reasoning_vendors.py)
        (vendor or self.validator).validate(body)
        presented_key = request.headers.get("Authorization", "").removeprefix("Bearer ")
        reply = self.script.reply(body, presented_key)
        if vendor is not None:
            vendor.shape(reply, body, ToolCall)
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.faults.bad_http:
            return await reply.faults.answer_bad_http(request, record)
        if reply.error is not None:
            if reply.faults.in_band:
                return await reply.faults.answer_in_band(request, reply.error, body, record)
            raise reply.error
        record["status"] = 200
        faulty = fault_answer(reply, body)
        if faulty is not None:
            return faulty
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return await self._stream(request, reply, ChunkWriter(body["model"], include_usage), record)
        if reply.midstream_error:
            # OpenRouter answers some provider failures with HTTP 200 and an error body.
            return web.json_response({"error": MIDSTREAM_ERROR})
        return web.json_response(reply.faults.finish(completion(reply, body["model"])))

    async def _stream(
        self, request: web.Request, reply: Reply, writer: ChunkWriter, record: dict[str, Any]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        for chunk in writer.opening(reply):
            await self._write(response, sse(chunk))
        if reply.midstream_error or reply.faults.finish_error:
            failure = reply.faults.finish_chunk(writer) if reply.faults.finish_error else {"error": MIDSTREAM_ERROR}
            await self._write(response, sse(failure))
            await response.write_eof()
            return response
        if reply.hang:
            await self._hang(request, record)
            return response
        if reply.pace is not None and not await reply.pace.run(request, response, writer, record):
            return response
        if "TRUNCATE_STREAM" in reply.stream_faults:
            await response.write_eof()
            return response
        for chunk in [*writer.tool_calls(reply), *writer.closing(reply)]:
            await self._write(response, sse(chunk))
        await self._write(response, sse("[DONE]"))
        await response.write_eof()
        return response

    async def _write(self, response: web.StreamResponse, event: bytes) -> None:
        # Each event goes out in two writes so clients must reassemble events split across reads.
        middle = len(event) // 2
        await response.write(event[:middle])
        await asyncio.sleep(CHUNK_PAUSE_SECONDS)
        await response.write(event[middle:])
        await asyncio.sleep(CHUNK_PAUSE_SECONDS)

    async def _hang(self, request: web.Request, record: dict[str, Any]) -> None:
        """Send nothing more; return once the client has gone away (or after MAX_HANG_SECONDS)."""
        deadline = time.monotonic() + MAX_HANG_SECONDS
        while time.monotonic() < deadline:
            transport = request.transport
            if transport is None or transport.is_closing():
                record["cancelled"] = True
                return
            await asyncio.sleep(0.05)


# --- Basic auth (`--basic-auth USER:PASSWORD`) ----------------------------------------------------------------------


def require_basic_auth(credentials: str) -> Any:
    """aiohttp middleware: 401 unless the request carries `credentials` as HTTP basic auth (UTF-8, RFC 7617).

    The control surface (`/_requests`, `/_reset`) stays open; refused requests are not recorded.
    """
    expected = "Basic " + base64.b64encode(credentials.encode()).decode("ascii")

    @web.middleware
    async def check(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_") or request.headers.get("Authorization") == expected:
            response: web.StreamResponse = await handler(request)
            return response
        error = OpenAIError(401, "Basic authentication required.", code="invalid_api_key")
        return web.json_response(error.body(), status=401, headers={"WWW-Authenticate": 'Basic realm="fake"'})

    return check


# --- End of basic auth ----------------------------------------------------------------------------------------------


# -- upstream faults (issue 6 items 3 and 9) -------------------------------------------------------------------
# Answers a well-behaved server never sends, but real ones do: a backend that ignores `stream: true`, a captive
# portal or a wrong base URL answering with a web page, a connection cut mid-answer, a model that emits broken tool
# arguments. TRUNCATE_STREAM is handled in FakeOpenAI._stream, BAD_TOOL_JSON in Script._tool_calls.

FAULT_MARKERS = ("IGNORE_STREAM", "TRUNCATE_STREAM", "HTML_BODY", "EMPTY_BODY", "BAD_TOOL_JSON")
BAD_TOOL_ARGUMENTS = '{"command": "echo fake-tool-out'
HTML_PAGE = "<!DOCTYPE html><html><head><title>Welcome to nginx!</title></head><body>It works.</body></html>"


def fault_answer(reply: Reply, body: dict[str, Any]) -> web.Response | None:
    """The whole answer for the faults answered at once (IGNORE_STREAM, HTML_BODY, EMPTY_BODY), else None."""
    if "HTML_BODY" in reply.stream_faults:
        return web.Response(text=HTML_PAGE, content_type="text/html")
    if "EMPTY_BODY" in reply.stream_faults:
        return web.Response(body=b"", content_type="text/event-stream")
    if "IGNORE_STREAM" in reply.stream_faults and body.get("stream"):
        if reply.midstream_error:
            return web.json_response({"error": MIDSTREAM_ERROR})
        return web.json_response(completion(reply, body["model"]))
    return None


# -- echo in pieces (issue 9: guardrails on streamed answers) ------------------------------------------------------
# `ECHO_PIECES <base64>`: the answer is the decoded text, streamed ECHO_PIECE_CHARS characters at a time, so a
# guardrail must find a secret split across many deltas; base64, so the same guardrail redacting the prompt does
# not remove the secret before the fake sees it.

ECHO_PIECES = re.compile(r"(?<![A-Za-z0-9])ECHO_PIECES\s+([A-Za-z0-9+/=]+)")
ECHO_PIECE_CHARS = 3


def echo_in_pieces(text: str, reply: Reply) -> None:
    """Make `reply` the decoded text of an ECHO_PIECES marker in `text`, in small pieces."""
    match = ECHO_PIECES.search(text)
    if match is not None:
        reply.text = base64.b64decode(match.group(1)).decode("utf-8")
        reply.piece_chars = ECHO_PIECE_CHARS


def pieces_of(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


# --- End of echo in pieces ---------------------------------------------------------------------------------------


# -- server modes (issue 7: several backends, one down, one failing, one slow) -------------------------------------
# Prompt markers reach every backend of a fallback chain alike; these make one server behave differently from the
# others whatever the prompt.


@dataclass
class ServerMode:
    """How the whole server answers chat completions (see the module docstring); the default is healthy."""

    fail_status: int | None = None
    fail_times: int = 0  # 0: every request
    retry_after: str | None = None
    delay: float = 0.0
    failed: int = 0

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ServerMode:
        return cls(
            fail_status=values.get("fail_status"),
            fail_times=int(values.get("fail_times") or 0),
            retry_after=values.get("retry_after"),
            delay=float(values.get("delay") or 0.0),
        )

    def failure(self) -> OpenAIError | None:
        """The error this request gets, if the mode fails it (counted)."""
        if self.fail_status is None or (self.fail_times and self.failed >= self.fail_times):
            return None
        self.failed += 1
        kind, message, code = ERROR_TEMPLATES.get(self.fail_status, ("server_error", "Scripted failure.", None))
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        return OpenAIError(self.fail_status, f"{message} (server mode)", error_type=kind, code=code, headers=headers)


def server_mode(fake: FakeOpenAI, mode: ServerMode) -> Any:
    """aiohttp middleware applying the mode to `POST /v1/chat/completions` (recorded like any request), and the
    `POST /_mode` control endpoint."""
    current = [mode]

    @web.middleware
    async def apply(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/_mode":
            current[0] = ServerMode.from_json(await request.json())
            return web.json_response({"ok": True})
        if request.path == "/v1/chat/completions":
            record = request["record"] = await fake._record(request)
            try:
                await asyncio.sleep(current[0].delay)
            except asyncio.CancelledError:  # the client gave up waiting
                record["cancelled"] = True
                raise
            error = current[0].failure()
            if error is not None:
                record.update(status=error.status, error=error.message)
                return web.json_response(error.body(), status=error.status, headers=error.headers)
        response: web.StreamResponse = await handler(request)
        return response

    return apply


# -- end of server modes -------------------------------------------------------------------------------------------


async def serve(
    host: str, port: int, api_key: str | None, basic_auth: str | None = None, mode: ServerMode | None = None
) -> None:
    """Listen until cancelled, printing `PORT=<n>` once the socket is bound."""
    fake = FakeOpenAI(api_key)
    app = fake.app()
    app.middlewares.append(server_mode(fake, mode or ServerMode()))
    if basic_auth is not None:
        app.middlewares.append(require_basic_auth(basic_auth))
    await listen(app, host, port)


async def listen(app: web.Application, host: str, port: int) -> None:
    """Serve `app` until cancelled, printing `PORT=<n>` once the socket is bound (the fakes' common start)."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    print(f"PORT={runner.addresses[0][1]}", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


# --- paced streams: TRICKLE and LONG_STREAM_<seconds> (resource bounds and graceful shutdown, issue 11) ------------

TRICKLE_PAUSE_SECONDS = 0.1
LONG_STREAM_PAUSE_SECONDS = 0.2


@dataclass(frozen=True)
class StreamPace:
    """How a stream's middle is paced: `trickle` (a byte at a time, never ending) or `seconds` of text pieces."""

    trickle: bool = False
    seconds: float = 0.0

    @classmethod
    def from_prompt(cls, text: str) -> StreamPace | None:
        if _marker(text, "TRICKLE"):
            return cls(trickle=True)
        match = re.search(r"(?<![A-Za-z0-9])LONG_STREAM_(\d+(?:\.\d+)?)(?![A-Za-z0-9.])", text)
        return cls(seconds=float(match.group(1))) if match else None

    async def run(
        self, request: web.Request, response: web.StreamResponse, writer: ChunkWriter, record: dict[str, Any]
    ) -> bool:
        """Write the paced middle; False when the stream must end here (the client went away)."""
        deadline = time.monotonic() + (MAX_HANG_SECONDS if self.trickle else self.seconds)
        try:
            while time.monotonic() < deadline:
                if self.trickle:
                    for byte in b": tick\n":
                        await response.write(bytes([byte]))
                        await asyncio.sleep(TRICKLE_PAUSE_SECONDS)
                else:
                    await response.write(sse(writer.chunk({"content": "."})))
                    await asyncio.sleep(LONG_STREAM_PAUSE_SECONDS)
        except ConnectionError:
            record["cancelled"] = True
            return False
        return not self.trickle


# --- End of paced streams -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer <key>`")
    parser.add_argument("--basic-auth", default=None, metavar="USER:PASSWORD", help="require HTTP basic auth")
    parser.add_argument("--fail-status", type=int, default=None, help="answer chat completions with this status")
    parser.add_argument("--fail-times", type=int, default=0, help="only the first N of them (0: all)")
    parser.add_argument("--retry-after", default=None, help="a Retry-After header on those failures")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds before any chat completion answer")
    args = parser.parse_args(argv)
    mode = ServerMode(args.fail_status, args.fail_times, args.retry_after, args.delay)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.host, args.port, args.api_key, args.basic_auth, mode))


if __name__ == "__main__":
    main()
