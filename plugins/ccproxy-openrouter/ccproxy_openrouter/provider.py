"""The OpenRouter provider: capabilities per model family, attribution headers, provider routing preferences."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ccproxy import ModelCapabilities, Provider, ProviderConfig

DEFAULT_BASE_URL = "https://openrouter.ai/api/v1"
# OpenRouter's app attribution (openrouter.ai/docs/app-attribution): the app's URL and its name.
DEFAULT_REFERER = "https://github.com/ccproxy/ccproxy"
DEFAULT_TITLE = "ccproxy"

# Anthropic models that can think: Claude 3.7 Sonnet and every Claude 4 and later (opus-4, sonnet-4.5, haiku-4.5, ...).
_ANTHROPIC_THINKING = re.compile(r"claude-(?:3[.-]7|(?:opus|sonnet|haiku)-[4-9]|[4-9])")
# OpenAI's reasoning families: `max_completion_tokens`, default temperature only, no `stop` (wire.md 4.7).
_OPENAI_REASONING = re.compile(r"(?:gpt-5|o\d)(?:[.\-_]|$)")
_OPENAI_NO_STOP = re.compile(r"(?:gpt-5|o3|o4)(?:[.\-_]|$)")
# gpt-5-chat is the non-reasoning chat model of the family.
_OPENAI_CHAT = re.compile(r"gpt-5(?:\.\d+)?-chat")
# Families with no reasoning at all (OpenRouter would drop `reasoning`, or refuse it with require_parameters).
_NO_REASONING = re.compile(r"^(?:openai/(?:gpt-4|gpt-3)|anthropic/claude-(?:3-|3\.5)|meta-llama/|mistralai/)")
# Endpoints that refuse `reasoning: {enabled: false}` ("Reasoning is mandatory for this endpoint"; OpenRouter's
# /models says `reasoning.mandatory: true`): reported for gpt-5, the o-series, DeepSeek R1, MiniMax M2, StepFun 3.5,
# Gemini 2.5 Pro. Others: `models."<id>" = {reasoning_mandatory = true}` in the backend's table.
_MANDATORY = re.compile(
    r"^(?:openai/(?:gpt-5(?!(?:\.\d+)?-chat)|o\d)|deepseek/deepseek-r1|minimax/minimax-m|stepfun/step-3\.5"
    r"|google/gemini-2\.5-pro)"
)


def openrouter_capabilities(model: str) -> ModelCapabilities:
    """What an OpenRouter model id (`vendor/model`, maybe with a `:variant` suffix) accepts."""
    name = model.lower().partition(":")[0]
    vendor, _, bare = name.partition("/")
    mandatory = bool(_MANDATORY.match(name))
    if vendor == "anthropic":
        # Thinking signatures round-trip as reasoning_details; prompt caching needs the client's cache_control.
        return ModelCapabilities(
            supports_top_k=True,
            supports_documents=True,
            reasoning_replay="reasoning_details",
            supports_reasoning=bool(_ANTHROPIC_THINKING.search(bare)),
            forward_cache_control=True,
        )
    if vendor == "openai":
        reasoning = bool(_OPENAI_REASONING.match(bare)) and not _OPENAI_CHAT.match(bare)
        return ModelCapabilities(
            max_tokens_param="max_completion_tokens",
            supports_temperature=not reasoning,
            supports_top_p=not reasoning,
            supports_stop=not _OPENAI_NO_STOP.match(bare),
            supports_documents=True,
            supports_reasoning=reasoning or bare.startswith("gpt-oss"),
            reasoning_mandatory=mandatory,
        )
    # OpenRouter parses PDFs for any model, and passes top_k to the providers that take it.
    return ModelCapabilities(
        supports_top_k=True,
        supports_documents=True,
        supports_reasoning=not _NO_REASONING.match(name),
        reasoning_mandatory=mandatory,
    )


class MaxPrice(BaseModel):
    """The most to pay, in US dollars per million tokens (prompt, completion) or per request / image."""

    model_config = ConfigDict(extra="forbid")

    prompt: float | None = Field(default=None, ge=0)
    completion: float | None = Field(default=None, ge=0)
    request: float | None = Field(default=None, ge=0)
    image: float | None = Field(default=None, ge=0)


Quantization = Literal["int4", "int8", "fp4", "fp6", "fp8", "fp16", "bf16", "fp32", "unknown"]


class ProviderPreferences(BaseModel):
    """OpenRouter's `provider` routing object (openrouter.ai/docs/features/provider-routing), checked at start-up."""

    model_config = ConfigDict(extra="forbid")

    order: list[str] | None = None
    allow_fallbacks: bool | None = None
    require_parameters: bool | None = None
    data_collection: Literal["allow", "deny"] | None = None
    zdr: bool | None = None
    only: list[str] | None = None
    ignore: list[str] | None = None
    quantizations: list[Quantization] | None = None
    sort: Literal["price", "throughput", "latency"] | None = None
    max_price: MaxPrice | None = None


def _header_value(value: str, what: str) -> str:
    if not value or not value.isascii() or not value.isprintable():
        raise ValueError(f"{what} must be printable ASCII (it is sent as an HTTP header)")
    return value


class OpenRouterOptions(BaseModel):
    """The provider's own keys in a `[backends.<name>]` table."""

    model_config = ConfigDict(extra="forbid")

    attribution: bool = True
    referer: str = DEFAULT_REFERER
    title: str = DEFAULT_TITLE
    provider_preferences: ProviderPreferences | None = None

    @field_validator("referer")
    @classmethod
    def _referer(cls, value: str) -> str:
        if not value.startswith(("https://", "http://")):
            raise ValueError("expected an http(s) URL (the app's address)")
        return _header_value(value, "referer")

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        return _header_value(value, "title")


class OpenRouterProvider(Provider):
    """OpenRouter's Chat Completions. Options: `attribution` (default true: `HTTP-Referer` and `X-Title`),
    `referer`, `title`, and a `provider_preferences` table sent as the `provider` routing object."""

    name: ClassVar[str] = "openrouter"
    needs_key: ClassVar[bool] = True
    key_env_var: ClassVar[str | None] = "OPENROUTER_API_KEY"
    default_base_url: ClassVar[str | None] = DEFAULT_BASE_URL
    options_model: ClassVar[type[BaseModel] | None] = OpenRouterOptions
    default_reasoning: ClassVar[str | None] = "openrouter"

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.options = OpenRouterOptions.model_validate(config.options)
        preferences = self.options.provider_preferences
        self.routing: dict[str, Any] | None = preferences.model_dump(exclude_none=True) if preferences else None

    def capabilities(self, model: str) -> ModelCapabilities:
        return openrouter_capabilities(model)

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self.options.attribution:
            given = {name.lower() for name in headers}
            for name, value in (("HTTP-Referer", self.options.referer), ("X-Title", self.options.title)):
                if name.lower() not in given:  # the table's own `headers` win
                    headers[name] = value
        return headers

    def adjust_request(self, body: dict[str, Any], anthropic_request: Mapping[str, Any]) -> dict[str, Any]:
        # `usage.include` makes OpenRouter report `cost` (wire.md 4.8), which the usage log records.
        body["usage"] = {"include": True}
        if self.routing:
            body["provider"] = self.routing
        return body
