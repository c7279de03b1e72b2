"""Fixtures for end-to-end tests: one fake OpenAI upstream per session, one real proxy process per module."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.support.proxy_process import FakeUpstream, ProxyServer, start_fake_openai, start_proxy

# Unique per run, so finding it in a response or a log can only mean the proxy leaked it.
UPSTREAM_API_KEY = "sk-e2e-" + secrets.token_hex(20)
# gpt-5 takes max_completion_tokens and only the default temperature; gpt-4o-mini takes max_tokens.
BIG_MODEL = "gpt-5"
SMALL_MODEL = "gpt-4o-mini"


@pytest.fixture(scope="session")
def e2e_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("e2e-logs")


@pytest.fixture(scope="session")
def fake_upstream(e2e_logs: Path) -> Iterator[FakeUpstream]:
    upstream = start_fake_openai(e2e_logs, api_key=UPSTREAM_API_KEY)
    yield upstream
    upstream.process.stop()


@pytest.fixture
def fake(fake_upstream: FakeUpstream) -> FakeUpstream:
    """The fake upstream with its request log cleared for this test."""
    fake_upstream.reset()
    return fake_upstream


@pytest.fixture(scope="module")
def proxy(e2e_logs: Path, fake_upstream: FakeUpstream, request: pytest.FixtureRequest) -> Iterator[ProxyServer]:
    """The real proxy process for this module, stopped with SIGTERM afterwards; it must exit 0."""
    server = start_proxy(
        e2e_logs,
        upstream=fake_upstream,
        api_key=UPSTREAM_API_KEY,
        big_model=BIG_MODEL,
        small_model=SMALL_MODEL,
        log_level="DEBUG",
        name=f"proxy-{request.module.__name__.rsplit('.', 1)[-1]}",
    )
    yield server
    server.stop_and_check()


@pytest.fixture(scope="module")
def client(proxy: ProxyServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=proxy.base_url, api_key="dummy", max_retries=0, timeout=30.0) as sdk:
        yield sdk
