"""The Redis plugin as users install it: found through packaging metadata, selected by name, options validated."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import ccproxy_redis
from ccproxy import CacheBackend
from ccproxy.plugins import build_cache, build_plugin_manager, collect, select_cache
from ccproxy.settings import Settings, SettingsError, load_settings
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


def test_url_comes_from_the_settings_handed_in_never_from_os_environ(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no plugins.toml or .env of the checkout
    monkeypatch.setenv("REDIS_URL", "redis://from-process-env:6379/9")  # never read by the plugin itself
    assert options_from({}).url == DEFAULT_URL
    settings = load_settings({"OPENAI_API_KEY": "sk-test", "CACHE_BACKEND": "redis", "REDIS_URL": "redis://c:6380/2"})
    backend = build_cache(collect(build_plugin_manager(settings), settings), settings)
    assert isinstance(backend, RedisCacheBackend) and backend.options.url == "redis://c:6380/2"
    table = Settings(api_key="sk-test", cache="redis", plugin_options={"redis": {"url": "redis://other/1"}})
    assert build_cache(collect(build_plugin_manager(table), table), table).options.url == "redis://other/1"


def test_a_bad_url_stops_start_up_with_one_line_naming_where_it_can_come_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"OPENAI_API_KEY": "sk-test", "CACHE_BACKEND": "redis", "REDIS_URL": "http://h:1/0"})
    with pytest.raises(SettingsError, match=r"^cache 'redis': plugins.redis.url \(or \[cache\] url, REDIS_URL\): "):
        build_cache(collect(build_plugin_manager(settings), settings), settings)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"url": "http://localhost:6379"}, r"plugins.redis.url \(or \[cache\] url, REDIS_URL\): "),
        ({"default_ttl": 0}, "plugins.redis.default_ttl: "),
        ({"pool_size": 0}, "plugins.redis.pool_size: "),
        ({"socket_timeout": -1}, "plugins.redis.socket_timeout: "),
        ({"prefix": "x:"}, "plugins.redis.prefix: "),  # the key is key_prefix: a typo is an error
    ],
)
def test_bad_options_name_the_key(table: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        options_from(table)


def test_the_password_never_shows() -> None:
    options = RedisOptions(url="redis://user:s3cret-pass@cache.internal:6380/3")
    assert options.where() == "redis://cache.internal:6380/3"
    assert "s3cret-pass" not in repr(options)
    assert "s3cret-pass" not in str(RedisCacheBackend(options).link.health())
