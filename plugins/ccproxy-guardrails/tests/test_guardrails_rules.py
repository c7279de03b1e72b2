"""Rules on requests and non-streamed answers: block, redact, limits, and the failure policy."""

from __future__ import annotations

import copy
import json
import logging
from typing import Any

import pytest
from guardrails_support import AWS_KEY_ID, SECRETS, Audit, rules

from ccproxy import GuardrailContext, Principal, ProxyError
from ccproxy_guardrails.walk import CleanMessages
from tests.support.backends import backends_toml, make_rig
from tests.support.fixtures import claude_code_posts

R = "[REDACTED]"
KEY = SECRETS["openai"]
CONTEXT = GuardrailContext(request_id="req_test", headers={})


def request(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-opus-4-8", "max_tokens": 1000, "messages": list(messages), **extra}


def user(content: Any) -> dict[str, Any]:
    return {"role": "user", "content": content}


CONVERSATION = request(
    user([{"type": "text", "text": f"my key is {KEY}"}]),
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": f"they sent {SECRETS['github']}", "signature": "sig-123"},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": f"export T={KEY}", "n": 3}},
        ],
    },
    user(
        [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": AWS_KEY_ID}]},
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": SECRETS["jwt"]}},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AKIAIOSFODNN7EXAMPLE"}},
        ]
    ),
    system=[{"type": "text", "text": f"system {SECRETS['slack']}"}],
    tools=[{"name": "Bash", "description": f"never touched {KEY}", "input_schema": {"type": "object"}}],
)


async def check(options: dict[str, Any], body: dict[str, Any], context: GuardrailContext = CONTEXT) -> None:
    for rule in rules(options):
        await rule.check_request(body, context)


# -- redact ---------------------------------------------------------------------------------------------------


async def test_redact_replaces_secrets_everywhere_a_person_or_tool_wrote_them() -> None:
    body = copy.deepcopy(CONVERSATION)
    audit = Audit()
    for rule in rules({"redact": {}}, audit):
        await rule.check_request(body, CONTEXT)
    text = json.dumps(body)
    for secret in (SECRETS["github"], SECRETS["slack"], SECRETS["jwt"]):
        assert secret not in text
    assert body["messages"][0]["content"][0]["text"] == f"my key is {R}"
    assert body["messages"][1]["content"][1] == {
        "type": "tool_use",
        "id": "toolu_1",
        "name": "Bash",
        "input": {"command": f"export T={R}", "n": 3},
    }
    assert body["messages"][2]["content"][0]["content"][0]["text"] == R
    assert body["system"][0]["text"] == f"system {R}"
    # Not what the user wrote: tool definitions, signatures, binary data.
    assert body["tools"] == CONVERSATION["tools"]
    assert body["messages"][1]["content"][0]["signature"] == "sig-123"
    assert body["messages"][2]["content"][2] == CONVERSATION["messages"][2]["content"][2]
    [event] = audit.events
    assert (event.rule, event.action, event.direction, event.count) == ("redact", "redact", "request", 6)
    assert event.labels == ("aws_key_id", "github", "jwt", "openai", "slack")
    assert KEY not in repr(event)


async def test_a_redacted_message_is_a_copy_and_the_message_sent_stays_as_it_was() -> None:
    """ccproxy shares the messages a conversation repeats between its requests (`Guardrail.amends_messages`): a
    redaction puts a redacted copy in the request's own list and leaves the message itself alone."""
    sent = copy.deepcopy(CONVERSATION)
    clean = user("nothing to hide")
    body = {**sent, "messages": [*sent["messages"], clean]}  # the request's own list, over shared messages
    audit = Audit()
    for rule in rules({"redact": {}}, audit):
        assert rule.amends_messages is False
        await rule.check_request(body, CONTEXT)
    assert sent["messages"] == CONVERSATION["messages"]  # the shared messages: as the client wrote them
    assert all(copied is not shared for copied, shared in zip(body["messages"], sent["messages"], strict=False))
    assert body["messages"][3] is clean  # nothing to redact: not copied
    assert body["messages"][0]["content"][0]["text"] == f"my key is {R}"
    assert body["messages"][1]["content"][1]["input"] == {"command": f"export T={R}", "n": 3}
    assert audit.events[0].count == 6  # each secret counted once, as when redacted in place


