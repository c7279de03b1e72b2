"""Fixtures: the fake OpenRouter server and a real proxy process with an `openrouter` backend in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openrouter_support import OPENROUTER_KEY, FakeOpenRouter, proxy_config, start_fake_openrouter

from tests.support.proxy_process import ProxyServer, start_configured_proxy


@pytest.fixture(scope="session")
def openrouter_logs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("openrouter-logs")


@pytest.fixture(scope="session")
def fake_openrouter_server(openrouter_logs: Path) -> Iterator[FakeOpenRouter]:
    fake = start_fake_openrouter(openrouter_logs)
    yield fake
    fake.process.stop()


@pytest.fixture
def fake_openrouter(fake_openrouter_server: FakeOpenRouter) -> FakeOpenRouter:
    """The fake with its request log (and the reasoning it remembers) cleared for this test."""
    fake_openrouter_server.reset()
    return fake_openrouter_server


@pytest.fixture(scope="session")
def openrouter_proxy(openrouter_logs: Path, fake_openrouter_server: FakeOpenRouter) -> Iterator[ProxyServer]:
    """The real proxy process serving every Claude model through the `openrouter` backend."""
    config = openrouter_logs / "plugins.toml"
    config.write_text(proxy_config(fake_openrouter_server), encoding="utf-8")
    server = start_configured_proxy(
        openrouter_logs, config, extra_env={"FAKE_OPENROUTER_KEY": OPENROUTER_KEY}, name="proxy-openrouter"
    )
    yield server
    server.stop_and_check()
    assert OPENROUTER_KEY not in server.process.log_text()
