"""`[plugins.redis]`: where Redis is, key prefix, default TTL, pool, and how fast a dead Redis is skipped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

DEFAULT_URL = "redis://localhost:6379/0"


class RedisOptions(BaseModel):
    """The `[plugins.redis]` table. Timeouts are short on purpose: a request never waits on a dead Redis for long,
    and once Redis is known to be down it is not asked again until a background probe finds it back."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(default=DEFAULT_URL, repr=False)  # may hold a password
    key_prefix: str = "ccproxy:"
    default_ttl: float = Field(default=300.0, gt=0)
    pool_size: int = Field(default=32, ge=1)
    connect_timeout: float = Field(default=0.5, gt=0)
    socket_timeout: float = Field(default=0.5, gt=0)
    retry_interval: float = Field(default=1.0, gt=0)  # how often a Redis known to be down is probed
    breaker_trial_ttl: float = Field(default=60.0, gt=0)  # a half-open trial claim whose holder died expires

    @field_validator("url")
    @classmethod
    def _redis_url(cls, url: str) -> str:
        if urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return url

    def where(self) -> str:
        """The URL without credentials, for log lines and stats."""
        parts = urlsplit(self.url)
        if parts.scheme == "unix":
            return f"unix://{parts.path}"
        host = parts.hostname or "localhost"
        return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path or '/0'}"


def options_from(table: Mapping[str, Any]) -> RedisOptions:
    """Validate the backend's options: `[plugins.redis]` with ccproxy's `[cache]` `url` (REDIS_URL), `key_prefix` and
    `ttl` filled in where it does not set them (ccproxy.plugins.build_cache); `url` defaults to
    redis://localhost:6379/0. Raises ValueError naming the key."""
    try:
        return RedisOptions.model_validate(dict(table))
    except ValidationError as exc:
        problems = (f"{_where(error['loc'])}: {error['msg']}" for error in exc.errors())
        raise ValueError("; ".join(problems)) from None


def _where(loc: tuple[int | str, ...]) -> str:
    key = ".".join(map(str, loc))
    if key == "url":  # it may have come from REDIS_URL or [cache] url as well
        return "plugins.redis.url (or [cache] url, REDIS_URL)"
    return f"plugins.redis.{key}"
