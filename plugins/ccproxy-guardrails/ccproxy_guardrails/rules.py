"""The rules as guardrails: block, redact and limits on requests and non-streamed answers, with the failure policy.

Failure policy: a rule that raises anything but a refusal (a pattern that timed out, a bug) refuses the request or
withholds the answer with a 500 `api_error` naming the rule (fail closed), or, with `fail_open = true`, lets it pass;
either way an `error` audit event and one log line without a traceback (whose text could quote the request).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterable
from fnmatch import fnmatchcase
from functools import partial
from typing import Any, ClassVar

from ccproxy import Guardrail, GuardrailContext, GuardrailEvent, ProxyError, SettingsError
from ccproxy_guardrails.cache import ScanCache
from ccproxy_guardrails.config import BlockOptions, Direction, LimitsOptions, RedactOptions, RuleConfig
from ccproxy_guardrails.detectors import DETECTORS, expand
from ccproxy_guardrails.matcher import Matcher, Pattern, Redaction, compile_pattern
from ccproxy_guardrails.walk import CleanMessages, Visit, walk_message, walk_request

log = logging.getLogger("ccproxy.guardrails")

Audit = Callable[[GuardrailEvent], None]
Walk = Callable[[dict[str, Any], Visit], None]
Check = Callable[[dict[str, Any], GuardrailContext], None]
WHAT: dict[str, str] = {"request": "request", "response": "answer"}


def detector_patterns(names: list[str]) -> list[Pattern]:
    """The expressions of the named detectors (groups expanded), each labelled with its detector's name."""
    return [compile_pattern(source, name, literals) for name in expand(names) for source, literals in DETECTORS[name]]


def build_matcher(rule: RuleConfig, detectors: list[str], patterns: list[str], timeout: float) -> Matcher:
    """The rule's detectors and patterns, compiled; SettingsError naming a bad pattern."""
    compiled = detector_patterns(detectors)
    for position, pattern in enumerate(patterns):
        try:
            compiled.append(compile_pattern(pattern, f"patterns[{position}]", timeout=timeout))
        except ValueError as exc:
            raise SettingsError(f"guardrails.{rule.name}.patterns[{position}]: {exc}") from None
    return Matcher(compiled)


class Reporter:
    """A rule's name, failure policy and audit: what its guardrail and its stream filters share."""

    __slots__ = ("audit", "fail_open", "name")

    def __init__(self, name: str, fail_open: bool, audit: Audit) -> None:
        self.name = name
        self.fail_open = fail_open
        self.audit = audit

    def report(
        self,
        request_id: str,
        action: str,
        direction: Direction,
        count: int = 1,
        labels: Iterable[str] = (),
        detail: str = "",
    ) -> None:
        self.audit(GuardrailEvent(request_id, self.name, action, direction, count, tuple(sorted(labels)), detail))

    def failed(self, error: Exception, request_id: str, direction: Direction) -> None:
        """Apply the failure policy: raise the refusal (fail closed), or return to let it pass (fail open)."""
        handled = "let through (fail_open)" if self.fail_open else "refused"
        kind = type(error).__name__
        log.error("%s guardrail %r failed on the %s (%s); %s", request_id, self.name, WHAT[direction], kind, handled)
        self.report(request_id, "error", direction, detail=f"{kind}; {handled}")
        if not self.fail_open:
            what = WHAT[direction]
            raise ProxyError(
                f"Guardrail {self.name!r} could not check the {what}, so the {what} was refused", status=500
            )


