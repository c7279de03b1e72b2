"""The records observers receive: one per request, per upstream attempt, per cache event, per guardrail action, per
breaker state change and per rate-limiter wait."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from operator import attrgetter, is_not
from typing import Literal


@dataclass(slots=True)
class RequestRecord:
    """One /v1/messages or count_tokens request, emitted once when it is done (answered, failed or abandoned).

    Filled in as the request goes: fields a stage could not know stay at their defaults (`None` or 0). `status` is
    the HTTP status the client received (200 for a stream that later ended with an `error` event, whose type is in
    `error_type`; 499 when the client went away before an answer). Tokens are the usage the client was told.
    `count_tokens` requests carry no tokens (nothing was generated).
    """

    request_id: str
    key_id: str | None = None
    client_model: str = ""
    backend: str | None = None
    upstream_model: str | None = None
    status: int = 200
    error_type: str | None = None
    stream: bool = False
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    # US dollars: the upstream's own figure when it reported one, else from the price table (ccproxy.usage fills it
    # in before other observers see the record; None when the model has no price).
    cost_usd: float | None = None
    ttft_ms: float | None = None  # streams: time until the first content event was sent
    total_ms: float = 0.0
    retries: int = 0
    fallbacks: int = 0
    endpoint: Literal["messages", "count_tokens"] = "messages"
    # The cost the upstream reported (OpenRouter's `usage.cost`); the pipeline fills it from the completion's or the
    # final stream chunk's usage. It wins over the price table.
    upstream_cost_usd: float | None = None


@dataclass(slots=True)
class UpstreamAttempt:
    """One call to one upstream: `status` is its HTTP status (None when none arrived), `error` what went wrong."""

    request_id: str
    backend: str
    upstream_model: str
    attempt: int  # 1 for the first try of this target, 2 for its first retry, ...
    status: int | None
    error: str | None
    ms: float


@dataclass(slots=True)
class BreakerChange:
    """A backend's circuit breaker was seen in another state than before, by this process: its requests admitted
    (`closed`), one trial let through or running (`half_open`), or refused (`open`)."""

    backend: str
    state: Literal["closed", "half_open", "open"]


@dataclass(slots=True)
class LimiterWait:
    """A request waited `seconds` for a backend's local rate limiter (whether it then went or was refused)."""

    backend: str
    seconds: float


@dataclass(slots=True)
class CacheEvent:
    """A cache lookup or write: `kind` what happened, `cache` which cache."""

    kind: Literal["hit", "miss", "store", "error"]
    cache: Literal["responses", "tokens"]
    backend: str | None
    request_id: str


@dataclass(slots=True)
class GuardrailEvent:
    """A guardrail refused or changed a request or an answer; never carries the text that matched.

    `rule` is the guardrail's (rule's) name. `action`: `"block"` (refused), `"redact"` (text replaced), `"limit"`
    (a value capped, e.g. max_tokens), `"error"` (the guardrail itself failed; `detail` says whether the request was
    refused or let through). `direction`: `"request"` or `"response"`. `count`: how many replacements (1 for the
    other actions). `labels`: what matched (detector names such as `openai`, or `patterns[0]`), never the text.
    """

    request_id: str
    rule: str
    action: str
    direction: Literal["request", "response"]
    count: int = 1
    labels: tuple[str, ...] = ()
    detail: str = ""


# The kinds of event an observer gets, by the name of the Observer method that receives one, in EventBatch's order.
EVENT_METHODS = ("request_started", "request_done", "upstream_attempt", "cache_event", "breaker_change", "limiter_wait")
STARTED, DONE, ATTEMPT, CACHE, BREAKER, LIMITER = range(len(EVENT_METHODS))


@dataclass(slots=True)
class EventBatch:
    """The events a deferred observer takes at once (Observer.take_batch), by kind, each list in the order its
    events happened."""

    started: list[RequestRecord]
    done: list[RequestRecord]
    attempts: list[UpstreamAttempt]
    cache_events: list[CacheEvent]
    breaker_changes: list[BreakerChange]
    limiter_waits: list[LimiterWait]


# Getters of RequestRecord fields, for summing a batch's records in C: `sum(map(INPUT_TOKENS, records))` runs no
# bytecode per record.
STATUS = attrgetter("status")
ERROR_TYPE = attrgetter("error_type")
INPUT_TOKENS = attrgetter("input_tokens")
OUTPUT_TOKENS = attrgetter("output_tokens")
CACHE_READ_TOKENS = attrgetter("cache_read_tokens")
CACHE_WRITE_TOKENS = attrgetter("cache_write_tokens")
COST_USD = attrgetter("cost_usd")
TTFT_MS = attrgetter("ttft_ms")
TOTAL_MS = attrgetter("total_ms")
RETRIES = attrgetter("retries")
FALLBACKS = attrgetter("fallbacks")
IS_NOT_NONE = partial(is_not, None)  # for filter(): what is not None
