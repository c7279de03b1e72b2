"""Sanic server knobs for ccproxy; SANIC_* environment variables override any of them."""

from __future__ import annotations

from sanic.config import Config

# Anthropic's own limit for Messages and Token Counting requests.
MAX_REQUEST_BYTES = 32 * 1024 * 1024

SERVER_DEFAULTS: dict[str, str | bool | int | float | None] = {
    "REQUEST_MAX_SIZE": MAX_REQUEST_BYTES,
    # Claude Code waits up to 600 s (x-stainless-timeout) and streams can run for many minutes.
    "RESPONSE_TIMEOUT": 900,
    "REQUEST_TIMEOUT": 120,
    "KEEP_ALIVE_TIMEOUT": 75,
    "ACCESS_LOG": False,
    "NOISY_EXCEPTIONS": False,
    "FALLBACK_ERROR_FORMAT": "json",
    # ccproxy does not use sanic-ext; if it is installed beside ccproxy, it must not attach itself (routes, middleware).
    "AUTO_EXTEND": False,
    "MOTD": False,
}


def server_config() -> Config:
    """A Sanic Config with ccproxy's defaults, then SANIC_* environment overrides."""
    return Config(defaults=SERVER_DEFAULTS)
