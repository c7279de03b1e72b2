"""The pipeline over named backends: a route's targets tried in order, each converted for itself; what falls back,
what goes back unchanged, which error a failed chain answers with; against FakeUpstreams (no aiohttp)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from ccproxy.errors import ProxyError
from ccproxy.events import RequestRecord
from ccproxy.pipeline import BACKEND_HEADER, MODEL_HEADER, Prepared
from ccproxy.upstream import (
    BackendUnavailable,
    RateLimitExceeded,
    UpstreamConnectError,
    UpstreamTimeout,
)
from ccproxy.upstream.fake import FakeResponse
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.backends import HELLO, Rig, answer, backends_toml, failing, make_rig, sequence, sse_chunks
from tests.support.vendor_errors import OVERFLOW_ERRORS

NO_RETRY = "retries = 0"
CHAIN = backends_toml({"a": NO_RETRY, "b": NO_RETRY, "c": NO_RETRY}, {"claude-*": ["a:small", "b:big-1", "c:small"]})
OVERFLOW = OVERFLOW_ERRORS["OPENAI"]


async def prepare(rig: Rig, body: dict[str, Any] | None = None, record: RequestRecord | None = None) -> Prepared:
    raw = json.dumps(body or HELLO).encode()
    return await rig.pipeline.prepare(raw, {}, "req_test", record)


async def complete(rig: Rig, body: dict[str, Any] | None = None, record: RequestRecord | None = None) -> Any:
    prepared = await prepare(rig, body, record)
    return await rig.clock.run(rig.pipeline.complete(prepared))


async def fails(rig: Rig, body: dict[str, Any] | None = None) -> ProxyError:
    with pytest.raises(ProxyError) as info:
        await complete(rig, body)
    return info.value


async def stream(rig: Rig, body: dict[str, Any] | None = None) -> tuple[Any, list[dict[str, Any]]]:
    prepared = await prepare(rig, {**(body or HELLO), "stream": True})
    opened = await rig.clock.run(rig.pipeline.open_stream(prepared))

    async def collect() -> bytes:
        return b"".join([data async for data in rig.pipeline.stream_events(prepared, opened)])

    return opened, parse_sse(await rig.clock.run(collect()))


async def test_the_first_target_answering_is_the_only_call() -> None:
    rig = make_rig(CHAIN, {})
    result = await complete(rig)
    assert result.message["content"] == [{"type": "text", "text": "Hello!"}]
    assert dict(result.headers) == {BACKEND_HEADER: "a", MODEL_HEADER: "small"}
    assert (rig.calls("a"), rig.calls("b"), rig.calls("c")) == (1, 0, 0)


async def test_a_fallback_target_is_converted_for_its_own_model() -> None:
    rig = make_rig(CHAIN, {"a": lambda request: failing(503)})
    record = RequestRecord(request_id="req_test")
    result = await complete(rig, record=record)
    assert dict(result.headers) == {BACKEND_HEADER: "b", MODEL_HEADER: "big-1"}
    first, second = rig.sent("a"), rig.sent("b")
    assert (first["model"], first["max_tokens"]) == ("small", 100) and "max_completion_tokens" not in first
    assert (second["model"], second["max_completion_tokens"]) == ("big-1", 100) and "max_tokens" not in second
    assert (record.backend, record.upstream_model, record.fallbacks, record.retries) == ("b", "big-1", 1, 0)
    assert [(a.backend, a.status, a.attempt) for a in rig.recorder.attempts] == [("a", 503, 1), ("b", 200, 1)]
    assert rig.recorder.attempts[0].error == "Upstream error 503: boom"


FALLS_BACK: dict[str, FakeResponse] = {
    "connection refused": FakeResponse(error=UpstreamConnectError("Upstream unreachable (127.0.0.1:9): refused")),
    "timeout before the status line": FakeResponse(delay=700.0),
    "breaker open": FakeResponse(error=BackendUnavailable("Backend a is unavailable", retry_after=30)),
    "local rate limit": FakeResponse(error=RateLimitExceeded("Local rate limit", retry_after=5)),
    "context overflow": FakeResponse.json(OVERFLOW.body, status=OVERFLOW.status),
    **{f"status {status}": failing(status) for status in (429, 500, 502, 503, 504, 529)},
}


@pytest.mark.parametrize("failure", FALLS_BACK.values(), ids=FALLS_BACK.keys())
async def test_failures_that_fall_back_to_the_next_target(failure: FakeResponse) -> None:
    rig = make_rig(CHAIN, {"a": lambda request: failure})
    result = await complete(rig)
    assert result.headers[BACKEND_HEADER] == "b"
    assert (rig.calls("a"), rig.calls("b"), rig.calls("c")) == (1, 1, 0)


@pytest.mark.parametrize(("status", "client_status"), [(400, 400), (401, 401), (403, 403), (404, 404), (422, 400)])
async def test_other_client_errors_go_back_unchanged_without_a_fallback(status: int, client_status: int) -> None:
    rig = make_rig(CHAIN, {"a": lambda request: failing(status, "refused by a")})
    error = await fails(rig)
    assert (error.status, error.message) == (client_status, f"Upstream error {status}: refused by a")
    assert error.headers == {BACKEND_HEADER: "a", MODEL_HEADER: "small"}
    assert (rig.calls("b"), rig.calls("c")) == (0, 0)


async def test_a_context_overflow_on_the_last_target_is_anthropics_400() -> None:
    overflow = FakeResponse.json(OVERFLOW.body, status=OVERFLOW.status)
    rig = make_rig(CHAIN, {name: (lambda request: overflow) for name in "abc"})
    error = await fails(rig)
    assert (error.status, error.error_type, error.message) == (400, "invalid_request_error", OVERFLOW.expected)
    assert error.headers[BACKEND_HEADER] == "c"


CHAINS: list[tuple[list[FakeResponse], int, str]] = [
    # The upstream's own answer beats no answer; no answer beats a backend skipped locally; the latest of equals.
    ([FakeResponse(error=UpstreamConnectError("refused")), failing(503), FakeResponse(delay=700.0)], 503, "b"),
    ([failing(503), failing(500), FakeResponse(error=UpstreamConnectError("refused"))], 500, "b"),
    (
        [
            FakeResponse(error=BackendUnavailable("open", retry_after=9)),
            FakeResponse(delay=700.0),
            FakeResponse(error=BackendUnavailable("open", retry_after=9)),
        ],
        504,
        "b",
    ),
    ([FakeResponse(error=RateLimitExceeded("limited", retry_after=3))] * 3, 429, "c"),
]


@pytest.mark.parametrize(("answers", "status", "backend"), CHAINS)
async def test_a_chain_that_runs_out_answers_with_its_most_informative_failure(
    answers: list[FakeResponse], status: int, backend: str
) -> None:
    rig = make_rig(
        CHAIN, {name: (lambda request, found=found: found) for name, found in zip("abc", answers, strict=True)}
    )
    error = await fails(rig)
    assert (error.status, error.headers[BACKEND_HEADER]) == (status, backend)
    assert (rig.calls("a"), rig.calls("b"), rig.calls("c")) == (1, 1, 1)


async def test_a_local_limit_says_when_to_retry() -> None:
    rig = make_rig(
        CHAIN, {name: (lambda request: FakeResponse(error=RateLimitExceeded("x", retry_after=2.2))) for name in "abc"}
    )
    error = await fails(rig)
    assert (error.status, error.error_type, error.headers["retry-after"]) == (429, "rate_limit_error", "3")


async def test_a_stream_falls_back_before_the_first_byte() -> None:
    rig = make_rig(CHAIN, {"a": lambda request: failing(503)})
    opened, events = await stream(rig)
    check_stream(events)
    assert accumulate(events)["content"] == [{"type": "text", "text": "Hello!"}]
    assert opened.headers[BACKEND_HEADER] == "b" and rig.sent("b")["stream"] is True
    assert rig.fakes["b"].responses[0].closed


async def test_a_stream_failing_after_the_first_byte_ends_in_an_error_event_without_fallback() -> None:
    cut = [*sse_chunks("Hel")[:1], UpstreamConnectError("Upstream connection lost: reset")]
    rig = make_rig(CHAIN, {"a": lambda request: FakeResponse(200, {"content-type": "text/event-stream"}, chunks=cut)})
    _, events = await stream(rig)
    assert events[-1] == {"type": "error", "error": {"type": "api_error", "message": "Upstream connection lost: reset"}}
    assert (rig.calls("b"), rig.calls("c")) == (0, 0)


async def test_a_client_leaving_mid_stream_drops_the_upstream_connection() -> None:
    slow = [*sse_chunks("one ", "two ")[:2], 5.0, *sse_chunks("three")]
    rig = make_rig(CHAIN, {"a": lambda request: FakeResponse(200, {"content-type": "text/event-stream"}, chunks=slow)})
    prepared = await prepare(rig, {**HELLO, "stream": True})
    opened = await rig.clock.run(rig.pipeline.open_stream(prepared))
    events = rig.pipeline.stream_events(prepared, opened)

    async def first_two() -> None:
        await anext(events)
        await anext(events)
        await events.aclose()  # the client went away: the handler's generator is closed

    await rig.clock.run(first_two())
    assert rig.fakes["a"].responses[0].dropped


async def test_a_json_answer_to_a_stream_request_is_replayed_from_the_target_that_gave_it() -> None:
    rig = make_rig(
        CHAIN,
        {
            "a": lambda request: failing(502),
            "b": lambda request: FakeResponse.json(
                {
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "whole"}, "finish_reason": "stop"}
                    ]
                }
            ),
        },
    )
    opened, events = await stream(rig)
    assert opened.chunks is None and opened.headers[BACKEND_HEADER] == "b"
    assert accumulate(events)["content"] == [{"type": "text", "text": "whole"}]


async def test_a_body_that_stops_coming_is_a_504_naming_the_backend() -> None:
    stalled = [UpstreamTimeout("Upstream stopped sending data (read timeout)", phase="read")]
    rig = make_rig(
        CHAIN, {"a": lambda request: FakeResponse(200, {"content-type": "application/json"}, chunks=stalled)}
    )
    error = await fails(rig)
    assert (error.status, error.error_type) == (504, "timeout_error")
    assert error.headers == {BACKEND_HEADER: "a", MODEL_HEADER: "small"}
    assert rig.calls("b") == 0


async def test_retries_honour_retry_after_and_are_counted() -> None:
    toml = backends_toml({"a": "retries = 2", "b": NO_RETRY}, {"*": ["a:m", "b:m"]})
    rig = make_rig(toml, {"a": sequence(failing(503, headers={"retry-after": "3"}), answer)})
    record = RequestRecord(request_id="req_test")
    result = await complete(rig, record=record)
    assert result.headers[BACKEND_HEADER] == "a" and rig.calls("a") == 2 and rig.calls("b") == 0
    assert rig.clock.sleeps == [3.0]
    assert (record.retries, record.fallbacks) == (1, 0)
    assert [(a.attempt, a.status) for a in rig.recorder.attempts] == [(1, 503), (2, 200)]


async def test_retries_give_up_on_a_retry_after_beyond_the_cap_and_fall_back_at_once() -> None:
    toml = backends_toml({"a": "retries = 2", "b": NO_RETRY}, {"*": ["a:m", "b:m"]})
    rig = make_rig(toml, {"a": lambda request: failing(429, headers={"retry-after": "120"})})
    result = await complete(rig)
    assert result.headers[BACKEND_HEADER] == "b" and rig.calls("a") == 1 and rig.clock.sleeps == []


async def test_the_breaker_skips_a_failing_backend_then_one_trial_closes_it() -> None:
    toml = backends_toml(
        {"a": "retries = 0\nbreaker_failures = 2\nbreaker_cooldown = 30", "b": NO_RETRY}, {"*": ["a:m", "b:m"]}
    )
    healthy = [False]
    rig = make_rig(toml, {"a": lambda request: answer(request) if healthy[0] else failing(503)})
    served = [(await complete(rig)).headers[BACKEND_HEADER] for _ in range(3)]
    assert served == ["b", "b", "b"] and rig.calls("a") == 2  # the third request skipped a: its circuit is open
    rig.clock.advance(29)
    assert (await complete(rig)).headers[BACKEND_HEADER] == "b" and rig.calls("a") == 2
    rig.clock.advance(1)
    healthy[0] = True
    served = [(await complete(rig)).headers[BACKEND_HEADER] for _ in range(2)]
    assert served == ["a", "a"] and rig.calls("a") == 4  # the trial succeeded and closed the circuit


async def test_a_failed_trial_opens_the_breaker_again() -> None:
    toml = backends_toml(
        {"a": "retries = 0\nbreaker_failures = 1\nbreaker_cooldown = 10", "b": NO_RETRY}, {"*": ["a:m", "b:m"]}
    )
    rig = make_rig(toml, {"a": lambda request: failing(500)})
    await complete(rig)
    rig.clock.advance(10)
    await complete(rig)  # the trial, failed
    await complete(rig)
    assert rig.calls("a") == 2


async def test_the_limiter_shapes_a_burst() -> None:
    toml = backends_toml({"a": "retries = 0\nrpm = 2\nlimit_wait = 90"}, {"*": ["a:m"]})
    sent_at: list[float] = []
    rig = make_rig(toml, {})
    rig.fakes["a"].handler = lambda request: (sent_at.append(rig.clock()), answer(request))[1]
    started = rig.clock()
    prepared = [await prepare(rig) for _ in range(4)]

    async def burst() -> list[Any]:
        return await asyncio.gather(*(rig.pipeline.complete(p) for p in prepared))

    results = await rig.clock.run(burst())
    assert all(result.headers[BACKEND_HEADER] == "a" for result in results)
    assert [round(at - started) for at in sent_at] == [0, 0, 60, 60]


async def test_a_limit_that_cannot_wait_falls_back_or_answers_429() -> None:
    toml = backends_toml(
        {"a": "retries = 0\nrpm = 1\nlimit_wait = 0", "b": NO_RETRY}, {"x*": ["a:m", "b:m"], "*": ["a:m"]}
    )
    rig = make_rig(toml, {})
    assert (await complete(rig, {**HELLO, "model": "x-1"})).headers[BACKEND_HEADER] == "a"
    assert (await complete(rig, {**HELLO, "model": "x-2"})).headers[BACKEND_HEADER] == "b"
    error = await fails(rig, {**HELLO, "model": "y"})
    assert (error.status, error.error_type, error.headers[BACKEND_HEADER]) == (429, "rate_limit_error", "a")
    assert int(error.headers["retry-after"]) == 60


@pytest.mark.parametrize("requested", ["b:big-9", "b,big-9"])
async def test_backend_model_requests_go_straight_to_that_backend(requested: str) -> None:
    rig = make_rig(CHAIN, {})
    result = await complete(rig, {**HELLO, "model": requested})
    assert dict(result.headers) == {BACKEND_HEADER: "b", MODEL_HEADER: "big-9"}
    assert rig.sent("b")["max_completion_tokens"] == 100 and rig.calls("a") == 0
    assert result.message["model"] == requested  # the client sees the model it asked for


async def test_an_unknown_backend_before_a_comma_is_a_400_naming_the_configured_ones() -> None:
    rig = make_rig(CHAIN, {})
    with pytest.raises(ProxyError) as info:
        await prepare(rig, {**HELLO, "model": "nope,m"})
    assert info.value.status == 400 and "configured: a, b, c" in info.value.message


async def test_a_model_name_with_characters_headers_cannot_carry_is_percent_encoded() -> None:
    rig = make_rig(CHAIN, {})
    result = await complete(rig, {**HELLO, "model": "a:modèle 1"})
    assert result.headers[MODEL_HEADER] == "mod%C3%A8le%201"
    assert rig.sent("a")["model"] == "modèle 1"
