"""The HTTP edge refuses foreign Host names, foreign browser origins and non-JSON bodies; real clients pass."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sanic import Sanic

from ccproxy.app import CCProxyApp, create_app
from ccproxy.http.edge import EdgePolicy
from tests.support.mock_upstream import MockUpstream

from .conftest import make_settings, sdk_like

BODY = {"model": "claude-haiku-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = {
    "id": "chatcmpl-1",
    "object": "chat.completion",
    "model": "gpt-4o-mini",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "hello"}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
}
# What Claude Code 2.1.197 sent with `ANTHROPIC_AUTH_TOKEN` (../shared/fixtures/claude-code/auth_token.01.json).
CLAUDE_CODE_HEADERS = {
    "accept": "application/json",
    "authorization": "Bearer dummy-bearer-token",
    "content-type": "application/json",
    "user-agent": "claude-cli/2.1.197 (external, sdk-cli)",
    "x-stainless-lang": "js",
    "x-stainless-retry-count": "0",
    "x-stainless-timeout": "600",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "anthropic-dangerous-direct-browser-access": "true",
    "anthropic-version": "2023-06-01",
    "x-app": "cli",
    "host": "127.0.0.1:49495",
}
ALLOWED_ORIGIN = "http://localhost:3000"


@pytest.fixture
def make_app(upstream: MockUpstream) -> Iterator[Any]:
    built: list[CCProxyApp] = []

    def build(**settings: Any) -> CCProxyApp:
        Sanic.test_mode = True
        application = sdk_like(create_app(make_settings(**{"base_url": upstream.base_url, **settings})))
        built.append(application)
        return application

    yield build
    for application in built:
        Sanic.unregister_app(application)


async def send(app: CCProxyApp, method: str, path: str, headers: dict[str, str], body: Any = BODY) -> Any:
    content = json.dumps(body).encode() if method == "POST" else None
    _, response = await app.asgi_client.request(method, path, content=content, headers=headers)
    return response


def assert_refused(response: Any, status: int, error_type: str, *words: str) -> None:
    assert response.status == status, response.text
    assert response.json["type"] == "error"
    assert response.json["error"]["type"] == error_type
    assert all(word in response.json["error"]["message"] for word in words), response.json
    assert response.headers["request-id"].startswith("req_")
    assert "access-control-allow-origin" not in response.headers


def upstream_calls(upstream: MockUpstream) -> int:
    return len(upstream.requests)


@pytest.mark.parametrize(
    "host",
    ["mockserver:1234", "evil.example:11434", "evil.example", "localhost.evil.example:11434", "127.0.0.1.nip.io", ""],
)
@pytest.mark.parametrize(("method", "path"), [("POST", "/v1/messages"), ("GET", "/v1/models")])
async def test_foreign_host_is_refused_before_the_upstream(
    make_app: Any, upstream: MockUpstream, host: str, method: str, path: str
) -> None:
    upstream.post(upstream.chat_url, payload=COMPLETION)
    response = await send(make_app(), method, path, {"host": host})
    assert_refused(response, 403, "permission_error", "ALLOWED_HOSTS")
    assert upstream_calls(upstream) == 0


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:11434",
        "localhost:11434",
        "LocalHost:8080",
        "[::1]:11434",
        "[::1]",
        "10.1.2.3:11434",
        "[fe80::1]:80",
        "localhost",
    ],
)
async def test_loopback_names_and_ip_addresses_are_served(make_app: Any, host: str) -> None:
    response = await send(make_app(), "GET", "/v1/models", {"host": host})
    assert response.status == 200, response.text


async def test_allowed_hosts_extend_the_names_at_any_port(make_app: Any) -> None:
    app = make_app(allowed_hosts=("proxy.internal", "ccproxy_service"))
    for host in ("proxy.internal", "proxy.internal:443", "PROXY.INTERNAL:8443", "ccproxy_service:11434"):
        assert (await send(app, "GET", "/v1/models", {"host": host})).status == 200, host
    assert (await send(app, "GET", "/v1/models", {"host": "other.internal"})).status == 403


async def test_star_turns_the_host_check_off(make_app: Any) -> None:
    response = await send(make_app(allowed_hosts=("*",)), "GET", "/v1/models", {"host": "anything.example:1"})
    assert response.status == 200


def test_bound_name_is_served_and_the_wildcard_adds_the_machine_name() -> None:
    named = EdgePolicy.from_settings(make_settings(host="ccproxy.lan"), "buildbox")
    assert named.host_allowed("ccproxy.lan:11434") and not named.host_allowed("buildbox:11434")
    for wildcard in ("0.0.0.0", "::"):
        policy = EdgePolicy.from_settings(make_settings(host=wildcard), "BuildBox")
        assert policy.host_allowed("buildbox:11434") and policy.host_allowed("localhost:11434")
        assert not policy.host_allowed("evil.example:11434")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_health_check_answers_any_host_and_origin(make_app: Any, method: str) -> None:
    headers = {"host": "lb-probe.example", "origin": "https://evil.example"}
    response = await send(make_app(), method, "/", headers)
    assert response.status == 200


@pytest.mark.parametrize("origin", ["https://evil.example", "null", "http://localhost:3001"])
async def test_foreign_origin_is_refused_even_with_json(make_app: Any, upstream: MockUpstream, origin: str) -> None:
    upstream.post(upstream.chat_url, payload=COMPLETION)
    app = make_app(allowed_origins=(ALLOWED_ORIGIN,))
    response = await send(app, "POST", "/v1/messages", {"origin": origin})
    assert_refused(response, 403, "permission_error", "ALLOWED_ORIGINS")
    assert upstream_calls(upstream) == 0


async def test_simple_cross_site_post_is_refused(make_app: Any, upstream: MockUpstream) -> None:
    # What a web page can send without a CORS preflight: text/plain from its own origin.
    upstream.post(upstream.chat_url, payload=COMPLETION)
    headers = {"origin": "https://evil.example", "content-type": "text/plain;charset=UTF-8"}
    assert_refused(await send(make_app(), "POST", "/v1/messages", headers), 403, "permission_error")
    assert upstream_calls(upstream) == 0


async def test_allowed_origin_is_served_with_cors_headers(make_app: Any, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=COMPLETION)
    app = make_app(allowed_origins=(ALLOWED_ORIGIN,))
    response = await send(app, "POST", "/v1/messages", {"origin": ALLOWED_ORIGIN})
    assert response.status == 200, response.text
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert response.headers["vary"] == "origin"
    assert "request-id" in response.headers["access-control-expose-headers"]
    # Error answers carry them too, so the page can read the message.
    response = await send(app, "POST", "/v1/messages", {"origin": ALLOWED_ORIGIN}, body={"messages": []})
    assert response.status == 400
    assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN


async def test_preflight_from_an_allowed_origin(make_app: Any) -> None:
    app = make_app(allowed_origins=(ALLOWED_ORIGIN,))
    headers = {
        "origin": ALLOWED_ORIGIN,
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type,x-api-key,anthropic-version",
    }
    for path in ("/v1/messages", "/v1/messages/count_tokens", "/v1/models"):
        response = await send(app, "OPTIONS", path, headers)
        assert response.status == 204, response.text
        assert response.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
        assert "POST" in response.headers["access-control-allow-methods"]
        assert response.headers["access-control-allow-headers"] == "content-type,x-api-key,anthropic-version"


async def test_preflight_from_a_foreign_origin_is_refused(make_app: Any) -> None:
    app = make_app(allowed_origins=(ALLOWED_ORIGIN,))
    headers = {"origin": "https://evil.example", "access-control-request-method": "POST"}
    assert_refused(await send(app, "OPTIONS", "/v1/messages", headers), 403, "permission_error")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data", ""],
)
@pytest.mark.parametrize("path", ["/v1/messages", "/v1/messages/count_tokens"])
async def test_non_json_bodies_are_refused_with_415(
    make_app: Any, upstream: MockUpstream, content_type: str, path: str
) -> None:
    upstream.post(upstream.chat_url, payload=COMPLETION)
    app = make_app()
    if not content_type:
        del app.asgi_client.headers["content-type"]  # no Content-Type at all, as fetch() sends a Blob
    headers = {"content-type": content_type} if content_type else {}
    response = await send(app, "POST", path, headers)
    assert_refused(response, 415, "invalid_request_error", "application/json")
    assert upstream_calls(upstream) == 0


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "Application/JSON"])
async def test_json_content_types_are_served(make_app: Any, upstream: MockUpstream, content_type: str) -> None:
    upstream.post(upstream.chat_url, payload=COMPLETION)
    response = await send(make_app(), "POST", "/v1/messages", {"content-type": content_type})
    assert response.status == 200, response.text


async def test_claude_code_headers_pass_every_check(make_app: Any, upstream: MockUpstream) -> None:
    upstream.post(upstream.chat_url, payload=COMPLETION)
    app = make_app()
    response = await send(app, "POST", "/v1/messages?beta=true", CLAUDE_CODE_HEADERS)
    assert response.status == 200, response.text
    response = await send(app, "POST", "/v1/messages/count_tokens?beta=true", CLAUDE_CODE_HEADERS)
    assert response.status == 200, response.text
