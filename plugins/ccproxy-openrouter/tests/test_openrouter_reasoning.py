"""The `openrouter` reasoning configurator: a budget or an effort, never both; off, or least when mandatory."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy import ModelCapabilities, ReasoningRequest
from ccproxy_openrouter import OpenRouterReasoning, openrouter_capabilities

SONNET = "anthropic/claude-sonnet-4.5"


def configure(
    thinking: dict[str, Any] | None,
    effort: str | None = None,
    *,
    model: str = SONNET,
    max_tokens: int | None = 32000,
    options: dict[str, Any] | None = None,
    capabilities: ModelCapabilities | None = None,
) -> dict[str, Any]:
    request = ReasoningRequest(
        thinking=thinking,
        effort=effort,
        max_tokens=max_tokens,
        upstream_model=model,
        capabilities=capabilities or openrouter_capabilities(model),
    )
    return OpenRouterReasoning(options or {}).configure(request)


def test_a_budget_becomes_reasoning_max_tokens() -> None:
    assert configure({"type": "enabled", "budget_tokens": 8000}) == {"reasoning": {"max_tokens": 8000}}


def test_a_budget_and_an_effort_send_only_the_budget() -> None:
    # OpenRouter: "Only one of reasoning.effort and reasoning.max_tokens can be specified".
    assert configure({"type": "enabled", "budget_tokens": 8000}, "high") == {"reasoning": {"max_tokens": 8000}}


def test_a_budget_stays_below_the_output_limit() -> None:
    assert configure({"type": "enabled", "budget_tokens": 8000}, max_tokens=4000) == {"reasoning": {"max_tokens": 3999}}
    capped = ModelCapabilities(supports_reasoning=True, max_output_tokens=2048)
    assert configure({"type": "enabled", "budget_tokens": 8000}, capabilities=capped) == {
        "reasoning": {"max_tokens": 2047}
    }


@pytest.mark.parametrize(("effort", "sent"), [("low", "low"), ("medium", "medium"), ("high", "high"), ("max", "high")])
def test_adaptive_thinking_takes_the_output_config_effort(effort: str, sent: str) -> None:
    assert configure({"type": "adaptive"}, effort) == {"reasoning": {"effort": sent}}


def test_adaptive_without_an_effort_uses_the_default_and_options_change_it() -> None:
    assert configure({"type": "adaptive"}) == {"reasoning": {"effort": "medium"}}
    options = {"adaptive_default": "high", "effort_map": {"max": "xhigh"}}
    assert configure({"type": "adaptive"}, options=options) == {"reasoning": {"effort": "high"}}
    assert configure({"type": "adaptive"}, "max", options=options) == {"reasoning": {"effort": "xhigh"}}


def test_an_effort_alone_is_sent() -> None:
    assert configure(None, "low") == {"reasoning": {"effort": "low"}}


def test_disabled_thinking_switches_reasoning_off() -> None:
    assert configure({"type": "disabled"}) == {"reasoning": {"enabled": False}}
    assert configure({"type": "disabled"}, "high") == {"reasoning": {"enabled": False}}


@pytest.mark.parametrize("model", ["openai/gpt-5", "openai/o3-mini", "deepseek/deepseek-r1", "minimax/minimax-m2.5"])
def test_mandatory_reasoning_models_get_the_least_reasoning_not_returned(model: str) -> None:
    # "Reasoning is mandatory for this endpoint and cannot be disabled."
    assert configure({"type": "disabled"}, model=model) == {"reasoning": {"effort": "low", "exclude": True}}
    assert configure({"type": "disabled"}, model=model, options={"disabled_effort": "minimal"}) == {
        "reasoning": {"effort": "minimal", "exclude": True}
    }


def test_no_thinking_and_no_effort_leaves_the_model_default() -> None:
    assert configure(None) == {}


def test_models_that_cannot_reason_get_nothing() -> None:
    assert configure({"type": "enabled", "budget_tokens": 8000}, model="anthropic/claude-3.5-sonnet") == {}
    assert configure({"type": "adaptive"}, "high", model="openai/gpt-4o") == {}


def test_a_bad_effort_map_is_refused() -> None:
    with pytest.raises(ValueError, match="effort_map"):
        OpenRouterReasoning({"effort_map": ["high"]})
