"""Property tests of what clients send, through the real app against a scripted fake upstream (issue 11 item 8).

Valid Anthropic requests (tests/support/anthropic_strategies.py) get a well-formed answer — a message or a stream
that passes the Anthropic grammar — and the OpenAI request ccproxy sends for them passes api.openai.com's checks
(tests/support/openai_rules.py); invalid ones get an Anthropic error with a 4xx status. Throughout: no 5xx that the
upstream did not produce, every error in the Anthropic envelope, no traceback in a body or a log record. Budgets are
fixed (derandomize, bounded examples) so the suite stays fast and the same on every run.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ccproxy.app import CCProxyApp
from tests.api.conftest import API_KEY
from tests.support.anthropic_message import check_message
from tests.support.anthropic_strategies import (
    MESSAGES_ONLY_FIELDS,
    ClientBody,
    count_tokens_requests,
    invalid_requests,
    messages_requests,
)
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.log_watch import LogWatch, watching_logs
from tests.support.mock_upstream import Answer, MockUpstream, Received
from tests.support.openai_rules import OpenAIError, RequestValidator
from tests.support.served_app import ServedApp, served

PROPERTY_SETTINGS = settings(
    max_examples=150,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The status and error type an upstream error turns into for the client (wire.md 5: the mapping ccproxy documents).
UPSTREAM_ERRORS = {400: "invalid_request_error", 429: "rate_limit_error", 500: "api_error", 503: "overloaded_error"}
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "/')


@pytest.fixture
async def proxy(app: CCProxyApp) -> AsyncIterator[ServedApp]:
    """The app started once for all of a test's examples."""
    async with served(app) as client:
        yield client


@pytest.fixture
def log_watch(proxy: ServedApp) -> Iterator[LogWatch]:
    """Fails the test on an ERROR record or a logged traceback (installed once the app is started)."""
    with watching_logs() as watch:
        yield watch
    assert not watch.records, watch.problems()


# -------------------------------------------------------------------------------------------- the fake upstream


@dataclass
class Script:
    """What the fake upstream answers next, and what it saw."""

    answer: str = "text"  # "text", "tool", "think" or an HTTP status as a string
    bodies: list[dict[str, Any]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)  # OpenAI request checks that failed


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return "data: " + json.dumps({"id": "c", "object": "chat.completion.chunk", "choices": [choice]}) + "\n\n"


