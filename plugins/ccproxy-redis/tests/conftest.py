"""Fixtures of the Redis plugin's tests: a real redis-server per test session, one per outage test, and backends on
a key prefix of their own, so tests sharing the server never see each other's keys."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis_testing import Records, options

from ccproxy_redis import RedisCacheBackend
from tests.support.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def outage_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A server of the test's own, which it may kill, pause and restart."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex[:12]}:"


@pytest.fixture
async def backend(redis_server: RedisServer, prefix: str) -> AsyncIterator[RedisCacheBackend]:
    cache = RedisCacheBackend(options(redis_server.url, prefix))
    await cache.open()
    yield cache
    await cache.close()


@pytest.fixture
async def two_backends(redis_server: RedisServer, prefix: str) -> AsyncIterator[tuple[RedisCacheBackend, ...]]:
    """Two processes' backends: two pools on one prefix."""
    backends = tuple(RedisCacheBackend(options(redis_server.url, prefix)) for _ in range(2))
    for cache in backends:
        await cache.open()
    yield backends
    for cache in backends:
        await cache.close()


@pytest.fixture
async def raw(redis_server: RedisServer) -> AsyncIterator[Redis]:
    """A plain client, to look at what the backends left in Redis."""
    client = Redis.from_url(redis_server.url)
    yield client
    await client.aclose()


@pytest.fixture
def redis_log() -> Iterator[Records]:
    logger = logging.getLogger("ccproxy.redis")
    handler, level = Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)
