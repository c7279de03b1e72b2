"""Reasoning vendors through the real app: a DeepSeek V4 tool loop with thinking on against a fake that enforces
DeepSeek's rule (reasoning_content back on every assistant tool call), and Mistral, which must never see reasoning."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.config import parse_config
from ccproxy.settings import Settings
from ccproxy.upstream import UpstreamRequest
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from tests.api.conftest import sdk_like
from tests.support.anthropic_stream import accumulate, parse_sse
from tests.support.backends import swap_transports
from tests.support.fake_openai import ChunkWriter, Script, ToolCall, completion, sse
from tests.support.openai_rules import OpenAIError
from tests.support.reasoning_vendors import DEEPSEEK_REASONING, DEEPSEEK_REPLAY_MESSAGE, vendor_rules

BACKEND = '[backends.vendor]\nprovider = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
BASH = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}
THINKING = {"type": "enabled", "budget_tokens": 8000}
REASONING_KEYS = {"reasoning_content", "reasoning_details", "reasoning"}
AppMaker = Callable[[str, str], tuple[CCProxyApp, FakeUpstream]]


def vendor_fake(request: UpstreamRequest) -> FakeResponse:
    """The fake OpenAI server's vendor block, in process: the vendor's checks, its script, its stream."""
    body = json.loads(request.body)
    vendor = vendor_rules(body)
    assert vendor is not None, body["model"]
    try:
        vendor.validate(body)
    except OpenAIError as exc:
        return FakeResponse.json(exc.body(), status=exc.status)
    reply = Script().reply(body)
    vendor.shape(reply, body, ToolCall)
    if not request.stream:
        return FakeResponse.json(completion(reply, body["model"]))
    writer = ChunkWriter(body["model"], include_usage=True)
    events = [*writer.opening(reply), *writer.tool_calls(reply), *writer.closing(reply)]
    return FakeResponse(200, {"content-type": "text/event-stream"}, chunks=[*map(sse, events), sse("[DONE]")])


@pytest.fixture
def make_app() -> Iterator[AppMaker]:
    """An app whose one backend `vendor` serves every model as `model`, answered by the vendor fake."""
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(model: str, extra: str = "") -> tuple[CCProxyApp, FakeUpstream]:
        file = parse_config(tomllib.loads(f'{BACKEND}{extra}\n[routes]\n"*" = "vendor:{model}"\n'), {})
        app = sdk_like(create_app(Settings(backend_tables=file.backends, routes=tuple(file.routes.items()))))
        made.append(app)
        return app, swap_transports(app.ctx.backends, {"vendor": vendor_fake})["vendor"]

    yield build
    for app in made:
        Sanic.unregister_app(app)


async def ask(app: CCProxyApp, messages: list[dict[str, Any]], **fields: Any) -> tuple[int, dict[str, Any]]:
    """One streamed /v1/messages call as Claude Code makes it: the status and the message the client builds."""
    body = {"model": "claude-opus-4-8", "max_tokens": 16000, "tools": [BASH], "stream": True, **fields}
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps({**body, "messages": messages}))
    if response.status != 200:
        return response.status, response.json
    return 200, accumulate(parse_sse(response.content))


def sent(fake: FakeUpstream, index: int = -1) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(fake.requests[index].body)
    return body


def tool_result(message: dict[str, Any], output: str) -> dict[str, Any]:
    call = next(block for block in message["content"] if block["type"] == "tool_use")
    return {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call["id"], "content": output}]}


async def tool_loop(app: CCProxyApp, rounds: int) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """Claude Code's loop: ask, run each tool call, send back the whole assistant message and the result."""
    messages: list[dict[str, Any]] = [{"role": "user", "content": f"TOOL_ROUNDS_{rounds} run the commands"}]
    for number in range(1, rounds + 2):
        status, answer = await ask(app, messages, thinking=THINKING)
        if status != 200 or answer["stop_reason"] != "tool_use":
            return status, answer, messages
        messages += [{"role": "assistant", "content": answer["content"]}, tool_result(answer, f"round-{number}")]
    raise AssertionError("the loop did not end")


