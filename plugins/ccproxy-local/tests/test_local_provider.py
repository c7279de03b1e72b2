"""The local provider: installed through packaging metadata, no key anywhere, its options, and the context windows
each server reports in GET /v1/models, read in the background at start-up and never fatal."""

from __future__ import annotations

import asyncio
import tomllib
from importlib.metadata import entry_points
from typing import Any

import pytest

import ccproxy_local
from ccproxy import ProviderConfig, UpstreamFailure
from ccproxy.backends import build_backends
from ccproxy.config import parse_config
from ccproxy.default_plugins.reasoning import BudgetEffortConfigurator
from ccproxy.plugins import build_plugin_manager, collect
from ccproxy.settings import Settings, SettingsError
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from ccproxy_local import ContextWindows, LocalProvider
from ccproxy_local.discovery import FIRST_DELAYS, RETRY_EVERY, WindowDiscovery

# `GET /v1/models` as each server answers it (trimmed to the fields that matter).
VLLM = {"object": "list", "data": [{"id": "Qwen/Qwen3-8B", "object": "model", "max_model_len": 32768}]}
SGLANG = {"object": "list", "data": [{"id": "qwen3", "object": "model", "max_model_len": 40960}]}
LLAMA_CPP = {
    "object": "list",
    "data": [{"id": "qwen3-8b-q4_k_m.gguf", "object": "model", "meta": {"n_ctx_train": 40960, "n_vocab": 151936}}],
}
LLAMA_CPP_RUNNING = {"data": [{"id": "m.gguf", "meta": {"n_ctx": 8192, "n_ctx_train": 40960}}]}
LM_STUDIO = {"data": [{"id": "qwen3-8b", "max_context_length": 32768}, {"id": "gemma-3-12b"}]}
OLLAMA = {"object": "list", "data": [{"id": "qwen3:8b", "object": "model", "owned_by": "library"}, {"id": "llama3.2"}]}


def provider(**options: Any) -> LocalProvider:
    return LocalProvider(ProviderConfig(base_url="http://127.0.0.1:8000/v1", api_key=None, options=options))


def test_entry_point_is_installed() -> None:
    found = [ep for ep in entry_points(group="ccproxy") if ep.name == "local"]
    assert len(found) == 1
    assert found[0].load() is ccproxy_local
    assert found[0].dist is not None and found[0].dist.name == "ccproxy-local"
    settings = Settings(api_key="sk-test-0123456789")
    assert collect(build_plugin_manager(settings), settings).providers["local"] is LocalProvider


def backends(table: str) -> dict[str, Any]:
    file = parse_config(tomllib.loads(table), {})
    return build_backends(
        file.backends,
        {"local": LocalProvider},
        {"budget-effort": BudgetEffortConfigurator},
        reasoning_options={},
        env={},
    )


def test_no_key_is_needed_even_on_a_public_host_and_one_given_is_sent() -> None:
    built = backends('[backends.gpu]\nprovider = "local"\nbase_url = "https://gpu.example.com/v1"\n')
    assert "authorization" not in built["gpu"].provider.headers()
    keyed = backends(
        '[backends.gpu]\nprovider = "local"\nbase_url = "https://gpu.example.com/v1"\napi_key = "vllm-k"\n'
    )
    assert keyed["gpu"].provider.headers()["authorization"] == "Bearer vllm-k"


def test_top_k_is_passed_and_think_tags_is_an_option() -> None:
    assert provider().capabilities("any").supports_top_k
    assert not provider().capabilities("any").think_tags
    assert provider(think_tags=True).capabilities("any").think_tags
    table = '[backends.l]\nprovider = "local"\nbase_url = "http://127.0.0.1:8000/v1"\n'
    assert backends(table + "think_tags = true\n")["l"].capabilities("q").think_tags
    assert backends(table + 'models."q".think_tags = true\n')["l"].capabilities("q").think_tags
    assert backends(table + 'models."q".context_window = 8192\n')["l"].capabilities("q").context_window == 8192


