"""The plugin in a real app (installed entry point): requests redacted before they leave, streamed and
non-streamed answers redacted, refusals as Anthropic errors, audit events to observers and the log."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import pytest
from guardrails_support import SECRETS
from sanic import Sanic

from ccproxy import Authenticator, AuthRequest, GuardrailEvent, Observer, Principal, hookimpl
from ccproxy.app import CCProxyApp, create_app
from ccproxy.settings import Settings
from tests.api.conftest import sdk_like
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.mock_upstream import MockUpstream, mock_upstream

KEY = SECRETS["openai"]
R = "[REDACTED]"
HELLO = {"model": "claude-opus-4-8", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


class Recorder(Observer):
    def __init__(self) -> None:
        self.events: list[GuardrailEvent] = []

    def guardrail_event(self, event: GuardrailEvent) -> None:
        self.events.append(event)


class Plugins:
    """A test plugin: an observer, and an authenticator giving `x-api-key: key-<id>` the Principal `<id>`."""

    def __init__(self) -> None:
        self.recorder = Recorder()

    @hookimpl
    def ccproxy_register_observers(self, register: Any) -> None:
        register(self.recorder)

    @hookimpl
    def ccproxy_register_authenticators(self, register: Any) -> None:
        register(KeyIds())


class KeyIds(Authenticator):
    async def authenticate(self, request: AuthRequest) -> Principal | None:
        presented = request.headers.get("x-api-key", "")
        return Principal(key_id=presented.removeprefix("key-")) if presented.startswith("key-") else None


@pytest.fixture
def make_app(upstream: MockUpstream) -> Iterator[Callable[..., tuple[CCProxyApp, Recorder]]]:
    Sanic.test_mode = True
    made: list[CCProxyApp] = []

    def build(**guardrails: Any) -> tuple[CCProxyApp, Recorder]:
        settings = Settings(api_key="sk-test-0123456789", base_url=upstream.base_url, guardrail_options=guardrails)
        plugins = Plugins()
        app = sdk_like(create_app(settings, plugins=[("test", plugins)]))
        made.append(app)
        return app, plugins.recorder

    yield build
    for app in made:
        Sanic.unregister_app(app)


@pytest.fixture
async def upstream() -> AsyncIterator[MockUpstream]:
    async with mock_upstream() as server:  # a real local server: either transport reaches it
        yield server


def sse_body(texts: list[str], arguments: Sequence[str] = ()) -> str:
    chunks: list[dict[str, Any]] = [{"choices": [{"index": 0, "delta": {"content": text}}]} for text in texts]
    if arguments:
        call = {"index": 0, "id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": ""}}
        chunks.append({"choices": [{"index": 0, "delta": {"tool_calls": [call]}}]})
        chunks += [
            {"choices": [{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}}]}
            for piece in arguments
        ]
    finish = "tool_calls" if arguments else "stop"
    chunks.append({"choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    return "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"


async def post(app: CCProxyApp, body: Any, key: str = "key-team-a") -> Any:
    _, response = await app.asgi_client.post("/v1/messages", content=json.dumps(body), headers={"x-api-key": key})
    return response


def sent_upstream(upstream: MockUpstream) -> list[dict[str, Any]]:
    return [call.json for call in upstream.requests]


async def test_a_streamed_answer_with_split_secrets_reaches_the_client_redacted(
    make_app: Callable[..., tuple[CCProxyApp, Recorder]], upstream: MockUpstream
) -> None:
    app, recorder = make_app(redact={})
    arguments = json.dumps({"command": f"export KEY={KEY}"})
    texts = ["Your key is ", KEY[:9], KEY[9:30], KEY[30:], ". Done."]
    body = sse_body(texts, [arguments[:20], arguments[20:45], arguments[45:]])
    upstream.post(upstream.chat_url, body=body, content_type="text/event-stream")
    response = await post(app, {**HELLO, "stream": True})
    assert response.status == 200
    assert KEY[:16].encode() not in response.body
    events = parse_sse(response.body)
    check_stream(events)
    message = accumulate(events)
    assert message["content"][0] == {"type": "text", "text": f"Your key is {R}. Done."}
    assert message["content"][1]["input"] == {"command": f"export KEY={R}"}
    assert [(e.action, e.direction, e.count) for e in recorder.events] == [
        ("redact", "response", 1),
        ("redact", "response", 1),
    ]
    assert {e.request_id for e in recorder.events} == {response.headers["request-id"]}


async def test_a_secret_in_a_prompt_never_reaches_the_upstream(
    make_app: Callable[..., tuple[CCProxyApp, Recorder]], upstream: MockUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    app, recorder = make_app(redact={})
    completion = {"choices": [{"index": 0, "message": {"role": "assistant", "content": f"ok {KEY}"}}]}
    upstream.post(upstream.chat_url, payload={**completion, "usage": {"prompt_tokens": 1, "completion_tokens": 1}})
    logging.getLogger("ccproxy").addHandler(caplog.handler)  # the app's logger does not propagate
    with caplog.at_level(logging.INFO, "ccproxy"):
        response = await post(app, {**HELLO, "messages": [{"role": "user", "content": f"use {KEY} please"}]})
    assert response.status == 200
    assert response.json["content"][0]["text"] == f"ok {R}"
    [sent] = sent_upstream(upstream)
    assert KEY not in json.dumps(sent) and R in json.dumps(sent)
    assert [(e.direction, e.labels) for e in recorder.events] == [("request", ("openai",)), ("response", ("openai",))]
    audit_lines = [r.getMessage() for r in caplog.records if r.name == "ccproxy.audit"]
    assert len(audit_lines) == 2 and "'redact' redact on the request, count 1 (openai)" in audit_lines[0]
    assert KEY not in caplog.text


async def test_refusals_are_anthropic_errors_and_audited(
    make_app: Callable[..., tuple[CCProxyApp, Recorder]], upstream: MockUpstream
) -> None:
    app, recorder = make_app(
        allowed_models=["claude-*"],
        block={"patterns": ["(?i)nightfall"]},
        limits={"models": {"team-a": ["claude-haiku-*"]}, "max_request_bytes": 4000},
    )
    blocked = await post(app, {**HELLO, "messages": [{"role": "user", "content": "Plan NIGHTFALL"}]})
    assert blocked.status == 400
    assert blocked.json["error"]["type"] == "invalid_request_error" and "NIGHTFALL" not in blocked.text
    assert blocked.json["error"]["message"] == "Request refused by guardrail 'block': it matches a blocked pattern"
    wrong_model = await post(app, HELLO)
    assert (wrong_model.status, wrong_model.json["error"]["type"]) == (403, "permission_error")
    assert "key 'team-a'" in wrong_model.json["error"]["message"]
    too_big = await post(app, {**HELLO, "model": "claude-haiku-4-5", "system": "x" * 5000}, key="key-team-b")
    assert (too_big.status, too_big.json["error"]["type"]) == (413, "request_too_large")
    not_allowed = await post(app, {**HELLO, "model": "gpt-4o"}, key="key-team-b")
    assert not_allowed.status == 403  # the built-in allowed_models still works, after the rules
    assert [(e.rule, e.action, e.detail) for e in recorder.events] == [
        ("block", "block", ""),
        ("limits", "block", "models"),
        ("limits", "block", "max_request_bytes"),
        ("allowed_models", "block", "model"),
    ]
    assert sent_upstream(upstream) == []


async def test_a_block_rule_on_answers_ends_a_stream_with_an_error_event(
    make_app: Callable[..., tuple[CCProxyApp, Recorder]], upstream: MockUpstream
) -> None:
    app, _ = make_app(block={"patterns": ["(?i)nightfall"], "directions": ["response"], "status": 403})
    upstream.post(upstream.chat_url, body=sse_body(["All about night", "fall now"]), content_type="text/event-stream")
    response = await post(app, {**HELLO, "stream": True})
    events = parse_sse(response.body)
    check_stream(events)
    assert events[-1] == {
        "type": "error",
        "error": {
            "type": "permission_error",
            "message": "Answer withheld by guardrail 'block': it matches a blocked pattern",
        },
    }
    assert b"fall" not in response.body
