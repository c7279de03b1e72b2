"""Property tests of request validation and conversion on both cores (issue 11 item 8): every valid Anthropic request
(tests/support/anthropic_strategies.py) validates and converts into an OpenAI request api.openai.com accepts, the
same on `[py]` and `[c]`; every request the Messages API refuses is refused by validation with an Anthropic
`invalid_request_error`; odd ones are refused or converted, never a crash."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings

from ccproxy.core._twins import Core
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.errors import InvalidRequestError, ProxyError
from tests.support.anthropic_strategies import ClientBody, invalid_requests, messages_requests
from tests.support.cores import implementation
from tests.support.openai_rules import OpenAIError, RequestValidator

from .request_invariants import orphan_tool_messages, unanswered_tool_calls, unexpected_keys

PROPERTY_SETTINGS = settings(
    max_examples=120,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def convert(core: Core, body: dict[str, Any]) -> dict[str, Any]:
    plan = RequestPlan("gpt-4o", ModelCapabilities(), stream=bool(body.get("stream")))
    converted: dict[str, Any] = core.request.convert_request(json.loads(json.dumps(body)), plan)
    return converted


@PROPERTY_SETTINGS
@given(body=messages_requests())
def test_a_valid_request_converts_to_an_openai_request_openai_accepts(core: Core, body: dict[str, Any]) -> None:
    core.validate.validate_messages_request(body)
    converted = convert(core, body)
    try:
        RequestValidator().validate(converted)
    except OpenAIError as exc:
        pytest.fail(f"api.openai.com would refuse the conversion: {exc.message} (param {exc.param})\n{converted}")
    assert unexpected_keys(converted) == []
    assert unanswered_tool_calls(converted["messages"]) == []
    assert orphan_tool_messages(converted["messages"]) == []
    assert json.loads(json.dumps(converted)) == converted
    assert convert(implementation("py"), body) == converted, "the two cores convert differently"


@PROPERTY_SETTINGS
@given(client=invalid_requests())
def test_what_the_messages_api_refuses_validation_refuses_and_the_rest_never_crashes(
    core: Core, client: ClientBody
) -> None:
    try:
        body = json.loads(client.raw)
    except (ValueError, RecursionError):
        assume(False)  # bytes that are no JSON are the HTTP layer's to refuse (tests/api/test_request_properties_http)
    try:
        core.validate.validate_messages_request(body)
    except InvalidRequestError as exc:
        assert exc.error_type == "invalid_request_error" and exc.status == 400
        assert exc.message and "Traceback" not in exc.message
        return
    assert client.expect == "any", f"{client.why}: validation let through what the Messages API refuses"
    try:
        converted = convert(core, body)
    except ProxyError as exc:  # a request the converter cannot express upstream is refused with a client error
        assert 400 <= exc.status < 500, (client.why, exc.status, exc.message)
        return
    assert json.loads(json.dumps(converted)) == converted
