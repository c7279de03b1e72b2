"""A `local` backend in a real app, against a server that validates strictly (strict_local.py): no Anthropic-only
field ever reaches it, top_k does, `think_tags = true` gives thinking blocks, and the context window the server
reports clamps max_tokens and answers an overlong prompt before anything is sent."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sanic import Sanic
from strict_local import error_body, problems

from ccproxy.app import CCProxyApp, create_app, run_lifecycle_hook
from ccproxy.settings import load_settings
from ccproxy.upstream import UpstreamRequest
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from tests.api.conftest import sdk_like
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.backends import swap_transports
from tests.support.fixtures import claude_code_posts

WINDOW = 32768
MODEL = "qwen3"
LISTING = {"object": "list", "data": [{"id": MODEL, "object": "model", "max_model_len": WINDOW}]}
TAGGED = "<think>\nThe user greets me.\n</think>\n\nHello!"
EXPECTED = [
    {"type": "thinking", "thinking": "The user greets me.", "signature": ""},
    {"type": "text", "text": "Hello!"},
]


def completion(text: str) -> dict[str, Any]:
    message = {"role": "assistant", "content": text}
    return {
        "id": "chatcmpl-local",
        "object": "chat.completion",
        "model": MODEL,
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29},
    }


def sse(text: str) -> list[bytes]:
    pieces = [text[at : at + 2] for at in range(0, len(text), 2)]  # every tag cut somewhere
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"content": piece}}]} for piece in pieces]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 9, "total_tokens": 29}})
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]


def strict_server(request: UpstreamRequest) -> FakeResponse:
    """vLLM with strict validation: 400 for any field it does not know; otherwise a tagged answer."""
    if request.method == "GET":
        return FakeResponse.json(LISTING)
    body = json.loads(request.body)
    found = problems(body)
    if found:
        return FakeResponse.json(error_body(found), status=400)
    if request.stream:
        return FakeResponse(200, {"content-type": "text/event-stream"}, chunks=sse(TAGGED))
    return FakeResponse.json(completion(TAGGED))


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[[str], tuple[CCProxyApp, FakeUpstream]]]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(extra: str = "") -> tuple[CCProxyApp, FakeUpstream]:
        config = tmp_path / "plugins.toml"
        config.write_text(
            f'[backends.local]\nprovider = "local"\nbase_url = "http://127.0.0.1:8000/v1"\nretries = 0\n{extra}\n'
            f'[routes]\n"*" = "local:{MODEL}"\n',
            encoding="utf-8",
        )
        app = sdk_like(create_app(load_settings({}, config_path=config)))
        made.append(app)
        return app, swap_transports(app.ctx.backends, {"local": strict_server})["local"]

    yield build
    for app in made:
        Sanic.unregister_app(app)


def chats(fake: FakeUpstream) -> list[dict[str, Any]]:
    return [json.loads(request.body) for request in fake.requests if request.method == "POST"]


EVERYTHING_ANTHROPIC = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 1024,
    "top_k": 40,
    "system": [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral", "scope": "global"}}],
    "metadata": {"user_id": "user_abc"},
    "service_tier": "auto",
    "container": "container_1",
    "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
    "output_config": {"effort": "high"},
    "thinking": {"type": "enabled", "budget_tokens": 2048},
    "tools": [
        {
            "name": "Bash",
            "description": "Run a command",
            "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
            "cache_control": {"type": "ephemeral"},
            "strict": True,
        }
    ],
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "from <think> tags earlier", "signature": ""},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "Let me look.", "citations": None},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "a.txt",
                    "cache_control": {"type": "ephemeral"},
                },
                {"type": "text", "text": "and now?"},
            ],
        },
    ],
}


@pytest.mark.parametrize("stream", [False, True])
async def test_anthropic_only_fields_never_reach_the_server_and_top_k_does(
    make_app: Callable[[str], tuple[CCProxyApp, FakeUpstream]], stream: bool
) -> None:
    app, fake = make_app("think_tags = true")
    _, response = await app.asgi_client.post("/v1/messages", json={**EVERYTHING_ANTHROPIC, "stream": stream})
    assert response.status == 200, response.text
    [sent] = chats(fake)
    assert problems(sent) == [] and sent["top_k"] == 40
    text = json.dumps(sent)
    assert "from <think> tags earlier" not in text and "opaque" not in text  # unsigned thinking is not replayed


async def test_the_strict_fake_does_refuse_what_ccproxy_leaves_out() -> None:
    # The check the test above relies on is a real one.
    found = problems(
        {"model": "m", "messages": [{"role": "user", "content": "x", "cache_control": {}}], "thinking": {}}
    )
    assert found == [
        "body.thinking: Extra inputs are not permitted",
        "body.messages.0.cache_control: Extra inputs are not permitted",
    ]


async def test_every_captured_claude_code_request_is_accepted(
    make_app: Callable[[str], tuple[CCProxyApp, FakeUpstream]],
) -> None:
    app, fake = make_app("")
    for capture in claude_code_posts("/v1/messages"):
        _, response = await app.asgi_client.post("/v1/messages", json={**capture.body, "stream": False})
        assert response.status == 200, (capture.id, response.text)
    assert all(problems(sent) == [] for sent in chats(fake))


async def test_think_tags_true_gives_thinking_blocks_streamed_or_not(
    make_app: Callable[[str], tuple[CCProxyApp, FakeUpstream]],
) -> None:
    app, _ = make_app("think_tags = true")
    hello = {"model": "claude-sonnet-4-5", "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}
    _, plain = await app.asgi_client.post("/v1/messages", json=hello)
    assert plain.json["content"] == EXPECTED
    _, streamed = await app.asgi_client.post("/v1/messages", json={**hello, "stream": True})
    events = parse_sse(streamed.body)
    check_stream(events)
    assert accumulate(events)["content"] == EXPECTED
    without, _ = make_app("")
    _, raw = await without.asgi_client.post("/v1/messages", json=hello)
    assert raw.json["content"] == [{"type": "text", "text": TAGGED}]


async def wait_for_window(app: CCProxyApp) -> None:
    """The server's window, read in the background by the plugin's start-up hook (called here: the ASGI test client
    runs the server's start and stop around every request, which would stop the reading before it began)."""
    await run_lifecycle_hook(app.ctx, "ccproxy_startup")
    backend = app.ctx.backends["local"]
    for _ in range(200):
        if backend.capabilities(MODEL).context_window == WINDOW:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the context window was not read at start-up")


async def test_the_reported_window_clamps_max_tokens_and_refuses_an_overlong_prompt(
    make_app: Callable[[str], tuple[CCProxyApp, FakeUpstream]],
) -> None:
    app, fake = make_app("")
    await wait_for_window(app)
    prompt = " ".join(f"token{n}" for n in range(6000))  # some 15,000 tokens
    ask = {"model": "claude-sonnet-4-5", "max_tokens": 32000, "messages": [{"role": "user", "content": prompt}]}
    _, response = await app.asgi_client.post("/v1/messages", json=ask)
    assert response.status == 200, response.text
    [sent] = chats(fake)
    assert 0 < sent["max_tokens"] < WINDOW - 15_000
    huge = {**ask, "messages": [{"role": "user", "content": prompt * 3}]}
    _, refused = await app.asgi_client.post("/v1/messages", json=huge)
    assert refused.status == 400
    assert refused.json["error"]["type"] == "invalid_request_error"
    assert refused.json["error"]["message"].startswith("prompt is too long: ")
    assert refused.json["error"]["message"].endswith(f" tokens > {WINDOW} maximum")
    assert len(chats(fake)) == 1  # nothing was sent for it
