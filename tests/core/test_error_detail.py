"""The client's message for an upstream `error` object: its message, and what OpenRouter's `metadata` adds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.core.error_detail import FALLBACK_MESSAGE, MAX_RAW, error_message
from ccproxy.upstream.errors import status_error

RAW = '{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}'


@pytest.mark.parametrize(
    ("error", "message"),
    [
        ({"code": 429, "message": "Rate limited"}, "Rate limited"),
        ({"detail": "Not found"}, "Not found"),
        ({"code": 502}, FALLBACK_MESSAGE),
        ({"message": 7}, FALLBACK_MESSAGE),
        (
            {"code": 502, "message": "Provider returned error", "metadata": {"provider_name": "Anthropic", "raw": RAW}},
            f"Provider returned error (Anthropic: {RAW})",
        ),
        (
            {"message": "Provider returned error", "metadata": {"raw": {"error": "bad"}}},
            'Provider returned error ({"error":"bad"})',
        ),
        (
            {"message": "Provider returned error", "metadata": {"provider_name": "Groq"}},
            "Provider returned error (provider: Groq)",
        ),
        ({"message": "No endpoints", "metadata": {"provider_name": None}}, "No endpoints"),
        (
            {"code": 403, "message": "Input was flagged", "metadata": {"reasons": ["violence"], "flagged_input": "x"}},
            "Input was flagged (flagged for: violence)",
        ),
        ({"message": "m", "metadata": "not an object"}, "m"),
    ],
)
def test_error_message(error: dict[str, Any], message: str) -> None:
    assert error_message(error) == message


def test_a_long_raw_answer_is_shortened() -> None:
    message = error_message({"message": "Provider returned error", "metadata": {"raw": "x" * 5000}})
    assert message == f"Provider returned error ({'x' * MAX_RAW}...)"


def test_the_fallback_is_the_callers() -> None:
    assert error_message({}, "the body text") == "the body text"


def test_an_http_error_from_openrouter_names_the_provider_and_its_answer() -> None:
    body = {
        "error": {
            "code": 503,
            "message": "Provider returned error",
            "metadata": {"provider_name": "Anthropic", "raw": RAW},
        }
    }
    failure = status_error(503, json.dumps(body).encode(), {})
    assert failure.message == f"Upstream error 503: Provider returned error (Anthropic: {RAW})"