def _answer_parts(script: Script, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The assistant message and finish reason for the script's answer."""
    names = [tool["function"]["name"] for tool in body.get("tools") or ()]
    if script.answer == "tool" and names and body.get("tool_choice") != "none":
        call = {"id": "call_1", "type": "function", "function": {"name": names[0], "arguments": '{"command": "ls"}'}}
        return {"role": "assistant", "content": None, "tool_calls": [call]}, "tool_calls"
    message: dict[str, Any] = {"role": "assistant", "content": "Paris."}
    if script.answer == "think":
        message["reasoning_content"] = "Let me think."
    return message, "stop"


def _stream_body(message: dict[str, Any], finish: str) -> str:
    parts = [_chunk({"role": "assistant", "content": ""})]
    if message.get("reasoning_content"):
        parts.append(_chunk({"reasoning_content": message["reasoning_content"]}))
    if message.get("content"):
        parts += [_chunk({"content": "Par"}), _chunk({"content": "is."})]
    for index, call in enumerate(message.get("tool_calls") or ()):
        head = {**call, "index": index, "function": {"name": call["function"]["name"], "arguments": ""}}
        parts.append(_chunk({"tool_calls": [head]}))
        parts.append(_chunk({"tool_calls": [{"index": index, "function": call["function"]}]}))
    parts.append(_chunk({}, finish))
    usage = {"prompt_tokens": 12, "completion_tokens": 3}
    parts.append("data: " + json.dumps({"id": "c", "choices": [], "usage": usage}) + "\n\ndata: [DONE]\n\n")
    return "".join(parts)


def fake_upstream(script: Script) -> Callable[[Received], Answer]:
    def answer(received: Received) -> Answer:
        body = received.json
        script.bodies.append(body)
        try:
            # top_k goes to servers that take it (vLLM, llama.cpp: any base URL but api.openai.com's), as here.
            RequestValidator().validate({name: value for name, value in body.items() if name != "top_k"})
        except OpenAIError as exc:
            script.refusals.append(f"{exc.message} (param {exc.param})")
            return Answer(status=exc.status, payload=exc.body())
        if script.answer.isdigit():
            error = {"error": {"message": f"scripted {script.answer}", "type": "server_error"}}
            return Answer(status=int(script.answer), payload=error)
        message, finish = _answer_parts(script, body)
        if body.get("stream"):
            return Answer(body=_stream_body(message, finish), content_type="text/event-stream")
        completion = {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {"prompt_tokens": 12, "completion_tokens": 3},
        }
        return Answer(payload=completion)

    return answer


@pytest.fixture
def script(upstream: MockUpstream) -> Script:
    found = Script()
    upstream.post(upstream.chat_url, callback=fake_upstream(found), repeat=True)
    return found


# -------------------------------------------------------------------------------------------- checks


async def post(proxy: ServedApp, path: str, raw: bytes) -> httpx.Response:
    return await proxy.post(path, raw, {"x-api-key": "k"})


def assert_no_traceback(text: str) -> None:
    assert not any(mark in text for mark in TRACEBACK_MARKS), text[:2000]
    assert API_KEY not in text


def anthropic_error(response: httpx.Response) -> dict[str, Any]:
    """The error of an Anthropic-envelope error response (checked to be one)."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    body = response.json()
    assert isinstance(body, dict) and body.get("type") == "error", response.text[:500]
    error: dict[str, Any] = body["error"]
    assert isinstance(error.get("type"), str) and isinstance(error.get("message"), str) and error["message"]
    assert error["message"] != "Internal proxy error", "an unexpected exception inside ccproxy"
    return error


def check_answer(response: httpx.Response, stream: bool) -> dict[str, Any]:
    """The answer to a valid request with a healthy upstream: a stream that passes the grammar, or a message."""
    assert response.status_code == 200, response.text[:2000]
    if not stream:
        message: dict[str, Any] = response.json()
        check_message(message)
        return message
    assert response.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(response.content)
    check_stream(events)
    assert events[-1]["type"] == "message_stop", events[-3:]
    return accumulate(events)


# -------------------------------------------------------------------------------------------- the properties


@PROPERTY_SETTINGS
@given(body=messages_requests(), answer=st.sampled_from(["text", "text", "tool", "think", "400", "429", "500", "503"]))
async def test_a_valid_request_gets_a_valid_answer_or_the_upstreams_error(
    proxy: ServedApp, script: Script, log_watch: LogWatch, body: dict[str, Any], answer: str
) -> None:
    script.answer, sent_before, script.refusals = answer, len(script.bodies), []
    response = await post(proxy, "/v1/messages", json.dumps(body).encode())
    assert_no_traceback(response.text)
    assert len(script.bodies) == sent_before + 1, "a valid request reaches the upstream once"
    assert not script.refusals, f"ccproxy sent an OpenAI request api.openai.com refuses: {script.refusals}"
    if answer.isdigit():
        assert response.status_code == int(answer), response.text[:500]
        assert anthropic_error(response)["type"] == UPSTREAM_ERRORS[int(answer)]
        return
    message = check_answer(response, bool(body.get("stream")))
    kinds = [block["type"] for block in message["content"]]
    assert "text" in kinds or "tool_use" in kinds, kinds


@PROPERTY_SETTINGS
@given(client=invalid_requests(), stream=st.booleans())
async def test_an_invalid_request_gets_an_anthropic_error_never_a_failure(
    proxy: ServedApp, script: Script, log_watch: LogWatch, client: ClientBody, stream: bool
) -> None:
    raw = client.raw
    if stream and raw.startswith(b"{") and raw.endswith(b"}") and client.field != "stream":
        raw = raw[:-1] + b', "stream": true}'  # the same body as a stream request (a later key wins)
    script.answer, sent_before = "text", len(script.bodies)
    response = await post(proxy, "/v1/messages", raw)
    assert_no_traceback(response.text)
    # An odd request may reach the upstream and be refused there: the client then gets that 4xx, in the envelope.
    if client.expect == "refused":
        assert response.status_code == 400, f"{client.why}: {response.status_code} {response.text[:500]}"
        assert anthropic_error(response)["type"] == "invalid_request_error"
        assert len(script.bodies) == sent_before, f"{client.why}: a refused request reached the upstream"
    elif response.status_code != 200:
        assert 400 <= response.status_code < 500, f"{client.why}: {response.status_code} {response.text[:500]}"
        anthropic_error(response)
    else:
        check_answer(response, response.headers["content-type"].startswith("text/event-stream"))


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(body=count_tokens_requests())
async def test_count_tokens_counts_every_valid_request(
    proxy: ServedApp, script: Script, log_watch: LogWatch, body: dict[str, Any]
) -> None:
    response = await post(proxy, "/v1/messages/count_tokens", json.dumps(body).encode())
    assert response.status_code == 200, response.text[:2000]
    assert isinstance(response.json()["input_tokens"], int) and response.json()["input_tokens"] > 0
    assert not script.bodies, "count_tokens never calls the upstream"


@settings(PROPERTY_SETTINGS, max_examples=80)
@given(client=invalid_requests())
async def test_count_tokens_refuses_invalid_requests_with_an_anthropic_error(
    proxy: ServedApp, script: Script, log_watch: LogWatch, client: ClientBody
) -> None:
    response = await post(proxy, "/v1/messages/count_tokens", client.raw)
    assert_no_traceback(response.text)
    if response.status_code == 200:
        assert client.expect == "any" or client.field in MESSAGES_ONLY_FIELDS, client.why
        assert isinstance(response.json()["input_tokens"], int)
    else:
        assert 400 <= response.status_code < 500, f"{client.why}: {response.status_code} {response.text[:500]}"
        anthropic_error(response)
