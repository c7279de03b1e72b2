"""Provider.transport(): a provider's in-process upstream takes the place of the aiohttp transport, inside the
backend's stack (retries, breaker, limits) like the network one."""

from __future__ import annotations

import json
import tomllib
from typing import Any, ClassVar

from ccproxy import ModelCapabilities, Provider, Upstream
from ccproxy.backends import build_backends
from ccproxy.config import parse_config
from ccproxy.default_plugins.reasoning import BudgetEffortConfigurator
from ccproxy.upstream import LeanUpstream, RetryingUpstream, UpstreamRequest, UpstreamStates
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from tests.support.backends import completion, sequence


class InProcess(Provider):
    name: ClassVar[str] = "in-process"
    needs_key: ClassVar[bool] = False
    default_base_url: ClassVar[str | None] = "http://in-process.invalid/v1"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.fake = FakeUpstream(
            sequence(FakeResponse.json({"error": {"message": "busy"}}, status=503), FakeResponse.json(completion("hi")))
        )

    def capabilities(self, model: str) -> ModelCapabilities:
        return ModelCapabilities()

    def transport(self) -> Upstream:
        return self.fake


def backend(provider: str) -> Any:
    table = f'[backends.b]\nprovider = "{provider}"\nbase_url = "http://127.0.0.1:9/v1"\nretries = 1\n'
    file = parse_config(tomllib.loads(table), {})
    providers: dict[str, type[Provider]] = {"in-process": InProcess, "plain": Plain}
    built = build_backends(
        file.backends, providers, {"budget-effort": BudgetEffortConfigurator}, reasoning_options={}, env={}
    )
    found = built["b"]
    found.connect(UpstreamStates())
    return found


class Plain(Provider):
    name: ClassVar[str] = "plain"
    needs_key: ClassVar[bool] = False

    def capabilities(self, model: str) -> ModelCapabilities:
        return ModelCapabilities()


def test_without_one_the_backend_talks_to_the_network() -> None:
    assert isinstance(backend("plain").transport, LeanUpstream)  # the default network transport


async def test_the_providers_upstream_is_the_transport_inside_the_stack() -> None:
    found = backend("in-process")
    fake = found.provider.fake
    assert found.transport is fake and isinstance(found.upstream, RetryingUpstream)
    request = UpstreamRequest(path=found.path, body=b"{}", stream=False, deadline=10**12)
    async with await found.upstream.send(request) as response:
        assert json.loads(await response.read())["choices"][0]["message"]["content"] == "hi"
    assert len(fake.requests) == 2  # the 503 was retried by the stack around it
    assert fake.requests[0].path == "/chat/completions"
