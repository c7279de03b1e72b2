"""ccproxy-guardrails: block, redact and limit rules from `[guardrails.<rule>]` tables, on requests and on answers,
streamed ones included. See docs/guardrails.md."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ccproxy import Guardrail, GuardrailEvent, StreamContext, StreamFilter, hookimpl
from ccproxy_guardrails.config import parse_rules
from ccproxy_guardrails.rules import guardrail_for
from ccproxy_guardrails.stream import filter_factory_for

Audit = Callable[[GuardrailEvent], None]
StreamFilterFactory = Callable[[StreamContext], StreamFilter | None]


@hookimpl
def ccproxy_register_guardrails(
    register: Callable[[Guardrail], None], options: Mapping[str, Any], audit: Audit
) -> None:
    """One guardrail per rule, in the rules' order (none without rules)."""
    for rule in parse_rules(options):
        register(guardrail_for(rule, audit))


@hookimpl
def ccproxy_register_stream_filters(
    register: Callable[[StreamFilterFactory], None], options: Mapping[str, Any], audit: Audit
) -> None:
    """One stream filter per rule that looks at answers, in the rules' order."""
    for rule in parse_rules(options):
        factory = filter_factory_for(rule, audit)
        if factory is not None:
            register(factory)
