"""The model family table: each family's names (with and without vendor prefixes) -> how it reasons."""

from __future__ import annotations

from dataclasses import fields

import pytest

from ccproxy import ModelCapabilities
from ccproxy_openai.capabilities import FAMILIES, bare_name, family_capabilities, find_family

# model name -> (family, supports_reasoning, reasoning_style, reasoning_replay)
EXPECTED: dict[str, tuple[str | None, bool, str, str]] = {
    "gpt-5": ("openai-gpt-5", True, "effort", "drop"),
    "gpt-5.1-codex": ("openai-gpt-5", True, "effort", "drop"),
    "openai/gpt-5-mini": ("openai-gpt-5", True, "effort", "drop"),
    "o3": ("openai-o3-o4", True, "effort", "drop"),
    "o4-mini": ("openai-o3-o4", True, "effort", "drop"),
    "o1": ("openai-o-series", True, "effort", "drop"),
    "gpt-4o": ("openai-gpt-4o-4.1", False, "effort", "drop"),
    "gpt-4.1-mini": ("openai-gpt-4o-4.1", False, "effort", "drop"),
    "gpt-oss-120b": ("gpt-oss", True, "effort", "reasoning_content"),
    "openai/gpt-oss-20b": ("gpt-oss", True, "effort", "reasoning_content"),
    "deepseek-v4-pro": ("deepseek-v4", True, "thinking", "reasoning_content"),
    "deepseek-v4-flash": ("deepseek-v4", True, "thinking", "reasoning_content"),
    "deepseek/deepseek-v4-pro": ("deepseek-v4", True, "thinking", "reasoning_content"),
    "deepseek-ai/DeepSeek-V4-Flash": ("deepseek-v4", True, "thinking", "reasoning_content"),
    "deepseek-reasoner": ("deepseek-reasoner", True, "effort", "reasoning_content"),
    "deepseek-r1:14b": ("deepseek-reasoner", True, "effort", "reasoning_content"),
    "deepseek-ai/DeepSeek-V3.1": ("deepseek-reasoner", True, "effort", "reasoning_content"),
    "deepseek-chat": (None, False, "effort", "drop"),
    "kimi-k2-thinking": ("kimi-k2-thinking", True, "none", "reasoning_content"),
    "moonshotai/kimi-k2-thinking-turbo": ("kimi-k2-thinking", True, "none", "reasoning_content"),
    "moonshotai/kimi-k2.5": ("kimi-k2-thinking", True, "none", "reasoning_content"),
    "kimi-k2-instruct": (None, False, "effort", "drop"),
    "glm-4.5": ("glm-4.5+", True, "thinking", "reasoning_content"),
    "glm-4.5-air": ("glm-4.5+", True, "thinking", "reasoning_content"),
    "z-ai/glm-4.6": ("glm-4.5+", True, "thinking", "reasoning_content"),
    "zai-org/GLM-4.7-Flash": ("glm-4.5+", True, "thinking", "reasoning_content"),
    "glm-5": ("glm-4.5+", True, "thinking", "reasoning_content"),
    "glm-4-plus": (None, False, "effort", "drop"),
    "qwen3-235b-a22b-thinking-2507": ("qwen3-thinking", True, "none", "drop"),
    "qwen/qwen3-30b-a3b-thinking-2507": ("qwen3-thinking", True, "none", "drop"),
    "qwq-32b": ("qwen3-thinking", True, "none", "drop"),
    "qwen3-235b-a22b-instruct-2507": ("qwen3-no-thinking", False, "effort", "drop"),
    "Qwen/Qwen3-Coder-480B-A35B-Instruct": ("qwen3-no-thinking", False, "effort", "drop"),
    "qwen3-32b": ("qwen3-hybrid", True, "enable_thinking", "drop"),
    "Qwen/Qwen3-8B": ("qwen3-hybrid", True, "enable_thinking", "drop"),
    "qwen3:8b": ("qwen3-hybrid", True, "enable_thinking", "drop"),
    "magistral-medium-latest": ("magistral", True, "none", "drop"),
    "mistral-large-latest": ("mistral", False, "none", "drop"),
    "mistralai/devstral-medium-2507": ("mistral", False, "none", "drop"),
    "codestral-latest": ("mistral", False, "none", "drop"),
    "llama-3.1-70b": (None, False, "effort", "drop"),
    "omni-model": (None, False, "effort", "drop"),
}


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_each_family_reasons_the_way_its_vendor_wants(model: str) -> None:
    family, reasons, style, replay = EXPECTED[model]
    found = find_family(model)
    assert (found.name if found else None) == family
    caps = family_capabilities(model, official_openai=False)
    assert (caps.supports_reasoning, caps.reasoning_style, caps.reasoning_replay) == (reasons, style, replay)


def test_every_family_of_the_table_is_tested() -> None:
    tested = {family for family, *_ in EXPECTED.values()}
    assert {family.name for family in FAMILIES} <= tested


def test_the_table_only_names_capability_fields() -> None:
    known = {f.name for f in fields(ModelCapabilities)}
    for family in FAMILIES:
        assert set(family.fields) | set(family.openai_only) <= known, family.name


def test_vendor_prefixes_and_case_do_not_matter() -> None:
    assert bare_name("DeepSeek/DeepSeek-V4-Pro") == "deepseek-v4-pro"
    assert family_capabilities("z-ai/GLM-4.6", official_openai=False) == family_capabilities(
        "glm-4.6", official_openai=False
    )


def test_upstream_dependent_fields_stay_with_the_upstream() -> None:
    """Strict tools and top_k depend on the server (OpenAI's own API or not), documents on both."""
    local = family_capabilities("deepseek-v4-pro", official_openai=False)
    assert local.supports_top_k and not local.supports_strict_tools and not local.supports_documents
    official = family_capabilities("gpt-5", official_openai=True)
    assert official.supports_strict_tools and official.supports_documents and not official.supports_top_k
    assert not family_capabilities("gpt-5", official_openai=False).supports_documents


def test_output_ceilings_still_apply_beside_the_family() -> None:
    caps = family_capabilities("deepseek/deepseek-reasoner", official_openai=False)
    assert caps.max_output_tokens == 65_536 and caps.reasoning_replay == "reasoning_content"
