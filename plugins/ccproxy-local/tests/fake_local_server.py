"""A fake local model server (vLLM-like) for the end-to-end test: strict validation, a context window, and a model
that writes its reasoning as `<think>` tags, cut across stream chunks.

Run it as `python fake_local_server.py --port 0`; it prints `PORT=<n>` once listening.
- `GET /v1/models`: one model, `MODEL`, with `max_model_len` = WINDOW (what vLLM reports).
- `POST /v1/chat/completions`: 400 in vLLM's words for any field it does not know (strict_local.py), and for
  max_tokens that do not fit the window next to the prompt (vLLM's rule; the prompt is under-counted at 8 bytes a
  token, so only a request that ignores the window fails). Otherwise, with tools offered, a tool loop in three
  rounds, counted by the tool results in the conversation: Bash `echo local-round-1` after a `<think>` section;
  Bash `echo local-round-2` after a section whose opening tag the chat template consumed (only `</think>`); then
  `LOCAL_DONE: <the tool outputs joined by " | ">` after another `<think>` section. Without tools: `LOCAL_TEXT`.
- `GET /_requests`: the chat request bodies received, oldest first.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from aiohttp import web
from strict_local import error_body, problems

MODEL = "qwen3-8b"
WINDOW = 32768
BYTES_PER_TOKEN = 8  # a generous under-count of the prompt, so the window check only fails what ignores it
PIECE = 3  # characters per streamed content chunk: every tag is cut somewhere
REASONING = ("I should run the first command.", "The first command worked; now the second.", "Both ran; I can answer.")


def window_error(body: dict[str, Any]) -> dict[str, Any] | None:
    prompt = len(json.dumps(body.get("messages")) + json.dumps(body.get("tools"))) // BYTES_PER_TOKEN
    wanted = body.get("max_tokens") or body.get("max_completion_tokens") or 0
    if prompt + wanted <= WINDOW:
        return None
    message = (
        f"This model's maximum context length is {WINDOW} tokens. However, you requested {wanted} output tokens and "
        f"your prompt contains at least {prompt + 1} input tokens, for a total of at least {prompt + wanted + 1} "
        "tokens. Please reduce the length of the input prompt or the number of requested output tokens."
    )
    return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}


def script(body: dict[str, Any]) -> tuple[str, str | None]:
    """The content (with think tags) and the Bash command to call, if any."""
    messages = body.get("messages") or []
    results = [str(m.get("content")) for m in messages if m.get("role") == "tool"]
    if not body.get("tools"):
        return "<think>\nA plain question.\n</think>\n\nLOCAL_TEXT", None
    rounds = len(results)
    if rounds == 0:
        return f"<think>\n{REASONING[0]}\n</think>\n\n", "echo local-round-1"
    if rounds == 1:
        return f"{REASONING[1]}\n</think>\n\n", "echo local-round-2"
    outputs = " | ".join(result.strip() for result in results)
    return f"<think>{REASONING[2]}</think>\n\nLOCAL_DONE: {outputs}", None


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "chatcmpl-local", "object": "chat.completion.chunk", "model": MODEL, "choices": [choice]}


def tool_call(command: str, rounds: int) -> dict[str, Any]:
    arguments = json.dumps({"command": command, "description": "Echo a marker"})
    return {"id": f"call_local_{rounds}", "type": "function", "function": {"name": "Bash", "arguments": arguments}}


async def chat(request: web.Request) -> web.StreamResponse:
    body = await request.json()
    request.app["requests"].append(body)
    found = problems(body)
    if found:
        return web.json_response(error_body(found), status=400)
    too_long = window_error(body)
    if too_long is not None:
        return web.json_response(too_long, status=400)
    content, command = script(body)
    rounds = sum(1 for m in body["messages"] if m.get("role") == "tool")
    usage = {"prompt_tokens": 1000, "completion_tokens": 50, "total_tokens": 1050}
    finish = "tool_calls" if command else "stop"
    if not body.get("stream"):
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if command:
            message["tool_calls"] = [tool_call(command, rounds)]
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return web.json_response(
            {"id": "chatcmpl-local", "object": "chat.completion", "choices": [choice], "usage": usage}
        )
    response = web.StreamResponse(headers={"content-type": "text/event-stream"})
    await response.prepare(request)
    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"content": content[at : at + PIECE]}) for at in range(0, len(content), PIECE)]
    if command:
        call = tool_call(command, rounds)
        arguments = call["function"]["arguments"]
        call["function"]["arguments"] = ""
        chunks.append(chunk({"tool_calls": [{"index": 0, **call}]}))
        for at in range(0, len(arguments), 7):
            chunks.append(chunk({"tool_calls": [{"index": 0, "function": {"arguments": arguments[at : at + 7]}}]}))
    chunks.append(chunk({}, finish))
    chunks.append({"id": "chatcmpl-local", "object": "chat.completion.chunk", "choices": [], "usage": usage})
    for item in chunks:
        await response.write(f"data: {json.dumps(item)}\n\n".encode())
        await asyncio.sleep(0.001)
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def models(request: web.Request) -> web.Response:
    entry = {"id": MODEL, "object": "model", "owned_by": "vllm", "max_model_len": WINDOW}
    return web.json_response({"object": "list", "data": [entry]})


async def recorded(request: web.Request) -> web.Response:
    return web.json_response({"requests": request.app["requests"]})


async def serve(port: int) -> None:
    app = web.Application()
    app["requests"] = []
    app.router.add_get("/v1/models", models)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/_requests", recorded)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print(f"PORT={runner.addresses[0][1]}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    asyncio.run(serve(parser.parse_args().port))