class Rule(Guardrail):
    """One configured rule. `on_request` / `on_response` do the work; exceptions other than a refusal go through
    the failure policy."""

    name: ClassVar[str] = "ccproxy-guardrails"  # each rule instance carries its table's name instead
    amends_tools: ClassVar[bool] = False  # rules read and redact text, never the tool definitions (walk.py)
    amends_messages: ClassVar[bool] = False  # a redacted message is replaced by a copy, never changed (walk.py)

    def __init__(self, reporter: Reporter) -> None:
        self.name = reporter.name  # type: ignore[misc]  # Guardrail declares a class-level name; rules are per table
        self.reporter = reporter
        self.clean = CleanMessages()  # the shared messages this rule found nothing in (walk.py)

    def request_walk(self, context: GuardrailContext) -> Walk:
        """How this rule walks a request: past the shared messages it already found nothing in."""
        return partial(walk_request, clean=self.clean, reused=context.reused_messages)

    async def check_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        self._guarded(self.on_request, body, context, "request")

    async def check_response(self, message: dict[str, Any], context: GuardrailContext) -> None:
        self._guarded(self.on_response, message, context, "response")

    def _guarded(self, check: Check, payload: dict[str, Any], context: GuardrailContext, direction: Direction) -> None:
        try:
            check(payload, context)
        except ProxyError:
            raise
        except Exception as exc:
            self.reporter.failed(exc, context.request_id, direction)

    def on_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        """Check (or amend in place) one request."""

    def on_response(self, message: dict[str, Any], context: GuardrailContext) -> None:
        """Check (or amend in place) one non-streamed answer."""


class _Found(Exception):
    def __init__(self, label: str) -> None:
        self.label = label


def _no_text(label: str | None) -> int:
    return 0


def _redacted_text(redaction: Redaction | None) -> int:
    return 0 if redaction is None else sys.getsizeof(redaction.text)


def first_match(first: Callable[[str], str | None], walk: Walk, node: dict[str, Any]) -> str | None:
    """The label of the first match (`first(text)`) in the text `walk` visits in `node`, or None."""

    def visit(text: str) -> None:
        label = first(text)
        if label is not None:
            raise _Found(label)

    try:
        walk(node, visit)
    except _Found as found:
        return found.label
    return None


class BlockRule(Rule):
    """Refuses requests (and, with `directions` naming it, answers) whose text matches a pattern."""

    def __init__(self, reporter: Reporter, options: BlockOptions, matcher: Matcher) -> None:
        super().__init__(reporter)
        self.matcher = matcher
        self.scans = ScanCache(matcher.first, _no_text)  # this rule's patterns only: see cache.py
        self.status = options.status
        self.message = options.message
        self.directions = frozenset(options.directions)

    def refusal(self, request_id: str, direction: Direction, label: str) -> ProxyError:
        self.reporter.report(request_id, "block", direction, labels=(label,))
        return block_error(self.name, direction, self.status, self.message)

    def on_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        if "request" in self.directions:
            label = first_match(self.scans.get, self.request_walk(context), body)
            if label is not None:
                raise self.refusal(context.request_id, "request", label)

    def on_response(self, message: dict[str, Any], context: GuardrailContext) -> None:
        if "response" in self.directions:
            label = first_match(self.scans.get, walk_message, message)
            if label is not None:
                raise self.refusal(context.request_id, "response", label)


def block_error(rule: str, direction: Direction, status: int, message: str | None) -> ProxyError:
    """The refusal of a block rule: it names the rule, never the text that matched."""
    if message:
        return ProxyError(f"{message} (guardrail {rule!r})", status=status)
    if direction == "request":
        return ProxyError(f"Request refused by guardrail {rule!r}: it matches a blocked pattern", status=status)
    return ProxyError(f"Answer withheld by guardrail {rule!r}: it matches a blocked pattern", status=status)


