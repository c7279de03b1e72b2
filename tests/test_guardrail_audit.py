"""The guardrail audit surface: the `audit` hook argument, GuardrailEvent to observers and the log, and what a
guardrail knows of a request (principal, body size)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar

import pytest
from sanic import Sanic

from ccproxy import (
    Authenticator,
    AuthRequest,
    Guardrail,
    GuardrailContext,
    GuardrailEvent,
    Observer,
    Principal,
    ProxyError,
    hookimpl,
)
from ccproxy.app import CCProxyApp, create_app
from ccproxy.settings import Settings
from tests.api.conftest import sdk_like

HELLO = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


class Recorder(Observer):
    def __init__(self) -> None:
        self.events: list[GuardrailEvent] = []

    def guardrail_event(self, event: GuardrailEvent) -> None:
        self.events.append(event)


class Broken(Observer):
    def guardrail_event(self, event: GuardrailEvent) -> None:
        raise RuntimeError("observer bug")


class Refuse(Guardrail):
    """Reports what it saw of the request, then refuses it."""

    name: ClassVar[str] = "refuse"

    def __init__(self, audit: Callable[[GuardrailEvent], None]) -> None:
        self.audit = audit
        self.seen: list[GuardrailContext] = []

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        self.seen.append(context)
        self.audit(GuardrailEvent(context.request_id, self.name, "block", "request", labels=("word",), detail="d"))
        raise ProxyError("refused", status=403)


class Plugin:
    def __init__(self, *observers: Observer) -> None:
        self.observers = observers
        self.guard: Refuse | None = None
        self.filter_audit: Callable[[GuardrailEvent], None] | None = None

    @hookimpl
    def ccproxy_register_guardrails(self, register: Any, audit: Callable[[GuardrailEvent], None]) -> None:
        self.guard = Refuse(audit)
        register(self.guard)

    @hookimpl
    def ccproxy_register_stream_filters(self, register: Any, options: Mapping[str, Any], audit: Any) -> None:
        self.filter_audit = audit
        register(lambda context: None)

    @hookimpl
    def ccproxy_register_observers(self, register: Any) -> None:
        for observer in self.observers:
            register(observer)

    @hookimpl
    def ccproxy_register_authenticators(self, register: Any) -> None:
        register(KeyId())


class KeyId(Authenticator):
    async def authenticate(self, request: AuthRequest) -> Principal | None:
        return Principal(key_id=request.headers.get("x-api-key", "anonymous"))


@pytest.fixture
def make_app() -> Iterator[Callable[..., CCProxyApp]]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(plugin: object, **kwargs: Any) -> CCProxyApp:
        settings = Settings(api_key="sk-test-0123456789", base_url="http://upstream.test/v1", **kwargs)
        app = sdk_like(create_app(settings, plugins=[("audit-test", plugin)]))
        made.append(app)
        return app

    yield build
    for app in made:
        Sanic.unregister_app(app)


async def test_an_audited_refusal_reaches_observers_and_the_log(
    make_app: Callable[..., CCProxyApp], caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder()
    plugin = Plugin(Broken(), recorder)
    app = make_app(plugin)
    logging.getLogger("ccproxy").addHandler(caplog.handler)  # the app's logger does not propagate
    with caplog.at_level(logging.INFO, "ccproxy"):
        _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(HELLO), headers={"x-api-key": "k1"})
    assert response.status == 403  # a failing observer does not change the answer
    [event] = recorder.events
    assert event == GuardrailEvent(response.headers["request-id"], "refuse", "block", "request", 1, ("word",), "d")
    audit = [r.getMessage() for r in caplog.records if r.name == "ccproxy.audit"]
    assert audit == [f"{event.request_id} guardrail 'refuse' block on the request, count 1 (word): d"]
    assert "observer Broken failed in guardrail_event" in caplog.text
    assert plugin.filter_audit is not None  # stream filter hooks get the same reporter


async def test_a_guardrail_sees_the_principal_and_the_body_size(make_app: Callable[..., CCProxyApp]) -> None:
    plugin = Plugin()
    app = make_app(plugin)
    raw = json.dumps(HELLO)
    await app.asgi_client.post("/v1/messages", content=raw, headers={"x-api-key": "team-a"})
    assert plugin.guard is not None
    [context] = plugin.guard.seen
    assert context.principal == Principal(key_id="team-a")
    assert context.body_bytes == len(raw.encode())


def test_observers_ignore_guardrail_events_by_default() -> None:
    Observer().guardrail_event(GuardrailEvent("req_1", "rule", "redact", "response", 2))


async def test_the_built_in_allowed_models_refusal_is_audited(make_app: Callable[..., CCProxyApp]) -> None:
    recorder = Recorder()

    class Observe:
        @hookimpl
        def ccproxy_register_observers(self, register: Any) -> None:
            register(recorder)

    app = make_app(Observe(), guardrail_options={"allowed_models": ["claude-haiku-*"]})
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(HELLO))
    assert response.status == 403
    assert [(e.rule, e.action, e.detail) for e in recorder.events] == [("allowed_models", "block", "model")]
