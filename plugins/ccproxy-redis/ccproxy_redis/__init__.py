"""ccproxy-redis: the cache backend "redis", shared by every worker and instance, with the upstream stack's rate
limits and circuit breakers kept in the same Redis (`RedisCacheBackend.shared_states()`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

from ccproxy import CacheBackend, hookimpl
from ccproxy_redis.breaker import RedisBreakerState
from ccproxy_redis.cache import RedisCacheBackend
from ccproxy_redis.limiter import RedisLimiterState
from ccproxy_redis.link import RedisLink, Unavailable
from ccproxy_redis.options import RedisOptions, options_from

__all__ = [
    "RedisBreakerState",
    "RedisCacheBackend",
    "RedisLimiterState",
    "RedisLink",
    "RedisOptions",
    "Unavailable",
    "redis_cache_from_options",
]


def redis_cache_from_options(options: Mapping[str, Any]) -> RedisCacheBackend:
    """`[plugins.redis]` -> the backend. Opens nothing: the pool is created on the server's loop by `open()`.
    REDIS_URL is read here, once, when the app is built, as the default for `url`."""
    return RedisCacheBackend(options_from(options, os.environ))


@hookimpl
def ccproxy_register_cache_backends(
    register: Callable[[str, Callable[[Mapping[str, Any]], CacheBackend]], None],
) -> None:
    register(RedisCacheBackend.name, redis_cache_from_options)
