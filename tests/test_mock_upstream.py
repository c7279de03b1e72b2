"""The scripted local upstream the in-process API tests run against (tests/support/mock_upstream.py) behaves as
its docstring says, seen by a plain HTTP client: answers in order per path, repeats, callbacks, a loud 599 for what
was not scripted, a real dropped connection, an answer that never comes, chunked event streams."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.mock_upstream import Answer, MockUpstream, Received, mock_upstream


async def test_answers_come_in_order_per_path_then_the_unscripted_get_a_599() -> None:
    async with mock_upstream() as upstream, httpx.AsyncClient() as client:
        upstream.post(upstream.chat_url, payload={"n": 1})
        upstream.post(
            upstream.chat_url, status=429, body="slow", content_type="text/plain", headers={"Retry-After": "7"}
        )
        first = await client.post(upstream.chat_url, json={"q": 1}, headers={"Authorization": "Bearer k"})
        second = await client.post(upstream.chat_url + "?beta=true", content=b"raw")
        third = await client.post(upstream.chat_url, json={})
    assert (first.status_code, first.json()) == (200, {"n": 1})
    assert (second.status_code, second.text, second.headers["retry-after"]) == (429, "slow", "7")
    assert third.status_code == 599 and "nothing scripted for POST /v1/chat/completions" in third.text
    assert [(sent.method, sent.path) for sent in upstream.requests] == [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/chat/completions?beta=true"),
        ("POST", "/v1/chat/completions"),
    ]
    assert upstream.requests[0].json == {"q": 1} and upstream.requests[0].headers["authorization"] == "Bearer k"
    assert upstream.requests[1].body == b"raw" and upstream.unmatched == [upstream.requests[2]]


async def test_a_repeated_answer_and_a_callback_answer_every_time() -> None:
    seen: list[Received] = []

    async def echo(received: Received) -> Answer:
        seen.append(received)
        return Answer(payload={"echo": received.json})

    async with mock_upstream() as upstream, httpx.AsyncClient() as client:
        upstream.post(upstream.chat_url, callback=echo, repeat=True)
        upstream.add("GET", upstream.base_url + "/models", Answer(payload={"data": []}), repeat=True)
        answers = [(await client.post(upstream.chat_url, json={"i": i})).json() for i in range(3)]
        models = [(await client.get(upstream.base_url + "/models")).json() for _ in range(2)]
    assert answers == [{"echo": {"i": i}} for i in range(3)] and len(seen) == 3
    assert models == [{"data": []}] * 2


async def test_an_event_stream_is_sent_chunked_one_event_at_a_time() -> None:
    body = 'data: {"a": 1}\n\ndata: [DONE]\n\n'
    async with mock_upstream() as upstream, httpx.AsyncClient() as client:
        upstream.post(upstream.chat_url, body=body, content_type="text/event-stream")
        async with client.stream("POST", upstream.chat_url, json={}) as response:
            assert response.headers["transfer-encoding"] == "chunked"
            received = b"".join([piece async for piece in response.aiter_raw()])
    assert received.decode() == body


async def test_a_connection_error_drops_the_connection_without_an_answer() -> None:
    async with mock_upstream() as upstream, httpx.AsyncClient() as client:
        upstream.post(upstream.chat_url, exception=ConnectionResetError("dropped"))
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(upstream.chat_url, json={})


async def test_a_timeout_never_answers_until_the_client_gives_up() -> None:
    async with mock_upstream() as upstream, httpx.AsyncClient(timeout=0.2) as client:
        upstream.post(upstream.chat_url, exception=TimeoutError)
        started = asyncio.get_running_loop().time()
        with pytest.raises(httpx.ReadTimeout):
            await client.post(upstream.chat_url, json={})
        assert asyncio.get_running_loop().time() - started >= 0.2


async def test_a_url_on_another_server_or_an_exception_no_network_makes_is_refused() -> None:
    upstream = MockUpstream()
    await upstream.start()
    try:
        with pytest.raises(ValueError, match="not on the mock upstream"):
            upstream.post("http://upstream.test/v1/chat/completions", payload={})
        with pytest.raises(TypeError, match="time out"):
            upstream.post(upstream.chat_url, exception=ValueError("no network does this"))
    finally:
        await upstream.close()
