"""The price table: shipped defaults, overrides from [prices], lookup rules, the upstream's own cost."""

from __future__ import annotations

import pytest

from ccproxy.events import RequestRecord
from ccproxy.prices import Price, PriceTable, shipped_prices
from ccproxy.settings import SettingsError


def record(model: str | None, **kwargs: int | float | None) -> RequestRecord:
    return RequestRecord(request_id="req_1", upstream_model=model, **kwargs)  # type: ignore[arg-type]  # test values


def test_every_shipped_price_is_valid_and_common_models_are_priced() -> None:
    table = PriceTable.from_options({})
    for model in ("gpt-5", "gpt-5-mini", "gpt-4.1", "gpt-4o", "gpt-4o-mini", "o3", "o4-mini", "deepseek-chat"):
        assert table.price(model) is not None, model
    assert len(shipped_prices()) >= 20


def test_cost_is_per_million_tokens_of_each_kind() -> None:
    table = PriceTable({"m": Price(input=2.0, output=8.0, cache_read=0.5, cache_write=3.0)})
    cost = table.cost(
        record(
            "m",
            input_tokens=1_000_000,
            output_tokens=500_000,
            cache_read_tokens=2_000_000,
            cache_write_tokens=1_000_000,
        )
    )
    assert cost == pytest.approx(2.0 + 4.0 + 1.0 + 3.0)


def test_lookup_exact_then_after_the_slash_then_globs() -> None:
    table = PriceTable.from_options({})
    gpt5 = table.price("gpt-5")
    assert table.price("GPT-5") is gpt5
    assert table.price("openai/gpt-5") is gpt5  # OpenRouter's name
    assert table.price("gpt-5-2025-08-07") == gpt5  # a dated snapshot
    assert table.price("anthropic/claude-sonnet-4.5") == Price(3.0, 15.0, 0.3, 3.75)
    assert table.price("qwen3-coder:30b") is None


def test_overrides_win_and_cache_prices_default_to_input() -> None:
    table = PriceTable.from_options({"gpt-5": {"input": 1.0, "output": 2.0}, "local/qwen*": {"input": 0, "output": 0}})
    assert table.price("gpt-5") == Price(1.0, 2.0, 1.0, 1.0)
    assert table.price("local/qwen3") == Price(0.0, 0.0, 0.0, 0.0)


def test_the_upstream_cost_wins_and_unknown_models_have_none() -> None:
    table = PriceTable.from_options({})
    assert table.cost(record("gpt-5", input_tokens=1000, upstream_cost_usd=0.5)) == 0.5
    assert table.cost(record("no-such-model", input_tokens=1000)) is None
    assert table.cost(record(None, input_tokens=1000)) is None


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"m": {"input": 1}}, "prices.m.output: required"),
        ({"m": {"input": -1, "output": 1}}, "prices.m.input: expected US dollars per million tokens"),
        ({"a/b": {"input": 1, "output": 1, "extra": 1}}, 'prices."a/b".extra: unknown setting'),
        ({"m": 3}, "prices.m: expected a table"),
    ],
)
def test_price_mistakes_name_the_model_and_key(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        PriceTable.from_options(overrides)
    assert str(caught.value).startswith(message), caught.value
