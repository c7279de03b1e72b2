"""Through the real proxy against a fake OpenRouter that refuses what OpenRouter refuses: the reasoning object,
signed thinking, cache markers, attribution and routing, usage with cost, and errors inside a 200."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import pytest
from fake_openrouter import BYOK_COST_USD, BYOK_FEE_USD, CACHE_WRITE_TOKENS, CACHED_TOKENS, COST_USD, PROMPT_TOKENS
from openrouter_support import MODEL, OPENROUTER_KEY, PREFERENCES, FakeOpenRouter

from tests.support.proxy_process import ProxyServer

pytestmark = pytest.mark.e2e

CLIENT_MODEL = "claude-sonnet-5"

SYSTEM = [{"type": "text", "text": "You are terse.", "cache_control": {"type": "ephemeral"}}]
TOOLS: list[Any] = [
    {
        "name": "get_weather",
        "description": "Weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
        "cache_control": {"type": "ephemeral"},
    }
]


@pytest.fixture
def client(openrouter_proxy: ProxyServer) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=openrouter_proxy.base_url, api_key="x", max_retries=0, timeout=30) as sdk:
        yield sdk


def ask(text: str) -> list[Any]:
    return [{"role": "user", "content": [{"type": "text", "text": text, "cache_control": {"type": "ephemeral"}}]}]


def test_a_thinking_budget_is_sent_as_reasoning_max_tokens_and_answers_with_signed_thinking(
    client: anthropic.Anthropic, fake_openrouter: FakeOpenRouter
) -> None:
    with client.messages.stream(
        model=CLIENT_MODEL,
        max_tokens=16000,
        system=SYSTEM,
        tools=TOOLS,
        thinking={"type": "enabled", "budget_tokens": 4000},
        messages=ask("Hello"),
    ) as stream:
        message = stream.get_final_message()
    thinking, text = message.content
    assert thinking.type == "thinking" and thinking.signature and thinking.thinking.startswith("Thinking about")
    assert text.type == "text" and text.text == f"FAKE_OPENROUTER_REPLY: {MODEL}"
    (sent,) = fake_openrouter.requests()
    body, headers = sent["body"], sent["headers"]
    assert body["reasoning"] == {"max_tokens": 4000} and body["max_tokens"] == 16000
    assert body["messages"][0]["content"] == [
        {"type": "text", "text": "You are terse.", "cache_control": SYSTEM[0]["cache_control"]}
    ]
    assert body["messages"][1]["content"][0]["cache_control"] == {"type": "ephemeral"}
    assert "cache_control" not in json.dumps(body["tools"])
    assert body["provider"] == PREFERENCES and body["usage"] == {"include": True}
    assert headers["x-title"] == "ccproxy tests" and headers["http-referer"].startswith("https://")
    assert headers["authorization"] == f"Bearer {OPENROUTER_KEY}"


def test_budget_and_effort_together_send_only_the_budget(
    client: anthropic.Anthropic, fake_openrouter: FakeOpenRouter
) -> None:
    # The fake answers 400 "Only one of reasoning.effort and reasoning.max_tokens can be specified" otherwise.
    message = client.messages.create(
        model=CLIENT_MODEL,
        max_tokens=16000,
        thinking={"type": "enabled", "budget_tokens": 2048},
        messages=ask("Hello"),
        extra_body={"output_config": {"effort": "high"}},
    )
    assert message.content[0].type == "thinking"
    assert fake_openrouter.requests()[0]["body"]["reasoning"] == {"max_tokens": 2048}


def test_disabled_thinking_switches_reasoning_off_unless_it_is_mandatory(
    client: anthropic.Anthropic, fake_openrouter: FakeOpenRouter
) -> None:
    plain = client.messages.create(
        model=CLIENT_MODEL, max_tokens=100, thinking={"type": "disabled"}, messages=ask("Hello")
    )
    assert [block.type for block in plain.content] == ["text"]
    # openai/gpt-5 refuses {"enabled": false} ("Reasoning is mandatory for this endpoint").
    mandatory = client.messages.create(
        model="claude-gpt", max_tokens=100, thinking={"type": "disabled"}, messages=ask("Hello")
    )
    assert [block.type for block in mandatory.content] == ["text"]
    first, second = (r["body"] for r in fake_openrouter.requests())
    assert first["reasoning"] == {"enabled": False}
    assert second["reasoning"] == {"effort": "low", "exclude": True} and "max_completion_tokens" in second


def test_signed_thinking_survives_a_tool_turn(client: anthropic.Anthropic, fake_openrouter: FakeOpenRouter) -> None:
    tools: list[Any] = [
        {"name": "Bash", "description": "Run", "input_schema": {"type": "object", "properties": {"command": {}}}}
    ]
    history: list[Any] = ask("OR_TOOL_LOOP 1")
    first = client.messages.create(
        model=CLIENT_MODEL, max_tokens=8000, tools=tools, thinking={"type": "adaptive"}, messages=history
    )
    assert [block.type for block in first.content] == ["thinking", "tool_use"]
    call = first.content[1]
    history += [
        {"role": "assistant", "content": [block.model_dump(exclude_none=True) for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "or-round-1"}]},
    ]
    second = client.messages.create(
        model=CLIENT_MODEL, max_tokens=8000, tools=tools, thinking={"type": "adaptive"}, messages=history
    )
    assert second.content[-1].type == "text" and second.content[-1].text == "OR_LOOP_DONE or-round-1"
    replayed = fake_openrouter.requests()[1]["body"]["messages"][1]
    assert replayed["reasoning_details"][0]["signature"] == first.content[0].signature
    assert fake_openrouter.requests()[1]["body"]["reasoning"] == {"effort": "medium"}


def test_a_changed_signature_is_refused_as_anthropic_would(
    client: anthropic.Anthropic, fake_openrouter: FakeOpenRouter
) -> None:
    tools: list[Any] = [{"name": "Bash", "input_schema": {"type": "object"}}]
    history: list[Any] = ask("OR_TOOL_LOOP 1")
    first = client.messages.create(
        model=CLIENT_MODEL, max_tokens=8000, tools=tools, thinking={"type": "adaptive"}, messages=history
    )
    blocks = [block.model_dump(exclude_none=True) for block in first.content]
    blocks[0]["signature"] = "forged"
    history += [
        {"role": "assistant", "content": blocks},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": blocks[1]["id"], "content": "x"}]},
    ]
    with pytest.raises(anthropic.BadRequestError, match="Invalid `signature`"):
        client.messages.create(
            model=CLIENT_MODEL, max_tokens=8000, tools=tools, thinking={"type": "adaptive"}, messages=history
        )


def test_cache_reads_and_writes_are_reported(client: anthropic.Anthropic, fake_openrouter: FakeOpenRouter) -> None:
    message = client.messages.create(model=CLIENT_MODEL, max_tokens=100, system=SYSTEM, messages=ask("OR_CACHE"))
    assert message.usage.cache_read_input_tokens == CACHED_TOKENS
    assert message.usage.cache_creation_input_tokens == CACHE_WRITE_TOKENS
    assert message.usage.input_tokens == PROMPT_TOKENS - CACHED_TOKENS - CACHE_WRITE_TOKENS


def usage_by_model(proxy: ProxyServer) -> dict[str, Any]:
    by_model: dict[str, Any] = httpx.get(proxy.base_url + "/v1/usage", timeout=10).json()["by_model"]
    return by_model


def test_the_cost_openrouter_reports_is_the_recorded_cost(
    client: anthropic.Anthropic, fake_openrouter: FakeOpenRouter, openrouter_proxy: ProxyServer
) -> None:
    client.messages.create(model="claude-json-cost", max_tokens=100, messages=ask("Hello"))
    with client.messages.stream(model="claude-stream-cost", max_tokens=100, messages=ask("Hello")) as stream:
        stream.get_final_message()
    with client.messages.stream(
        model="claude-ignored-stream-cost", max_tokens=100, messages=ask("OR_IGNORE_STREAM")
    ) as stream:
        stream.get_final_message()
    client.messages.create(model="claude-byok-cost", max_tokens=100, messages=ask("OR_BYOK"))
    by_model = usage_by_model(openrouter_proxy)
    for variant in ("json", "stream", "ignored"):
        assert by_model[f"{MODEL}:{variant}"]["cost_usd"] == COST_USD, by_model
    assert by_model[f"{MODEL}:byok"]["cost_usd"] == round(BYOK_FEE_USD + BYOK_COST_USD, 6)
    assert by_model[f"{MODEL}:stream"]["unpriced_requests"] == 0


@pytest.mark.parametrize(
    ("marker", "status", "error_type"),
    [
        ("OR_ERROR_BODY 402", 402, "billing_error"),
        ("OR_ERROR_BODY 403", 403, "permission_error"),
        ("OR_ERROR_BODY 429", 429, "rate_limit_error"),
        ("OR_CHOICE_ERROR 503", 503, "overloaded_error"),
        ("OR_CHOICE_ERROR 502", 502, "api_error"),
    ],
)
def test_errors_inside_a_200_body_become_anthropic_errors(
    client: anthropic.Anthropic, fake_openrouter: FakeOpenRouter, marker: str, status: int, error_type: str
) -> None:
    with pytest.raises(anthropic.APIStatusError) as raised:
        client.messages.create(model=CLIENT_MODEL, max_tokens=100, messages=ask(marker))
    assert raised.value.status_code == status
    error = raised.value.body["error"]  # type: ignore[index]  # the SDK types body as object
    assert error["type"] == error_type
    if marker.startswith("OR_ERROR_BODY"):  # the provider's own answer, from OpenRouter's metadata
        assert error["message"].startswith("Provider returned error (Anthropic: {") and "Overloaded" in error["message"]


@pytest.mark.parametrize(
    ("marker", "error_type"),
    [
        ("OR_ERROR_BODY 402", "billing_error"),
        ("OR_CHOICE_ERROR 503", "overloaded_error"),
        ("OR_CHOICE_ERROR 429", "rate_limit_error"),
        ("OR_STRING_ERROR", "api_error"),
    ],
)
def test_errors_inside_a_stream_become_error_events(
    openrouter_proxy: ProxyServer, fake_openrouter: FakeOpenRouter, marker: str, error_type: str
) -> None:
    body = {"model": CLIENT_MODEL, "max_tokens": 100, "stream": True, "messages": ask(marker)}
    answer = httpx.post(openrouter_proxy.base_url + "/v1/messages", json=body, timeout=30)
    assert answer.status_code == 200
    events = [line for line in answer.text.splitlines() if line.startswith("data: ")]
    last = json.loads(events[-1].removeprefix("data: "))
    assert last["type"] == "error" and last["error"]["type"] == error_type, answer.text
    assert "message_stop" not in answer.text
