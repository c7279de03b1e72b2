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
from ccproxy_openai.capabilities import family_capabilities
from ccproxy_openai.responses import ResponsesWire

# gpt-5.1 and later refuse `reasoning_effort` together with function tools on Chat Completions (400 "Function tools
# with reasoning_effort are not supported ... use /v1/responses"); the model's default effort applies instead.
_NO_EFFORT_WITH_TOOLS = re.compile(r"^(?:[\w.-]+/)?gpt-5\.[1-9]")

_CAPABILITY_FIELDS = {f.name for f in dataclasses.fields(ModelCapabilities)}
# GET /models: how long the answer may take, and how much of it is read (OpenRouter lists ~300 models in ~400 KB).
LIST_MODELS_SECONDS = 10.0
LIST_MODELS_MAX_BYTES = 4 * 1024 * 1024


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