async def test_redaction_and_reused_messages_through_the_pipeline() -> None:
    """With the rule on, a conversation's repeated messages are still reused, each request's upstream body is
    redacted, and the messages kept for the next turn stay as the client wrote them."""
    rig = make_rig(backends_toml({"a": ""}, {"claude-*": ["a:small"]}), {}, guardrails=rules({"redact": {}}))
    body = next(capture.body for capture in claude_code_posts("/v1/messages") if capture.body.get("tools"))
    body = {**body, "stream": False, "messages": [*body["messages"], user(f"my key is {KEY}")]}
    raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
    bodies = []
    for _ in range(3):
        prepared = await rig.pipeline.prepare(raw, {}, "req_test")
        await rig.clock.run(rig.pipeline.complete(prepared))
        upstream = bytes(rig.fakes["a"].requests[-1].body).decode()
        assert KEY not in upstream and R in upstream
        bodies.append(prepared.body)
    assert bodies[2]["messages"][0] is bodies[1]["messages"][0]  # reused as parsed for the earlier request
    [history] = rig.pipeline.pieces.histories
    assert [json.loads(item) for item in history.raws] == history.parsed == body["messages"]


async def test_a_plain_string_prompt_and_system_are_redacted() -> None:
    body = request(user(f"key {KEY}"), system=f"sys {KEY}")
    await check({"redact": {"replacement": "<secret>"}}, body)
    assert (body["messages"][0]["content"], body["system"]) == ("key <secret>", "sys <secret>")


async def test_redact_only_answers_leaves_requests_alone() -> None:
    body = request(user(f"key {KEY}"))
    await check({"redact": {"directions": ["response"]}}, body)
    assert body["messages"][0]["content"] == f"key {KEY}"


