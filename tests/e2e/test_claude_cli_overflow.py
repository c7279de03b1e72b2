"""The real Claude Code CLI meets an upstream whose context window is too small: it must see Anthropic's overflow.

Claude Code acts on Anthropic's own wordings: `prompt is too long: N tokens > M maximum` ends the turn with its
"Prompt is too long" message (with the counts), and ``input length and `max_tokens` exceed context limit`` makes it
retry at once with a smaller `max_tokens`. Passed through unchanged, a vendor's wording is a generic "API Error" for
2.1.197; 2.1.332 recognises some wordings itself, but neither Ollama's nor an output that does not fit.
"""

from __future__ import annotations

import json

import pytest

from tests.e2e.test_claude_cli import ClaudeRunner, claude_cli, run_claude  # noqa: F401  # the CLI fixtures
from tests.support.proxy_process import FakeUpstream
from tests.support.vendor_errors import VLLM_PROMPT_TOKENS, VLLM_WINDOW

pytestmark = [pytest.mark.e2e, pytest.mark.cli]

# What Claude Code prints for an overflow (its constant `Prompt is too long`, 2.1.197 and 2.1.332 alike).
PROMPT_TOO_LONG = "Prompt is too long"
# The room Claude Code leaves below the window when it lowers max_tokens after an output overflow.
CLAUDE_CODE_MARGIN = 1000


@pytest.mark.parametrize(
    ("vendor", "numbers"),
    [
        ("OPENAI", "~130000 tokens (limit 128000)"),
        ("LLAMACPP", "~9000 tokens (limit 8192)"),
        ("OLLAMA", None),  # Ollama gives no counts: the overflow still is one, just without them
    ],
)
def test_claude_code_reports_prompt_too_long(
    run_claude: ClaudeRunner,  # noqa: F811  # fixture
    fake: FakeUpstream,
    vendor: str,
    numbers: str | None,
) -> None:
    done = run_claude(f"CONTEXT_OVERFLOW_{vendor} summarise everything")
    answer = json.loads(done.stdout)
    assert answer["is_error"] is True, answer
    assert answer["result"].startswith(PROMPT_TOO_LONG), answer
    assert numbers is None or numbers in answer["result"], answer
    assert "API Error" not in answer["result"]
    assert all(request["status"] == 400 for request in fake.chat_requests()), fake.summary()


def test_claude_code_retries_with_the_output_that_fits(run_claude: ClaudeRunner, fake: FakeUpstream) -> None:  # noqa: F811  # fixture
    answer = run_claude("CONTEXT_OVERFLOW_FIT say hello").result()
    assert answer["result"].startswith("FAKE_OPENAI_REPLY: "), answer
    chats = fake.chat_requests()
    assert [request["status"] for request in chats][-2:] == [400, 200], fake.summary()
    retried = chats[-1]["body"]
    requested = retried.get("max_completion_tokens") or retried.get("max_tokens")
    assert requested == VLLM_WINDOW - VLLM_PROMPT_TOKENS - CLAUDE_CODE_MARGIN, fake.summary()


def test_claude_code_reports_an_overflow_said_inside_a_200(run_claude: ClaudeRunner, fake: FakeUpstream) -> None:  # noqa: F811  # fixture
    """The overflow inside an HTTP 200 (as some llama.cpp builds and gateways say it): the stream's first event, the
    JSON body without streaming. Claude Code gets an `error` event on its stream, asks again without streaming, and
    shows its own message with the counts."""
    done = run_claude("CONTEXT_OVERFLOW_LLAMACPP IN_BAND summarise everything")
    answer = json.loads(done.stdout)
    assert answer["is_error"] is True, answer
    assert answer["result"].startswith(PROMPT_TOO_LONG), answer
    assert "~9000 tokens (limit 8192)" in answer["result"], answer
    chats = fake.chat_requests()
    assert chats and all(request["status"] == 200 for request in chats), fake.summary()
    assert any(request["body"].get("stream") for request in chats), fake.summary()
