"""What each model family accepts: an ordered table of name globs -> ModelCapabilities fields (wire.md 4.7-4.9).

A model name is matched lower-cased and without its vendor prefix (`deepseek/`, `moonshotai/`, `z-ai/`, `qwen/`,
`openai/`, a Hugging Face organisation...: everything up to the last `/`), against each family's globs in table
order; the first family that matches gives its fields. Names no family matches get ModelCapabilities' defaults (a
plain chat model, no reasoning). A backend changes any of this without code: `models."<name or glob>"` tables in
plugins.toml are laid over the answer (ccproxy/backends.py).

Sources for the reasoning rows (wire.md 4.9 and the recorded exchanges in tests/fixtures/upstream/):
- DeepSeek V4: thinking is switched by `thinking: {"type": "enabled"|"disabled"}`; in thinking mode an assistant
  message with tool calls must carry its `reasoning_content` in later requests, else 400.
- Kimi K2 thinking / K2.5: always reasons; `reasoning_content` is passed back (the recorded K2.5 tool loop).
- GLM 4.5 and later (Zhipu / Z.ai): `thinking: {"type": "enabled"|"disabled"}`; `reasoning_content` is passed
  back (the recorded GLM-4.7 tool loop).
- Qwen3: the thinking-only models (`*thinking*`, QwQ) always reason; the hybrid ones take `enable_thinking`
  (DashScope's top-level flag; vLLM and SGLang want it in `chat_template_kwargs`: set `reasoning_style =
  "chat_template_kwargs"` for such a backend).
- Mistral / Magistral: reasoning is never sent back (Mistral answers 422 `extra_forbidden` to `reasoning_content`).
- gpt-oss: `reasoning_effort`, and `reasoning_content` passed back (the recorded llama.cpp tool loop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from fnmatch import fnmatchcase
from typing import Any

from ccproxy import ModelCapabilities

__all__ = ["FAMILIES", "MAX_OUTPUT_TOKENS", "Family", "bare_name", "family_capabilities", "find_family"]


@dataclass(frozen=True, slots=True)
class Family:
    """One row of the table: the names it covers and what they accept."""

    name: str
    # Globs (fnmatch, lower case) matched against the bare model name.
    globs: tuple[str, ...]
    # ModelCapabilities fields for every upstream.
    fields: Mapping[str, Any] = field(default_factory=dict)
    # Fields that hold only on api.openai.com (the same names elsewhere are often served differently).
    openai_only: Mapping[str, Any] = field(default_factory=dict)

    def matches(self, bare: str) -> bool:
        return any(fnmatchcase(bare, glob) for glob in self.globs)


# gpt-5 / o-series: `max_completion_tokens`, developer role, default temperature only, `reasoning_effort`.
_OPENAI_REASONING: Mapping[str, Any] = {
    "max_tokens_param": "max_completion_tokens",
    "system_role": "developer",
    "supports_temperature": False,
    "supports_top_p": False,
    "supports_top_k": False,
    "supports_reasoning": True,
    "reasoning_style": "effort",
}
# OpenAI models that take PDF `file` parts on Chat Completions.
_DOCUMENTS: Mapping[str, Any] = {"supports_documents": True}
# Models that stream `reasoning_content` and want it back on their assistant messages.
_REPLAYS_REASONING: Mapping[str, Any] = {"supports_reasoning": True, "reasoning_replay": "reasoning_content"}

FAMILIES: tuple[Family, ...] = (
    # o3 / o4-mini and gpt-5 reject `stop`; o1 takes it.
    Family("openai-gpt-5", ("gpt-5", "gpt-5[-._]*"), {**_OPENAI_REASONING, "supports_stop": False}, _DOCUMENTS),
    Family(
        "openai-o3-o4",
        ("o3", "o3[-._]*", "o4", "o4[-._]*"),
        {**_OPENAI_REASONING, "supports_stop": False},
        _DOCUMENTS,
    ),
    Family("openai-o-series", ("o[0-9]", "o[0-9][-._]*"), _OPENAI_REASONING, _DOCUMENTS),
    Family("openai-gpt-4o-4.1", ("gpt-4o*", "gpt-4.1*"), openai_only=_DOCUMENTS),
    Family("gpt-oss", ("gpt-oss*",), {**_REPLAYS_REASONING, "reasoning_style": "effort"}),
    Family("deepseek-v4", ("deepseek-v4", "deepseek-v4[-._:]*"), {**_REPLAYS_REASONING, "reasoning_style": "thinking"}),
    # deepseek-reasoner / R1 / V3.1+: as before the table, `reasoning_effort` and `reasoning_content` passed back.
    Family(
        "deepseek-reasoner",
        ("deepseek-reasoner*", "deepseek-r1*", "deepseek-v3.[1-9]*"),
        {**_REPLAYS_REASONING, "reasoning_style": "effort"},
    ),
    Family("kimi-k2-thinking", ("kimi-k2-thinking*", "kimi-k2.5*"), {**_REPLAYS_REASONING, "reasoning_style": "none"}),
    Family(
        "glm-4.5+",
        ("glm-4.5*", "glm-4.6*", "glm-4.7*", "glm-5*"),
        {**_REPLAYS_REASONING, "reasoning_style": "thinking"},
    ),
    Family("qwen3-thinking", ("qwen3-*thinking*", "qwq*"), {"supports_reasoning": True, "reasoning_style": "none"}),
    # Qwen3 2507 instruct and coder models do not think; the hybrid Qwen3 models switch it on and off.
    Family("qwen3-no-thinking", ("qwen3-*instruct*", "qwen3-coder*")),
    Family(
        "qwen3-hybrid",
        ("qwen3", "qwen3-*", "qwen3:*"),
        {"supports_reasoning": True, "reasoning_style": "enable_thinking"},
    ),
    Family("magistral", ("magistral*",), {"supports_reasoning": True, "reasoning_style": "none"}),
    Family(
        "mistral",
        ("mistral*", "open-mistral*", "mixtral*", "open-mixtral*", "codestral*", "devstral*", "ministral*", "pixtral*"),
        {"supports_reasoning": False, "reasoning_style": "none", "reasoning_replay": "drop"},
    ),
)

# Output-token ceilings the client's max_tokens is clamped to (Claude Code asks for 32000-128000).
# Longest prefix of the bare name wins; models not listed get the client's value unchanged.
MAX_OUTPUT_TOKENS: dict[str, int] = {
    "gpt-5": 128_000,
    "gpt-4.1": 32_768,
    "gpt-4o": 16_384,
    "gpt-4-turbo": 4_096,
    "gpt-4": 8_192,
    "gpt-3.5-turbo": 4_096,
    "o1": 100_000,
    "o3": 100_000,
    "o4-mini": 100_000,
    "deepseek-chat": 8_192,
    "deepseek-reasoner": 65_536,
}

_CAPABILITY_FIELDS = frozenset(f.name for f in fields(ModelCapabilities))


def _check_table() -> None:
    """A misspelt field in the table is a bug found at import, not a silently ignored row."""
    for family in FAMILIES:
        unknown = (set(family.fields) | set(family.openai_only)) - _CAPABILITY_FIELDS
        if unknown:
            raise AssertionError(f"capability family {family.name}: unknown fields {sorted(unknown)}")


_check_table()


def bare_name(model: str) -> str:
    """`model` lower-cased, without its vendor prefix: `deepseek/DeepSeek-V4-Pro` -> `deepseek-v4-pro`."""
    return model.lower().rsplit("/", 1)[-1]


def find_family(model: str) -> Family | None:
    """The first family whose globs match `model`, or None."""
    bare = bare_name(model)
    return next((family for family in FAMILIES if family.matches(bare)), None)


def family_capabilities(model: str, *, official_openai: bool) -> ModelCapabilities:
    """What a model accepts, judged from its name (and whether the upstream is OpenAI's own API)."""
    found = ModelCapabilities(
        supports_top_k=not official_openai,
        supports_strict_tools=official_openai,
        max_output_tokens=_max_output_tokens(bare_name(model)),
    )
    family = find_family(model)
    if family is None:
        return found
    return replace(found, **{**family.fields, **(family.openai_only if official_openai else {})})


def _max_output_tokens(bare: str) -> int | None:
    best = max((prefix for prefix in MAX_OUTPUT_TOKENS if bare.startswith(prefix)), key=len, default=None)
    return MAX_OUTPUT_TOKENS[best] if best else None
