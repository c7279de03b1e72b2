"""Context overflow end to end: the real proxy turns each server's wording into Anthropic's, as the SDK sees it."""

from __future__ import annotations

import http.client
import json
from typing import Any

import anthropic
import pytest

from tests.support.anthropic_stream import parse_sse
from tests.support.proxy_process import FakeUpstream, ProxyServer
from tests.support.vendor_errors import OVERFLOW_ERRORS

pytestmark = pytest.mark.e2e

SONNET = "claude-sonnet-5"
# The servers issue 6 names; the other rows of OVERFLOW_ERRORS are covered by the unit tests.
VENDORS = ("OPENAI", "VLLM", "LLAMACPP", "OLLAMA", "OPENROUTER", "DEEPSEEK")
# Inside a 200 answer an error is an `{"error": ...}` object (vLLM's bare top-level error object only comes with 400).
IN_BAND_VENDORS = tuple(vendor for vendor in VENDORS if "error" in OVERFLOW_ERRORS[vendor].body)


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("vendor", VENDORS)
def test_the_sdk_sees_bad_request_with_anthropics_message(
    client: anthropic.Anthropic, fake: FakeUpstream, vendor: str, stream: bool
) -> None:
    prompt = user(f"CONTEXT_OVERFLOW_{vendor} please")
    with pytest.raises(anthropic.BadRequestError) as raised:
        if stream:
            with client.messages.stream(model=SONNET, max_tokens=64, messages=prompt) as events:
                events.get_final_message()
        else:
            client.messages.create(model=SONNET, max_tokens=64, messages=prompt)
    body: Any = raised.value.body
    assert body["type"] == "error"
    assert body["error"] == {"type": "invalid_request_error", "message": OVERFLOW_ERRORS[vendor].expected}
    assert fake.last_chat()["status"] == 400


@pytest.mark.parametrize("vendor", IN_BAND_VENDORS)
def test_an_overflow_inside_a_200_body_is_a_bad_request_too(
    client: anthropic.Anthropic, fake: FakeUpstream, vendor: str
) -> None:
    with pytest.raises(anthropic.BadRequestError) as raised:
        client.messages.create(model=SONNET, max_tokens=64, messages=user(f"CONTEXT_OVERFLOW_{vendor} IN_BAND"))
    body: Any = raised.value.body
    assert body["error"] == {"type": "invalid_request_error", "message": OVERFLOW_ERRORS[vendor].expected}
    assert fake.last_chat()["status"] == 200


def test_an_overflow_as_the_first_stream_event_ends_the_stream_with_it(proxy: ProxyServer, fake: FakeUpstream) -> None:
    """Once the upstream has answered 200 the stream has begun; the overflow is its `error` event (Claude Code
    matches the message text there as well)."""
    body = {"model": SONNET, "max_tokens": 64, "stream": True, "messages": user("CONTEXT_OVERFLOW_LLAMACPP IN_BAND")}
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    connection.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json"})
    response = connection.getresponse()
    events = parse_sse(response.read())
    connection.close()
    assert response.status == 200
    assert events[-1] == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": OVERFLOW_ERRORS["LLAMACPP"].expected},
    }
