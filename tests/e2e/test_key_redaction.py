"""The real proxy process at LOG_LEVEL=DEBUG: no trace of the upstream key in any answer or in its log file.

One fake upstream and one proxy per key shape; the fake quotes the key it was sent in every way the markers allow
(an HTTP 401, the same error inside a 200 body or as the first stream event, `finish_reason: "error"` after some
text, a malformed HTTP status line), for streaming and non-streaming requests. After SIGTERM the proxy's whole log
(stdout and stderr) is searched as well.
"""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.support.proxy_process import FakeUpstream, ProxyServer, start_fake_openai, start_proxy
from tests.support.upstream_keys import key_shapes, leaked_pieces

pytestmark = pytest.mark.e2e

KEYS = key_shapes()
# Shapes that differ in what a redactor could get wrong: an `sk-` prefix, no prefix at all, JWT dots and
# URL-significant punctuation.
SHAPES = ("openai-project", "plain-hex", "jwt", "punctuated")
PROMPTS = (
    "ECHO_KEY",
    "ECHO_KEY IN_BAND",
    "LEAK_KEY_FINISH_ERROR",
    "LEAK_KEY_BAD_HTTP",
    "CONTEXT_OVERFLOW_OPENAI ECHO_KEY",
)


@dataclass
class Keyed:
    """A fake upstream and a DEBUG proxy, both configured with `key`."""

    key: str
    proxy: ProxyServer
    fake: FakeUpstream


@pytest.fixture(scope="module", params=SHAPES)
def keyed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Keyed]:
    key = KEYS[request.param]
    logs = tmp_path_factory.mktemp(f"keys-{request.param}")
    fake = start_fake_openai(logs, api_key=key)
    proxy = start_proxy(
        logs, upstream=fake, api_key=key, big_model="gpt-5", small_model="gpt-4o-mini", log_level="DEBUG"
    )
    try:
        yield Keyed(key, proxy, fake)
        proxy.stop_and_check()
        # Everything the process wrote, shutdown included.
        assert leaked_pieces(proxy.process.log_text(), key) == []
    finally:
        proxy.process.stop()
        fake.process.stop()


def post(proxy: ProxyServer, prompt: str, stream: bool) -> tuple[int, str]:
    """Status, and body plus headers as text."""
    message = {"role": "user", "content": prompt}
    body = {"model": "claude-sonnet-5", "max_tokens": 64, "stream": stream, "messages": [message]}
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    connection.request("POST", "/v1/messages", json.dumps(body), {"content-type": "application/json"})
    response = connection.getresponse()
    text = response.read().decode() + json.dumps(response.getheaders())
    connection.close()
    return response.status, text


@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
@pytest.mark.parametrize("prompt", PROMPTS)
def test_no_trace_of_the_key_in_answers_or_log(keyed: Keyed, prompt: str, stream: bool) -> None:
    keyed.fake.reset()
    status, text = post(keyed.proxy, prompt, stream)
    # The failure reached the client, as an error status or as the stream's `error` event...
    assert status >= 400 or "event: error" in text, text
    # ...after the upstream really was called with the key it then quoted.
    assert keyed.fake.last_chat()["headers"]["authorization"] == f"Bearer {keyed.key}"
    assert leaked_pieces(text, keyed.key) == [], text
    log = keyed.proxy.process.log_text()
    assert " DEBUG ccproxy" in log, "the proxy must log at DEBUG for this test to mean anything"
    assert leaked_pieces(log, keyed.key) == [], keyed.proxy.process.log_tail()
