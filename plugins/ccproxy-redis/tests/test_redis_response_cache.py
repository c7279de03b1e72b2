"""The response cache on a real Redis, through real proxy processes: N identical requests, one upstream call — across
two instances, across two workers, for concurrent streams; failures never stored; a dead Redis fails no request."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import pytest
import redis

from tests.support.proxy_process import FakeUpstream, ProxyServer, start_fake_openai, start_proxy
from tests.support.redis_server import RedisServer

API_KEY = "sk-redis-cache-0123456789abcdef"
RECOVERY_TIMEOUT = 20.0


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeUpstream]:
    fake = start_fake_openai(tmp_path_factory.mktemp("redis-responses"), api_key=API_KEY)
    yield fake
    fake.process.stop()


@pytest.fixture
def started(tmp_path: Path, upstream: FakeUpstream) -> Iterator[Callable[..., ProxyServer]]:
    """Starts proxies with the response cache on Redis (stopped, and checked for tracebacks, at the end)."""
    servers: list[ProxyServer] = []

    def start(server: RedisServer, prefix: str, name: str, workers: int = 1) -> ProxyServer:
        config = tmp_path / f"{name}.toml"
        config.write_text(
            f'[cache]\nbackend = "redis"\nresponses = true\nkey_prefix = "{prefix}"\n\n'
            "[plugins.redis]\nretry_interval = 0.2\n"
        )
        proxy = start_proxy(
            tmp_path,
            upstream=upstream,
            api_key=API_KEY,
            big_model="gpt-5",
            small_model="gpt-4o-mini",
            config_path=config,
            extra_env={"REDIS_URL": server.url},
            workers=workers,
            name=name,
        )
        servers.append(proxy)
        return proxy

    yield start
    for proxy in servers:
        proxy.stop_and_check()


def prompt(*markers: str) -> str:
    """A prompt no other test sends (the fake upstream's markers added)."""
    return " ".join([f"cache test {uuid.uuid4().hex}", *markers])


def upstream_calls(upstream: FakeUpstream, text: str) -> int:
    return sum(1 for r in upstream.chat_requests() if text in str(r["body"].get("messages")))


def ask(proxy: ProxyServer, text: str, **headers: str) -> tuple[str, dict[str, Any]]:
    """(x-ccproxy-cache, the message) of one non-stream request through the anthropic SDK."""
    with anthropic.Anthropic(base_url=proxy.base_url, api_key="dummy", max_retries=0, timeout=60) as sdk:
        raw = sdk.messages.with_raw_response.create(
            model="claude-opus-4-8",
            max_tokens=100,
            messages=[{"role": "user", "content": text}],
            extra_headers=headers or None,
        )
        return raw.headers.get("x-ccproxy-cache", ""), raw.parse().model_dump()


def stream(proxy: ProxyServer, text: str) -> tuple[str, dict[str, Any]]:
    """(x-ccproxy-cache, the final message) of one stream; the SDK refuses an incomplete or malformed stream."""
    sdk = anthropic.Anthropic(base_url=proxy.base_url, api_key="dummy", max_retries=0, timeout=60)
    messages: list[anthropic.types.MessageParam] = [{"role": "user", "content": text}]
    with sdk, sdk.messages.stream(model="claude-opus-4-8", max_tokens=100, messages=messages) as events:
        message = events.get_final_message().model_dump()
        return events.response.headers.get("x-ccproxy-cache", ""), message


def together(calls: list[Callable[[], Any]]) -> list[Any]:
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


def test_two_proxy_processes_serve_identical_requests_with_one_upstream_call(
    started: Callable[..., ProxyServer], upstream: FakeUpstream, redis_server: RedisServer, prefix: str
) -> None:
    first = started(redis_server, prefix, "proxy-a")
    second = started(redis_server, prefix, "proxy-b")
    text = prompt()
    answers = [ask(proxy, text) for proxy in (first, second, first, second)]
    assert [outcome for outcome, _ in answers] == ["miss", "hit", "hit", "hit"]
    assert upstream_calls(upstream, text) == 1
    assert len({message["id"] for _, message in answers}) == 4
    assert len({str(message["content"]) for _, message in answers}) == 1

    slow = prompt("SLOW_1")  # the upstream takes a second: every request below arrives while the first is under way
    concurrent = together([lambda proxy=proxy: ask(proxy, slow) for proxy in (first, second) * 3])
    assert upstream_calls(upstream, slow) == 1
    assert sorted(outcome for outcome, _ in concurrent) == ["hit"] * 5 + ["miss"]
    assert len({message["id"] for _, message in concurrent}) == 6


def test_a_two_worker_server_makes_one_upstream_call(
    started: Callable[..., ProxyServer], upstream: FakeUpstream, redis_server: RedisServer, prefix: str
) -> None:
    server = started(redis_server, prefix, "proxy-workers", workers=2)
    slow = prompt("SLOW_1")
    answers = together([lambda: ask(server, slow) for _ in range(8)])
    answers += [ask(server, slow) for _ in range(4)]
    assert upstream_calls(upstream, slow) == 1
    assert sorted(outcome for outcome, _ in answers).count("miss") == 1
    assert len({message["id"] for _, message in answers}) == 12


def test_concurrent_identical_streams_share_one_upstream_call(
    started: Callable[..., ProxyServer], upstream: FakeUpstream, redis_server: RedisServer, prefix: str
) -> None:
    first = started(redis_server, prefix, "proxy-stream-a")
    second = started(redis_server, prefix, "proxy-stream-b")
    slow = prompt("SLOW_1")
    results = together([lambda proxy=proxy: stream(proxy, slow) for proxy in (first, second, first, second)])
    assert upstream_calls(upstream, slow) == 1
    assert sorted(outcome for outcome, _ in results) == ["hit", "hit", "hit", "miss"]
    messages = [message for _, message in results]
    assert len({message["id"] for message in messages}) == 4
    assert all(message["stop_reason"] == "end_turn" for message in messages)
    assert len({str(message["content"]) for message in messages}) == 1
    assert "FAKE_OPENAI_REPLY" in str(messages[0]["content"])
    assert stream(second, slow)[0] == "hit" and upstream_calls(upstream, slow) == 1


def test_a_no_cache_request_calls_upstream_and_is_a_miss(
    started: Callable[..., ProxyServer], upstream: FakeUpstream, redis_server: RedisServer, prefix: str
) -> None:
    proxy = started(redis_server, prefix, "proxy-no-cache")
    text = prompt()
    assert ask(proxy, text)[0] == "miss"
    assert ask(proxy, text)[0] == "hit"
    assert ask(proxy, text, **{"cache-control": "no-cache"})[0] == "miss"
    assert upstream_calls(upstream, text) == 2


def test_errors_and_cut_streams_are_never_stored(
    started: Callable[..., ProxyServer], upstream: FakeUpstream, redis_server: RedisServer, prefix: str
) -> None:
    proxy = started(redis_server, prefix, "proxy-errors")
    failing = prompt("FAIL_500")
    for _ in range(2):
        with pytest.raises(anthropic.InternalServerError):
            ask(proxy, failing)
    assert upstream_calls(upstream, failing) == 2
    for marker in ("MIDSTREAM_ERROR", "TRUNCATE_STREAM"):
        broken = prompt(marker)
        for _ in range(2):
            with pytest.raises(anthropic.APIStatusError):
                stream(proxy, broken)
        assert upstream_calls(upstream, broken) == 2, marker
    raw = redis.Redis.from_url(redis_server.url)
    try:
        assert raw.keys(f"{prefix}cache:responses:*") == []
    finally:
        raw.close()


def test_a_dead_redis_fails_no_request_and_caching_resumes_when_it_is_back(
    started: Callable[..., ProxyServer], upstream: FakeUpstream, outage_server: RedisServer, prefix: str
) -> None:
    first = started(outage_server, prefix, "proxy-outage-a")
    second = started(outage_server, prefix, "proxy-outage-b")
    before = prompt()
    assert [ask(proxy, before)[0] for proxy in (first, second)] == ["miss", "hit"]
    outage_server.kill()
    during = prompt("SLOW_0.5")
    answers = together([lambda proxy=proxy: ask(proxy, during) for proxy in (first, second) * 2])
    answers += [(outcome, message) for outcome, message in [stream(first, during)]]
    assert all(message["content"] for _, message in answers)  # every client got its answer
    assert 1 <= upstream_calls(upstream, during) <= 3  # shared within each process, not across them
    outage_server.start()  # empty
    after = prompt()
    deadline = time.monotonic() + RECOVERY_TIMEOUT
    while True:
        ask(first, after)
        if ask(second, after)[0] == "hit":  # the second found the first's answer in Redis
            break
        assert time.monotonic() < deadline, "the proxies never used Redis again"
        time.sleep(0.2)
    for proxy in (first, second):
        log = proxy.process.log_text()
        assert log.count("is unavailable") == 1 and log.count("is back") == 1
