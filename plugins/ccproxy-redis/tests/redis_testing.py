"""Helpers of the Redis plugin's tests: options on a test's own key prefix, and a log-record collector."""

from __future__ import annotations

import logging

from ccproxy_redis import RedisOptions


def options(url: str, prefix: str, **overrides: object) -> RedisOptions:
    return RedisOptions.model_validate({"url": url, "key_prefix": prefix, **overrides})


class Records(logging.Handler):
    """Log records of the plugin's logger, whatever the logging set-up of other tests did to its parents."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self, containing: str) -> list[str]:
        return [record.getMessage() for record in self.records if containing in record.getMessage()]
