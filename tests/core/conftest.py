"""Shared fixtures for the conversion-core tests."""

from __future__ import annotations

import pytest

from ccproxy.core.plan import ResponseContext

MESSAGE_ID = "msg_0123456789abcdef01234567"
MODEL = "claude-sonnet-4-5"
INPUT_ESTIMATE = 42


@pytest.fixture
def ctx() -> ResponseContext:
    """A response context with no long tool names."""
    return ResponseContext(message_id=MESSAGE_ID, model=MODEL, input_tokens_estimate=INPUT_ESTIMATE)
