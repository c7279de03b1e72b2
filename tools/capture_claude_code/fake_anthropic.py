"""A small fake of the Anthropic Messages API that records every request it receives (for the capture tool).

It answers what the Claude Code CLI needs to finish a run offline:
- `HEAD /` / `GET /` (the CLI's connectivity probe) -> 200;
- `POST /v1/messages/count_tokens` -> `{"input_tokens": N}` (N grows with the body);
- `POST /v1/messages` -> a valid Anthropic answer, streamed as SSE when `stream` is true. Scripted by markers in
  the last user message: a `tool_result` there -> `TOOL_RESULT_SEEN: <its text>`; `USE_BASH` -> a Bash tool_use;
  `USE_READ` -> a Read tool_use for `<project>/note.txt`; `FAIL_400_ONCE` -> one 400, then normal answers;
  a request asking for `output_config.format` json_schema (e.g. the session title) -> a JSON object of that
  schema's required string fields; otherwise the text `FAKE_ANTHROPIC_REPLY`;
- anything else -> 404 with an Anthropic error body (and recorded, so the capture shows what was asked).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

REPLY_TEXT = "FAKE_ANTHROPIC_REPLY"
TOOL_RESULT_PREFIX = "TOOL_RESULT_SEEN: "
BASH_INPUT = {"command": "echo fake-tool-output", "description": "Echo a marker"}
INPUT_TOKENS = 1234
OUTPUT_TOKENS = 12


@dataclass
class RecordedRequest:
    """One request as it arrived: the body parsed as JSON when it is JSON, else its text, else None."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body,
        }


@dataclass
class FakeAnthropic:
    """The server's state: what it received, and which once-only failures it has already served."""

    project_dir: str = "/home/dev/project"
    received: list[RecordedRequest] = field(default_factory=list)
    failed_once: set[str] = field(default_factory=set)

    def reset(self, project_dir: str) -> list[RecordedRequest]:
        """Start a new scenario; returns what the previous one received."""
        done, self.received = self.received, []
        self.project_dir = project_dir
        return done

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        body = _parse_body(raw)
        self.received.append(
            RecordedRequest(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=dict(request.headers),
                body=body,
            )
        )
        if request.method in ("HEAD", "GET") and request.path == "/":
            return web.Response(status=200)
        if request.method == "POST" and request.path == "/v1/messages/count_tokens":
            return web.json_response({"input_tokens": max(len(raw) // 4, 1)})
        if request.method == "POST" and request.path == "/v1/messages" and isinstance(body, dict):
            return await self._messages(request, body)
        return _error(404, "not_found_error", f"fake server: no route for {request.method} {request.path}")

    async def _messages(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        prompt = last_user_text(body)
        if "FAIL_400_ONCE" in prompt and prompt not in self.failed_once:
            self.failed_once.add(prompt)
            return _error(400, "invalid_request_error", "fake server: request refused once")
        content = self._content(body, prompt)
        model = str(body.get("model") or "claude-fake")
        stop_reason = "tool_use" if content[-1]["type"] == "tool_use" else "end_turn"
        if body.get("stream"):
            return await _stream(request, model, content, stop_reason)
        return web.json_response(_message(model, content, stop_reason))

    def _content(self, body: dict[str, Any], prompt: str) -> list[dict[str, Any]]:
        result = tool_result_text(body)
        if result is not None:
            return [_text(TOOL_RESULT_PREFIX + result)]
        if "USE_BASH" in prompt:
            return [_tool_use("Bash", BASH_INPUT)]
        if "USE_READ" in prompt:
            return [_tool_use("Read", {"file_path": f"{self.project_dir}/note.txt"})]
        schema = _json_schema(body)
        if schema is not None:
            return [_text(json.dumps(_schema_example(schema)))]
        return [_text(REPLY_TEXT)]


def _parse_body(raw: bytes) -> Any:
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text)
    except ValueError:
        return text


def last_user_text(body: dict[str, Any]) -> str:
    """The text blocks of the last user message (system reminders included)."""
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            return "\n".join(str(b.get("text", "")) for b in content or [] if isinstance(b, dict))
    return ""


def tool_result_text(body: dict[str, Any]) -> str | None:
    """The text of the tool_result in the final message, when that message answers a tool call."""
    messages = body.get("messages") or []
    content = messages[-1].get("content") if messages and isinstance(messages[-1], dict) else None
    for block in content if isinstance(content, list) else []:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            result = block.get("content")
            if isinstance(result, str):
                return result
            return "".join(str(part.get("text", "")) for part in result or [] if isinstance(part, dict))
    return None


def _json_schema(body: dict[str, Any]) -> dict[str, Any] | None:
    output_config = body.get("output_config")
    output_format = output_config.get("format") if isinstance(output_config, dict) else None
    if isinstance(output_format, dict) and output_format.get("type") == "json_schema":
        schema = output_format.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _schema_example(schema: dict[str, Any]) -> dict[str, Any]:
    """An object with a placeholder for each required property (enough for the CLI's title request)."""
    properties = schema.get("properties") or {}
    placeholders: dict[str, Any] = {"boolean": False, "integer": 0, "number": 0, "array": [], "object": {}}
    example: dict[str, Any] = {}
    for name in schema.get("required") or list(properties):
        kind = (properties.get(name) or {}).get("type")
        example[name] = placeholders.get(kind, "Fake") if isinstance(kind, str) else "Fake"
    return example


def _text(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def _tool_use(name: str, tool_input: dict[str, Any]) -> dict[str, Any]:
    return {"type": "tool_use", "id": "toolu_fake" + secrets.token_hex(10), "name": name, "input": tool_input}


def _usage(output_tokens: int) -> dict[str, int]:
    return {
        "input_tokens": INPUT_TOKENS,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _message(model: str, content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": "msg_fake" + secrets.token_hex(12),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": _usage(OUTPUT_TOKENS if stop_reason else 1),
    }


def _error(status: int, error_type: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": error_type, "message": message}}, status=status)


def stream_events(model: str, content: list[dict[str, Any]], stop_reason: str) -> list[dict[str, Any]]:
    """The Anthropic event sequence for a message with these blocks (wire.md 4.3)."""
    events: list[dict[str, Any]] = [{"type": "message_start", "message": _message(model, [], None)}]
    for index, block in enumerate(content):
        if block["type"] == "text":
            events.append({"type": "content_block_start", "index": index, "content_block": _text("")})
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            events.append({"type": "content_block_start", "index": index, "content_block": start})
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events.append({"type": "content_block_delta", "index": index, "delta": delta})
        events.append({"type": "content_block_stop", "index": index})
    events.append(
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": OUTPUT_TOKENS},
        }
    )
    events.append({"type": "message_stop"})
    return events


async def _stream(
    request: web.Request, model: str, content: list[dict[str, Any]], stop_reason: str
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
    await response.prepare(request)
    for event in stream_events(model, content, stop_reason):
        await response.write(f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode())
    await response.write_eof()
    return response
