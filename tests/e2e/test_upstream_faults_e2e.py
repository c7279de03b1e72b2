"""The real proxy against a fake upstream that misbehaves (issue 6 items 3 and 9), driven by the `anthropic` SDK:
a cut or broken answer raises an SDK error instead of arriving as a complete message, and an upstream that ignores
`stream: true` still streams its answer — on both transports (`[plugins.openai] transport`, one proxy for each)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from anthropic.types import TextBlock, ToolParam, ToolUseBlock

from tests.e2e.conftest import BIG_MODEL, SMALL_MODEL
from tests.support.anthropic_stream import check_stream, parse_sse
from tests.support.fake_openai import BASH_ARGUMENTS
from tests.support.proxy_process import FakeUpstream, ProxyServer, start_proxy

pytestmark = pytest.mark.e2e

SONNET = "claude-sonnet-5"
BASH_TOOL: ToolParam = {
    "name": "Bash",
    "description": "Run a shell command",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}
CUT_MESSAGE = "Upstream stream ended before the answer was complete"


@pytest.fixture(scope="module", params=["aiohttp", "lean"])
def proxy(e2e_logs: Path, fake_upstream: FakeUpstream, request: pytest.FixtureRequest) -> Iterator[ProxyServer]:
    """The real proxy process, once per transport; it must exit 0 when stopped."""
    config = e2e_logs / f"faults-{request.param}.toml"
    config.write_text(f'[plugins.openai]\ntransport = "{request.param}"\n')
    server = start_proxy(
        e2e_logs,
        upstream=fake_upstream,
        api_key=str(fake_upstream.api_key),
        big_model=BIG_MODEL,
        small_model=SMALL_MODEL,
        log_level="DEBUG",
        config_path=config,
        name=f"proxy-faults-{request.param}",
    )
    yield server
    server.stop_and_check()


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def stream_request(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": SONNET, "max_tokens": 64, "stream": True, "messages": user(text), **extra}


def raw_post(proxy: ProxyServer, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        headers = {"content-type": "application/json", "x-api-key": "dummy", "anthropic-version": "2023-06-01"}
        connection.request("POST", "/v1/messages", json.dumps(body).encode(), headers)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def streamed_error(proxy: ProxyServer, body: dict[str, Any]) -> dict[str, Any]:
    """The error event that ends the stream for `body` (after a 200), checked against the stream grammar."""
    status, headers, raw = raw_post(proxy, body)
    assert status == 200 and headers["content-type"].startswith("text/event-stream"), raw
    events = parse_sse(raw)
    check_stream(events)
    assert events[-1]["type"] == "error", [event["type"] for event in events]
    assert not any(event["type"] in ("message_delta", "message_stop") for event in events)
    error: dict[str, Any] = events[-1]["error"]
    return error


# -- item 9: a cut stream is an error, not a complete answer ------------------------------------------------------


def test_a_truncated_stream_raises_in_the_sdk_instead_of_completing(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    received: list[str] = []
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model=SONNET, max_tokens=64, messages=user("TRUNCATE_STREAM")) as stream,
    ):
        received.extend(stream.text_stream)
        stream.get_final_message()
    assert "".join(received).startswith("FAKE_OPENAI_REPLY"), "the text before the cut should have been streamed"
    body = caught.value.body
    assert isinstance(body, dict) and body["error"]["type"] == "api_error"
    assert body["error"]["message"].startswith(CUT_MESSAGE)
    assert fake.last_chat()["completed"]


def test_a_truncated_stream_ends_in_an_error_event_on_the_wire(proxy: ProxyServer, fake: FakeUpstream) -> None:
    assert streamed_error(proxy, stream_request("TRUNCATE_STREAM"))["message"].startswith(CUT_MESSAGE)


def test_an_empty_event_stream_raises_in_the_sdk(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(model=SONNET, max_tokens=64, messages=user("EMPTY_BODY")) as stream,
    ):
        stream.get_final_message()
    assert "an empty body" in str(caught.value.body)


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_an_html_page_is_a_502_before_the_first_byte(
    client: anthropic.Anthropic, fake: FakeUpstream, stream: bool
) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        if stream:
            with client.messages.stream(model=SONNET, max_tokens=64, messages=user("HTML_BODY")) as events:
                events.get_final_message()
        else:
            client.messages.create(model=SONNET, max_tokens=64, messages=user("HTML_BODY"))
    assert caught.value.status_code == 502
    assert caught.value.response.headers["content-type"].startswith("application/json")


def test_broken_tool_arguments_raise_in_the_sdk_instead_of_a_tool_call(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    with (
        pytest.raises(anthropic.APIStatusError) as caught,
        client.messages.stream(
            model=SONNET, max_tokens=64, tools=[BASH_TOOL], messages=user("BAD_TOOL_JSON")
        ) as stream,
    ):
        stream.get_final_message()
    assert "not valid JSON" in str(caught.value.body)


def test_broken_tool_arguments_in_a_non_stream_answer_are_a_502(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    with pytest.raises(anthropic.InternalServerError) as caught:
        client.messages.create(model=SONNET, max_tokens=64, tools=[BASH_TOOL], messages=user("BAD_TOOL_JSON"))
    assert caught.value.status_code == 502 and "not valid JSON" in str(caught.value.body)


# -- item 3: an upstream that ignores `stream: true` --------------------------------------------------------------


def test_a_json_completion_for_a_stream_request_is_streamed(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with client.messages.stream(model=SONNET, max_tokens=64, messages=user("IGNORE_STREAM THINK")) as stream:
        text = "".join(stream.text_stream)
        message = stream.get_final_message()
    assert text == "FAKE_OPENAI_REPLY: gpt-5"
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.stop_reason == "end_turn" and message.usage.output_tokens > 0
    assert fake.last_chat()["body"]["stream"] is True


def test_a_json_tool_call_for_a_stream_request_is_streamed(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    with client.messages.stream(
        model=SONNET, max_tokens=64, tools=[BASH_TOOL], messages=user("IGNORE_STREAM USE_BASH")
    ) as stream:
        message = stream.get_final_message()
    (call,) = [block for block in message.content if isinstance(block, ToolUseBlock)]
    assert call.name == "Bash" and call.input == BASH_ARGUMENTS
    assert message.stop_reason == "tool_use"
    assert not [block for block in message.content if isinstance(block, TextBlock)]


def test_a_json_error_for_a_stream_request_is_that_error_before_the_first_byte(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    with (
        pytest.raises(anthropic.InternalServerError) as caught,
        client.messages.stream(model=SONNET, max_tokens=64, messages=user("IGNORE_STREAM MIDSTREAM_ERROR")) as stream,
    ):
        stream.get_final_message()
    assert caught.value.status_code == 502 and "provider died" in str(caught.value.body)


# Last in the module: every fault above was answered without an ERROR record or a traceback in the proxy's log.
def test_no_fault_left_a_traceback_in_the_log(proxy: ProxyServer) -> None:
    log = proxy.process.log_text()
    assert "stream ended before the answer was complete" in log, "the faults above should have been logged"
    assert "Traceback" not in log
    assert " ERROR " not in log
