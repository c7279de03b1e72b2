"""The default thinking -> reasoning mapping: Anthropic budgets and efforts to the field the model's
`reasoning_style` names (`reasoning_effort`, a `thinking` object, an `enable_thinking` flag)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ccproxy.hookspecs import RegisterReasoningConfigurator, hookimpl
from ccproxy.interfaces import ReasoningConfigurator, ReasoningRequest

# budget_tokens below each bound -> that effort; at or above the last bound -> "high".
DEFAULT_BUDGET_BOUNDS: tuple[tuple[int, str], ...] = ((4096, "low"), (16384, "medium"))
EFFORTS = ("minimal", "low", "medium", "high", "xhigh")
# Anthropic's `max` effort has no OpenAI twin on every model; "high" is accepted everywhere.
DEFAULT_EFFORT_MAP: Mapping[str, str] = {"low": "low", "medium": "medium", "high": "high", "max": "high"}

# Styles that only switch thinking on or off: the fields for each state. Off is sent explicitly, because these
# models think by default (DeepSeek V4, GLM, open Qwen3), and a request without thinking means none.
THINKING_SWITCHES: Mapping[str, Callable[[bool], dict[str, Any]]] = {
    "thinking": lambda on: {"thinking": {"type": "enabled" if on else "disabled"}},
    "enable_thinking": lambda on: {"enable_thinking": on},
    "chat_template_kwargs": lambda on: {"chat_template_kwargs": {"enable_thinking": on}},
}


class BudgetEffortConfigurator(ReasoningConfigurator):
    """`thinking.budget_tokens` buckets and `output_config.effort` -> `reasoning_effort` (style "effort"); thinking
    on or off -> the switch of styles "thinking", "enable_thinking" and "chat_template_kwargs"; nothing for "none"
    and for styles it does not know (a provider plugin's own configurator handles those).

    Options (`[reasoning]` in plugins.toml): `budget_bounds = [[4096, "low"], [16384, "medium"]]`,
    `above_bounds = "high"`, `effort_map = {max = "xhigh"}`, `adaptive_default = "medium"`,
    `field = "reasoning_effort"`.
    """

    name = "budget-effort"

    def __init__(self, options: Mapping[str, Any]) -> None:
        bounds = options.get("budget_bounds", DEFAULT_BUDGET_BOUNDS)
        self.bounds = tuple((int(bound), str(effort)) for bound, effort in bounds)
        self.above_bounds = str(options.get("above_bounds", "high"))
        self.effort_map = {**DEFAULT_EFFORT_MAP, **options.get("effort_map", {})}
        self.adaptive_default = str(options.get("adaptive_default", "medium"))
        self.field = str(options.get("field", "reasoning_effort"))

    def configure(self, request: ReasoningRequest) -> dict[str, Any]:
        capabilities = request.capabilities
        if not capabilities.supports_reasoning:
            return {}
        effort = self._effort(request)
        if capabilities.reasoning_style == "effort":
            return {self.field: effort} if effort else {}
        switch = THINKING_SWITCHES.get(capabilities.reasoning_style)
        return switch(effort is not None) if switch else {}

    def _effort(self, request: ReasoningRequest) -> str | None:
        thinking = request.thinking or {}
        kind = thinking.get("type")
        if kind == "disabled":
            return None
        if request.effort:
            return str(self.effort_map.get(request.effort, request.effort))
        if kind == "enabled":
            return self._budget_effort(int(thinking.get("budget_tokens") or 0))
        if kind == "adaptive":
            return self.adaptive_default
        return None

    def _budget_effort(self, budget: int) -> str:
        for bound, effort in self.bounds:
            if budget < bound:
                return effort
        return self.above_bounds


@hookimpl
def ccproxy_register_reasoning_configurators(register: RegisterReasoningConfigurator) -> None:
    register(BudgetEffortConfigurator.name, BudgetEffortConfigurator)