async def test_non_streamed_answers_are_redacted_text_thinking_and_tool_input() -> None:
    message = {
        "content": [
            {"type": "thinking", "thinking": f"use {KEY}", "signature": "s"},
            {"type": "text", "text": f"here: {SECRETS['stripe']}"},
            {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": f"echo {KEY}"}},
        ]
    }
    audit = Audit()
    [rule] = rules({"redact": {}}, audit)
    await rule.check_response(message, CONTEXT)
    assert [
        block.get("text") or block.get("thinking") or block["input"]["command"] for block in message["content"]
    ] == [
        f"use {R}",
        f"here: {R}",
        f"echo {R}",
    ]
    assert (audit.events[0].direction, audit.events[0].count) == ("response", 3)


async def test_custom_patterns_and_pii_detectors() -> None:
    body = request(user("Project  FALCON is at bob@example.com, +44 20 7946 0958"))
    await check(
        {"pii": {"kind": "redact", "detectors": ["email", "phone"], "patterns": ["(?i)project\\s+falcon"]}}, body
    )
    assert body["messages"][0]["content"] == f"{R} is at {R}, {R}"


# -- block ----------------------------------------------------------------------------------------------------


async def test_block_refuses_with_400_naming_the_rule_never_the_text() -> None:
    audit = Audit()
    [rule] = rules({"block": {"patterns": ["(?i)operation\\s+nightfall"]}}, audit)
    body = request(user([{"type": "tool_result", "tool_use_id": "t", "content": "about Operation Nightfall"}]))
    with pytest.raises(ProxyError) as refused:
        await rule.check_request(body, CONTEXT)
    assert (refused.value.status, refused.value.error_type) == (400, "invalid_request_error")
    assert "'block'" in refused.value.message and "ightfall" not in refused.value.message
    [event] = audit.events
    assert (event.action, event.labels) == ("block", ("patterns[0]",))


async def test_block_with_403_and_a_message_of_its_own() -> None:
    options = {"codenames": {"kind": "block", "patterns": ["falcon"], "status": 403, "message": "Code names stay in"}}
    with pytest.raises(ProxyError) as refused:
        await check(options, request(user("falcon")))
    assert (refused.value.status, refused.value.error_type) == (403, "permission_error")
    assert refused.value.message == "Code names stay in (guardrail 'codenames')"


async def test_block_looks_at_tool_inputs_but_not_tool_definitions() -> None:
    options = {"block": {"patterns": ["rm -rf"]}}
    await check(options, request(user("hi"), tools=[{"name": "Bash", "description": "never rm -rf /"}]))
    tool_call = {"type": "tool_use", "id": "t", "name": "Bash", "input": {"command": "rm -rf /"}}
    with pytest.raises(ProxyError):
        await check(options, request(user("hi"), {"role": "assistant", "content": [tool_call]}, user("ok")))


async def test_block_on_answers_only_when_asked() -> None:
    message = {"content": [{"type": "text", "text": "the falcon flies"}]}
    [requests_only] = rules({"block": {"patterns": ["falcon"]}})
    await requests_only.check_response(copy.deepcopy(message), CONTEXT)
    [both] = rules({"block": {"patterns": ["falcon"], "directions": ["request", "response"]}})
    with pytest.raises(ProxyError, match="Answer withheld by guardrail 'block'"):
        await both.check_response(message, CONTEXT)


# -- limits ---------------------------------------------------------------------------------------------------


async def test_max_tokens_is_capped_not_refused() -> None:
    audit = Audit()
    body = request(user("hi"), thinking={"type": "enabled", "budget_tokens": 5000})
    body["max_tokens"] = 32000
    for rule in rules({"limits": {"max_tokens": 4096}}, audit):
        await rule.check_request(body, CONTEXT)
    assert body["max_tokens"] == 4096 and body["thinking"]["budget_tokens"] == 4095
    assert (audit.events[0].action, audit.events[0].detail) == ("limit", "max_tokens 32000 -> 4096")
    small = request(user("hi"))
    await check({"limits": {"max_tokens": 4096}}, small)
    assert small["max_tokens"] == 1000


async def test_too_many_messages_and_too_large_a_body_are_refused() -> None:
    options = {"limits": {"max_messages": 2, "max_request_bytes": 1000}}
    with pytest.raises(ProxyError, match="3 messages, at most 2") as refused:
        await check(options, request(user("a"), {"role": "assistant", "content": "b"}, user("c")))
    assert refused.value.status == 400
    with pytest.raises(ProxyError, match="a body of 1001 bytes, at most 1000") as refused:
        await check(options, request(user("a")), GuardrailContext("req_1", {}, body_bytes=1001))
    assert (refused.value.status, refused.value.error_type) == (413, "request_too_large")


async def test_models_per_client_key() -> None:
    options = {"limits": {"models": {"team-a": ["claude-haiku-*"]}}}
    team_a = GuardrailContext("req_1", {}, principal=Principal(key_id="team-a"))
    await check(options, request(user("hi"), model="Claude-Haiku-4-5"), team_a)  # globs are case-insensitive
    with pytest.raises(ProxyError, match="not allowed for key 'team-a'") as refused:
        await check(options, request(user("hi")), team_a)
    assert refused.value.status == 403
    # Another key, and a request without a Principal (no authenticator): no list of theirs applies.
    await check(options, request(user("hi")), GuardrailContext("req_1", {}, principal=Principal(key_id="team-b")))
    await check(options, request(user("hi")))
    # The key's own list (from its authenticator) applies too.
    own = GuardrailContext("req_1", {}, principal=Principal(key_id="team-b", models=("claude-sonnet-*",)))
    with pytest.raises(ProxyError, match="not allowed for key 'team-b'"):
        await check(options, request(user("hi")), own)


# -- failure policy -------------------------------------------------------------------------------------------

CATASTROPHIC = {"slow": {"kind": "block", "patterns": ["(a|aa)+$"], "regex_timeout": 0.05}}


async def test_a_failing_rule_fails_closed_with_an_error_and_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    audit = Audit()
    [rule] = rules(CATASTROPHIC, audit)
    with caplog.at_level(logging.ERROR, "ccproxy.guardrails"), pytest.raises(ProxyError) as refused:
        await rule.check_request(request(user("a" * 60 + "!")), CONTEXT)
    assert (refused.value.status, refused.value.error_type) == (500, "api_error")
    assert "'slow'" in refused.value.message
    [record] = caplog.records
    assert record.exc_info is None and "TimeoutError" in record.getMessage() and "aaa" not in record.getMessage()
    assert (audit.events[0].action, audit.events[0].detail) == ("error", "TimeoutError; refused")


async def test_fail_open_lets_the_request_through() -> None:
    audit = Audit()
    [rule] = rules({"slow": {**CATASTROPHIC["slow"], "fail_open": True}}, audit)
    await rule.check_request(request(user("a" * 60 + "!")), CONTEXT)
    assert audit.events[0].detail == "TimeoutError; let through (fail_open)"


async def test_a_refusal_is_not_a_failure() -> None:
    audit = Audit()
    [rule] = rules({"block": {"patterns": ["x"], "fail_open": True}}, audit)
    with pytest.raises(ProxyError):
        await rule.check_request(request(user("x")), CONTEXT)
    assert [event.action for event in audit.events] == ["block"]


async def test_shared_messages_a_rule_found_nothing_in_are_not_read_again() -> None:
    """The messages ccproxy reuses from a conversation's earlier request (`GuardrailContext.reused_messages`) are
    the same objects, unchanged: a rule remembers, by identity, those it found nothing in."""
    [redact] = rules({"redact": {}})
    [block] = rules({"block": {"patterns": ["codename-[0-9]+"]}})
    clean, secret = user("nothing to hide"), user(f"my key is {KEY}")
    read: list[str] = []
    scans = redact.scans

    class Reading:  # the rule's scans, each text it reads written down
        def get(self, text: str) -> Any:
            read.append(text)
            return scans.get(text)

    redact.scans = Reading()  # type: ignore[assignment]

    def turn(*messages: dict[str, Any], reused: int) -> dict[str, Any]:
        body = request(*messages)
        context = GuardrailContext(request_id="req_test", headers={}, reused_messages=reused)
        redact.on_request(body, context)
        block.on_request(body, context)
        return body

    turn(clean, secret, reused=0)  # a first turn: nothing shared, nothing remembered
    assert (read, len(redact.clean), len(block.clean)) == (["nothing to hide", f"my key is {KEY}"], 0, 0)
    read.clear()
    body = turn(clean, secret, user("next"), reused=2)
    assert read == ["nothing to hide", f"my key is {KEY}", "next"]  # shared, but not yet known clean
    assert body["messages"][1]["content"] == f"my key is {R}"
    read.clear()
    body = turn(clean, secret, user("next"), user("and more"), reused=3)
    assert read == [f"my key is {KEY}", "next", "and more"]  # the clean shared one is skipped
    assert body["messages"][1]["content"] == f"my key is {R}"  # a message with a secret is redacted every time
    # Another object with the same index is read, whatever it holds: the memory is by identity, not by position.
    with pytest.raises(ProxyError, match="blocked pattern"):
        turn(user("codename-7"), reused=1)
    assert clean in block.clean and secret not in redact.clean


def test_the_memory_of_clean_messages_is_bounded() -> None:
    clean = CleanMessages(limit=3)
    messages = [user(str(number)) for number in range(5)]
    for message in messages:
        clean.add(message)
    assert len(clean) == 3
    assert [message in clean for message in messages] == [False, False, True, True, True]
    assert user("4") not in clean  # equal, but another object
