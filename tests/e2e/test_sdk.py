"""The real proxy process driven by the official `anthropic` SDK against the fake OpenAI upstream."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types import Message, TextBlock, ThinkingBlock, ToolParam, ToolUseBlock

from tests.support.anthropic_stream import check_stream, parse_sse, streamed_message, wire_text
from tests.support.fake_openai import (
    BASH_ARGUMENTS,
    CACHED_TOKENS,
    COMPLETION_TOKENS,
    FAKE_REASONING,
    PROMPT_TOKENS,
    RETRY_AFTER_SECONDS,
)
from tests.support.proxy_process import FakeUpstream, ProxyServer, start_proxy

pytestmark = pytest.mark.e2e

SONNET = "claude-sonnet-5"
HAIKU = "claude-haiku-4-5"
BASH_TOOL: ToolParam = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {
        "type": "object",
        "properties": {"command": {"type": "string"}, "description": {"type": "string"}},
        "required": ["command"],
    },
}
WEATHER_TOOL: ToolParam = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}
# Upstream HTTP status -> (SDK exception class, Anthropic error.type) the client must see (wire.md 4.5).
UPSTREAM_ERRORS: dict[int, tuple[type[anthropic.APIStatusError], str]] = {
    400: (anthropic.BadRequestError, "invalid_request_error"),
    401: (anthropic.AuthenticationError, "authentication_error"),
    403: (anthropic.PermissionDeniedError, "permission_error"),
    404: (anthropic.NotFoundError, "not_found_error"),
    413: (anthropic.ContentTooLargeError, "request_too_large"),
    429: (anthropic.RateLimitError, "rate_limit_error"),
    500: (anthropic.InternalServerError, "api_error"),
    502: (anthropic.InternalServerError, "api_error"),
    503: (anthropic.ServiceUnavailableError, "overloaded_error"),
    504: (anthropic.GatewayTimeoutError, "timeout_error"),
}


def user(text: str) -> list[Any]:
    """A one-message conversation (typed loosely: the SDK's message TypedDicts do not narrow well)."""
    return [{"role": "user", "content": text}]


def text_of(message: Message) -> str:
    return "".join(block.text for block in message.content if isinstance(block, TextBlock))


def tool_uses(message: Message) -> list[ToolUseBlock]:
    return [block for block in message.content if isinstance(block, ToolUseBlock)]


def upstream_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, list):
        return "\n".join(part.get("text", "") for part in content)
    return str(content or "")


