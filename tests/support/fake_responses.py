"""A fake OpenAI Responses API server (`POST /v1/responses`) for end-to-end tests, scripted by markers in the prompt.

Run it as `python -m tests.support.fake_responses --port 0 [--api-key KEY]`: it prints `PORT=<n>` once listening
(tests/support/proxy_process.py `start_fake_openai(..., module="tests.support.fake_responses")`).

Requests are validated like api.openai.com does (responses_rules.py): unknown fields, Chat-shaped tools, a tool
output without its call, encrypted reasoning this server did not issue or sent without `store: false` are 400s.
Encrypted reasoning is issued for every reasoning item when the request includes `reasoning.encrypted_content`;
each one that comes back is verified, and counted in the request's record (`reasoning_verified`).

Behaviour, from markers in the text of the LAST user message:
- `FAIL_<status>` -> that HTTP status with an OpenAI error body.
- `TOOL_ROUNDS_<n>` -> a Bash call (`echo round-<k>`) until n function_call_output items follow that message, then
  the text `TOOL_RESULT_SEEN: <outputs, " | " apart>; REASONING_SEEN: <verified reasoning items in the input>`.
  `USE_BASH` is `TOOL_ROUNDS_1`.
- `INCOMPLETE` -> some text, then `response.incomplete` (`max_output_tokens`); `FAILED_RESPONSE` -> some text, then
  `response.failed`; `ERROR_EVENT` -> some text, then an `error` event; `TRUNCATE_STREAM` -> the stream stops after
  some text, without `response.completed` (non-stream: `incomplete` / `failed` responses; the others answer normally).
- otherwise the text `FAKE_RESPONSES_REPLY: <model>`.
With `reasoning` in the request, every answer starts with a reasoning item (its summary when `reasoning.summary` is
set, its encrypted content when included).

Control surface, as fake_openai.py: `GET /_requests` (each request's headers, body, status) and `POST /_reset`.
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

from .fake_openai import CHUNK_PAUSE_SECONDS, RecordingFake, listen, scripted_error
from .openai_rules import OpenAIError, invalid
from .responses_rules import ResponsesValidator

INPUT_TOKENS = 1234
CACHED_TOKENS = 1000
OUTPUT_TOKENS = 56
REASONING_TOKENS = 20
REASONING_SUMMARY = "**Planning the answer** I should look at what was asked and answer it step by step."
FAILED_ERROR = {"code": "server_error", "message": "The model failed to generate a response."}
ERROR_EVENT = {
    "type": "error",
    "code": "server_error",
    "message": "The server had an error while streaming.",
    "param": None,
}
PIECE = 7  # characters per streamed delta
# Markers -> how the response ends (Reply.ending).
ENDINGS = {
    "INCOMPLETE": "incomplete",
    "FAILED_RESPONSE": "failed",
    "ERROR_EVENT": "error",
    "TRUNCATE_STREAM": "truncated",
}
# Endings that cut the message item short.
CUT = ("failed", "error", "truncated")


def _id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(24)}"


def pieces(text: str, size: int = PIECE) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)] or [""]


@dataclass
class Reply:
    """What the fake model answers: output items, and how the response ends."""

    items: list[dict[str, Any]] = field(default_factory=list)
    ending: str = "completed"  # completed | incomplete | failed | error | truncated


class Script:
    """Chooses the reply for a validated request; issues encrypted reasoning."""

    def __init__(self) -> None:
        self.issued: set[str] = set()

    def reply(self, body: dict[str, Any]) -> tuple[Reply, int]:
        items = body["input"] if isinstance(body["input"], list) else [{"role": "user", "content": body["input"]}]
        last_user = max((i for i, item in enumerate(items) if item.get("role") == "user"), default=-1)
        text = _text(items[last_user]) if last_user >= 0 else ""
        failing = re.search(r"\bFAIL_(\d{3})\b", text)
        if failing:
            raise scripted_error(int(failing.group(1)))
        verified = sum(1 for item in items if item.get("type") == "reasoning")
        reply = Reply(self._reasoning(body))
        reply.items.extend(self._answer(body, text, items[last_user + 1 :], verified))
        for marker, ending in ENDINGS.items():
            if re.search(rf"\b{marker}\b", text):
                reply.ending = ending
        return reply, verified

    def _reasoning(self, body: dict[str, Any]) -> list[dict[str, Any]]:
        reasoning = body.get("reasoning")
        if not isinstance(reasoning, dict) or reasoning.get("effort") == "none":
            return []
        item: dict[str, Any] = {"id": _id("rs"), "type": "reasoning", "summary": []}
        if reasoning.get("summary"):
            item["summary"] = [{"type": "summary_text", "text": REASONING_SUMMARY}]
        if "reasoning.encrypted_content" in (body.get("include") or ()):
            sealed = "gAAAAA" + base64.urlsafe_b64encode(secrets.token_bytes(48)).decode()
            self.issued.add(sealed)
            item["encrypted_content"] = sealed
        return [item]

    def _answer(
        self, body: dict[str, Any], text: str, after: list[dict[str, Any]], verified: int
    ) -> list[dict[str, Any]]:
        rounds = re.search(r"\bTOOL_ROUNDS_(\d+)\b", text)
        wanted = int(rounds.group(1)) if rounds else 1 if re.search(r"\bUSE_BASH\b", text) else 0
        outputs = [item["output"] for item in after if item.get("type") == "function_call_output"]
        declared = {tool.get("name") for tool in body.get("tools") or ()}
        if wanted and len(outputs) < wanted and "Bash" in declared:
            command = {"command": f"echo round-{len(outputs) + 1}", "description": "Echo the round"}
            call = {"id": _id("fc"), "type": "function_call", "status": "completed", "arguments": json.dumps(command)}
            call.update(call_id="call_" + secrets.token_hex(12), name="Bash")
            return [call]
        if wanted:
            seen = " | ".join(str(output).strip() for output in outputs)
            answer = f"TOOL_RESULT_SEEN: {seen}; REASONING_SEEN: {verified}"
        else:
            answer = f"FAKE_RESPONSES_REPLY: {body['model']}"
        content = [{"type": "output_text", "text": answer, "annotations": []}]
        return [{"id": _id("msg"), "type": "message", "status": "completed", "role": "assistant", "content": content}]


def _text(item: dict[str, Any]) -> str:
    content = item.get("content")
    if isinstance(content, str):
        return content
    return "\n".join(part.get("text", "") for part in content or () if part.get("type") == "input_text")


class ResponseWriter:
    """The `response` object and the stream events of one reply, in OpenAI's order and shape."""

    def __init__(self, body: dict[str, Any], reply: Reply) -> None:
        self.body = body
        self.reply = reply
        self.id = _id("resp")
        self.created = int(time.time())
        self.sequence = 0

    def response(self, status: str, output: list[dict[str, Any]]) -> dict[str, Any]:
        done = status != "in_progress"
        response: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "error": FAILED_ERROR if status == "failed" else None,
            "incomplete_details": {"reason": "max_output_tokens"} if status == "incomplete" else None,
            "model": self.body["model"],
            "output": output,
            "reasoning": self.body.get("reasoning") or {"effort": None, "summary": None},
            "store": self.body.get("store", True),
            "usage": self.usage() if done and status != "failed" else None,
        }
        return response

    def usage(self) -> dict[str, Any]:
        return {
            "input_tokens": INPUT_TOKENS,
            "input_tokens_details": {"cached_tokens": CACHED_TOKENS},
            "output_tokens": OUTPUT_TOKENS,
            "output_tokens_details": {"reasoning_tokens": REASONING_TOKENS},
            "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS,
        }

    def final(self) -> dict[str, Any]:
        """The non-stream answer."""
        ending = self.reply.ending
        status = ending if ending in ("incomplete", "failed") else "completed"
        return self.response(status, self.reply.items)

    def event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.sequence, **fields}
        self.sequence += 1
        return event

    def events(self) -> Iterator[dict[str, Any]]:
        yield self.event("response.created", response=self.response("in_progress", []))
        yield self.event("response.in_progress", response=self.response("in_progress", []))
        for index, item in enumerate(self.reply.items):
            yield from getattr(self, "_" + item["type"])(index, item)
            if self.reply.ending in CUT and item["type"] == "message":
                break
        ending = self.reply.ending
        if ending == "error":
            yield {**ERROR_EVENT, "sequence_number": self.sequence}
        elif ending in ("completed", "incomplete", "failed"):
            yield self.event(f"response.{ending}", response=self.final())

    def _reasoning(self, index: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        where = {"item_id": item["id"], "output_index": index}
        yield self.event("response.output_item.added", output_index=index, item={**item, "summary": []} | _no_seal())
        for position, part in enumerate(item["summary"]):
            yield self.event(
                "response.reasoning_summary_part.added", **where, summary_index=position, part={**part, "text": ""}
            )
            for piece in pieces(part["text"]):
                yield self.event("response.reasoning_summary_text.delta", **where, summary_index=position, delta=piece)
            yield self.event("response.reasoning_summary_text.done", **where, summary_index=position, text=part["text"])
            yield self.event("response.reasoning_summary_part.done", **where, summary_index=position, part=part)
        yield self.event("response.output_item.done", output_index=index, item=item)

    def _message(self, index: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        where = {"item_id": item["id"], "output_index": index, "content_index": 0}
        text = item["content"][0]["text"]
        started = {**item, "status": "in_progress", "content": []}
        yield self.event("response.output_item.added", output_index=index, item=started)
        part = {"type": "output_text", "text": "", "annotations": []}
        yield self.event("response.content_part.added", **where, part=part)
        shown = pieces(text)
        if self.reply.ending in CUT:
            shown = shown[: max(len(shown) // 2, 1)]
        for piece in shown:
            yield self.event("response.output_text.delta", **where, delta=piece, logprobs=[], obfuscation="x3Yq")
        if self.reply.ending in CUT:
            return
        yield self.event("response.output_text.done", **where, text=text, logprobs=[])
        yield self.event("response.content_part.done", **where, part=item["content"][0])
        yield self.event("response.output_item.done", output_index=index, item=item)

    def _function_call(self, index: int, item: dict[str, Any]) -> Iterator[dict[str, Any]]:
        started = {**item, "status": "in_progress", "arguments": ""}
        yield self.event("response.output_item.added", output_index=index, item=started)
        for piece in pieces(item["arguments"]):
            yield self.event(
                "response.function_call_arguments.delta", item_id=item["id"], output_index=index, delta=piece
            )
        yield self.event(
            "response.function_call_arguments.done", item_id=item["id"], output_index=index, arguments=item["arguments"]
        )
        yield self.event("response.output_item.done", output_index=index, item=item)


def _no_seal() -> dict[str, Any]:
    # The added copy of a reasoning item carries no encrypted content yet; it arrives with output_item.done.
    return {"encrypted_content": None}


def sse_event(event: dict[str, Any]) -> bytes:
    return f"event: {event['type']}\ndata: {json.dumps(event, ensure_ascii=False)}\n\n".encode()


class FakeResponses(RecordingFake):
    """The server state and its aiohttp handlers. `POST /_reset` forgets the requests only: the encrypted reasoning
    it issued stays valid, as OpenAI's does."""

    def __init__(self, api_key: str | None = None) -> None:
        super().__init__(api_key)
        self.script = Script()
        self.validator = ResponsesValidator(self.script.issued)

    def app(self) -> web.Application:
        app = self.recording_app()
        app.router.add_post("/v1/responses", self.responses)
        return app

    async def responses(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        record: dict[str, Any] = {
            "seq": len(self.records),
            "method": request.method,
            "path": request.path,
            "headers": {name.lower(): value for name, value in request.headers.items()},
            "body": None,
            "status": None,
            "error": None,
            "cancelled": False,
            "completed": False,
            "reasoning_verified": 0,
        }
        self.records.append(record)
        try:
            record["body"] = body = json.loads(raw)
            self._authorize(request)
            self.validator.validate(body)
            reply, record["reasoning_verified"] = self.script.reply(body)
        except ValueError:
            record.update(status=400, error="invalid JSON")
            return web.json_response(invalid("We could not parse the JSON body of your request.").body(), status=400)
        except OpenAIError as exc:
            record.update(status=exc.status, error=exc.message)
            return web.json_response(exc.body(), status=exc.status, headers=exc.headers)
        record["status"] = 200
        writer = ResponseWriter(body, reply)
        if not body.get("stream"):
            record["completed"] = True
            return web.json_response(writer.final())
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream; charset=utf-8"})
        await response.prepare(request)
        try:
            for event in writer.events():
                data = sse_event(event)
                await response.write(data[: len(data) // 2])
                await asyncio.sleep(CHUNK_PAUSE_SECONDS)
                await response.write(data[len(data) // 2 :])
        except asyncio.CancelledError:
            record["cancelled"] = True
            raise
        await response.write_eof()
        record["completed"] = True
        return response

    def _authorize(self, request: web.Request) -> None:
        if self.api_key is not None and request.headers.get("Authorization") != f"Bearer {self.api_key}":
            raise OpenAIError(401, "Incorrect API key provided.", code="invalid_api_key")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="require `Authorization: Bearer <key>`")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(listen(FakeResponses(args.api_key).app(), args.host, args.port))


if __name__ == "__main__":
    main()
