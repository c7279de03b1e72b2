"""Every captured Claude Code request (tests/fixtures/claude-code, plus ../shared when present) validates and converts
to a body OpenAI accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ccproxy.core._twins import Core
from ccproxy.core.plan import ModelCapabilities, RequestPlan
from ccproxy.core.request import BILLING_HEADER_PREFIX
from ccproxy.core.toolnames import OPENAI_TOOL_NAME_LIMIT
from tests.support.fixtures import claude_code_posts, repo_claude_code_requests
from tests.support.openai_rules import RequestValidator

from .request_invariants import message_texts, orphan_tool_messages, unanswered_tool_calls, unexpected_keys


def load_requests(path: str) -> list[tuple[str, dict[str, Any]]]:
    return [(capture.id, capture.body) for capture in claude_code_posts(path)]


MESSAGES = load_requests("/v1/messages")
COUNT_TOKENS = load_requests("/v1/messages/count_tokens")

# Upstream profiles: (model, capabilities, reasoning fields, whether the strict OpenAI rules apply).
PROFILES: dict[str, tuple[str, ModelCapabilities, dict[str, Any], bool]] = {
    "gpt-4o": ("gpt-4o", ModelCapabilities(), {}, True),
    "gpt-5": (
        "gpt-5",
        ModelCapabilities(
            max_tokens_param="max_completion_tokens",
            system_role="developer",
            supports_temperature=False,
            supports_top_p=False,
            max_output_tokens=128000,
            supports_reasoning=True,
        ),
        {"reasoning_effort": "high"},
        True,
    ),
    "deepseek": ("deepseek-reasoner", ModelCapabilities(reasoning_replay="reasoning_content"), {}, False),
    "openrouter": (
        "anthropic/claude-sonnet-4.5",
        ModelCapabilities(reasoning_replay="reasoning_details", supports_documents=True),
        {"reasoning": {"max_tokens": 8000}},
        False,
    ),
}
REASONING_KEYS = frozenset({"reasoning_effort", "reasoning"})


def convert(core: Core, body: dict[str, Any], profile: str) -> tuple[dict[str, Any], RequestPlan]:
    model, capabilities, reasoning, _ = PROFILES[profile]
    plan = RequestPlan(upstream_model=model, capabilities=capabilities, stream=True, reasoning=reasoning)
    return core.request.convert_request(body, plan), plan


def system_texts(body: dict[str, Any]) -> list[str]:
    system = body.get("system") or []
    if isinstance(system, str):
        return [system]
    return [block["text"] for block in system if block["text"] and not block["text"].startswith(BILLING_HEADER_PREFIX)]


def block_texts(content: str | list[dict[str, Any]]) -> list[str]:
    if isinstance(content, str):
        return [content] if content else []
    return [block["text"] for block in content if block["type"] == "text" and block["text"]]


def test_the_in_repo_captures_hold_every_shape_these_tests_rely_on() -> None:
    own = [capture.body for capture in repo_claude_code_requests() if capture.path == "/v1/messages"]
    assert len(own) >= 20
    assert sum(capture.path == "/v1/messages/count_tokens" for capture in repo_claude_code_requests()) >= 4
    messages = [message for body in own for message in body["messages"]]
    assert any(message["role"] == "system" for message in messages)
    assert any(message["role"] == "assistant" for message in messages)
    assert any(
        block.get("type") == "tool_result" for m in messages if isinstance(m["content"], list) for block in m["content"]
    )
    assert any(not body.get("tools") for body in own) and any(len(body.get("tools", ())) > 20 for body in own)
    assert {str(body.get("thinking", {}).get("type")) for body in own} >= {"adaptive", "enabled", "disabled", "None"}


@pytest.mark.parametrize(("name", "body"), MESSAGES, ids=[name for name, _ in MESSAGES])
def test_fixture_validates(core: Core, name: str, body: dict[str, Any]) -> None:
    core.validate.validate_messages_request(body)


@pytest.mark.parametrize(("name", "body"), COUNT_TOKENS, ids=[name for name, _ in COUNT_TOKENS])
def test_count_tokens_fixture_validates(core: Core, name: str, body: dict[str, Any]) -> None:
    core.validate.validate_count_tokens_request(body)
    out, _ = convert(core, body, "gpt-4o")
    upstream = "\n".join(message_texts(message) for message in out["messages"] if message["role"] == "user")
    texts = [text for message in body["messages"] for text in block_texts(message["content"])]
    assert texts and all(text in upstream for text in texts)


@pytest.mark.parametrize("profile", sorted(PROFILES))
@pytest.mark.parametrize(("name", "body"), MESSAGES, ids=[name for name, _ in MESSAGES])
class TestFixtureConversion:
    def test_no_anthropic_only_key_anywhere(self, core: Core, name: str, body: dict[str, Any], profile: str) -> None:
        out, _ = convert(core, body, profile)
        assert unexpected_keys(out, extra=REASONING_KEYS) == []
        assert BILLING_HEADER_PREFIX not in json.dumps(out)

    def test_every_tool_call_is_answered_right_after(
        self, core: Core, name: str, body: dict[str, Any], profile: str
    ) -> None:
        messages = convert(core, body, profile)[0]["messages"]
        assert unanswered_tool_calls(messages) == []
        assert orphan_tool_messages(messages) == []
        tool_uses = sum(
            1
            for message in body["messages"]
            if isinstance(message["content"], list)
            for block in message["content"]
            if block["type"] == "tool_use"
        )
        assert sum(len(message.get("tool_calls") or ()) for message in messages) == tool_uses

    def test_tool_names_fit_and_map_back(self, core: Core, name: str, body: dict[str, Any], profile: str) -> None:
        out, plan = convert(core, body, profile)
        names = [entry["function"]["name"] for entry in out.get("tools", [])]
        names += [call["function"]["name"] for message in out["messages"] for call in message.get("tool_calls") or ()]
        assert all(len(tool_name) <= OPENAI_TOOL_NAME_LIMIT for tool_name in names)
        declared = [tool["name"] for tool in body.get("tools") or []]
        assert [plan.tool_names.to_client(entry["function"]["name"]) for entry in out.get("tools", [])] == declared

    def test_system_prompt_reaches_the_first_message(
        self, core: Core, name: str, body: dict[str, Any], profile: str
    ) -> None:
        out, plan = convert(core, body, profile)
        expected = system_texts(body)
        first = out["messages"][0]
        if not expected:
            assert first["role"] == "user"
            return
        assert first["role"] == plan.capabilities.system_role
        for text in expected:
            assert text in first["content"]

    def test_system_role_messages_reach_the_upstream(
        self, core: Core, name: str, body: dict[str, Any], profile: str
    ) -> None:
        out, plan = convert(core, body, profile)
        upstream = [
            message_texts(message)
            for message in out["messages"][1:]
            if message["role"] == plan.capabilities.system_role
        ]
        wanted = [
            text
            for message in body["messages"]
            if message["role"] == "system"
            for text in block_texts(message["content"])
        ]
        for text in wanted:
            assert any(text in candidate for candidate in upstream)
        assert (
            not any(message["role"] == "system" for message in out["messages"])
            or plan.capabilities.system_role == "system"
        )

    def test_user_text_reaches_the_upstream(self, core: Core, name: str, body: dict[str, Any], profile: str) -> None:
        out, _ = convert(core, body, profile)
        upstream = "\n".join(message_texts(message) for message in out["messages"] if message["role"] == "user")
        for message in body["messages"]:
            if message["role"] == "user":
                for text in block_texts(message["content"]):
                    assert text in upstream


# Vendor extras (reasoning replay fields) are outside OpenAI's rules: only the OpenAI profiles are checked.
@pytest.mark.parametrize("profile", [profile for profile, spec in sorted(PROFILES.items()) if spec[3]])
@pytest.mark.parametrize(("name", "body"), MESSAGES, ids=[name for name, _ in MESSAGES])
def test_openai_accepts_the_body(core: Core, name: str, body: dict[str, Any], profile: str) -> None:
    out, _ = convert(core, body, profile)
    RequestValidator().validate(out)
