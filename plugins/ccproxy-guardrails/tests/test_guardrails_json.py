"""Tool-call arguments streamed as JSON fragments: string contents redacted, and the fragments still join into
valid JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from guardrails_support import SECRETS, pieces_of
from hypothesis import given, settings
from hypothesis import strategies as st

from ccproxy_guardrails.jsonstream import JsonRedactor
from ccproxy_guardrails.matcher import Matcher, StreamRedactor, compile_pattern
from ccproxy_guardrails.rules import detector_patterns

R = "[REDACTED]"
MATCHER = Matcher(detector_patterns(["secrets"]))
KEY = SECRETS["openai"]


def redacted(value: Any) -> Any:
    """What the arguments should parse to: every string (keys too) redacted as a whole."""
    if isinstance(value, str):
        found = MATCHER.redact(value, R)
        return found.text if found else value
    if isinstance(value, list):
        return [redacted(item) for item in value]
    if isinstance(value, dict):
        return {redacted(key): redacted(item) for key, item in value.items()}
    return value


def streamed(pieces: list[str], matcher: Matcher = MATCHER) -> tuple[str, JsonRedactor]:
    redactor = JsonRedactor(lambda: StreamRedactor(matcher, R, 16384))
    return "".join(redactor.feed(piece) for piece in pieces) + redactor.finish(), redactor


ARGUMENTS = {
    "command": f"curl -H 'Authorization: Bearer {KEY}' https://api.example.com",
    "content": f'{SECRETS["private_key"]}\nafter "quotes" \\ back\tslash é😀',
    KEY: [1, -2.5e3, True, False, None, {"nested": SECRETS["github"]}],
    "lone": "\ud83d half a pair",
    "empty": "",
}
# The same value written with escapes everywhere (as some servers send it) and written plainly.
ENCODINGS = [json.dumps(ARGUMENTS, ensure_ascii=True), json.dumps(ARGUMENTS, ensure_ascii=False, indent=1)]


@pytest.mark.parametrize("encoded", ENCODINGS, ids=["ascii", "plain"])
def test_every_split_into_two_fragments_gives_the_redacted_value(encoded: str) -> None:
    expected = redacted(ARGUMENTS)
    for cut in range(1, len(encoded)):
        out, _ = streamed([encoded[:cut], encoded[cut:]])
        assert json.loads(out) == expected, cut
        out.encode("utf-8")  # no raw lone surrogate: the client's JSON decoder and the SSE encoder need UTF-8


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(ENCODINGS), st.lists(st.integers(min_value=1, max_value=2000), max_size=80))
def test_any_fragments_give_the_redacted_value(encoded: str, cuts: list[int]) -> None:
    out, redactor = streamed(pieces_of(encoded, [cut for cut in cuts if cut < len(encoded)]))
    assert json.loads(out) == redacted(ARGUMENTS)
    assert redactor.labels == {"openai", "github", "private_key"}
    assert redactor.count == 4


def test_a_secret_written_with_unicode_escapes_is_found() -> None:
    escaped = "".join(f"\\u{ord(char):04x}" for char in KEY)
    out, _ = streamed(['{"k": "', escaped[:7], escaped[7:40], escaped[40:], '"}'])
    assert json.loads(out) == {"k": R}


def test_a_match_across_escaped_line_breaks_is_found() -> None:
    encoded = json.dumps({"pem": SECRETS["private_key"]})
    assert "\\n" in encoded
    out, _ = streamed(list(encoded))  # one character per fragment
    assert json.loads(out) == {"pem": R}


def test_a_replacement_with_quotes_and_backslashes_is_escaped() -> None:
    redactor = JsonRedactor(lambda: StreamRedactor(MATCHER, '"\\', 16384))
    out = redactor.feed(json.dumps({"k": KEY})) + redactor.finish()
    assert json.loads(out) == {"k": '"\\'}


def test_text_outside_strings_passes_at_once_and_held_text_waits() -> None:
    redactor = JsonRedactor(lambda: StreamRedactor(MATCHER, R, 16384))
    assert redactor.feed('{"a": 1, "b": [true, null], "c": "fine text') == '{"a": 1, "b": [true, null], "c": "fine text'
    assert redactor.feed(" sk-proj-") == " "
    assert redactor.feed(KEY[8:] + '"}') == R + '"}'


def test_broken_json_stays_as_broken_as_it_came() -> None:
    out, _ = streamed(['{"a": "bad \\q escape", "b": "cut off \\u00'])
    assert out == '{"a": "bad \\\\q escape", "b": "cut off \\u00'  # the invalid escape kept as its characters


def test_after_a_failure_salvage_is_what_was_not_passed_on() -> None:
    slow = Matcher([compile_pattern(r"(a|aa)+$", "patterns[0]", timeout=0.05)])
    redactor = JsonRedactor(lambda: StreamRedactor(slow, R, 16384))
    assert redactor.feed('{"x": "ok", "y": "') == '{"x": "ok", "y": "'
    fragment = "a" * 60 + '!", "z": 1}'
    with pytest.raises(TimeoutError):
        redactor.feed(fragment)
    assert redactor.salvage == fragment