async def test_deepseek_v4_completes_a_multi_round_tool_loop_with_thinking_on(make_app: AppMaker) -> None:
    app, fake = make_app("deepseek-v4-pro")
    status, answer, messages = await tool_loop(app, rounds=2)
    assert status == 200, answer
    thought = {"type": "thinking", "thinking": DEEPSEEK_REASONING, "signature": ""}  # DeepSeek signs nothing
    assert answer["content"] == [thought, {"type": "text", "text": "TOOL_RESULT_SEEN: round-2"}]
    # Each tool round came back as a thinking block before its tool call.
    rounds = [message["content"] for message in messages if message["role"] == "assistant"]
    assert len(rounds) == 2 and all([block["type"] for block in r] == ["thinking", "tool_use"] for r in rounds)
    assert all(r[0] == thought for r in rounds)
    # Upstream: thinking switched on, and every assistant tool call carrying its reasoning back.
    assert len(fake.requests) == 3
    last = sent(fake)
    assert last["thinking"] == {"type": "enabled"} and "reasoning_effort" not in last
    calls = [m for m in last["messages"] if m["role"] == "assistant"]
    assert len(calls) == 2 and all(m["tool_calls"] and m["reasoning_content"] == DEEPSEEK_REASONING for m in calls)


async def test_without_replay_deepseek_refuses_the_second_round(make_app: AppMaker) -> None:
    """The control: the same loop with reasoning dropped gets DeepSeek's 400, so the fake enforces the rule."""
    app, fake = make_app("deepseek-v4-pro", '[backends.vendor.models."deepseek-v4-*"]\nreasoning_replay = "drop"\n')
    status, answer, _ = await tool_loop(app, rounds=2)
    assert status == 400 and answer["error"]["type"] == "invalid_request_error"
    assert DEEPSEEK_REPLAY_MESSAGE in answer["error"]["message"]
    assert len(fake.requests) == 2


async def test_a_tool_turn_without_thinking_in_the_history_is_no_400(make_app: AppMaker) -> None:
    """A conversation whose earlier tool round had no thinking (thinking switched on later, or a turn whose thinking
    Claude Code dropped) goes on in thinking mode: the round's tool call carries an empty `reasoning_content`."""
    app, fake = make_app("deepseek-v4-pro")
    call = {"type": "tool_use", "id": "toolu_01", "name": "Bash", "input": {"command": "echo round-1"}}
    earlier = {"role": "assistant", "content": [{"type": "text", "text": "Running it."}, call]}
    history = [{"role": "user", "content": "TOOL_ROUNDS_1 run the command"}, earlier, tool_result(earlier, "round-1")]
    status, answer = await ask(app, history, thinking=THINKING)
    assert status == 200, answer
    assert answer["content"][-1] == {"type": "text", "text": "TOOL_RESULT_SEEN: round-1"}
    last = sent(fake)
    assert last["thinking"] == {"type": "enabled"}
    assert [m["reasoning_content"] for m in last["messages"] if m["role"] == "assistant"] == [""]


async def test_a_request_without_thinking_switches_deepseek_thinking_off(make_app: AppMaker) -> None:
    app, fake = make_app("deepseek/deepseek-v4-flash")
    status, answer = await ask(app, [{"role": "user", "content": "Say hello"}])
    assert status == 200 and [block["type"] for block in answer["content"]] == ["text"]
    assert sent(fake)["thinking"] == {"type": "disabled"}


async def test_mistral_never_receives_reasoning_from_the_history(make_app: AppMaker) -> None:
    app, fake = make_app("mistral-large-latest")
    history = [
        {"role": "user", "content": "List the files"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "Another model thought this.", "signature": "sig-from-elsewhere"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
    ]
    status, answer = await ask(app, history, thinking=THINKING)
    assert status == 200, answer
    body = sent(fake)
    assert not {"thinking", "reasoning_effort", "enable_thinking", "chat_template_kwargs"} & set(body)
    assert all(not REASONING_KEYS & set(message) for message in body["messages"])


async def test_mistral_fake_refuses_reasoning_it_is_sent(make_app: AppMaker) -> None:
    """The control: made to replay reasoning, the Mistral fake answers its 422 and the client gets an error."""
    app, _ = make_app(
        "mistral-large-latest", '[backends.vendor.models."mistral-*"]\nreasoning_replay = "reasoning_content"\n'
    )
    history = [
        {"role": "user", "content": "List the files"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": ""},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
    ]
    status, answer = await ask(app, history)
    assert status != 200 and answer["type"] == "error"
