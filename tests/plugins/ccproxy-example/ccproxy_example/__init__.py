"""A third-party provider as someone outside ccproxy would write one: only ccproxy's public names, an entry point.

It serves an OpenAI-compatible server that wants an `x-example-tag` header (the `tag` option of its backend table)
and whose models take at most 1000 output tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from ccproxy import ModelCapabilities, Provider, hookimpl

MAX_OUTPUT_TOKENS = 1000


class ExampleOptions(BaseModel):
    """The keys of a `[backends.<name>]` table this provider adds to ccproxy's own."""

    model_config = ConfigDict(extra="forbid")

    tag: str = "example"


class ExampleProvider(Provider):
    name: ClassVar[str] = "example"
    needs_key: ClassVar[bool] = False
    options_model: ClassVar[type[BaseModel] | None] = ExampleOptions

    def capabilities(self, model: str) -> ModelCapabilities:
        return ModelCapabilities(max_output_tokens=MAX_OUTPUT_TOKENS)

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "x-example-tag": str(self.config.options["tag"])}


@hookimpl
def ccproxy_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(ExampleProvider)
