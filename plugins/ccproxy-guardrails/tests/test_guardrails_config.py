"""`[guardrails]` tables: kinds, names, order, and errors that name the table and key."""

from __future__ import annotations

from typing import Any

import pytest
from guardrails_support import rules

from ccproxy import SettingsError
from ccproxy_guardrails.config import BlockOptions, LimitsOptions, RedactOptions, parse_rules


def test_kinds_come_from_table_names_or_a_kind_key() -> None:
    parsed = parse_rules(
        {
            "allowed_models": ["claude-*"],  # the built-in guardrail's option: not a rule
            "block": {"patterns": ["x"]},
            "secrets": {"kind": "redact"},
            "limits": {"max_tokens": 10},
            "pii": {"kind": "redact", "detectors": ["email"]},
            "another-plugin": {"level": 3},  # no kind: another plugin's table
        }
    )
    assert [(rule.name, rule.kind) for rule in parsed] == [
        ("block", "block"),
        ("secrets", "redact"),
        ("limits", "limits"),
        ("pii", "redact"),
    ]
    assert isinstance(parsed[0].options, BlockOptions) and parsed[0].options.status == 400
    redact = parsed[1].options
    assert isinstance(redact, RedactOptions)
    assert (redact.detectors, redact.directions, redact.replacement) == (
        ["secrets"],
        ["request", "response"],
        "[REDACTED]",
    )
    assert isinstance(parsed[2].options, LimitsOptions)


def test_order_comes_first_then_the_other_rules_in_table_order() -> None:
    options = {"a": {"kind": "redact"}, "b": {"kind": "redact"}, "c": {"kind": "redact"}, "order": ["c", "a"]}
    assert [rule.name for rule in parse_rules(options)] == ["c", "a", "b"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"block": {}}, "guardrails.block: patterns: a block rule needs at least one pattern"),
        ({"block": {"patterns": ["x"], "status": 401}}, "guardrails.block.status: Input should be 400 or 403"),
        ({"block": ["x"]}, r"guardrails.block: expected a table \(\[guardrails.block\]\)"),
        ({"redact": {"detectors": ["passwords"]}}, "guardrails.redact: detectors: unknown detector 'passwords'"),
        ({"redact": {"detectors": []}}, "guardrails.redact: a redact rule needs patterns or detectors"),
        ({"redact": {"replacment": "x"}}, "guardrails.redact.replacment: Extra inputs are not permitted"),
        ({"redact": {"directions": ["sideways"]}}, "guardrails.redact.directions.0: Input should be 'request'"),
        ({"x": {"kind": "censor"}}, "guardrails.x.kind: 'censor' is not a rule kind; one of block, redact, limits"),
        ({"limits": {"max_tokens": 0}}, "guardrails.limits.max_tokens: Input should be greater than or equal to 1"),
        ({"limits": {"directions": ["request"]}}, "guardrails.limits.directions: Extra inputs are not permitted"),
        ({"redact": {}, "order": ["redcat"]}, "guardrails.order: 'redcat' is not a rule; the rules are: redact"),
        ({"redact": {}, "order": "redact"}, "guardrails.order: expected a list of rule names"),
        ({"redact": {}, "order": ["redact", "redact"]}, "guardrails.order: a rule is named twice"),
    ],
)
def test_errors_name_the_table_and_key(options: dict[str, Any], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        parse_rules(options)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [("(unclosed", "invalid regular expression"), ("x*", "the pattern matches the empty text")],
)
def test_bad_patterns_are_named_at_start_up(pattern: str, message: str) -> None:
    with pytest.raises(SettingsError, match=rf"guardrails.codes.patterns\[1\]: {message}"):
        rules({"codes": {"kind": "block", "patterns": ["ok", pattern]}})