class RedactRule(Rule):
    """Replaces matches in requests before they leave, and in non-streamed answers."""

    def __init__(self, reporter: Reporter, options: RedactOptions, matcher: Matcher) -> None:
        super().__init__(reporter)
        self.matcher = matcher
        self.replacement = options.replacement
        self.directions = frozenset(options.directions)
        # this rule's patterns and replacement: see cache.py
        self.scans: ScanCache[Redaction | None] = ScanCache(self._scan, _redacted_text)

    def _scan(self, text: str) -> Redaction | None:
        return self.matcher.redact(text, self.replacement)

    def on_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        if "request" in self.directions:
            self._redact(self.request_walk(context), body, context.request_id, "request")

    def on_response(self, message: dict[str, Any], context: GuardrailContext) -> None:
        if "response" in self.directions:
            self._redact(walk_message, message, context.request_id, "response")

    def _redact(self, walk: Walk, node: dict[str, Any], request_id: str, direction: Direction) -> None:
        count = 0
        labels: set[str] = set()

        def visit(text: str) -> str | None:
            nonlocal count
            redaction = self.scans.get(text)
            if redaction is None:
                return None
            count += redaction.count
            labels.update(redaction.labels)
            return redaction.text

        walk(node, visit)
        if count:
            self.reporter.report(request_id, "redact", direction, count, labels)


class LimitsRule(Rule):
    """Caps max_tokens, refuses too many messages or too large a body, and models a client key may not use."""

    def __init__(self, reporter: Reporter, options: LimitsOptions) -> None:
        super().__init__(reporter)
        self.options = options

    def on_request(self, body: dict[str, Any], context: GuardrailContext) -> None:
        options = self.options
        messages = body.get("messages")
        count = len(messages) if isinstance(messages, list) else 0
        if options.max_messages is not None and count > options.max_messages:
            raise self._refuse(context, 400, "max_messages", f"{count} messages, at most {options.max_messages}")
        if options.max_request_bytes is not None and context.body_bytes > options.max_request_bytes:
            size = f"a body of {context.body_bytes} bytes, at most {options.max_request_bytes}"
            raise self._refuse(context, 413, "max_request_bytes", size)
        self._check_model(str(body.get("model", "")), context)
        self._cap_max_tokens(body, context)

    def _refuse(self, context: GuardrailContext, status: int, limit: str, what: str) -> ProxyError:
        self.reporter.report(context.request_id, "block", "request", detail=limit)
        return ProxyError(f"Request refused by guardrail {self.name!r}: {what}", status=status)

    def _check_model(self, model: str, context: GuardrailContext) -> None:
        """The key's own `models` (from its authenticator) and this rule's `models` table for the key must both
        allow the requested model (case-insensitive globs). Without a Principal there is no key to look up."""
        principal = context.principal
        if principal is None:
            return
        lists = [principal.models, self.options.models.get(principal.key_id)]
        lowered = model.lower()
        for globs in lists:
            if globs is not None and not any(fnmatchcase(lowered, glob.lower()) for glob in globs):
                self.reporter.report(context.request_id, "block", "request", detail="models")
                raise ProxyError(
                    f"Model {model!r} is not allowed for key {principal.key_id!r} (guardrail {self.name!r})",
                    status=403,
                )

    def _cap_max_tokens(self, body: dict[str, Any], context: GuardrailContext) -> None:
        cap = self.options.max_tokens
        requested = body.get("max_tokens")
        if cap is None or not isinstance(requested, int) or requested <= cap:
            return
        body["max_tokens"] = cap
        thinking = body.get("thinking")
        budget = thinking.get("budget_tokens") if isinstance(thinking, dict) else None
        if isinstance(thinking, dict) and isinstance(budget, int) and budget >= cap:
            thinking["budget_tokens"] = max(1, cap - 1)  # Anthropic requires budget_tokens < max_tokens
        self.reporter.report(context.request_id, "limit", "request", detail=f"max_tokens {requested} -> {cap}")


def guardrail_for(rule: RuleConfig, audit: Audit) -> Rule:
    """The guardrail of one configured rule."""
    options = rule.options
    reporter = Reporter(rule.name, options.fail_open, audit)
    if isinstance(options, BlockOptions):
        return BlockRule(reporter, options, build_matcher(rule, [], options.patterns, options.regex_timeout))
    if isinstance(options, RedactOptions):
        matcher = build_matcher(rule, options.detectors, options.patterns, options.regex_timeout)
        return RedactRule(reporter, options, matcher)
    return LimitsRule(reporter, options)
