"""ccproxy-redis: the cache backend "redis", shared by every worker and instance, with the upstream stack's rate
limits and circuit breakers (`RedisCacheBackend.shared_states()`) and the client keys' rpm, tpm and budgets
(`shared_limit_store()`) and GET /v1/usage's sums (`shared_usage_store()`) kept in the same Redis.

Importing the package is cheap: redis-py (~0.2 s to import) is only loaded when the backend is built or one of the
names below is used, so an installed but unselected plugin costs start-up nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ccproxy import CacheBackend, hookimpl
from ccproxy_redis.options import RedisOptions, options_from

if TYPE_CHECKING:
    from ccproxy_redis.breaker import RedisBreakerState
    from ccproxy_redis.cache import RedisCacheBackend
    from ccproxy_redis.limiter import RedisLimiterState
    from ccproxy_redis.link import RedisLink, Unavailable
    from ccproxy_redis.quota import RedisLimitStore
    from ccproxy_redis.usage import RedisUsage

__all__ = [
    "RedisBreakerState",
    "RedisCacheBackend",
    "RedisLimitStore",
    "RedisLimiterState",
    "RedisLink",
    "RedisOptions",
    "RedisUsage",
    "Unavailable",
    "redis_cache_from_options",
]

NAME = "redis"
_LAZY = {
    "RedisBreakerState": "ccproxy_redis.breaker",
    "RedisCacheBackend": "ccproxy_redis.cache",
    "RedisLimitStore": "ccproxy_redis.quota",
    "RedisUsage": "ccproxy_redis.usage",
    "RedisLimiterState": "ccproxy_redis.limiter",
    "RedisLink": "ccproxy_redis.link",
    "Unavailable": "ccproxy_redis.link",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def redis_cache_from_options(options: Mapping[str, Any]) -> RedisCacheBackend:
    """The backend's options (see `options_from`) -> the backend. Opens nothing: the pool is created on the server's
    loop by `open()`. The URL comes from those options (ccproxy hands REDIS_URL in as `url`), never from os.environ."""
    from ccproxy_redis.cache import RedisCacheBackend

    return RedisCacheBackend(options_from(options))


@hookimpl
def ccproxy_register_cache_backends(
    register: Callable[[str, Callable[[Mapping[str, Any]], CacheBackend]], None],
) -> None:
    register(NAME, redis_cache_from_options)
