"""The ccproxy-guardrails plugin in the real proxy process (installed entry point, rules from plugins.toml): a secret
split across streamed deltas reaches the anthropic SDK and the real Claude Code CLI as [REDACTED], a secret in a
prompt never reaches the upstream, and each refusal is the SDK exception of its status."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import anthropic
import pytest

from tests.e2e import test_claude_cli
from tests.e2e.conftest import BIG_MODEL, SMALL_MODEL
from tests.e2e.test_claude_cli import ClaudeRunner
from tests.support.anthropic_stream import check_stream
from tests.support.proxy_process import FakeUpstream, ProxyServer, start_proxy

pytestmark = pytest.mark.e2e

# A made-up key of OpenAI's project-key shape; unique text, so finding it anywhere means it leaked.
KEY = "sk-proj-" + "Qm4xT7vB2nK9pL5rW8sD3fG6hJ1kZ0cA" * 2
R = "[REDACTED]"
SONNET = "claude-sonnet-5"
ANSWER = f"Your key is {KEY}. Keep it safe."
CONFIG = """
[guardrails]
order = ["codenames", "redact", "limits"]

[guardrails.redact]            # the built-in secret detectors, requests and answers

[guardrails.codenames]
kind = "block"
patterns = ["(?i)operation\\\\s+nightfall"]
status = 403

[guardrails.words]
kind = "block"
patterns = ["FORBIDDEN_WORD"]

[guardrails.limits]
max_request_bytes = 200000
"""


# The real Claude Code CLI, as tests/e2e/test_claude_cli.py runs it (against this module's proxy).
claude_cli = test_claude_cli.claude_cli
run_claude = test_claude_cli.run_claude


def echo(text: str) -> str:
    """A prompt that makes the fake upstream answer `text` in 3-character pieces (tests/support/fake_openai.py)."""
    return "ECHO_PIECES " + base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def proxy(e2e_logs: Path, fake_upstream: FakeUpstream) -> Iterator[ProxyServer]:
    """The real proxy with guardrail rules (overrides the conftest's plain proxy for this module)."""
    config = e2e_logs / "guardrails.toml"
    config.write_text(CONFIG, encoding="utf-8")
    server = start_proxy(
        e2e_logs,
        upstream=fake_upstream,
        api_key=fake_upstream.api_key or "",
        big_model=BIG_MODEL,
        small_model=SMALL_MODEL,
        config_path=config,
        name="proxy-guardrails",
    )
    yield server
    server.stop_and_check()
    log = server.process.log_text()
    assert KEY not in log and KEY[8:30] not in log
    assert "guardrail 'redact' redact on the response" in log  # the audit line


def test_a_split_secret_in_a_streamed_answer_reaches_the_sdk_redacted(
    client: anthropic.Anthropic, fake: FakeUpstream
) -> None:
    events = [
        event.model_dump()
        for event in client.messages.create(
            model=SONNET, max_tokens=200, messages=[{"role": "user", "content": echo(ANSWER)}], stream=True
        )
    ]
    check_stream(events)
    deltas = [e["delta"]["text"] for e in events if e["type"] == "content_block_delta"]
    assert "".join(deltas) == f"Your key is {R}. Keep it safe."
    assert len(deltas) > 3  # still streamed in pieces, not held to the end
    assert KEY[8:20] not in json.dumps(events)
    assert fake.last_chat()["status"] == 200


def test_a_secret_in_a_prompt_never_reaches_the_upstream(client: anthropic.Anthropic, fake: FakeUpstream) -> None:
    message = client.messages.create(
        model=SONNET,
        max_tokens=100,
        system=f"deploy with {KEY}",
        messages=[{"role": "user", "content": [{"type": "text", "text": f"my key is {KEY}, keep it"}]}],
    )
    assert message.content[0].type == "text"
    sent = json.dumps(fake.last_chat()["body"])
    assert KEY not in sent and KEY[8:30] not in sent
    assert sent.count(R) == 2


@pytest.mark.parametrize(
    ("prompt", "error", "rule"),
    [
        ("about Operation  Nightfall", anthropic.PermissionDeniedError, "codenames"),
        ("say FORBIDDEN_WORD", anthropic.BadRequestError, "words"),
        ("x" * 250_000, anthropic.RequestTooLargeError, "limits"),
    ],
)
def test_each_refusal_is_the_sdk_exception_of_its_status(
    client: anthropic.Anthropic, fake: FakeUpstream, prompt: str, error: type[anthropic.APIStatusError], rule: str
) -> None:
    with pytest.raises(error) as refused:
        client.messages.create(model=SONNET, max_tokens=50, messages=[{"role": "user", "content": prompt}])
    assert f"guardrail {rule!r}" in refused.value.message
    assert "ightfall" not in refused.value.message and "FORBIDDEN" not in refused.value.message
    assert fake.chat_requests() == []


@pytest.mark.cli
def test_a_split_secret_reaches_claude_code_redacted(run_claude: ClaudeRunner, fake: FakeUpstream) -> None:
    answer = run_claude(echo(ANSWER)).result()
    assert answer["result"] == f"Your key is {R}. Keep it safe.", fake.summary()
    assert KEY[8:20] not in json.dumps(answer)
