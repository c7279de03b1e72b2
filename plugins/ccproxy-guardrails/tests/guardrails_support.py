"""Helpers for the ccproxy-guardrails tests: sample secrets, rules built from option tables, streams of events."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Mapping
from typing import Any

from ccproxy import GuardrailEvent, StreamContext, StreamFilter
from ccproxy_guardrails.config import parse_rules
from ccproxy_guardrails.rules import Rule, guardrail_for
from ccproxy_guardrails.stream import filter_factory_for

# Made-up credentials of each vendor's shape (none is real).
OPENAI_KEY = "sk-proj-" + "Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z" * 2
ANTHROPIC_KEY = "sk-ant-api03-" + "Zq7Wx2Ec5Rv8Tb1Yn4Um6Ik9Ol3Pa0Sd" * 2
GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
SLACK_TOKEN = "xoxb-2024111111-3024222222-Xy7Zt1Qw9Er4"
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"
AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
GOOGLE_KEY = "AIza" + "SyD3x7Qw9Er4Ty6Ui8Op0As2Df4Gh6Jk8Lz"
STRIPE_KEY = "sk_live_" + "4eC39HqLyjWDarjtT1zdp7dc"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4ifQ."
    "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PRIVATE_KEY = (
    "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA0Z3VS5JJcds3xfn/ygWyF8PbnGy0AHB7MhgHcTz6sE2I2yPB\n"
    "aFDrBz9vFqU4yi0Y0xvpHcF1Ie5Cl6FR3d2pqQ4vQ==\n-----END RSA PRIVATE KEY-----"
)
SECRETS = {
    "openai": OPENAI_KEY,
    "anthropic": ANTHROPIC_KEY,
    "github": GITHUB_TOKEN,
    "slack": SLACK_TOKEN,
    "aws_key_id": AWS_KEY_ID,
    "google": GOOGLE_KEY,
    "stripe": STRIPE_KEY,
    "jwt": JWT,
    "private_key": PRIVATE_KEY,
}


class Audit:
    """Collects the audit events a rule reports."""

    def __init__(self) -> None:
        self.events: list[GuardrailEvent] = []

    def __call__(self, event: GuardrailEvent) -> None:
        self.events.append(event)


def rules(options: Mapping[str, Any], audit: Audit | None = None) -> list[Rule]:
    return [guardrail_for(rule, audit or Audit()) for rule in parse_rules(options)]


def stream_filter(options: Mapping[str, Any], audit: Audit | None = None, request_id: str = "req_1") -> StreamFilter:
    """The stream filter of the only rule in `options`."""
    [rule] = parse_rules(options)
    factory = filter_factory_for(rule, audit or Audit())
    assert factory is not None
    made = factory(StreamContext(request_id, "claude-opus-4-8", "gpt-5"))
    assert made is not None
    return made


def message_start() -> dict[str, Any]:
    usage = {"input_tokens": 10, "output_tokens": 1}
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-opus-4-8"}
    return {"type": "message_start", "message": {**message, "stop_reason": None, "stop_sequence": None, "usage": usage}}


def text_stream(pieces: Iterable[str], index: int = 0) -> list[dict[str, Any]]:
    """One text block made of `pieces`, as the events of a block."""
    events: list[dict[str, Any]] = [
        {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
    ]
    events += [
        {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": piece}}
        for piece in pieces
    ]
    events.append({"type": "content_block_stop", "index": index})
    return events


def tool_stream(pieces: Iterable[str], index: int = 0) -> list[dict[str, Any]]:
    block = {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}
    events: list[dict[str, Any]] = [{"type": "content_block_start", "index": index, "content_block": block}]
    events += [
        {"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": piece}}
        for piece in pieces
    ]
    events.append({"type": "content_block_stop", "index": index})
    return events


def whole_stream(*blocks: list[dict[str, Any]], stop_reason: str = "end_turn") -> list[dict[str, Any]]:
    ending = {"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": None}}
    return [
        message_start(),
        *[e for block in blocks for e in block],
        {**ending, "usage": {"output_tokens": 5}},
        {"type": "message_stop"},
    ]


def run_filter(stream_filter: StreamFilter, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every event through the filter (deep copies: filters may change events in place), then its flush."""
    out: list[dict[str, Any]] = []
    for event in events:
        out += stream_filter.feed(json.loads(json.dumps(event)))
    return out + stream_filter.flush()


def pieces_of(text: str, cuts: Iterable[int]) -> list[str]:
    """`text` cut at the given offsets."""
    bounds = [0, *sorted(set(cuts)), len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds) if b > a]
