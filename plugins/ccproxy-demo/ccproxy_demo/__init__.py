"""The `demo` provider: canned, deterministic answers made in-process, so ccproxy runs with no key and no server.

Text; a tool call when tools are offered (Claude Code's Bash with a harmless `echo`, else the first tool with
placeholder arguments); a thinking block when thinking is on; an acknowledgement after a tool turn — streamed or
not, with usage. The answers are OpenAI Chat Completions answers, translated by ccproxy like any backend's. It is
only ever chosen explicitly: `ccproxy serve --demo` (`./run-ccproxy.sh --demo`) or `provider = "demo"` in a backend
table, and every start says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar

from ccproxy import ModelCapabilities, Provider, Upstream, hookimpl
from ccproxy_demo.answers import BASH_ARGUMENTS, DEMO_MODEL, Reply, reply_to
from ccproxy_demo.upstream import DemoUpstream

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ccproxy.state import AppState

__all__ = ["BASH_ARGUMENTS", "DEMO_MODEL", "DemoProvider", "DemoUpstream", "Reply", "reply_to"]

log = logging.getLogger("ccproxy.demo")


class DemoProvider(Provider):
    """Answers every model name; takes no options and no key."""

    name: ClassVar[str] = "demo"
    needs_key: ClassVar[bool] = False
    # Never contacted: `.invalid` cannot resolve (RFC 2606), and the transport below never opens a socket.
    default_base_url: ClassVar[str | None] = "http://demo.invalid/v1"

    def capabilities(self, model: str) -> ModelCapabilities:
        return ModelCapabilities(supports_top_k=True, supports_reasoning=True)

    def transport(self) -> Upstream:
        return DemoUpstream()

    async def list_models(self, upstream: Upstream) -> Sequence[str] | None:
        return [DEMO_MODEL]


@hookimpl
def ccproxy_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(DemoProvider)


@hookimpl
def ccproxy_startup(state: AppState) -> None:
    for name, backend in state.backends.items():
        if isinstance(backend.provider, DemoProvider):
            log.warning("backend %s: the demo provider gives canned answers; no model is called", name)
