"""Against the real server process: what a web page could send (DNS rebinding, a simple cross-site POST) is refused
before anything reaches the upstream; the same request from a real client is served."""

from __future__ import annotations

import http.client
import json
from typing import Any

import pytest

from tests.support.proxy_process import FakeUpstream, ProxyServer

pytestmark = pytest.mark.e2e

BODY = json.dumps(
    {"model": "claude-haiku-4-5", "max_tokens": 32, "messages": [{"role": "user", "content": "Say hello"}]}
).encode()
JSON_HEADERS = {"content-type": "application/json", "x-api-key": "dummy", "anthropic-version": "2023-06-01"}


def raw_request(
    proxy: ProxyServer, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    """One request with exactly these headers (`host` included when given: http.client then sends no other)."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        connection.request(method, path, body, headers)
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        connection.close()


def assert_refused(status: int, body: dict[str, Any], expected: int, error_type: str) -> None:
    assert status == expected, body
    assert body["type"] == "error" and body["error"]["type"] == error_type, body


def test_dns_rebinding_host_is_refused(proxy: ProxyServer, fake: FakeUpstream) -> None:
    # The page at http://rebind.evil.example:<port> whose name now resolves to 127.0.0.1.
    headers = {**JSON_HEADERS, "host": f"rebind.evil.example:{proxy.port}"}
    status, body = raw_request(proxy, "POST", "/v1/messages", headers, BODY)
    assert_refused(status, body, 403, "permission_error")
    assert fake.chat_requests() == []


def test_simple_cross_site_post_is_refused(proxy: ProxyServer, fake: FakeUpstream) -> None:
    # What any web page may send to http://127.0.0.1:<port> without a CORS preflight.
    headers = {"content-type": "text/plain;charset=UTF-8", "origin": "https://evil.example"}
    status, body = raw_request(proxy, "POST", "/v1/messages", headers, BODY)
    assert_refused(status, body, 403, "permission_error")
    assert fake.chat_requests() == []


def test_text_plain_without_origin_is_refused(proxy: ProxyServer, fake: FakeUpstream) -> None:
    status, body = raw_request(proxy, "POST", "/v1/messages", {"content-type": "text/plain"}, BODY)
    assert_refused(status, body, 415, "invalid_request_error")
    assert fake.chat_requests() == []


def test_the_same_request_from_a_real_client_is_served(proxy: ProxyServer, fake: FakeUpstream) -> None:
    status, body = raw_request(proxy, "POST", "/v1/messages", JSON_HEADERS, BODY)
    assert status == 200, body
    assert body["type"] == "message"
    assert len(fake.chat_requests()) == 1


def test_health_answers_any_host(proxy: ProxyServer) -> None:
    status, body = raw_request(proxy, "GET", "/", {"host": "load-balancer.example"})
    assert status == 200 and body["status"] == "ok"
