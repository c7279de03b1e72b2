"""The Redis plugin as users install it: found through packaging metadata, selected by name, options validated."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

import ccproxy_redis
from ccproxy import CacheBackend
from ccproxy.plugins import build_plugin_manager, collect, select_cache
from ccproxy.settings import Settings
from ccproxy_redis import RedisBreakerState, RedisCacheBackend, RedisLimiterState, RedisOptions
from ccproxy_redis.options import DEFAULT_URL, options_from
from tests.support.redis_server import RedisServer


def test_entry_point_is_installed() -> None:
    found = [ep for ep in entry_points(group="ccproxy") if ep.name == "redis"]
    assert len(found) == 1
    assert found[0].load() is ccproxy_redis
    assert found[0].dist is not None and found[0].dist.name == "ccproxy-redis"


async def test_the_plugin_manager_offers_the_redis_cache_backend(redis_server: RedisServer, prefix: str) -> None:
    settings = Settings(api_key="sk-test", cache="redis")
    registry = collect(build_plugin_manager(settings), settings)
    backend = select_cache(registry, "redis")({"url": redis_server.url, "key_prefix": prefix, "default_ttl": 30})
    assert isinstance(backend, RedisCacheBackend) and isinstance(backend, CacheBackend)
    assert backend.name == "redis" and backend.options.default_ttl == 30.0
    states = backend.shared_states()
    assert isinstance(states.breaker, RedisBreakerState) and isinstance(states.limiter, RedisLimiterState)
    assert backend.shared_states() is states  # one set of stores per backend
    await backend.open()
    try:
        await backend.set("k", [1, "two"])
        assert await backend.get("k") == [1, "two"]
    finally:
        await backend.close()


def test_the_factory_opens_nothing() -> None:
    # Built before the server's loop exists: no pool, no connection, no task yet.
    backend = ccproxy_redis.redis_cache_from_options({"url": "redis://127.0.0.1:1/0"})
    assert backend.link._client is None


def test_an_installed_but_unselected_plugin_does_not_load_redis_py() -> None:
    # Entry points are loaded at every start-up: redis-py (~0.2 s to import) waits until the backend is built.
    code = "import sys, ccproxy_redis; ccproxy_redis.ccproxy_register_cache_backends; print('redis' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


def test_the_in_memory_default_has_no_shared_states() -> None:
    registry = collect(build_plugin_manager(Settings(api_key="sk-test")), Settings(api_key="sk-test"))
    assert select_cache(registry, "memory")({}).shared_states() is None


def test_url_defaults_to_redis_url_then_to_localhost() -> None:
    assert options_from({}, {}).url == DEFAULT_URL
    assert options_from({}, {"REDIS_URL": "redis://cache.internal:6380/2"}).url == "redis://cache.internal:6380/2"
    assert options_from({"url": "redis://other/1"}, {"REDIS_URL": "redis://ignored/0"}).url == "redis://other/1"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"url": "http://localhost:6379"}, "plugins.redis.url: "),
        ({"default_ttl": 0}, "plugins.redis.default_ttl: "),
        ({"pool_size": 0}, "plugins.redis.pool_size: "),
        ({"socket_timeout": -1}, "plugins.redis.socket_timeout: "),
        ({"prefix": "x:"}, "plugins.redis.prefix: "),  # the key is key_prefix: a typo is an error
    ],
)
def test_bad_options_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options_from(table, {})


def test_the_password_never_shows() -> None:
    options = RedisOptions(url="redis://user:s3cret-pass@cache.internal:6380/3")
    assert options.where() == "redis://cache.internal:6380/3"
    assert "s3cret-pass" not in repr(options)
    assert "s3cret-pass" not in str(RedisCacheBackend(options).link.health())
