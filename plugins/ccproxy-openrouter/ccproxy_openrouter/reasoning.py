"""Anthropic `thinking` / `output_config.effort` -> OpenRouter's `reasoning` object (wire.md 4.8)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccproxy import ReasoningConfigurator, ReasoningRequest

# Anthropic efforts -> OpenRouter's. `max` has no twin every model takes; "high" is accepted everywhere.
DEFAULT_EFFORT_MAP: Mapping[str, str] = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
# OpenRouter rejects a reasoning budget below this (Anthropic's own minimum).
MIN_BUDGET = 1024


class OpenRouterReasoning(ReasoningConfigurator):
    """`{"reasoning": {...}}` with either a token budget or an effort, never both (OpenRouter answers 400
    "Only one of reasoning.effort and reasoning.max_tokens can be specified").

    - `thinking.type = "enabled"` with `budget_tokens` -> `{"max_tokens": budget}` (at least 1024, below the request's
      max_tokens); OpenRouter turns it into an effort for effort-only models.
    - `thinking.type = "adaptive"`, or `output_config.effort` alone -> `{"effort": ...}` (`effort_map`; adaptive
      without an effort -> `adaptive_default`).
    - `thinking.type = "disabled"` -> `{"enabled": false}`; on a model that cannot switch reasoning off
      (`reasoning_mandatory`) -> `{"effort": disabled_effort, "exclude": true}`: the least reasoning, not returned.
    - no `thinking` and no effort -> nothing: the model's default.
    - a model without `supports_reasoning` -> nothing.

    Options (`[reasoning]` in plugins.toml, shared with the other configurators): `effort_map = {max = "xhigh"}`,
    `adaptive_default = "medium"`, `disabled_effort = "low"`.
    """

    name = "openrouter"

    def __init__(self, options: Mapping[str, Any]) -> None:
        effort_map = options.get("effort_map", {})
        if not isinstance(effort_map, Mapping):
            raise ValueError("effort_map: expected a table of Anthropic effort -> OpenRouter effort")
        self.effort_map = {**DEFAULT_EFFORT_MAP, **{str(k): str(v) for k, v in effort_map.items()}}
        self.adaptive_default = str(options.get("adaptive_default", "medium"))
        self.disabled_effort = str(options.get("disabled_effort", "low"))

    def configure(self, request: ReasoningRequest) -> dict[str, Any]:
        if not request.capabilities.supports_reasoning:
            return {}
        reasoning = self.reasoning(request)
        return {"reasoning": reasoning} if reasoning is not None else {}

    def reasoning(self, request: ReasoningRequest) -> dict[str, Any] | None:
        """The `reasoning` object for one request, or None to send none."""
        thinking = request.thinking or {}
        kind = thinking.get("type")
        if kind == "disabled":
            if request.capabilities.reasoning_mandatory:
                return {"effort": self.disabled_effort, "exclude": True}
            return {"enabled": False}
        budget = thinking.get("budget_tokens")
        if kind == "enabled" and isinstance(budget, int) and not isinstance(budget, bool) and budget > 0:
            return {"max_tokens": self._budget(budget, request)}
        effort = self.effort_map.get(request.effort, request.effort) if request.effort else None
        if effort:
            return {"effort": effort}
        if kind in ("adaptive", "enabled"):
            return {"effort": self.adaptive_default}
        return None

    def _budget(self, budget: int, request: ReasoningRequest) -> int:
        """The budget, kept below the output limit actually sent (Anthropic wants budget < max_tokens)."""
        limit = request.max_tokens if isinstance(request.max_tokens, int) else None
        ceiling = request.capabilities.max_output_tokens
        if ceiling is not None:
            limit = ceiling if limit is None else min(limit, ceiling)
        if limit is not None and limit > MIN_BUDGET:
            budget = min(budget, limit - 1)
        return max(budget, MIN_BUDGET)
