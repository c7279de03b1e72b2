"""Named backends answered by FakeUpstream handlers: the pipeline (or a whole app) with no aiohttp underneath."""

from __future__ import annotations

import asyncio
import json
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from ccproxy import Guardrail, ModelCapabilities, Observer, Provider, RequestRecord, UpstreamAttempt
from ccproxy.backends import Backend, build_backends
from ccproxy.config import parse_config
from ccproxy.core.overflow import prompt_too_long
from ccproxy.default_plugins.memory_cache import MemoryCacheBackend
from ccproxy.default_plugins.reasoning import BudgetEffortConfigurator
from ccproxy.observers import Observers, attempt_reporter
from ccproxy.pipeline import MessagesPipeline
from ccproxy.redaction import Redactor
from ccproxy.routing import Router, parse_routes
from ccproxy.tokens import TokenCounter
from ccproxy.upstream import (
    AttemptObserver,
    Clock,
    Sleep,
    UpstreamRequest,
    UpstreamStates,
    UpstreamWrapper,
    build_upstream,
)
from ccproxy.upstream.fake import FakeResponse, FakeUpstream, Handler
from tests.support.fake_clock import FakeClock

HELLO: dict[str, Any] = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}
LOCAL_URL = "http://127.0.0.1:9/v1"


class PlainProvider(Provider):
    """An OpenAI-compatible server: `big*` models take `max_completion_tokens`, the others `max_tokens`."""

    name: ClassVar[str] = "plain"
    needs_key: ClassVar[bool] = False

    def capabilities(self, model: str) -> ModelCapabilities:
        return ModelCapabilities(max_tokens_param="max_completion_tokens" if model.startswith("big") else "max_tokens")


def completion(text: str = "Hello!", model: str = "m") -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 3},
    }


def sse_chunks(*texts: str) -> list[bytes]:
    """An OpenAI stream, one event per piece: the texts, the finish reason, the usage, [DONE]."""
    chunks: list[dict[str, Any]] = [
        {"choices": [{"index": 0, "delta": {"content": text}, "finish_reason": None}]} for text in texts
    ]
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    chunks.append({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 5}})
    return [f"data: {json.dumps(chunk)}\n\n".encode() for chunk in chunks] + [b"data: [DONE]\n\n"]


def ok(text: str = "Hello!") -> FakeResponse:
    """Answers JSON or a stream, whichever the request asks for."""
    return FakeResponse.json(completion(text))


def answer(request: UpstreamRequest, text: str = "Hello!") -> FakeResponse:
    if request.stream:
        return FakeResponse(200, {"content-type": "text/event-stream"}, chunks=sse_chunks(text))
    return ok(text)


def failing(status: int, message: str = "boom", headers: Mapping[str, str] | None = None) -> FakeResponse:
    return FakeResponse.json({"error": {"message": message, "type": "server_error"}}, status=status, headers=headers)


def backends_toml(names: Mapping[str, str], routes: Mapping[str, Any]) -> str:
    """[backends.<name>] tables (provider plain, a local URL, plus the given extra lines) and a [routes] table."""
    lines: list[str] = []
    for name, extra in names.items():
        lines.append(f"[backends.{name}]")
        lines += [] if "provider =" in extra else ['provider = "plain"']
        lines += [] if "base_url =" in extra else [f'base_url = "{LOCAL_URL}"']
        lines.append(extra)
    lines.append("[routes]")
    lines += [f"{json.dumps(pattern)} = {json.dumps(targets)}" for pattern, targets in routes.items()]
    return "\n".join(lines) + "\n"


def make_backends(toml: str) -> tuple[dict[str, Backend], Router]:
    file = parse_config(tomllib.loads(toml), {})
    backends = build_backends(
        file.backends,
        {"plain": PlainProvider},
        {"budget-effort": BudgetEffortConfigurator},
        reasoning_options={},
        env={},
    )
    return backends, Router(parse_routes(file.routes, backends), (), backends)


