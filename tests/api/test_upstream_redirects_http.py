"""Redirects from the upstream, through the real app: a 307 / 308 on the same origin is followed with the same method,
body and headers on both transports (aiohttp follows them by default; the lean client, now the default, does too);
the lean client refuses any other redirect — one that would turn the POST into a GET, or send the backend's key to
another host — with a 502 naming where it points, instead of an answer it cannot parse."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.upstream.lean import MAX_REDIRECTS
from tests.api.conftest import API_KEY, make_settings, sdk_like
from tests.support.mock_upstream import MockUpstream, mock_upstream

HELLO = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Moved."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1},
}
MOVED_PATH = "/v2/chat/completions"


@pytest.fixture
def make_app(upstream: MockUpstream) -> Iterator[Callable[[str], CCProxyApp]]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(transport: str) -> CCProxyApp:
        options = {"openai": {"transport": transport}}
        app = sdk_like(create_app(make_settings(base_url=upstream.base_url, plugin_options=options)))
        made.append(app)
        return app

    yield build
    for app in made:
        Sanic.unregister_app(app)


async def post(app: CCProxyApp, body: dict[str, Any] = HELLO) -> Any:
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(body))
    return response


def redirect(upstream: MockUpstream, status: int, location: str) -> None:
    upstream.post(
        upstream.chat_url, status=status, body="moved", content_type="text/plain", headers={"Location": location}
    )


@pytest.mark.parametrize("transport", ["lean", "aiohttp"])
@pytest.mark.parametrize("status", [307, 308])
@pytest.mark.parametrize("stream", [False, True])
async def test_a_307_or_308_on_the_same_origin_is_followed_with_the_same_request(
    make_app: Callable[[str], CCProxyApp], upstream: MockUpstream, transport: str, status: int, stream: bool
) -> None:
    redirect(upstream, status, MOVED_PATH)  # relative, as servers usually write it
    upstream.post(upstream.origin + MOVED_PATH, payload=COMPLETION)
    response = await post(make_app(transport), {**HELLO, "stream": stream})
    assert response.status == 200, response.text
    assert "Moved." in response.text
    first, moved = upstream.requests
    assert (moved.method, moved.path) == ("POST", MOVED_PATH)
    assert moved.body == first.body and moved.json["model"] == "gpt-5"
    assert moved.headers["authorization"] == f"Bearer {API_KEY}"


@pytest.mark.parametrize("status", [301, 302, 303])
async def test_a_redirect_that_would_change_the_method_is_a_502_naming_its_target(
    make_app: Callable[[str], CCProxyApp], upstream: MockUpstream, status: int
) -> None:
    redirect(upstream, status, upstream.origin + MOVED_PATH + "?token=abc")
    response = await post(make_app("lean"))
    assert response.status == 502, response.text
    message = response.json["error"]["message"]
    assert f"({status} to {upstream.origin}{MOVED_PATH})" in message and "base_url" in message
    assert "token=abc" not in message  # a query string may carry a secret
    assert len(upstream.requests) == 1


async def test_a_redirect_to_another_host_is_refused_and_the_key_is_not_sent_there(
    make_app: Callable[[str], CCProxyApp], upstream: MockUpstream
) -> None:
    async with mock_upstream() as elsewhere:
        elsewhere.post(elsewhere.chat_url, payload=COMPLETION)
        redirect(upstream, 308, elsewhere.chat_url)
        response = await post(make_app("lean"))
        assert response.status == 502, response.text
        assert f"(308 to {elsewhere.chat_url})" in response.json["error"]["message"]
        assert elsewhere.requests == []


async def test_a_redirect_loop_ends_in_a_502(make_app: Callable[[str], CCProxyApp], upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, status=307, body="", headers={"Location": upstream.chat_url}, repeat=True)
    response = await post(make_app("lean"))
    assert response.status == 502, response.text
    assert f"more than {MAX_REDIRECTS} times" in response.json["error"]["message"]
    assert len(upstream.requests) == MAX_REDIRECTS + 1


async def test_a_redirect_without_a_location_is_a_502(
    make_app: Callable[[str], CCProxyApp], upstream: MockUpstream
) -> None:
    upstream.post(upstream.chat_url, status=307, body="")
    response = await post(make_app("lean"))
    assert response.status == 502, response.text
    assert "no Location" in response.json["error"]["message"]
