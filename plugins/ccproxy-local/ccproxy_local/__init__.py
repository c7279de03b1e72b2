"""The `local` provider: vLLM, llama.cpp server, Ollama, LM Studio and SGLang through their OpenAI-compatible API.

No key is ever needed (one given is sent), `top_k` is passed, `think_tags = true` turns `<think>...</think>` in the
content into thinking blocks (ccproxy/thinktags.py), and the context windows the server reports in `GET /v1/models`
are read at start-up (in the background, retried until the server answers) so that max_tokens is clamped to what
the prompt leaves and an overlong prompt is answered as Anthropic's "prompt is too long" before it is sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

from pydantic import BaseModel, ConfigDict, StrictBool

from ccproxy import ModelCapabilities, Provider, ProviderConfig, hookimpl
from ccproxy_local.discovery import WindowDiscovery
from ccproxy_local.windows import ContextWindows
from ccproxy_openai.capabilities import family_capabilities

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ccproxy import Upstream
    from ccproxy.state import AppState

__all__ = ["ContextWindows", "LocalOptions", "LocalProvider"]


class LocalOptions(BaseModel):
    """The provider's own options in a `[backends.<name>]` table."""

    model_config = ConfigDict(extra="forbid")

    #: The model writes its reasoning as `<think>...</think>` in the content (no reasoning parser on the server).
    think_tags: StrictBool = False


class LocalProvider(Provider):
    """A model server on your machine or network. Options: `think_tags`."""

    name: ClassVar[str] = "local"
    needs_key: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel] | None] = LocalOptions

    def __init__(self, config: ProviderConfig) -> None:
        super().__init__(config)
        self.think_tags = bool(config.options.get("think_tags", False))
        self.discovery = WindowDiscovery(config.name)

    def capabilities(self, model: str) -> ModelCapabilities:
        # What the model family wants for reasoning (Qwen3, DeepSeek-R1, gpt-oss, ... served locally) comes from the
        # OpenAI plugin's family table, as for any OpenAI-compatible server. Anthropic-only fields never reach the
        # server: the request is built key by key (ccproxy/core/request.py), and a tool's `strict` is left out
        # (supports_strict_tools is off); vLLM refuses fields it does not know.
        found = family_capabilities(model, official_openai=False)
        return replace(
            found,
            supports_top_k=True,
            think_tags=self.think_tags,
            # Thinking cut out of `<think>` tags has no signature and the chat templates drop earlier turns'
            # reasoning themselves: it is not sent back.
            reasoning_replay="drop" if self.think_tags else found.reasoning_replay,
            # A chat template's thinking switch (Qwen3) goes to local servers (vLLM, SGLang, llama.cpp) inside
            # `chat_template_kwargs`; a top-level `enable_thinking` is DashScope's, and vLLM refuses it.
            reasoning_style="chat_template_kwargs"
            if found.reasoning_style == "enable_thinking"
            else found.reasoning_style,
            context_window=self.discovery.windows.window(model),
        )

    async def list_models(self, upstream: Upstream) -> Sequence[str] | None:
        """`GET <base_url>/models`: the ids it lists; the context windows it reports are kept as well."""
        return list((await self.discovery.read(upstream)).models)


@hookimpl
def ccproxy_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(LocalProvider)


@hookimpl
def ccproxy_startup(state: AppState) -> None:
    """Read each local backend's context windows in the background: a server that is not up yet does not hold up
    ccproxy, and is asked again until it answers."""
    for backend in state.backends.values():
        provider = backend.provider
        if isinstance(provider, LocalProvider) and backend.transport is not None:
            provider.discovery.start(backend.transport, on_learned=backend.forget_capabilities)


@hookimpl
async def ccproxy_shutdown(state: AppState) -> None:
    for backend in state.backends.values():
        if isinstance(backend.provider, LocalProvider):
            await backend.provider.discovery.stop()