def raw_post(
    proxy: ProxyServer, path: str, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """A request outside the SDK, for bodies the SDK would refuse to build."""
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        base = {"content-type": "application/json", "x-api-key": "dummy", "anthropic-version": "2023-06-01"}
        connection.request("POST", path, payload, {**base, **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


# --- plain messages ----------------------------------------------------------------------------------------


def test_non_stream_message(client: anthropic.Anthropic, fake: FakeUpstream, proxy: ProxyServer) -> None:
    raw = client.messages.with_raw_response.create(model=SONNET, max_tokens=1024, messages=user("Say hello"))
    message = raw.parse()
    assert raw.headers["request-id"].startswith("req_")
    assert message.id.startswith("msg_") and message.type == "message" and message.role == "assistant"
    assert [b.type for b in message.content] == ["text"]
    assert text_of(message) == f"FAKE_OPENAI_REPLY: {proxy.big_model}"
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    sent = fake.last_chat()
    assert sent["headers"]["authorization"] == f"Bearer {proxy.api_key}"
    assert sent["body"]["model"] == proxy.big_model
    assert sent["body"]["max_completion_tokens"] == 1024 and "max_tokens" not in sent["body"]
    assert not sent["body"].get("stream")


def test_haiku_goes_to_the_small_model_with_sampling_parameters(
    client: anthropic.Anthropic, fake: FakeUpstream, proxy: ProxyServer
) -> None:
    message = client.messages.create(
        model=HAIKU,
        max_tokens=300,
        system="Be brief.",
        stop_sequences=["END"],
        messages=user("Say hello"),
        extra_body={"temperature": 0.5},  # this SDK version has no temperature parameter any more
    )
    assert text_of(message) == f"FAKE_OPENAI_REPLY: {proxy.small_model}"
    body = fake.last_chat()["body"]
    assert (body["model"], body["max_tokens"], body["temperature"], body["stop"]) == (
        proxy.small_model,
        300,
        0.5,
        ["END"],
    )
    assert body["messages"][0]["role"] in ("system", "developer")
    assert upstream_text(body["messages"][0]) == "Be brief."
    assert upstream_text(body["messages"][-1]) == "Say hello"


def test_anthropic_only_fields_do_not_reach_the_upstream(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    """Claude Code sends cache_control, context_management, output_config and a long JSON metadata.user_id."""
    user_id = json.dumps({"device_id": "d" * 64, "account_uuid": "", "session_id": "5" * 36})
    message = client.messages.create(
        model=SONNET,
        max_tokens=512,
        system=[{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Say hi", "cache_control": {"type": "ephemeral"}}],
            }
        ],
        metadata={"user_id": user_id},
        extra_body={"context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]}},
    )
    assert message.content[0].type == "text", fake.summary()
    assert "cache_control" not in json.dumps(fake.last_chat()["body"])


def test_stream_text(client: anthropic.Anthropic, fake: FakeUpstream, proxy: ProxyServer) -> None:
    with client.messages.stream(model=SONNET, max_tokens=1024, messages=user("Say hello")) as stream:
        pieces = list(stream.text_stream)
        final = stream.get_final_message()
        assert stream.response.headers["request-id"].startswith("req_")
    expected = f"FAKE_OPENAI_REPLY: {proxy.big_model}"
    assert len(pieces) >= 2, "text must arrive incrementally, not in one delta"
    assert "".join(pieces) == expected
    assert text_of(final) == expected
    assert final.stop_reason == "end_turn"
    assert (final.usage.input_tokens, final.usage.output_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    body = fake.last_chat()["body"]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


def test_stream_wire_grammar(proxy: ProxyServer, fake: FakeUpstream) -> None:
    body = {"model": SONNET, "max_tokens": 100, "stream": True, "messages": user("Say hello")}
    status, headers, raw = raw_post(proxy, "/v1/messages", body)
    assert status == 200, raw
    assert headers["content-type"].startswith("text/event-stream")
    message = streamed_message(raw)
    assert wire_text(message) == f"FAKE_OPENAI_REPLY: {proxy.big_model}"
    assert message["stop_reason"] == "end_turn"


def test_cached_tokens_become_cache_reads(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    usage = client.messages.create(model=SONNET, max_tokens=64, messages=user("CACHED hello")).usage
    assert usage.cache_read_input_tokens == CACHED_TOKENS
    assert usage.input_tokens == PROMPT_TOKENS - CACHED_TOKENS
    with client.messages.stream(model=SONNET, max_tokens=64, messages=user("CACHED hello")) as stream:
        final = stream.get_final_message()
    assert final.usage.cache_read_input_tokens == CACHED_TOKENS
    assert final.usage.input_tokens == PROMPT_TOKENS - CACHED_TOKENS


# --- tools -------------------------------------------------------------------------------------------------


def create(client: anthropic.Anthropic, stream: bool, **params: Any) -> Message:
    """messages.create, or messages.stream(...).get_final_message() so both paths are checked the same way."""
    if not stream:
        message: Message = client.messages.create(**params)
        return message
    with client.messages.stream(**params) as events:
        return events.get_final_message()


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_tool_round_trip(client: anthropic.Anthropic, fake: FakeUpstream, stream: bool) -> None:
    params: dict[str, Any] = {"model": SONNET, "max_tokens": 1024, "tools": [BASH_TOOL]}
    messages = user("USE_BASH: run a shell command")
    first = create(client, stream, messages=messages, **params)
    assert first.stop_reason == "tool_use"
    (tool_use,) = tool_uses(first)
    assert (tool_use.name, tool_use.input) == ("Bash", BASH_ARGUMENTS)
    assert tool_use.id
    result = {"type": "tool_result", "tool_use_id": tool_use.id, "content": "fake-tool-output"}
    messages += [{"role": "assistant", "content": first.content}, {"role": "user", "content": [result]}]
    second = create(client, stream, messages=messages, **params)
    assert text_of(second) == "TOOL_RESULT_SEEN: fake-tool-output", fake.summary()
    assert second.stop_reason == "end_turn"
    sent = fake.last_chat()["body"]["messages"]
    assert sent[-1]["role"] == "tool" and sent[-2]["tool_calls"][0]["id"] == sent[-1]["tool_call_id"]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_parallel_tool_calls(client: anthropic.Anthropic, fake: FakeUpstream, stream: bool) -> None:
    params: dict[str, Any] = {"model": SONNET, "max_tokens": 1024, "tools": [WEATHER_TOOL, BASH_TOOL]}
    messages = user("USE_TWO_TOOLS: weather in two cities")
    first = create(client, stream, messages=messages, **params)
    calls = tool_uses(first)
    assert [(c.name, c.input) for c in calls] == [
        ("get_weather", {"city": "Paris"}),
        ("get_weather", {"city": "Tokyo"}),
    ]
    assert len({c.id for c in calls}) == 2
    assert first.stop_reason == "tool_use"
    results = [
        {"type": "tool_result", "tool_use_id": call.id, "content": weather}
        for call, weather in zip(calls, ["sunny", "rainy"], strict=True)
    ]
    messages += [{"role": "assistant", "content": first.content}, {"role": "user", "content": results}]
    second = create(client, stream, messages=messages, **params)
    assert text_of(second) == "TOOL_RESULT_SEEN: sunny\nrainy", fake.summary()


def test_tool_result_with_error_flag_and_text_blocks(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    params: dict[str, Any] = {"model": SONNET, "max_tokens": 256, "tools": [BASH_TOOL]}
    first = create(client, False, messages=user("USE_BASH"), **params)
    (tool_use,) = tool_uses(first)
    result = {
        "type": "tool_result",
        "tool_use_id": tool_use.id,
        "is_error": True,
        "content": [{"type": "text", "text": "command not found"}],
    }
    messages = [
        *user("USE_BASH"),
        {"role": "assistant", "content": first.content},
        {"role": "user", "content": [result, {"type": "text", "text": "What happened?"}]},
    ]
    second = create(client, False, messages=messages, **params)
    assert text_of(second).startswith("TOOL_RESULT_SEEN: "), fake.summary()
    assert "command not found" in text_of(second)


# --- thinking ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_thinking_block_comes_before_text(client: anthropic.Anthropic, fake: FakeUpstream, stream: bool) -> None:
    message = create(
        client,
        stream,
        model=SONNET,
        max_tokens=4096,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=user("THINK: what is 2+2?"),
    )
    assert [b.type for b in message.content] == ["thinking", "text"], fake.summary()
    assert [b.thinking for b in message.content if isinstance(b, ThinkingBlock)] == [FAKE_REASONING]
    assert text_of(message).startswith("FAKE_OPENAI_REPLY: ")


def test_thinking_stream_events(proxy: ProxyServer, fake: FakeUpstream) -> None:
    body = {
        "model": SONNET,
        "max_tokens": 4096,
        "stream": True,
        "thinking": {"type": "enabled", "budget_tokens": 2048},
        "messages": user("THINK please"),
    }
    status, _, raw = raw_post(proxy, "/v1/messages", body)
    assert status == 200, raw
    message = streamed_message(raw)
    assert [b["type"] for b in message["content"]] == ["thinking", "text"]
    assert message["content"][0]["thinking"] == FAKE_REASONING


# --- count_tokens ------------------------------------------------------------------------------------------


def test_count_tokens(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    short = client.messages.count_tokens(model=SONNET, messages=user("Hello"))
    long = client.messages.count_tokens(model=SONNET, messages=user("Hello " + "lorem ipsum dolor " * 200))
    with_tools = client.messages.count_tokens(model=SONNET, messages=user("Hello"), tools=[BASH_TOOL, WEATHER_TOOL])
    assert isinstance(short.input_tokens, int) and short.input_tokens > 0
    assert long.input_tokens > short.input_tokens + 300
    assert with_tools.input_tokens > short.input_tokens
    raw = client.messages.with_raw_response.count_tokens(model=SONNET, messages=user("Hello"))
    assert raw.headers["request-id"].startswith("req_")
    assert fake.chat_requests() == [], "count_tokens must not call the upstream's chat completions"


def test_count_tokens_with_beta_query(proxy: ProxyServer) -> None:
    body = {"model": SONNET, "messages": user("Hello"), "tools": [BASH_TOOL]}
    status, _, raw = raw_post(proxy, "/v1/messages/count_tokens?beta=true", body)
    assert status == 200, raw
    assert list(json.loads(raw)) == ["input_tokens"]


# --- errors ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("status", sorted(UPSTREAM_ERRORS))
def test_upstream_errors_raise_the_matching_sdk_exception(
    client: anthropic.Anthropic, fake: FakeUpstream, status: int, stream: bool
) -> None:
    error_class, error_type = UPSTREAM_ERRORS[status]
    with pytest.raises(anthropic.APIStatusError) as caught:
        create(client, stream, model=SONNET, max_tokens=64, messages=user(f"FAIL_{status} please"))
    error = caught.value
    assert type(error) is error_class, f"{type(error).__name__}: {error}"
    assert error.status_code == status
    assert isinstance(error.body, dict) and error.body["type"] == "error"
    assert error.body["error"]["type"] == error_type
    assert error.response.headers["content-type"].startswith("application/json")
    assert error.response.headers["request-id"].startswith("req_")
    if status == 429:
        assert error.response.headers["retry-after"] == RETRY_AFTER_SECONDS


def test_midstream_error_surfaces_as_an_sdk_error(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model=SONNET, max_tokens=64, messages=user("MIDSTREAM_ERROR")) as stream,
    ):
        received.extend(stream.text_stream)
    assert received, "the text sent before the error should have been streamed"
    body = caught.value.body
    assert isinstance(body, dict) and body["type"] == "error"
    assert body["error"]["type"] == "api_error"
    assert "provider died" in body["error"]["message"]


def test_midstream_error_event_on_the_wire(proxy: ProxyServer, fake: FakeUpstream) -> None:
    body = {"model": SONNET, "max_tokens": 64, "stream": True, "messages": user("MIDSTREAM_ERROR")}
    status, _, raw = raw_post(proxy, "/v1/messages", body)
    events = parse_sse(raw)
    check_stream(events)
    assert status == 200
    assert any(e["type"] == "content_block_delta" for e in events), "the text before the error was lost"
    assert events[-1]["type"] == "error" and events[-1]["error"]["type"] == "api_error"


@pytest.mark.parametrize(
    "body",
    [
        {"model": SONNET, "messages": user("no max_tokens")},
        {"model": SONNET, "max_tokens": 10},
        {"max_tokens": 10, "messages": user("no model")},
        {"model": SONNET, "max_tokens": 10, "messages": "not a list"},
    ],
    ids=["no-max_tokens", "no-messages", "no-model", "messages-not-a-list"],
)
def test_invalid_request_is_a_400_without_calling_upstream(
    proxy: ProxyServer, fake: FakeUpstream, body: dict[str, Any]
) -> None:
    status, headers, raw = raw_post(proxy, "/v1/messages", body)
    assert status == 400, raw
    answer = json.loads(raw)
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert headers["request-id"].startswith("req_")
    assert fake.chat_requests() == []


def test_malformed_json_is_a_400(proxy: ProxyServer, fake: FakeUpstream) -> None:
    status, _, raw = raw_post(proxy, "/v1/messages", b'{"model": "x", ')
    assert status == 400, raw
    assert json.loads(raw)["error"]["type"] == "invalid_request_error"


def test_sdk_post_without_max_tokens_raises_bad_request(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with pytest.raises(anthropic.BadRequestError) as caught:
        client.post("/v1/messages", body={"model": SONNET, "messages": user("hi")}, cast_to=object)
    assert caught.value.type == "invalid_request_error"


# --- beta, headers, secrets --------------------------------------------------------------------------------


def test_beta_messages(client: anthropic.Anthropic, fake: FakeUpstream, proxy: ProxyServer) -> None:
    message = client.beta.messages.create(
        model=SONNET, max_tokens=128, messages=user("Say hello"), betas=["interleaved-thinking-2025-05-14"]
    )
    assert "".join(getattr(b, "text", "") for b in message.content) == f"FAKE_OPENAI_REPLY: {proxy.big_model}"


def test_health_and_models_carry_request_ids(proxy: ProxyServer, client: anthropic.Anthropic) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    for method, path in [("GET", "/"), ("HEAD", "/"), ("GET", "/v1/models"), ("GET", "/v1/no-such-route")]:
        connection.request(method, path)
        response = connection.getresponse()
        response.read()
        assert response.getheader("request-id", "").startswith("req_"), (method, path, response.status)
    connection.close()


def test_upstream_error_echoing_the_key_is_redacted(proxy: ProxyServer, fake: FakeUpstream) -> None:
    for stream in (False, True):
        body = {"model": SONNET, "max_tokens": 64, "stream": stream, "messages": user("ECHO_KEY")}
        status, headers, raw = raw_post(proxy, "/v1/messages", body)
        assert status == 401
        assert proxy.api_key not in raw.decode() and proxy.api_key not in json.dumps(headers)


# --- disconnects and timeouts ------------------------------------------------------------------------------


def test_client_disconnect_mid_stream_cancels_the_upstream(proxy: ProxyServer, fake: FakeUpstream) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    body = {"model": SONNET, "max_tokens": 64, "stream": True, "messages": user("HANG_STREAM")}
    headers = {"content-type": "application/json", "x-api-key": "dummy", "anthropic-version": "2023-06-01"}
    connection.request("POST", "/v1/messages", json.dumps(body), headers)
    response = connection.getresponse()
    assert response.status == 200
    seen = b""
    while b"event: content_block_delta" not in seen:
        line = response.readline()
        assert line, "stream ended before any content_block_delta"
        seen += line
    assert not fake.last_chat()["cancelled"]
    response.close()
    connection.close()
    fake.wait_for(lambda r: r["cancelled"], "cancelled after the client went away", timeout=5)


def test_client_timeout_before_first_byte_cancels_the_upstream(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=1.0).messages.create(model=SONNET, max_tokens=64, messages=user("SLOW_10"))
    fake.wait_for(lambda r: r["cancelled"], "cancelled after the client timed out", timeout=5)


@pytest.fixture
def spare_proxy(e2e_logs: Path, fake_upstream: FakeUpstream, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Start an extra proxy with other settings: `spare_proxy(name, workers=..., extra_env=...)`."""
    started: list[ProxyServer] = []

    def start(name: str, **options: Any) -> ProxyServer:
        server = start_proxy(
            e2e_logs,
            upstream=fake_upstream,
            api_key=fake_upstream.api_key or "",
            big_model="gpt-5",
            small_model="gpt-4o-mini",
            name=name,
            **options,
        )
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop_and_check()


def test_two_workers_serve_concurrent_requests(spare_proxy: Any, fake: FakeUpstream) -> None:
    server = spare_proxy("proxy-2-workers", workers=2)
    prompts = [f"SLOW_1 request {i}" for i in range(8)]
    with anthropic.Anthropic(base_url=server.base_url, api_key="dummy", max_retries=0, timeout=30) as sdk:
        started = time.monotonic()
        with ThreadPoolExecutor(len(prompts)) as pool:
            replies = list(
                pool.map(lambda p: sdk.messages.create(model=SONNET, max_tokens=32, messages=user(p)), prompts)
            )
        elapsed = time.monotonic() - started
    assert [text_of(r) for r in replies] == ["FAKE_OPENAI_REPLY: gpt-5"] * len(prompts)
    assert elapsed < 4, f"8 one-second requests took {elapsed:.1f} s: not served concurrently"


def test_upstream_read_timeout_is_a_504(spare_proxy: Any, fake: FakeUpstream) -> None:
    server = spare_proxy("proxy-timeout", extra_env={"REQUEST_TIMEOUT": "1"})
    with (
        anthropic.Anthropic(base_url=server.base_url, api_key="dummy", max_retries=0, timeout=30) as sdk,
        pytest.raises(anthropic.GatewayTimeoutError) as caught,
    ):
        sdk.messages.create(model=SONNET, max_tokens=32, messages=user("SLOW_4"))
    assert caught.value.type == "timeout_error"


# Last in the module on purpose: by now the DEBUG log holds every kind of request this module makes.
def test_upstream_key_never_appears_in_the_log(proxy: ProxyServer, client: anthropic.Anthropic) -> None:
    client.messages.create(model=SONNET, max_tokens=16, messages=user("Say hello"))
    log = proxy.process.log_text()
    assert log, "the proxy wrote no log at all"
    assert proxy.api_key not in log
