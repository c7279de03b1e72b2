"""The OpenAI provider: api.openai.com and any OpenAI-compatible Chat Completions server (vLLM, llama.cpp, ...)."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from ccproxy import ModelCapabilities, Provider, ProviderConfig, Upstream, UpstreamRequest, hookimpl
from ccproxy.wire import Wire
from ccproxy_openai.responses import ResponsesWire

# Reasoning families: `max_completion_tokens`, developer role, default temperature only (wire.md 4.7).
_REASONING_FAMILY = re.compile(r"^(?:[\w.-]+/)?(?:gpt-5|o\d)(?:[.\-_]|$)")
# o3 / o4-mini (and gpt-5) reject `stop`.
_NO_STOP_FAMILY = re.compile(r"^(?:[\w.-]+/)?(?:gpt-5|o3|o4)(?:[.\-_]|$)")
# gpt-5.1 and later refuse `reasoning_effort` together with function tools on Chat Completions (400 "Function tools
# with reasoning_effort are not supported ... use /v1/responses"); the model's default effort applies instead.
_NO_EFFORT_WITH_TOOLS = re.compile(r"^(?:[\w.-]+/)?gpt-5\.[1-9]")
_DEEPSEEK_REASONER = re.compile(r"deepseek-(?:reasoner|r1)|deepseek-v3\.[1-9]")
# OpenAI models that take PDF `file` parts on Chat Completions.
_DOCUMENT_FAMILY = re.compile(r"^(?:openai/)?(?:gpt-4o|gpt-4\.1|gpt-5|o\d)")

# Output-token ceilings the client's max_tokens is clamped to (Claude Code asks for 32000-128000).
# Longest prefix wins; models not listed get the client's value unchanged.
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

_CAPABILITY_FIELDS = {f.name for f in dataclasses.fields(ModelCapabilities)}
# GET /models: how long the answer may take, and how much of it is read (OpenRouter lists ~300 models in ~400 KB).
LIST_MODELS_SECONDS = 10.0
LIST_MODELS_MAX_BYTES = 4 * 1024 * 1024


def family_capabilities(model: str, *, official_openai: bool) -> ModelCapabilities:
    """What a model accepts, judged from its name (and whether the upstream is OpenAI's own API)."""
    name = model.lower()
    reasoning = bool(_REASONING_FAMILY.match(name))
    deepseek_reasoner = bool(_DEEPSEEK_REASONER.search(name))
    return ModelCapabilities(
        max_tokens_param="max_completion_tokens" if reasoning else "max_tokens",
        system_role="developer" if reasoning else "system",
        supports_temperature=not reasoning,
        supports_top_p=not reasoning,
        supports_stop=not _NO_STOP_FAMILY.match(name),
        supports_top_k=not official_openai and not reasoning,
        supports_documents=official_openai and bool(_DOCUMENT_FAMILY.match(name)),
        max_output_tokens=_max_output_tokens(name),
        reasoning_replay="reasoning_content" if deepseek_reasoner else "drop",
        supports_reasoning=reasoning or deepseek_reasoner,
        supports_strict_tools=official_openai,
    )


def _max_output_tokens(name: str) -> int | None:
    bare = name.rsplit("/", 1)[-1]
    best = max((prefix for prefix in MAX_OUTPUT_TOKENS if bare.startswith(prefix)), key=len, default=None)
    return MAX_OUTPUT_TOKENS[best] if best else None


class OpenAIOptions(BaseModel):
    """The provider's own options in a `[backends.<name>]` table (base_url, api_key, headers, models and the rest
    are ccproxy's keys)."""

    model_config = ConfigDict(extra="forbid")

    organization: str | None = None
    # The API requests go to: Chat Completions, the Responses API (ccproxy_openai/responses.py), or the Responses
    # API only for the models that refuse reasoning with tools on Chat Completions (`_NO_EFFORT_WITH_TOOLS`).
    api: Literal["chat", "responses", "auto"] = "chat"


class OpenAIProvider(Provider):
    """OpenAI Chat Completions, or the Responses API. Options: `organization` (the `openai-organization` header),
    `api` ("chat", "responses" or "auto": which API requests go to; see docs/providers.md).

    `models."<name>"` overrides and extra `headers` are applied by ccproxy for every backend; given in `options`
    directly (a ProviderConfig built by hand, the old `[plugins.openai]` shape), they still apply here too.
    """

    name: ClassVar[str] = "openai"
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "OPENAI_API_KEY"
    default_base_url: ClassVar[str | None] = "https://api.openai.com/v1"
    options_model: ClassVar[type[BaseModel] | None] = OpenAIOptions

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.official = "api.openai.com" in config.base_url
        overrides = config.options.get("models", {})
        for model, table in overrides.items():
            unknown = set(table) - _CAPABILITY_FIELDS
            if unknown:
                raise ValueError(f"plugins.openai.models.{model}: unknown fields {sorted(unknown)}")
        self.overrides: Mapping[str, Mapping[str, Any]] = overrides
        self.api = str(config.options.get("api") or "chat")
        self._responses = ResponsesWire()

    def capabilities(self, model: str) -> ModelCapabilities:
        found = family_capabilities(model, official_openai=self.official)
        override = self.overrides.get(model)
        return dataclasses.replace(found, **override) if override else found

    def adjust_request(self, body: dict[str, Any], anthropic_request: Mapping[str, Any]) -> dict[str, Any]:
        if body.get("tools") and "reasoning_effort" in body and _NO_EFFORT_WITH_TOOLS.match(str(body["model"])):
            del body["reasoning_effort"]
        return body

    def wire(self, model: str) -> Wire | None:
        """The Responses API for `api = "responses"`, and for `api = "auto"` where Chat Completions would drop the
        reasoning effort beside tools; else Chat Completions (None)."""
        if self.api == "responses" or (self.api == "auto" and _NO_EFFORT_WITH_TOOLS.match(model.lower())):
            return self._responses
        return None

    async def list_models(self, upstream: Upstream) -> Sequence[str] | None:
        """`GET <base_url>/models`: the `id` of each entry of its `data` list (OpenAI, OpenRouter, vLLM, llama.cpp,
        Ollama's OpenAI API all answer it)."""
        request = UpstreamRequest(
            path="/models", body=b"", stream=False, deadline=time.monotonic() + LIST_MODELS_SECONDS, method="GET"
        )
        async with await upstream.send(request) as response:
            payload = json.loads(await response.read(LIST_MODELS_MAX_BYTES))
        entries = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(entries, list):
            raise ValueError("GET /models answered without a `data` list")
        return sorted(
            {entry["id"] for entry in entries if isinstance(entry, dict) and isinstance(entry.get("id"), str)}
        )

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        organization = self.config.options.get("organization")
        if organization:
            headers["openai-organization"] = str(organization)
        headers.update({str(k): str(v) for k, v in self.config.options.get("headers", {}).items()})
        return headers


@hookimpl
def ccproxy_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(OpenAIProvider)
