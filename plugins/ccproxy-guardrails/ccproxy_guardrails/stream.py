"""A rule over one streamed answer: text, thinking and tool-argument deltas redacted (or refused) as they pass.

Each content block's text goes through its own StreamRedactor (tool arguments through a JsonRedactor), so a match
split across deltas is still found. A delta whose text is all held back is dropped; held text is released, matches
replaced, in one delta just before the block's `content_block_stop` (or before a `signature_delta`), so every
block still carries all of its text and the event grammar is unchanged. A block rule raises its refusal instead
(the stream ends with an `error` event, and the matching text never reaches the client). Audit: one event per block
in which something was replaced. Failures follow the rule's policy: fail closed ends the stream with an `error` event;
fail open passes what was held as it came, and the rest of the stream unfiltered.
"""

from __future__ import annotations

from typing import Any

from ccproxy import ProxyError, StreamContext, StreamFilter
from ccproxy_guardrails.config import BlockOptions, RedactOptions, RuleConfig
from ccproxy_guardrails.jsonstream import JsonRedactor
from ccproxy_guardrails.matcher import Matcher, StreamRedactor
from ccproxy_guardrails.rules import Audit, Reporter, block_error, build_matcher

Event = dict[str, Any]
# Delta type -> the field holding its text.
TEXT_FIELDS = {"text_delta": "text", "thinking_delta": "thinking", "input_json_delta": "partial_json"}


class StreamRule:
    """A rule's stream filter factory: `rule(context)` is a new filter for one streamed answer. Holds what the
    filters share: the matcher and how a match is handled."""

    __slots__ = ("block", "matcher", "max_hold", "message", "name", "replacement", "reporter", "status")

    def __init__(self, reporter: Reporter, matcher: Matcher, options: BlockOptions | RedactOptions) -> None:
        self.name = reporter.name  # how `ccproxy plugins` lists the factory
        self.reporter = reporter
        self.matcher = matcher
        self.max_hold = options.max_hold
        self.block = isinstance(options, BlockOptions)
        self.replacement = options.replacement if isinstance(options, RedactOptions) else ""
        self.status = options.status if isinstance(options, BlockOptions) else 400
        self.message = options.message if isinstance(options, BlockOptions) else None

    def redactor(self) -> StreamRedactor:
        return StreamRedactor(self.matcher, self.replacement, self.max_hold)

    def __call__(self, context: StreamContext) -> RuleFilter:
        return RuleFilter(self, context.request_id)


class _Block:
    """One content block's redactor and the delta type it redacts."""

    __slots__ = ("delta_type", "field", "redactor")

    def __init__(self, delta_type: str, rule: StreamRule) -> None:
        self.delta_type = delta_type
        self.field = TEXT_FIELDS[delta_type]
        self.redactor: StreamRedactor | JsonRedactor = (
            JsonRedactor(rule.redactor) if delta_type == "input_json_delta" else rule.redactor()
        )

    @property
    def count(self) -> int:
        return self.redactor.count

    def held(self, received: str = "") -> str:
        """After a failure: the text received and not passed on (as it came), then `received`."""
        if isinstance(self.redactor, JsonRedactor):
            salvage = self.redactor.salvage
            return received if salvage is None else salvage
        return self.redactor.held() + received


class RuleFilter(StreamFilter):
    """One rule over one streamed answer."""

    __slots__ = ("_blocks", "_bypass", "_request_id", "_rule")

    def __init__(self, rule: StreamRule, request_id: str) -> None:
        self._rule = rule
        self._request_id = request_id
        self._blocks: dict[Any, _Block] = {}
        self._bypass = False  # after a failure with fail_open: everything passes unchanged

    def feed(self, event: Event) -> list[Event]:
        if self._bypass:
            return [event]
        try:
            kind = event.get("type")
            if kind == "content_block_delta":
                return self._delta(event)
            if kind == "content_block_stop":
                return [*self._release(event.get("index")), event]
            return [event]
        except ProxyError:
            raise
        except Exception as exc:  # a bug in the filter itself: the same policy as a failing pattern
            self._failed(exc)
            return [event]

    def flush(self) -> list[Event]:
        """Blocks that never saw their content_block_stop (not in a well-formed stream)."""
        return [released for index in list(self._blocks) for released in self._release(index)]

    def _delta(self, event: Event) -> list[Event]:
        index = event.get("index")
        delta = event.get("delta")
        delta_type = delta.get("type") if isinstance(delta, dict) else None
        field = TEXT_FIELDS.get(delta_type) if isinstance(delta_type, str) else None
        if field is None or not isinstance(delta, dict) or not isinstance(delta.get(field), str):
            return [*self._release(index), event]  # e.g. a signature: what is held of the block goes first
        block = self._blocks.get(index)
        released: list[Event] = []
        if block is None or block.delta_type != delta_type:
            released = self._release(index)
            block = self._blocks[index] = _Block(str(delta_type), self._rule)
        text = delta[field]
        try:
            out = block.redactor.feed(text)
        except Exception as exc:
            self._failed(exc)
            out = block.held(text)
        self._check(block)
        if not out:
            return released
        delta[field] = out
        return [*released, event]

    def _release(self, index: Any) -> list[Event]:
        """The held text of block `index`, in one delta; the block is done."""
        block = self._blocks.pop(index, None)
        if block is None:
            return []
        try:
            out = block.redactor.finish()
        except Exception as exc:
            self._failed(exc)
            out = block.held()
        self._check(block)
        if block.count and not self._rule.block:
            self._rule.reporter.report(self._request_id, "redact", "response", block.count, block.redactor.labels)
        if not out:
            return []
        return [{"type": "content_block_delta", "index": index, "delta": {"type": block.delta_type, block.field: out}}]

    def _check(self, block: _Block) -> None:
        """A block rule refuses the answer once a match is settled (before any of it is released)."""
        if self._rule.block and block.count:
            rule = self._rule
            rule.reporter.report(self._request_id, "block", "response", labels=block.redactor.labels)
            raise block_error(rule.reporter.name, "response", rule.status, rule.message)

    def _failed(self, error: Exception) -> None:
        self._rule.reporter.failed(error, self._request_id, "response")  # raises unless the rule fails open
        self._bypass = True


def filter_factory_for(rule: RuleConfig, audit: Audit) -> StreamRule | None:
    """The stream filter factory of a rule that looks at answers; None for one that does not."""
    options = rule.options
    if not isinstance(options, BlockOptions | RedactOptions) or "response" not in options.directions:
        return None
    detectors = options.detectors if isinstance(options, RedactOptions) else []
    matcher = build_matcher(rule, detectors, options.patterns, options.regex_timeout)
    return StreamRule(Reporter(rule.name, options.fail_open, audit), matcher, options)
