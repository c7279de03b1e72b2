"""Each model family of the OpenAI plugin's table -> the request fields its vendor wants: how thinking is switched
on and off, and whether the history's reasoning goes back (both cores)."""

from __future__ import annotations

from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.default_plugins.reasoning import BudgetEffortConfigurator
from ccproxy.interfaces import ReasoningRequest
from ccproxy_openai.capabilities import family_capabilities

ENABLED = {"type": "enabled", "budget_tokens": 8000}
REASONING = "I should list the files first."
REASONING_KEYS = ("reasoning_effort", "thinking", "enable_thinking", "chat_template_kwargs", "reasoning")
# A tool loop in progress: thinking + tool_use, then its result.
HISTORY: list[dict[str, Any]] = [
    {"role": "user", "content": "List the files"},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": REASONING, "signature": ""},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
        ],
    },
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
]
TOOLS = [{"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}]

# model -> (fields with thinking on, fields with thinking off, history reasoning sent back)
FAMILIES: dict[str, tuple[dict[str, Any], dict[str, Any], bool]] = {
    "deepseek-v4-pro": ({"thinking": {"type": "enabled"}}, {"thinking": {"type": "disabled"}}, True),
    "deepseek/deepseek-v4-flash": ({"thinking": {"type": "enabled"}}, {"thinking": {"type": "disabled"}}, True),
    "deepseek-reasoner": ({"reasoning_effort": "medium"}, {}, True),
    "moonshotai/kimi-k2-thinking": ({}, {}, True),
    "z-ai/glm-4.6": ({"thinking": {"type": "enabled"}}, {"thinking": {"type": "disabled"}}, True),
    "glm-5": ({"thinking": {"type": "enabled"}}, {"thinking": {"type": "disabled"}}, True),
    "qwen3-32b": ({"enable_thinking": True}, {"enable_thinking": False}, False),
    "qwen/qwen3-235b-a22b-thinking-2507": ({}, {}, False),
    "magistral-medium-latest": ({}, {}, False),
    "mistral-large-latest": ({}, {}, False),
    "gpt-5": ({"reasoning_effort": "medium"}, {}, False),
    "gpt-oss-120b": ({"reasoning_effort": "medium"}, {}, True),
    "llama-3.1-70b": ({}, {}, False),
}


def convert(core: Core, model: str, thinking: dict[str, Any] | None, caps: ModelCapabilities | None = None) -> Any:
    capabilities = caps or family_capabilities(model, official_openai=False)
    body: dict[str, Any] = {"model": "claude-opus-4-8", "max_tokens": 16000, "messages": HISTORY, "tools": TOOLS}
    if thinking is not None:
        body["thinking"] = thinking
    reasoning = BudgetEffortConfigurator({}).configure(
        ReasoningRequest(
            thinking=thinking, effort=None, max_tokens=16000, upstream_model=model, capabilities=capabilities
        )
    )
    plan = RequestPlan(upstream_model=model, capabilities=capabilities, stream=True, reasoning=reasoning)
    return core.request.convert_request(body, plan)


def reasoning_fields(sent: dict[str, Any]) -> dict[str, Any]:
    return {key: sent[key] for key in REASONING_KEYS if key in sent}


def assistant(sent: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = next(m for m in sent["messages"] if m["role"] == "assistant")
    return found


@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_thinking_on_asks_for_it_the_vendors_way(core: Core, model: str) -> None:
    on, _, _ = FAMILIES[model]
    assert reasoning_fields(convert(core, model, ENABLED)) == on


@pytest.mark.parametrize("model", sorted(FAMILIES))
@pytest.mark.parametrize("thinking", [{"type": "disabled"}, None], ids=["disabled", "absent"])
def test_thinking_off_is_said_explicitly_where_the_model_thinks_by_default(
    core: Core, model: str, thinking: dict[str, Any] | None
) -> None:
    _, off, _ = FAMILIES[model]
    assert reasoning_fields(convert(core, model, thinking)) == off


@pytest.mark.parametrize("model", sorted(FAMILIES))
def test_history_reasoning_goes_back_only_where_the_vendor_wants_it(core: Core, model: str) -> None:
    _, _, replayed = FAMILIES[model]
    message = assistant(convert(core, model, ENABLED))
    assert message["tool_calls"][0]["function"]["name"] == "Bash"
    if replayed:
        assert message["reasoning_content"] == REASONING
    else:
        assert not {"reasoning_content", "reasoning_details", "reasoning"} & set(message)


def test_adaptive_thinking_and_an_effort_also_switch_thinking_on(core: Core) -> None:
    assert reasoning_fields(convert(core, "glm-4.6", {"type": "adaptive"})) == {"thinking": {"type": "enabled"}}
    caps = family_capabilities("deepseek-v4-pro", official_openai=False)
    fields = BudgetEffortConfigurator({}).configure(
        ReasoningRequest(
            thinking=None, effort="high", max_tokens=100, upstream_model="deepseek-v4-pro", capabilities=caps
        )
    )
    assert fields == {"thinking": {"type": "enabled"}}


def test_qwen3_on_vllm_takes_chat_template_kwargs(core: Core) -> None:
    caps = ModelCapabilities(supports_reasoning=True, reasoning_style="chat_template_kwargs")
    assert reasoning_fields(convert(core, "Qwen/Qwen3-8B", ENABLED, caps)) == {
        "chat_template_kwargs": {"enable_thinking": True}
    }
    assert reasoning_fields(convert(core, "Qwen/Qwen3-8B", None, caps)) == {
        "chat_template_kwargs": {"enable_thinking": False}
    }


def test_a_model_that_always_reasons_gets_no_switch_even_with_thinking_on() -> None:
    caps = ModelCapabilities(supports_reasoning=True, reasoning_style="none")
    request = ReasoningRequest(thinking=ENABLED, effort=None, max_tokens=100, upstream_model="m", capabilities=caps)
    assert BudgetEffortConfigurator({}).configure(request) == {}
