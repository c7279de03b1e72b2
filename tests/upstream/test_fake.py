"""FakeUpstream: the stand-in other tests build on answers, streams, fails and keeps time like the real one."""

from __future__ import annotations

import pytest

from ccproxy.upstream import UpstreamConnectError, UpstreamRequest, UpstreamStatusError, UpstreamTimeout
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from tests.support.fake_clock import FakeClock
from tests.upstream.conftest import failing, make_request


async def test_answers_and_records_requests(clock: FakeClock) -> None:
    upstream = FakeUpstream(lambda request: FakeResponse.json({"echo": request.body.decode()}, headers={"X-A": "1"}))
    request = make_request(clock)
    response = await upstream.send(request)
    assert (response.status, response.headers["x-a"], response.headers["content-type"]) == (
        200,
        "1",
        "application/json",
    )
    assert await response.read() == b'{"echo":"{\\"model\\":\\"m\\"}"}'
    assert upstream.requests == [request]
    assert upstream.responses[0].finished and not upstream.responses[0].dropped


async def test_async_handler_and_open_close_are_counted() -> None:
    async def handler(request: UpstreamRequest) -> FakeResponse:
        return FakeResponse(body=b"ok")

    upstream = FakeUpstream(handler)
    await upstream.open()
    await upstream.aclose()
    assert (upstream.open_calls, upstream.close_calls) == (1, 1)
    response = await upstream.send(UpstreamRequest("/x", b"", False, 1e18))
    assert await response.read(limit=1) == b"o"


async def test_chunks_pause_on_the_clock_and_fail_where_told(clock: FakeClock) -> None:
    lost = UpstreamConnectError("Upstream connection lost")
    upstream = FakeUpstream(
        lambda request: FakeResponse(chunks=[b"a", 1.5, b"b", lost, b"never"]), clock=clock, sleep=clock.sleep
    )
    response = await upstream.send(make_request(clock))
    received: list[bytes] = []

    async def consume() -> None:
        async for data in response.iter_bytes():
            received.append(data)

    with pytest.raises(UpstreamConnectError):
        await clock.run(consume())
    assert received == [b"a", b"b"]
    assert clock.sleeps == [1.5]


async def test_closing_an_unread_response_is_a_drop(clock: FakeClock) -> None:
    upstream = FakeUpstream(lambda request: FakeResponse(chunks=[b"a", b"b"]))
    response = await upstream.send(make_request(clock))
    async for _ in response.iter_bytes():
        break
    await response.aclose()
    assert upstream.responses[0].dropped


async def test_error_status_raises_like_the_real_transport(clock: FakeClock) -> None:
    upstream = FakeUpstream(lambda request: failing(429, "slow down", {"Retry-After": "3"}), redact=str.upper)
    with pytest.raises(UpstreamStatusError) as caught:
        await upstream.send(make_request(clock))
    assert (caught.value.status, caught.value.retry_after, caught.value.message) == (
        429,
        3.0,
        "Upstream error 429: SLOW DOWN",
    )


async def test_handler_failures_and_given_errors_are_raised(clock: FakeClock) -> None:
    def handler(request: UpstreamRequest) -> FakeResponse:
        raise UpstreamConnectError("refused")

    with pytest.raises(UpstreamConnectError):
        await FakeUpstream(handler).send(make_request(clock))
    timeout = UpstreamTimeout("slow", phase="connect")
    with pytest.raises(UpstreamTimeout) as caught:
        await FakeUpstream(lambda request: FakeResponse(error=timeout)).send(make_request(clock))
    assert caught.value is timeout


async def test_delay_past_the_deadline_times_out_at_the_deadline(clock: FakeClock) -> None:
    upstream = FakeUpstream(lambda request: FakeResponse(delay=30.0), clock=clock, sleep=clock.sleep)
    started = clock()
    with pytest.raises(UpstreamTimeout) as caught:
        await clock.run(upstream.send(make_request(clock, timeout=10.0)))
    assert caught.value.phase == "status"
    assert clock() - started == 10.0
    response = await clock.run(upstream.send(make_request(clock, timeout=31.0)))
    assert response.status == 200
