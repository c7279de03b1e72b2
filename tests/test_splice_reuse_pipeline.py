"""The pipeline reuses the parsed tools of a recent request (ccproxy/splice.py `SplicedPieces.parse`) and the
messages a conversation repeats (ccproxy/history.py) only when no guardrail may amend them, still refuses what the
plain parse and validation refuse, and words errors the same."""

from __future__ import annotations

import copy
import json
import re
from typing import Any, ClassVar

import pytest

from ccproxy import Guardrail, GuardrailContext
from ccproxy.core.jsoncodec import loads
from ccproxy.core.nesting import MAX_DEPTH, NESTING_MESSAGE
from ccproxy.errors import InvalidRequestError
from ccproxy.pipeline import parse_json_body
from tests.support.backends import Rig, backends_toml, make_rig
from tests.support.fixtures import claude_code_posts

ROUTES = backends_toml({"a": ""}, {"claude-*": ["a:small"]})
BODY = next(capture.body for capture in claude_code_posts("/v1/messages") if capture.body.get("tools"))


def claude_code_bytes(body: dict[str, Any]) -> bytes:
    return json.dumps({**body, "stream": False}, ensure_ascii=False, separators=(",", ":")).encode()


class MarksTools(Guardrail):
    """Amends the first tool of every second request in place (as a guardrail rewriting some descriptions would)."""

    name = "marks_tools"

    def __init__(self) -> None:
        self.seen = 0

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        self.seen += 1
        if self.seen % 2 == 0:
            body["tools"][0]["description"] += " (checked)"


class ReadsTools(MarksTools):
    """Declares that it leaves the tools alone."""

    name = "reads_tools"
    amends_tools: ClassVar[bool] = False

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        assert body["tools"]


async def sent(rig: Rig, raw: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The prepared body and what the backend was sent for it."""
    prepared = await rig.pipeline.prepare(raw, {}, "req_test")
    await rig.clock.run(rig.pipeline.complete(prepared))
    return prepared.body, loads(bytes(rig.fakes["a"].requests[-1].body))


async def test_tools_a_guardrail_may_amend_are_parsed_afresh_for_every_request() -> None:
    rig = make_rig(ROUTES, {}, guardrails=[MarksTools()])
    raw = claude_code_bytes(BODY)
    original = BODY["tools"][0]["description"]
    for number in range(1, 6):
        body, upstream = await sent(rig, raw)
        # Amended on every second request only: a list shared between requests would carry the amendment over.
        wanted = original + (" (checked)" if number % 2 == 0 else "")
        assert body["tools"][0]["description"] == wanted
        assert upstream["tools"][0]["function"]["description"] == wanted


async def test_tools_left_alone_by_the_guardrails_are_reused() -> None:
    rig = make_rig(ROUTES, {}, guardrails=[ReadsTools()])
    raw = claude_code_bytes(BODY)
    first, expected = await sent(rig, raw)
    body, upstream = await sent(rig, raw)
    assert body["tools"] is first["tools"]
    assert body == loads(raw)
    assert upstream == expected


class MarksMessages(Guardrail):
    """Amends the first message's text in place on every request (as a redacting guardrail would)."""

    name = "marks_messages"
    amends_tools: ClassVar[bool] = False

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        body["messages"][0]["content"][0]["text"] += " (checked)"


class ReadsMessages(ReadsTools):
    """Declares that it leaves the messages alone too."""

    name = "reads_messages"
    amends_messages: ClassVar[bool] = False


def upstream_texts(upstream: dict[str, Any]) -> list[str]:
    """The texts of the Chat Completions messages sent upstream."""
    texts = []
    for message in upstream["messages"]:
        content = message["content"]
        texts += [content] if isinstance(content, str) else [part.get("text") for part in content]
    return texts


async def test_messages_a_guardrail_may_amend_are_parsed_afresh_for_every_request() -> None:
    rig = make_rig(ROUTES, {}, guardrails=[MarksMessages()])
    raw = claude_code_bytes(BODY)
    wanted = BODY["messages"][0]["content"][0]["text"] + " (checked)"
    for _ in range(3):
        body, upstream = await sent(rig, raw)
        # Amended once per request: messages shared between requests would carry the amendment over.
        assert body["messages"][0]["content"][0]["text"] == wanted
        assert wanted in upstream_texts(upstream)
    assert len(rig.pipeline.pieces.histories) == 0


async def test_messages_left_alone_by_the_guardrails_are_reused_and_stay_as_the_client_sent_them() -> None:
    rig = make_rig(ROUTES, {}, guardrails=[ReadsMessages()])
    raw = claude_code_bytes(BODY)
    plain = make_rig(ROUTES, {}, guardrails=[ReadsTools()])  # parses every request's messages afresh
    first, expected = await sent(rig, raw)
    turn = copy.deepcopy(BODY)
    turn["messages"].append({"role": "assistant", "content": [{"type": "text", "text": "an answer"}]})
    turn["messages"].append({"role": "user", "content": [{"type": "text", "text": "and a question"}]})
    for raw_again in (raw, claude_code_bytes(turn), raw):
        body, upstream = await sent(rig, raw_again)
        assert body == loads(raw_again)
        assert body["messages"][0] is first["messages"][0]
        assert upstream == (await sent(plain, raw_again))[1]
    body, upstream = await sent(rig, raw)
    assert upstream == expected
    for history in rig.pipeline.pieces.histories:  # nothing changed the shared values
        assert [loads(item) for item in history.raws] == history.parsed


def deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = [value]
    return value


async def test_a_body_with_known_tools_is_still_validated() -> None:
    rig = make_rig(ROUTES, {})
    await sent(rig, claude_code_bytes(BODY))
    nested = copy.deepcopy(BODY)
    nested["messages"].append({"role": "user", "content": [{"type": "text", "text": "x", "extra": deep(MAX_DEPTH)}]})
    wrong = {**copy.deepcopy(BODY), "max_tokens": "many"}
    for body, message in ((nested, NESTING_MESSAGE), (wrong, "max_tokens")):
        raw = claude_code_bytes(body)
        assert rig.pipeline.pieces.parse(raw) is not None  # the tools are known: the reuse is what is tested
        with pytest.raises(InvalidRequestError, match=re.escape(message)):
            await rig.pipeline.prepare(raw, {}, "req_test")


async def test_broken_json_around_known_tools_gets_the_plain_parse_error() -> None:
    rig = make_rig(ROUTES, {})
    raw = claude_code_bytes(BODY)
    await sent(rig, raw)
    broken = raw[:-1]  # the closing brace is missing
    with pytest.raises(InvalidRequestError) as plain:
        parse_json_body(broken)
    with pytest.raises(InvalidRequestError) as got:
        await rig.pipeline.prepare(broken, {}, "req_test")
    assert got.value.message == plain.value.message