@pytest.mark.parametrize(
    ("extra", "message"),
    [("think_tags = 'yes'", "backends.l.think_tags"), ("thinktags = true", "backends.l.thinktags")],
)
def test_bad_options_stop_start_up_naming_the_key(extra: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        backends(f'[backends.l]\nprovider = "local"\nbase_url = "http://127.0.0.1:8000/v1"\n{extra}\n')


@pytest.mark.parametrize(
    ("listing", "model", "window"),
    [
        (VLLM, "Qwen/Qwen3-8B", 32768),
        (SGLANG, "qwen3", 40960),
        (LLAMA_CPP, "qwen3-8b-q4_k_m.gguf", 40960),
        (LLAMA_CPP, "any-name-llama.cpp-serves-its-one-model", 40960),
        (LLAMA_CPP_RUNNING, "m.gguf", 8192),
        (LM_STUDIO, "qwen3-8b", 32768),
        (LM_STUDIO, "gemma-3-12b", None),
        (OLLAMA, "qwen3:8b", None),
        (VLLM, "not-served", 32768),
    ],
)
def test_the_window_each_server_reports(listing: dict[str, Any], model: str, window: int | None) -> None:
    assert ContextWindows.from_listing(listing).window(model) == window


def test_a_listing_without_data_is_an_error() -> None:
    with pytest.raises(ValueError, match="without a `data` list"):
        ContextWindows.from_listing({"models": []})


async def test_list_models_keeps_the_windows_for_capabilities() -> None:
    local = provider()
    upstream = FakeUpstream(lambda request: FakeResponse.json(LM_STUDIO))
    assert await local.list_models(upstream) == ["gemma-3-12b", "qwen3-8b"]
    assert local.capabilities("qwen3-8b").context_window == 32768
    [request] = upstream.requests
    assert (request.method, request.path, request.body) == ("GET", "/models", b"")


class Sleeps:
    """A sleep that records the pauses and returns at once."""

    def __init__(self) -> None:
        self.pauses: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.pauses.append(seconds)
        await asyncio.sleep(0)


async def test_discovery_retries_until_the_server_answers_then_stops_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    answers = [UpstreamFailure("Upstream unreachable (127.0.0.1:8000)"), UpstreamFailure("still loading")]

    def handler(request: Any) -> FakeResponse:
        if answers:
            raise answers.pop(0)
        return FakeResponse.json(VLLM)

    sleeps = Sleeps()
    discovery = WindowDiscovery("gpu", sleep=sleeps)
    learned: list[bool] = []
    upstream = FakeUpstream(handler)
    caplog.set_level("DEBUG", logger="ccproxy.local")
    discovery.start(upstream, on_learned=lambda: learned.append(True))
    for _ in range(50):
        await asyncio.sleep(0)
    await discovery.stop()
    assert len(upstream.requests) == 3 and sleeps.pauses == list(FIRST_DELAYS[1:3])
    assert discovery.windows.window("Qwen/Qwen3-8B") == 32768 and learned == [True]
    messages = [record.getMessage() for record in caplog.records]
    assert (
        "backend gpu: cannot read context windows yet (Upstream unreachable (127.0.0.1:8000)); trying again" in messages
    )
    assert "backend gpu: context windows Qwen/Qwen3-8B=32768" in messages


async def test_a_server_that_never_answers_is_asked_every_few_minutes_and_stop_ends_it() -> None:
    def down(request: Any) -> FakeResponse:
        raise UpstreamFailure("Upstream unreachable")

    sleeps = Sleeps()
    discovery = WindowDiscovery("gpu", sleep=sleeps)
    discovery.start(FakeUpstream(down), on_learned=lambda: None)
    for _ in range(100):
        await asyncio.sleep(0)
    await discovery.stop()
    assert sleeps.pauses[: len(FIRST_DELAYS) - 1] == list(FIRST_DELAYS[1:])
    assert set(sleeps.pauses[len(FIRST_DELAYS) - 1 :]) == {RETRY_EVERY}
    assert discovery.windows == ContextWindows()
