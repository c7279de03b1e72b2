"""The rules in `[guardrails]`: one sub-table per rule, its kind from its name or a `kind` key, run in `order`.

A sub-table is a rule of this plugin when its name is a kind (`block`, `redact`, `limits`) or it has a `kind` key;
other sub-tables and keys (`allowed_models` of the built-in guardrail, another plugin's options) are left alone.
Every problem is a SettingsError naming `guardrails.<rule>.<key>`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ccproxy import SettingsError
from ccproxy_guardrails.detectors import DEFAULT_DETECTORS, expand

KINDS = ("block", "redact", "limits")
Direction = Literal["request", "response"]
Glob = Annotated[str, Field(min_length=1)]
# One search may take this long (seconds) before the rule counts as failed: a pattern with catastrophic
# backtracking must not stall the event loop.
DEFAULT_REGEX_TIMEOUT = 1.0
# Characters a streamed answer may hold back while one possible match is in progress; enough for a private key.
DEFAULT_MAX_HOLD = 16384


def _requests_only() -> list[Direction]:
    return ["request"]


def _both_directions() -> list[Direction]:
    return ["request", "response"]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["block", "redact", "limits"] | None = None
    fail_open: bool = False


class _Matching(_Rule):
    patterns: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    regex_timeout: float = Field(DEFAULT_REGEX_TIMEOUT, gt=0)
    max_hold: int = Field(DEFAULT_MAX_HOLD, ge=1)


class BlockOptions(_Matching):
    """`[guardrails.<rule>]` of kind block: refuse what matches."""

    status: Literal[400, 403] = 400
    message: str | None = None
    directions: list[Direction] = Field(default_factory=_requests_only, min_length=1)

    @model_validator(mode="after")
    def _needs_patterns(self) -> BlockOptions:
        if not self.patterns:
            raise ValueError("patterns: a block rule needs at least one pattern")
        return self


class RedactOptions(_Matching):
    """`[guardrails.<rule>]` of kind redact: replace what matches, in requests and answers."""

    detectors: list[str] = Field(default_factory=lambda: list(DEFAULT_DETECTORS))
    replacement: str = "[REDACTED]"
    directions: list[Direction] = Field(default_factory=_both_directions, min_length=1)

    @model_validator(mode="after")
    def _known_detectors(self) -> RedactOptions:
        try:
            names = expand(self.detectors)
        except ValueError as exc:
            raise ValueError(f"detectors: {exc}") from None
        if not names and not self.patterns:
            raise ValueError("a redact rule needs patterns or detectors")
        return self


class LimitsOptions(_Rule):
    """`[guardrails.<rule>]` of kind limits: caps and allow-lists on requests."""

    max_tokens: int | None = Field(None, ge=1)
    max_messages: int | None = Field(None, ge=1)
    max_request_bytes: int | None = Field(None, ge=1)
    models: dict[str, list[Glob]] = Field(default_factory=dict)


Options = BlockOptions | RedactOptions | LimitsOptions
_MODELS: dict[str, type[BlockOptions] | type[RedactOptions] | type[LimitsOptions]] = {
    "block": BlockOptions,
    "redact": RedactOptions,
    "limits": LimitsOptions,
}


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """One configured rule: its name (the table's), its kind and its validated options."""

    name: str
    kind: str
    options: Options


def parse_rules(options: Mapping[str, Any]) -> list[RuleConfig]:
    """The rules of the `[guardrails]` table, in the order they run."""
    rules: dict[str, RuleConfig] = {}
    for name, table in options.items():
        kind = _kind_of(name, table)
        if kind is not None:
            rules[name] = RuleConfig(name, kind, _validated(name, kind, table))
    return _ordered(rules, options.get("order"))


def _kind_of(name: str, table: Any) -> str | None:
    """The rule kind of a `[guardrails]` entry; None for entries that are not this plugin's rules."""
    if not isinstance(table, Mapping):
        if name in KINDS:
            raise SettingsError(f"guardrails.{name}: expected a table ([guardrails.{name}])")
        return None
    kind = table.get("kind", name if name in KINDS else None)
    if kind is not None and kind not in KINDS:
        raise SettingsError(f"guardrails.{name}.kind: {kind!r} is not a rule kind; one of {', '.join(KINDS)}")
    return kind if isinstance(kind, str) else None


def _validated(name: str, kind: str, table: Mapping[str, Any]) -> Options:
    try:
        return _MODELS[kind].model_validate(dict(table))
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        raise SettingsError(f"guardrails.{name}{'.' + where if where else ''}: {message}") from None


def _ordered(rules: dict[str, RuleConfig], order: Any) -> list[RuleConfig]:
    """`order` first (every name must be a rule), then the rules it does not name, in table order."""
    if order is None:
        return list(rules.values())
    if not isinstance(order, list) or not all(isinstance(name, str) for name in order):
        raise SettingsError('guardrails.order: expected a list of rule names, e.g. ["block", "redact"]')
    unknown = [name for name in order if name not in rules]
    if unknown:
        known = ", ".join(rules) or "none"
        raise SettingsError(f"guardrails.order: {unknown[0]!r} is not a rule; the rules are: {known}")
    if len(set(order)) != len(order):
        raise SettingsError("guardrails.order: a rule is named twice")
    return [rules[name] for name in order] + [rule for name, rule in rules.items() if name not in order]
