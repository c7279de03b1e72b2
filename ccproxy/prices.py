"""What a request cost: a price table per upstream model (shipped prices.toml < `[prices."<model>"]`)."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from importlib.resources import files
from typing import Any

from ccproxy.config import PriceConfig, SettingsError, dotted, validate_table
from ccproxy.events import RequestRecord

PER_MILLION = 1_000_000
MAX_MEMO = 1024  # distinct upstream model names remembered (hit or miss)


@dataclass(frozen=True, slots=True)
class Price:
    """US dollars per million tokens of each kind."""

    input: float
    output: float
    cache_read: float
    cache_write: float

    @classmethod
    def of(cls, config: PriceConfig) -> Price:
        return cls(
            input=config.input,
            output=config.output,
            cache_read=config.input if config.cache_read is None else config.cache_read,
            cache_write=config.input if config.cache_write is None else config.cache_write,
        )

    def cost(self, record: RequestRecord) -> float:
        return (
            record.input_tokens * self.input
            + record.output_tokens * self.output
            + record.cache_read_tokens * self.cache_read
            + record.cache_write_tokens * self.cache_write
        ) / PER_MILLION


# What the memo holds for a model not looked up yet (a Price, so the memo's get stays typed; never returned).
_UNKNOWN = Price(-1.0, -1.0, -1.0, -1.0)


def shipped_prices() -> dict[str, Any]:
    """The defaults shipped in ccproxy/prices.toml."""
    return tomllib.loads(files("ccproxy").joinpath("prices.toml").read_text(encoding="utf-8"))


class PriceTable:
    """Model name -> Price: exact (case-insensitive), then the part after the last `/`, then globs in order."""

    def __init__(self, prices: Mapping[str, Price]) -> None:
        self._exact = {name.lower(): price for name, price in prices.items() if "*" not in name and "?" not in name}
        self._globs = tuple((name.lower(), price) for name, price in prices.items() if name.lower() not in self._exact)
        self._memo: dict[str, Price | None] = {}

    @classmethod
    def from_options(cls, overrides: Mapping[str, Any], *, defaults: Mapping[str, Any] | None = None) -> PriceTable:
        """The shipped prices with `[prices]` laid over them; raises SettingsError naming `prices."<model>".key`."""
        tables = {**(shipped_prices() if defaults is None else defaults), **overrides}
        prices: dict[str, Price] = {}
        for name, table in tables.items():
            where = "prices." + dotted((name,))
            if not isinstance(table, dict):
                raise SettingsError(f"{where}: expected a table with input and output prices per million tokens")
            prices[name] = Price.of(validate_table(PriceConfig, table, where))
        return cls(prices)

    def price(self, model: str) -> Price | None:
        price = self._memo.get(model, _UNKNOWN)
        if price is not _UNKNOWN:
            return price
        price = self._lookup(model.lower())
        if len(self._memo) < MAX_MEMO:
            self._memo[model] = price
        return price

    def _lookup(self, name: str) -> Price | None:
        short = name.rpartition("/")[2]
        price = self._exact.get(name) or self._exact.get(short)
        if price is None:
            price = next((p for glob, p in self._globs if fnmatchcase(name, glob) or fnmatchcase(short, glob)), None)
        return price

    def cost(self, record: RequestRecord) -> float | None:
        """What `record` cost: the upstream's own figure when it reported one, else from the table; None when the
        upstream model is unknown or has no price."""
        if record.upstream_cost_usd is not None:
            return record.upstream_cost_usd
        if not record.upstream_model:
            return None
        price = self.price(record.upstream_model)
        return None if price is None else price.cost(record)
