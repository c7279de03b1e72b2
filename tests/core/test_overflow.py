"""Context overflow: each server's real wording becomes Anthropic's, in HTTP error bodies, 200 bodies and streams."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.overflow import OVERFLOW_PATTERNS, prompt_too_long
from ccproxy.core.plan import ResponseContext
from ccproxy.errors import ProxyError, UpstreamError
from ccproxy.upstream import status_error, to_proxy_error
from tests.support.vendor_errors import NOT_OVERFLOW, OVERFLOW_ERRORS, VendorError

# What Claude Code matches (read from its 2.1.332 bundle): the exact Anthropic form, and the gap it compacts by.
CLAUDE_CODE_EXACT = re.compile(r"^prompt is too long: \d+ tokens > \d+ maximum$")
CLAUDE_CODE_NUMBERS = re.compile(r"prompt is too long[^0-9]*(\d+)\s*tokens?\s*>\s*(\d+)", re.IGNORECASE)
CLAUDE_CODE_MAX_TOKENS = re.compile(r"input length and `max_tokens` exceed context limit: (\d+) \+ (\d+) > (\d+)")

VENDORS = pytest.mark.parametrize("name", sorted(OVERFLOW_ERRORS))


def upstream_http_error(status: int, raw: bytes, retry_after: str | None) -> ProxyError:
    """The client's error for an upstream HTTP error answer, as a backend's upstream makes and maps it."""
    headers = {"retry-after": retry_after} if retry_after else {}
    return to_proxy_error(status_error(status, raw, headers, detect_overflow=prompt_too_long))


@VENDORS
def test_each_wording_becomes_the_anthropic_message(name: str) -> None:
    vendor = OVERFLOW_ERRORS[name]
    assert prompt_too_long(vendor.body) == vendor.expected


@VENDORS
def test_claude_code_reads_the_numbers_back(name: str) -> None:
    message = OVERFLOW_ERRORS[name].expected
    exact, numbers, max_tokens = (
        p.search(message) for p in (CLAUDE_CODE_EXACT, CLAUDE_CODE_NUMBERS, CLAUDE_CODE_MAX_TOKENS)
    )
    if message.startswith("prompt is too long: ") and message[20].isdigit():
        assert exact and numbers and int(numbers[1]) >= int(numbers[2])
    elif max_tokens:
        prompt, completion, limit = map(int, max_tokens.groups())
        assert prompt <= limit < prompt + completion
    else:
        # No numbers from the upstream: still Anthropic's opening words, and nothing Claude Code would misread.
        assert message.startswith("prompt is too long") and numbers is None


@pytest.mark.parametrize("body", NOT_OVERFLOW, ids=lambda b: str(b)[:40])
def test_other_errors_are_left_alone(body: dict[str, Any]) -> None:
    assert prompt_too_long(body) is None
    assert prompt_too_long(body.get("error")) is None


@pytest.mark.parametrize(
    "hostile",
    [
        {"error": {"code": ["context_length_exceeded"], "type": {"x": 1}, "message": 5}},
        {
            "error": {
                "metadata": {"raw": 7},
                "n_ctx": True,
                "n_prompt_tokens": "9",
                "type": ["exceed_context_size_error"],
            }
        },
        "{not json",
        "[1, 2]",
        ["error"],
        None,
        12,
    ],
    ids=repr,
)
def test_any_shape_is_answered_without_raising(hostile: Any) -> None:
    assert prompt_too_long(hostile) is None


def test_deep_wrappers_are_looked_through_up_to_a_bound() -> None:
    error: Any = OVERFLOW_ERRORS["OPENAI"].body
    for _ in range(5):
        error = {"error": json.dumps(error)}
    assert prompt_too_long(error) == OVERFLOW_ERRORS["OPENAI"].expected
    for _ in range(5000):
        error = {"error": error}
    assert prompt_too_long(error) is None


def test_a_code_alone_is_enough() -> None:
    body = {"error": {"message": "", "type": "invalid_request_error", "code": "context_length_exceeded"}}
    assert prompt_too_long(body) == "prompt is too long for the model's context window"


def test_every_pattern_is_exercised_by_a_real_wording() -> None:
    texts = [json.dumps(vendor.body) for vendor in OVERFLOW_ERRORS.values()]
    assert [p.pattern for _, p in OVERFLOW_PATTERNS if not any(p.search(text) for text in texts)] == []


@VENDORS
def test_http_error_answers_become_400_invalid_request(name: str) -> None:
    vendor = OVERFLOW_ERRORS[name]
    error = upstream_http_error(vendor.status, _raw(vendor), None)
    assert (error.status, error.error_type, error.message) == (400, "invalid_request_error", vendor.expected)


@pytest.mark.parametrize("status", [413, 422, 500])
def test_any_error_status_reporting_overflow_becomes_400(status: int) -> None:
    error = upstream_http_error(status, _raw(OVERFLOW_ERRORS["OPENAI"]), "3")
    assert (error.status, error.headers) == (400, {})


def test_a_plain_text_body_is_read_too() -> None:
    error = upstream_http_error(400, b"prompt too long; exceeded max context length by 12 tokens", None)
    assert error.status == 400 and error.message.startswith("prompt is too long")


@VENDORS
def test_in_band_errors_of_a_200_body_become_400(core: Core, name: str) -> None:
    vendor = OVERFLOW_ERRORS[name]
    error = core.usage.error_from_body(vendor.body.get("error", vendor.body))
    assert (error.status, error.error_type, error.message) == (400, "invalid_request_error", vendor.expected)
    with pytest.raises(UpstreamError) as raised:
        core.response.convert_response(
            {"error": vendor.body.get("error", vendor.body)}, ResponseContext("msg_1", "claude")
        )
    assert raised.value.message == vendor.expected and raised.value.status == 400


@VENDORS
def test_a_stream_error_chunk_becomes_the_anthropic_error(core: Core, name: str) -> None:
    vendor = OVERFLOW_ERRORS[name]
    translator = core.stream.StreamTranslator(ResponseContext("msg_1", "claude"))
    with pytest.raises(UpstreamError) as raised:
        translator.feed({"error": vendor.body.get("error", vendor.body)})
    events = translator.error_events(raised.value)
    assert events == [{"type": "error", "error": {"type": "invalid_request_error", "message": vendor.expected}}]


def test_a_finish_reason_error_reporting_overflow_becomes_the_anthropic_error(core: Core) -> None:
    translator = core.stream.StreamTranslator(ResponseContext("msg_1", "claude"))
    error = OVERFLOW_ERRORS["OPENROUTER"].body["error"]
    with pytest.raises(UpstreamError) as raised:
        translator.feed({"choices": [{"index": 0, "delta": {}, "finish_reason": "error", "error": error}]})
    assert raised.value.status == 400 and raised.value.message == OVERFLOW_ERRORS["OPENROUTER"].expected


def _raw(vendor: VendorError) -> bytes:
    return json.dumps(vendor.body).encode()
