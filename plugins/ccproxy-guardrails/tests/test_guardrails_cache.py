"""The rules' scan cache: a text seen before is not scanned again, the result is the uncached one, the bounds hold."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from guardrails_support import SECRETS, Audit, rules
from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy import GuardrailContext, ProxyError
from ccproxy_guardrails.cache import ScanCache
from ccproxy_guardrails.matcher import Matcher, Redaction
from ccproxy_guardrails.rules import BlockRule, RedactRule, first_match
from ccproxy_guardrails.walk import walk_request

R = "[REDACTED]"
CONTEXT = GuardrailContext(request_id="req_test", headers={})
KEY = SECRETS["openai"]


class CountingMatcher:
    """A Matcher that counts the texts it scans."""

    def __init__(self, matcher: Matcher) -> None:
        self.matcher = matcher
        self.scanned: list[str] = []

    def redact(self, text: str, replacement: str) -> Redaction | None:
        self.scanned.append(text)
        return self.matcher.redact(text, replacement)


def redact_rule(options: dict[str, Any] | None = None, audit: Audit | None = None) -> RedactRule:
    [rule] = rules({"redact": options or {}}, audit)
    assert isinstance(rule, RedactRule)
    return rule


def conversation(*texts: str) -> dict[str, Any]:
    """Alternating user and assistant turns: user texts, assistant tool calls with the text as a tool input."""
    messages: list[dict[str, Any]] = []
    for position, text in enumerate(texts):
        if position % 2 == 0:
            messages.append({"role": "user", "content": [{"type": "text", "text": text}]})
        else:
            use = {"type": "tool_use", "id": f"toolu_{position}", "name": "Bash", "input": {"command": text}}
            messages.append({"role": "assistant", "content": [use]})
    return {"model": "claude-opus-4-8", "max_tokens": 100, "system": "be brief", "messages": messages}


def test_a_history_resent_is_scanned_once() -> None:
    rule = redact_rule()
    counting = CountingMatcher(rule.matcher)
    rule.matcher = counting  # type: ignore[assignment]  # duck-typed: only `redact` is called
    history = [f"turn {n}: my key is {KEY}" if n == 1 else f"turn {n}: hello" for n in range(4)]
    for turn in range(1, len(history) + 1):
        body = conversation(*history[:turn])
        rule.on_request(body, CONTEXT)
        assert KEY not in str(body)
        if turn > 1:
            assert body["messages"][1]["content"][0]["input"]["command"] == f"turn 1: my key is {R}"
    # "be brief" and each turn's text once, however often the history was resent.
    assert sorted(counting.scanned) == sorted(["be brief", *history])


def test_a_cached_redaction_is_reported_on_every_request() -> None:
    audit = Audit()
    rule = redact_rule(audit=audit)
    for _ in range(2):
        body = conversation(f"key {KEY} and again {KEY}")
        rule.on_request(body, CONTEXT)
        assert body["messages"][0]["content"][0]["text"] == f"key {R} and again {R}"
    assert [(event.action, event.count, event.labels) for event in audit.events] == [("redact", 2, ("openai",))] * 2


def test_rules_never_share_results() -> None:
    stars, hashes = redact_rule({"replacement": "***"}), redact_rule({"replacement": "###"})
    text = f"key {KEY}"
    first, second = conversation(text), conversation(text)
    stars.on_request(first, CONTEXT)
    hashes.on_request(second, CONTEXT)
    assert first["messages"][0]["content"][0]["text"] == "key ***"
    assert second["messages"][0]["content"][0]["text"] == "key ###"
    [falcon] = rules({"block": {"patterns": ["falcon"]}})
    [eagle] = rules({"block": {"patterns": ["eagle"]}})
    assert isinstance(falcon, BlockRule) and isinstance(eagle, BlockRule)
    eagle.on_request(conversation("project falcon"), CONTEXT)  # passes, and is stored by this rule only
    with pytest.raises(ProxyError):
        falcon.on_request(conversation("project falcon"), CONTEXT)
    eagle.on_request(conversation("project falcon"), CONTEXT)
    with pytest.raises(ProxyError):
        eagle.on_request(conversation("an eagle"), CONTEXT)


def test_a_block_rule_refuses_a_resent_text_every_time() -> None:
    [rule] = rules({"block": {"patterns": ["(?i)project\\s+falcon"]}})
    for _ in range(3):
        with pytest.raises(ProxyError) as refused:
            rule.on_request(conversation("hello", "about Project  Falcon"), CONTEXT)
        assert refused.value.status == 400


def test_the_least_recently_used_entry_goes_first() -> None:
    scanned: list[str] = []

    def scan(text: str) -> int:
        scanned.append(text)
        return len(text)

    cache: ScanCache[int] = ScanCache(scan, lambda result: 0, max_entries=2)
    for text in ("a", "bb", "a", "ccc", "a", "bb"):
        assert cache.get(text) == len(text)
    # "bb" was dropped when "ccc" came ("a" had been used since), so it is scanned again; "ccc" is then dropped.
    assert scanned == ["a", "bb", "ccc", "bb"]
    assert len(cache) == 2


def test_the_byte_budget_holds_and_a_huge_text_is_never_stored() -> None:
    cache: ScanCache[str] = ScanCache(str.upper, len, max_bytes=4000)
    for n in range(20):
        cache.get(f"{n:03d}" + "x" * 300)
        assert cache.bytes <= 4000
    assert 0 < len(cache) < 20
    kept = len(cache)
    assert cache.get("y" * 1000) == "Y" * 1000  # more than a quarter of the budget
    assert len(cache) == kept


def test_a_scan_that_fails_stores_nothing() -> None:
    calls: list[str] = []

    def scan(text: str) -> int:
        calls.append(text)
        if len(calls) == 1:
            raise TimeoutError("pattern timed out")
        return 1

    cache: ScanCache[int] = ScanCache(scan, lambda result: 0)
    with pytest.raises(TimeoutError):
        cache.get("text")
    assert len(cache) == 0
    assert cache.get("text") == 1
    assert calls == ["text", "text"]


# Texts built from filler and pieces of secrets: whole secrets, and secrets split over neighbouring texts.
FILLER = st.text(alphabet="ab -_:/\n=.", max_size=12)
SECRET_PIECES = st.sampled_from(sorted(SECRETS.values())).flatmap(
    lambda secret: st.integers(min_value=0, max_value=len(secret)).map(
        lambda cut: [secret, secret[:cut], secret[cut:]][cut % 3]
    )
)
TEXTS = st.lists(st.lists(FILLER | SECRET_PIECES, max_size=5).map("".join), min_size=1, max_size=8)


def uncached(rule: RedactRule, body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """`body` redacted the way the rule did before the cache: every text scanned."""
    body = copy.deepcopy(body)
    count = 0

    def visit(text: str) -> str | None:
        nonlocal count
        redaction = rule.matcher.redact(text, rule.replacement)
        count += redaction.count if redaction is not None else 0
        return None if redaction is None else redaction.text

    walk_request(body, visit)
    return body, count


@settings(max_examples=150, deadline=None)
@given(TEXTS, st.integers(min_value=0, max_value=7))
def test_cached_results_equal_the_uncached_scan(texts: list[str], repeat: int) -> None:
    audit = Audit()
    rule = redact_rule({"detectors": ["secrets", "email"]}, audit)
    [block] = rules({"block": {"patterns": ["sk-[a-z]+-", "AKIA[0-9A-Z]{4}"]}})
    assert isinstance(block, BlockRule)
    turns = [texts[: n + 1] for n in range(len(texts))] + [texts, texts[repeat % len(texts) :]]
    for history in turns:  # the history resent, growing, then again, then a tail of it
        body = conversation(*history)
        expected, count = uncached(rule, body)
        audit.events.clear()
        rule.on_request(body, CONTEXT)
        assert body == expected
        assert sum(event.count for event in audit.events) == count
        raw = conversation(*history)
        want = first_match(block.matcher.first, walk_request, copy.deepcopy(raw))
        try:
            block.on_request(raw, CONTEXT)
            got = None
        except ProxyError:
            got = "refused"
        assert got == (None if want is None else "refused")
