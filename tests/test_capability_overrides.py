"""`models."<name or glob>"` under `[backends.<name>]`: capabilities per backend without code — exact names beat
globs, the first matching glob wins, vendor prefixes are matched too, and a bad key or value stops start-up."""

from __future__ import annotations

import tomllib

import pytest

from ccproxy.backends import Backend, build_backends, capability_override
from ccproxy.config import SettingsError, parse_config
from ccproxy.default_plugins.reasoning import BudgetEffortConfigurator
from ccproxy_local import LocalProvider
from ccproxy_openai import OpenAIProvider
from ccproxy_openrouter import OpenRouterProvider
from ccproxy_openrouter.reasoning import OpenRouterReasoning
from tests.test_config_examples import uncommented_examples

LOCAL = '[backends.local]\nprovider = "openai"\nbase_url = "http://127.0.0.1:8000/v1"\n'


def build(toml: str) -> dict[str, Backend]:
    file = parse_config(tomllib.loads(toml), {"OPENROUTER_KEY": "sk-or-example-0123456789"})
    reasoning = {"budget-effort": BudgetEffortConfigurator, "openrouter": OpenRouterReasoning}
    return build_backends(
        file.backends,
        {"openai": OpenAIProvider, "local": LocalProvider, "openrouter": OpenRouterProvider},
        reasoning,
        reasoning_options={},
        env={},
    )


def backend(toml: str) -> Backend:
    return build(LOCAL + toml)["local"]


def config_error(toml: str) -> str:
    with pytest.raises(SettingsError) as info:
        backend(toml)
    return str(info.value)


def test_a_glob_gives_an_unknown_model_its_reasoning_without_code() -> None:
    local = backend(
        '[backends.local.models."my-thinker-*"]\n'
        'reasoning_style = "thinking"\nreasoning_replay = "reasoning_content"\nsupports_reasoning = true\n'
    )
    caps = local.capabilities("my-thinker-7b")
    assert (caps.supports_reasoning, caps.reasoning_style, caps.reasoning_replay) == (
        True,
        "thinking",
        "reasoning_content",
    )
    assert local.capabilities("other-model").reasoning_replay == "drop"


def test_an_override_is_laid_over_the_family_not_instead_of_it() -> None:
    local = backend('[backends.local.models."deepseek-v4-*"]\nmax_output_tokens = 64000\n')
    caps = local.capabilities("deepseek-v4-pro")
    assert caps.max_output_tokens == 64000
    assert (caps.reasoning_style, caps.reasoning_replay) == ("thinking", "reasoning_content")


def test_the_exact_name_beats_any_glob_and_the_first_glob_wins() -> None:
    local = backend(
        '[backends.local.models."qwen3-*"]\nreasoning_style = "chat_template_kwargs"\n'
        '[backends.local.models."qwen3-3*"]\nreasoning_style = "none"\n'
        '[backends.local.models."qwen3-32b"]\nreasoning_style = "enable_thinking"\nmax_output_tokens = 8192\n'
    )
    assert local.capabilities("qwen3-32b").reasoning_style == "enable_thinking"
    assert local.capabilities("qwen3-30b-a3b").reasoning_style == "chat_template_kwargs"  # first glob, in file order
    assert local.capabilities("qwen3-30b-a3b").max_output_tokens is None


def test_globs_match_case_insensitively_with_or_without_the_vendor_prefix() -> None:
    models = {"deepseek-v4-*": {"max_output_tokens": 1}, "*/kimi-*": {"max_output_tokens": 2}}
    assert capability_override(models, "deepseek/DeepSeek-V4-Pro") == {"max_output_tokens": 1}
    assert capability_override(models, "moonshotai/kimi-k2-thinking") == {"max_output_tokens": 2}
    assert capability_override(models, "kimi-k2-thinking") is None
    assert capability_override({"Exact-Name": {"max_output_tokens": 3}}, "exact-name") is None


def test_an_unknown_capability_under_a_glob_is_a_start_up_error_naming_it() -> None:
    message = config_error('[backends.local.models."deepseek-v4-*"]\nreasoning_styel = "thinking"\n')
    assert message.startswith('backends.local.models."deepseek-v4-*".reasoning_styel: unknown capability; known: ')
    assert "reasoning_style" in message


def test_a_bad_reasoning_style_is_a_start_up_error_naming_the_key_and_the_choices() -> None:
    message = config_error('[backends.local.models."deepseek-v4-*"]\nreasoning_style = "object"\n')
    assert message.startswith('backends.local.models."deepseek-v4-*".reasoning_style: expected ')
    assert "'thinking'" in message and "'chat_template_kwargs'" in message and message.endswith("got 'object'")


def test_the_plugins_toml_example_local_backend_knows_qwen3_and_its_context_windows() -> None:
    local = build(uncommented_examples())["local"]
    caps = local.capabilities("Qwen/Qwen3-32B")
    # The family table's Qwen3 thinking switch, sent the way local servers (vLLM, SGLang) take it; the glob's window.
    assert (caps.supports_reasoning, caps.reasoning_style, caps.context_window) == (True, "chat_template_kwargs", 40960)
    assert local.capabilities("qwen3-coder").context_window == 32768  # the exact name beats the glob
