"""OPENAI_BASE_URL=http://user:password@host/v1 against a real upstream requiring basic auth; the credentials never
appear in the start-up log, the log of the requests, GET /, /v1/models or an error."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import anthropic
import pytest

from tests.support.proxy_process import FakeUpstream, ProxyServer, start_fake_openai, start_proxy

pytestmark = pytest.mark.e2e

USER = "e2e@user"
# Characters that must be percent-encoded in a URL, a non-ASCII one, and a unique part that can only leak from here.
PASSWORD = "p@ss:w/rd%€-" + secrets.token_hex(8)
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, quote(PASSWORD, safe=""), TOKEN, quote(USER, safe=""))
MODEL = "claude-haiku-4-5"


@pytest.fixture(scope="module")
def basic_upstream(e2e_logs: Path) -> Iterator[FakeUpstream]:
    upstream = start_fake_openai(e2e_logs, basic_auth=f"{USER}:{PASSWORD}", name="fake_openai_basic_auth")
    yield upstream
    upstream.process.stop()


@pytest.fixture(scope="module")
def basic_proxy(e2e_logs: Path, basic_upstream: FakeUpstream) -> Iterator[ProxyServer]:
    url = f"http://{quote(USER, safe='')}:{quote(PASSWORD, safe='')}@127.0.0.1:{basic_upstream.port}/v1"
    server = start_proxy(
        e2e_logs,
        upstream=basic_upstream,
        api_key="",
        big_model="gpt-5",
        small_model="gpt-4o-mini",
        log_level="DEBUG",
        extra_env={"OPENAI_BASE_URL": url, "OPENAI_API_KEY": None},
        name="proxy-basic-auth",
    )
    yield server
    server.stop_and_check()


@pytest.fixture
def sdk(basic_proxy: ProxyServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=basic_proxy.base_url, api_key="dummy", max_retries=0, timeout=30.0) as client:
        yield client


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


def test_requests_reach_the_upstream_with_basic_auth(sdk: anthropic.Anthropic, basic_upstream: FakeUpstream) -> None:
    basic_upstream.reset()
    message = sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    assert message.content[0].type == "text" and "FAKE_OPENAI_REPLY" in message.content[0].text
    with sdk.messages.stream(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}]) as stream:
        assert "FAKE_OPENAI_REPLY" in stream.get_final_text()
    chats = basic_upstream.chat_requests()
    assert len(chats) == 2
    assert all(chat["headers"]["authorization"] == f"Basic {TOKEN}" for chat in chats)


def test_an_upstream_echoing_the_header_does_not_leak_it(sdk: anthropic.Anthropic) -> None:
    with pytest.raises(anthropic.AuthenticationError) as info:
        sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "ECHO_KEY"}])
    assert "[redacted]" in info.value.message
    assert_no_secret(json.dumps(info.value.body))


def test_health_models_and_logs_never_show_the_credentials(basic_proxy: ProxyServer, sdk: anthropic.Anthropic) -> None:
    sdk.messages.create(model=MODEL, max_tokens=64, messages=[{"role": "user", "content": "hi"}])
    for path in ("/", "/v1/models"):
        with urllib.request.urlopen(basic_proxy.base_url + path, timeout=10) as response:
            assert_no_secret(response.read().decode())
    log = basic_proxy.process.log_text()
    assert "upstream http://127.0.0.1:" in log  # the start-up line names the upstream, without credentials
    assert_no_secret(log)
