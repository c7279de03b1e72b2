"""The real proxy process with `cache = "redis"`: two instances share cached answers, and a dead Redis fails no
request. The cached answers here are count_tokens counts; the response cache has test_redis_response_cache.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import redis

from ccproxy.keys import key_id
from tests.support.fake_openai import PROMPT_TOKENS
from tests.support.proxy_process import FakeUpstream, ProxyServer, start_fake_openai, start_proxy
from tests.support.redis_server import RedisServer

API_KEY = "sk-redis-e2e-0123456789abcdef"
RECOVERY_TIMEOUT = 15.0
MESSAGES: list[anthropic.types.MessageParam] = [{"role": "user", "content": "count these tokens, please"}]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstream]:
    fake = start_fake_openai(tmp_path_factory.mktemp("redis-e2e"), api_key=API_KEY)
    yield fake
    fake.process.stop()


def proxy(
    tmp_path: Path, upstream: FakeUpstream, server: RedisServer, prefix: str, name: str, more_config: str = ""
) -> ProxyServer:
    config = tmp_path / f"{name}.toml"
    # The URL comes from REDIS_URL, as a deployment would give it.
    config.write_text(
        f'[ccproxy]\ncache = "redis"\n\n[plugins.redis]\nkey_prefix = "{prefix}"\nretry_interval = 0.2\n{more_config}'
    )
    return start_proxy(
        tmp_path,
        upstream=upstream,
        api_key=API_KEY,
        big_model="gpt-5",
        small_model="gpt-4o-mini",
        config_path=config,
        extra_env={"REDIS_URL": server.url},
        name=name,
    )


def count(server: ProxyServer, key: str = "dummy") -> int:
    with anthropic.Anthropic(base_url=server.base_url, api_key=key, max_retries=0, timeout=30) as sdk:
        return sdk.messages.count_tokens(model="claude-sonnet-5", messages=MESSAGES).input_tokens


def test_two_proxy_processes_share_the_cache(
    tmp_path: Path, upstream: FakeUpstream, redis_server: RedisServer, prefix: str
) -> None:
    first = proxy(tmp_path, upstream, redis_server, prefix, "proxy-a")
    second = proxy(tmp_path, upstream, redis_server, prefix, "proxy-b")
    try:
        counted = count(first)
        assert count(second) == counted > 0
        raw = redis.Redis.from_url(redis_server.url)
        try:
            assert len(raw.keys(f"{prefix}cache:*")) == 1
            assert raw.hgetall(f"{prefix}stats:cache") == {b"misses": b"1", b"hits": b"1"}  # b found a's answer
        finally:
            raw.close()
    finally:
        first.stop_and_check()
        second.stop_and_check()


def test_a_dead_redis_fails_no_request_and_is_used_again_once_back(
    tmp_path: Path, upstream: FakeUpstream, outage_server: RedisServer, prefix: str
) -> None:
    server = proxy(tmp_path, upstream, outage_server, prefix, "proxy-outage")
    try:
        counted = count(server)
        outage_server.kill()
        assert [count(server) for _ in range(5)] == [counted] * 5
        outage_server.start()  # empty: the count is stored again once the proxy has noticed Redis is back
        raw = redis.Redis.from_url(outage_server.url)
        try:
            deadline = time.monotonic() + RECOVERY_TIMEOUT
            while not raw.keys(f"{prefix}cache:*"):
                assert time.monotonic() < deadline, "the proxy never used Redis again"
                assert count(server) == counted
                time.sleep(0.1)
        finally:
            raw.close()
    finally:
        server.stop_and_check()
    log = server.process.log_text()
    assert log.count("is unavailable") == 1 and log.count("is back") == 1


def test_a_keys_requests_per_minute_hold_across_two_proxy_processes(
    tmp_path: Path, upstream: FakeUpstream, redis_server: RedisServer, prefix: str
) -> None:
    """A client key with rpm = 3 gets three requests a minute from the two instances together, not three from each:
    its window is in Redis (ccproxy_redis.quota)."""
    key = "ck-team-fleet-0123456789abcdef"
    limited = f'\n[[auth.keys]]\nkey = "{key}"\nname = "fleet"\nrpm = 3\n'
    first = proxy(tmp_path, upstream, redis_server, prefix, "proxy-key-a", limited)
    second = proxy(tmp_path, upstream, redis_server, prefix, "proxy-key-b", limited)
    try:
        assert count(first, key) > 0 and count(second, key) > 0 and count(first, key) > 0
        for server in (second, first):
            with pytest.raises(anthropic.RateLimitError) as refused:
                count(server, key)
            body = refused.value.body
            assert isinstance(body, dict) and body["type"] == "error"
            assert body["error"]["type"] == "rate_limit_error"
            assert "'fleet' is over its limit of 3 requests per minute" in body["error"]["message"]
            assert 1 <= int(refused.value.response.headers["retry-after"]) <= 60
        raw = redis.Redis.from_url(redis_server.url)
        try:
            assert raw.zcard(f"{prefix}quota:rpm:" + key_id(key)) == 3
        finally:
            raw.close()
    finally:
        first.stop_and_check()
        second.stop_and_check()
    for server in (first, second):
        assert key not in server.process.log_text()


def test_usage_sums_the_requests_of_two_proxy_processes(
    tmp_path: Path, upstream: FakeUpstream, redis_server: RedisServer, prefix: str
) -> None:
    """GET /v1/usage on either instance counts what both served: each publishes its sums to Redis once a second,
    before it answers and when it stops (ccproxy_redis.usage), and the endpoint reads them from there."""
    first = proxy(tmp_path, upstream, redis_server, prefix, "proxy-usage-a")
    second = proxy(tmp_path, upstream, redis_server, prefix, "proxy-usage-b")
    try:
        for server, times in ((first, 2), (second, 3)):
            create(server, times)
        for server in (first, second):
            usage = usage_once(server, requests=5)
            assert usage["scope"] == "fleet" and "warning" not in usage
            assert usage["totals"]["requests"] == 5
            assert usage["totals"]["input_tokens"] == 5 * PROMPT_TOKENS
            assert list(usage["by_model"]) == ["gpt-5"]
        # An instance that stops publishes what it summed since its last second.
        third = proxy(tmp_path, upstream, redis_server, prefix, "proxy-usage-c")
        try:
            create(third, 4)
        finally:
            third.stop_and_check()
        assert httpx.get(first.base_url + "/v1/usage", timeout=30).json()["totals"]["requests"] == 9
    finally:
        first.stop_and_check()
        second.stop_and_check()


def create(server: ProxyServer, times: int) -> None:
    with anthropic.Anthropic(base_url=server.base_url, api_key="dummy", max_retries=0, timeout=30) as sdk:
        for _ in range(times):
            sdk.messages.create(model="claude-sonnet-5", max_tokens=16, messages=MESSAGES)


def usage_once(server: ProxyServer, requests: int) -> dict[str, Any]:
    """GET /v1/usage once it counts `requests` (another instance publishes once a second), or after 10 s."""
    deadline = time.monotonic() + 10
    while True:
        usage: dict[str, Any] = httpx.get(server.base_url + "/v1/usage", timeout=30).json()
        if usage["totals"]["requests"] == requests or time.monotonic() > deadline:
            return usage
        time.sleep(0.1)
