"""The fake upstream's scripted faults answer as documented: vendor bodies verbatim, in-band delivery, key echoes."""

from __future__ import annotations

import json
import socket

import pytest

from tests.e2e.test_fake_openai import chat, post, sse_data
from tests.support.proxy_process import FakeUpstream
from tests.support.vendor_errors import OVERFLOW_ERRORS, VLLM_PROMPT_TOKENS, VLLM_WINDOW

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("name", ["OPENAI", "VLLM", "LLAMACPP", "OLLAMA_NATIVE", "OPENROUTER_PROVIDER"])
def test_overflow_markers_answer_with_the_vendor_body(fake: FakeUpstream, name: str) -> None:
    status, _, raw = post(fake, chat(f"CONTEXT_OVERFLOW_{name}"))
    assert (status, json.loads(raw)) == (OVERFLOW_ERRORS[name].status, OVERFLOW_ERRORS[name].body)


def test_fit_overflows_only_while_the_output_does_not_fit(fake: FakeUpstream) -> None:
    room = VLLM_WINDOW - VLLM_PROMPT_TOKENS
    assert post(fake, chat("CONTEXT_OVERFLOW_FIT", max_tokens=room + 1))[0] == 400
    assert post(fake, chat("CONTEXT_OVERFLOW_FIT", max_tokens=room))[0] == 200


def test_in_band_puts_the_error_inside_a_200(fake: FakeUpstream) -> None:
    status, _, raw = post(fake, chat("FAIL_429 IN_BAND"))
    assert status == 200 and json.loads(raw)["error"]["message"].startswith("Rate limit reached")
    status, _, raw = post(fake, chat("ECHO_KEY IN_BAND", stream=True))
    assert status == 200 and sse_data(raw) == [{"error": json.loads(post(fake, chat("ECHO_KEY"))[2])["error"]}]


def test_finish_error_quotes_the_key_after_some_text(fake: FakeUpstream) -> None:
    events = sse_data(post(fake, chat("LEAK_KEY_FINISH_ERROR", stream=True))[2])
    assert any(e["choices"] and e["choices"][0]["delta"].get("content") for e in events[:-1])
    last = events[-1]["choices"][0]
    assert last["finish_reason"] == "error" and str(fake.api_key) in last["error"]["message"]
    answer = json.loads(post(fake, chat("LEAK_KEY_FINISH_ERROR"))[2])["choices"][0]
    assert answer["finish_reason"] == "error" and str(fake.api_key) in answer["error"]["message"]


def test_bad_http_quotes_the_key_in_a_broken_status_line(fake: FakeUpstream) -> None:
    body = json.dumps(chat("LEAK_KEY_BAD_HTTP")).encode()
    request = (
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {fake.api_key}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    with socket.create_connection(("127.0.0.1", fake.port), timeout=5) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(4096):
            answer += chunk
    assert answer == f"HTTP/1.1 2x0 {fake.api_key}\r\n\r\n".encode()