@dataclass
class Rig:
    """A pipeline whose backends are FakeUpstreams under their real stacks, on a fake clock."""

    pipeline: MessagesPipeline
    fakes: dict[str, FakeUpstream]
    clock: FakeClock
    recorder: Recorder

    def calls(self, name: str) -> int:
        return len(self.fakes[name].requests)

    def sent(self, name: str, index: int = -1) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.fakes[name].requests[index].body)
        return body


def connect_fakes(
    backends: Mapping[str, Backend],
    handlers: Mapping[str, Handler],
    *,
    clock: Clock = time.monotonic,
    sleep: Sleep = asyncio.sleep,
    on_attempt: AttemptObserver | None = None,
) -> dict[str, FakeUpstream]:
    """Each backend's transport replaced by a FakeUpstream answering with its handler (a backend without one
    answers every request); the stack around it built from the backend's table, on `clock`."""
    states = UpstreamStates()
    fakes: dict[str, FakeUpstream] = {}
    for name, backend in backends.items():
        fake = FakeUpstream(handlers.get(name, answer), detect_overflow=prompt_too_long, clock=clock, sleep=sleep)
        fakes[name] = fake
        backend.transport = fake
        backend.upstream = build_upstream(
            name, backend.config, fake, states, on_attempt=on_attempt, clock=clock, sleep=sleep, random=half
        )
    return fakes


def swap_transports(backends: Mapping[str, Backend], handlers: Mapping[str, Handler]) -> dict[str, FakeUpstream]:
    """Each backend's aiohttp transport replaced by a FakeUpstream answering with its handler (a backend without
    one answers every request), inside the stack the app built from the backend's table."""
    fakes: dict[str, FakeUpstream] = {}
    for name, backend in backends.items():
        fake = fakes[name] = FakeUpstream(handlers.get(name, answer), detect_overflow=prompt_too_long)
        layer = backend.upstream
        if layer is backend.transport:
            backend.upstream = fake
        while isinstance(layer, UpstreamWrapper):
            if layer.inner is backend.transport:
                layer.inner = fake
            layer = layer.inner
        backend.transport = fake
    return fakes


def half() -> float:
    """The jitter draw: half the backoff window."""
    return 0.5


class Recorder(Observer):
    """Keeps what observers are told."""

    def __init__(self) -> None:
        self.attempts: list[UpstreamAttempt] = []
        self.records: list[RequestRecord] = []

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        self.attempts.append(attempt)

    def request_done(self, record: RequestRecord) -> None:
        self.records.append(record)


def make_rig(
    toml: str, handlers: Mapping[str, Handler], *, clock: FakeClock | None = None, guardrails: Sequence[Guardrail] = ()
) -> Rig:
    """The pipeline over `toml`'s backends and routes, every attempt reported to `rig.recorder` (pass a
    RequestRecord to `prepare` for them to carry one)."""
    clock = clock or FakeClock()
    backends, router = make_backends(toml)
    recorder = Recorder()
    redact = Redactor()
    fakes = connect_fakes(
        backends, handlers, clock=clock, sleep=clock.sleep, on_attempt=attempt_reporter(Observers([recorder]), redact)
    )
    pipeline = MessagesPipeline(
        backends=backends,
        router=router,
        guardrails=tuple(guardrails),
        load_tokens=TokenCounter.load,
        cache=MemoryCacheBackend(),
        redact=redact,
        clock=clock,
    )
    return Rig(pipeline, fakes, clock, recorder)


def sequence(*answers: FakeResponse | Callable[[UpstreamRequest], FakeResponse]) -> Handler:
    """A handler giving `answers` in order, then the last one again and again (a callable is called)."""
    queue = list(answers)

    def handler(request: UpstreamRequest) -> FakeResponse:
        found = queue.pop(0) if len(queue) > 1 else queue[0]
        return found(request) if callable(found) else found

    return handler
