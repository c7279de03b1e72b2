"""The response cache in the pipeline, against FakeUpstreams on the real event loop: what is stored and what never
is, answers converted afresh on every hit, and identical concurrent calls shared (in-flight de-duplication)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from ccproxy.default_plugins.memory_cache import MemoryCacheBackend
from ccproxy.errors import ProxyError
from ccproxy.events import CacheEvent
from ccproxy.interfaces import Observer
from ccproxy.observers import Observers
from ccproxy.pipeline import MessagesPipeline, Prepared
from ccproxy.redaction import Redactor
from ccproxy.response_cache import CACHE_HEADER, ENTRY_PREFIX, ResponseCache, response_key
from ccproxy.tokens import TokenCounter
from ccproxy.upstream import UpstreamConnectError, UpstreamRequest
from ccproxy.upstream.fake import Chunk, FakeResponse, FakeUpstream
from tests.support.anthropic_stream import accumulate, check_stream, parse_sse
from tests.support.backends import HELLO, answer, backends_toml, completion, connect_fakes, failing, make_backends

TOML = backends_toml({"a": "retries = 0", "b": "retries = 0"}, {"claude-*": "a:small", "gpt-*": "b:small"})
SSE = {"content-type": "text/event-stream"}


class Events(Observer):
    def __init__(self) -> None:
        self.kinds: list[str] = []

    def cache_event(self, event: CacheEvent) -> None:
        self.kinds.append(event.kind)


@dataclass
class Rig:
    pipeline: MessagesPipeline
    fake: FakeUpstream
    cache: MemoryCacheBackend
    events: Events

    @property
    def calls(self) -> int:
        return len(self.fake.requests)


def make_rig(handler: Any = answer, *, responses: bool = True) -> Rig:
    backends, router = make_backends(TOML)
    fakes = connect_fakes(backends, {"a": handler, "b": handler})
    cache = MemoryCacheBackend()
    events = Events()
    response_cache = ResponseCache(cache, ttl=300, dedupe_wait=5, observers=Observers([events])) if responses else None
    pipeline = MessagesPipeline(
        backends=backends,
        router=router,
        guardrails=(),
        load_tokens=TokenCounter.load,
        cache=cache,
        redact=Redactor(),
        responses=response_cache,
    )
    return Rig(pipeline, fakes["a"], cache, events)


async def prepare(rig: Rig, body: dict[str, Any] | None = None, cache_control: str | None = None) -> Prepared:
    raw = json.dumps(body or HELLO).encode()
    return await rig.pipeline.prepare(raw, {}, "req_test", None, None, cache_control)


async def complete(rig: Rig, body: dict[str, Any] | None = None, cache_control: str | None = None) -> Any:
    result = await rig.pipeline.complete(await prepare(rig, body, cache_control))
    await idle(rig)
    return result


async def idle(rig: Rig) -> None:
    """Until no call is in flight: a confirmed answer is stored by the call's own task, just after the answer."""
    responses = rig.pipeline.responses
    if responses is not None:
        await until(lambda: not responses.inflight and not responses.tasks)


async def entries(rig: Rig) -> int:
    return len([key async for key in keys(rig.cache)])


async def stream(rig: Rig, body: dict[str, Any] | None = None) -> tuple[dict[str, str], list[dict[str, Any]]]:
    prepared = await prepare(rig, {**(body or HELLO), "stream": True})
    opened = await rig.pipeline.open_stream(prepared)
    try:
        data = b"".join([piece async for piece in rig.pipeline.stream_events(prepared, opened)])
    finally:
        await opened.aclose()
    await idle(rig)
    return dict(opened.headers), parse_sse(data)


def request(body: bytes = b'{"model":"small"}', *, stream: bool = False, path: str = "/chat/completions") -> Any:
    return UpstreamRequest(path, body, stream, 0.0)


def test_the_key_is_stable_and_changes_with_backend_model_path_stream_and_body() -> None:
    key = response_key("a", "small", request())
    assert key == response_key("a", "small", request()) and len(key) == 64
    others = {
        response_key("b", "small", request()),
        response_key("a", "big", request()),
        response_key("a", "small", request(b'{"model":"big"}')),
        response_key("a", "small", request(stream=True)),
        response_key("a", "small", request(path="/responses")),
    }
    assert key not in others and len(others) == 5


async def test_one_request_converted_twice_gives_one_key() -> None:
    rig = make_rig()
    first, second = await prepare(rig), await prepare(rig)
    assert first.message_id != second.message_id
    target = first.route.targets[0]
    bodies = [rig.pipeline.convert(prepared, target)[0] for prepared in (first, second)]
    keys = {response_key("a", "small", request(body)) for body in bodies}
    assert len(keys) == 1


async def test_a_hit_is_converted_afresh_with_its_own_id_and_model_name() -> None:
    rig = make_rig()
    first = await complete(rig)
    second = await complete(rig, {**HELLO, "model": "claude-sonnet-4-5"})  # routed to the same a:small
    assert rig.calls == 1
    assert (first.headers[CACHE_HEADER], second.headers[CACHE_HEADER]) == ("miss", "hit")
    assert first.message["id"] != second.message["id"]
    assert (first.message["model"], second.message["model"]) == ("claude-opus-4-8", "claude-sonnet-4-5")
    assert first.message["content"] == second.message["content"] == [{"type": "text", "text": "Hello!"}]
    assert rig.events.kinds == ["miss", "store", "hit"]


async def test_another_backend_or_body_is_another_entry() -> None:
    rig = make_rig()
    await complete(rig)
    await complete(rig, {**HELLO, "model": "gpt-4o"})  # backend b
    await complete(rig, {**HELLO, "max_tokens": 99})
    assert rig.calls == 2 and len(rig.fake.requests) == 2
    assert (await entries(rig)) == 3


async def test_no_cache_skips_the_lookup_and_refreshes_the_entry_no_store_keeps_nothing() -> None:
    texts = iter(["first", "second", "third"])
    rig = make_rig(lambda req: FakeResponse.json(completion(next(texts))))
    await complete(rig)
    fresh = await complete(rig, cache_control="no-cache")
    assert (fresh.headers[CACHE_HEADER], fresh.message["content"][0]["text"], rig.calls) == ("miss", "second", 2)
    assert (await complete(rig)).message["content"][0]["text"] == "second"  # the refreshed entry
    unstored = await complete(rig, cache_control="no-cache, no-store")
    assert unstored.message["content"][0]["text"] == "third"
    assert (await complete(rig)).message["content"][0]["text"] == "second"


async def test_a_stream_is_answered_from_the_cache_as_a_complete_stream() -> None:
    rig = make_rig()
    first_headers, first = await stream(rig)
    second_headers, second = await stream(rig)
    assert rig.calls == 1
    assert (first_headers[CACHE_HEADER], second_headers[CACHE_HEADER]) == ("miss", "hit")
    check_stream(first)
    check_stream(second)
    one, two = accumulate(first), accumulate(second)
    assert one["id"] != two["id"] and one["content"] == two["content"] == [{"type": "text", "text": "Hello!"}]
    assert (await complete(rig)).headers[CACHE_HEADER] == "miss"  # the stream flag is part of the key


MIDSTREAM = [b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n', b'data: {"error":{"message":"died"}}\n\n']
TRUNCATED = [b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n']
BROKEN = [*TRUNCATED, UpstreamConnectError("connection reset")]
NOT_STORED: dict[str, FakeResponse] = {
    "an upstream error status": failing(500),
    "an error event in the stream": FakeResponse(200, SSE, chunks=MIDSTREAM),
    "a stream cut without finish_reason or [DONE]": FakeResponse(200, SSE, chunks=TRUNCATED),
    "a connection broken mid-stream": FakeResponse(200, SSE, chunks=list[Chunk](BROKEN)),
    "an HTML page": FakeResponse(200, {"content-type": "text/html"}, b"<html>oops</html>"),
}


@pytest.mark.parametrize("bad", NOT_STORED.values(), ids=NOT_STORED.keys())
async def test_failed_answers_are_never_stored(bad: FakeResponse) -> None:
    rig = make_rig(lambda req: bad)
    for _ in range(2):
        prepared = await prepare(rig, {**HELLO, "stream": True})
        try:
            opened = await rig.pipeline.open_stream(prepared)
        except ProxyError:
            continue
        events = parse_sse(b"".join([piece async for piece in rig.pipeline.stream_events(prepared, opened)]))
        await opened.aclose()
        assert events[-1]["type"] == "error"
        await idle(rig)
    assert rig.calls == 2
    assert (await entries(rig)) == 0
    assert "store" not in rig.events.kinds


async def test_a_non_stream_error_body_is_not_stored() -> None:
    rig = make_rig(lambda req: FakeResponse.json({"error": {"message": "in band"}}))
    for _ in range(2):
        with pytest.raises(ProxyError):
            await complete(rig)
    assert rig.calls == 2 and (await entries(rig)) == 0


class Gate:
    """An upstream handler that holds every answer until `open()`: requests meanwhile are concurrent."""

    def __init__(self, chunks: int = 1) -> None:
        self.event = asyncio.Event()
        self.chunks = chunks

    async def __call__(self, req: UpstreamRequest) -> FakeResponse:
        await self.event.wait()
        if req.stream:
            pieces: list[Chunk] = []
            for chunk in answer(req, "Hello there, shared!").chunks or ():
                pieces += [chunk, 0.001]
            return FakeResponse(200, SSE, chunks=pieces)
        return FakeResponse.json(completion("shared"))

    def open(self) -> None:
        self.event.set()


async def until(condition: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.005)


async def test_identical_concurrent_requests_share_one_upstream_call() -> None:
    gate = Gate()
    rig = make_rig(gate)
    tasks = [asyncio.create_task(complete(rig)) for _ in range(5)]
    await until(lambda: rig.calls == 1 and len(rig.pipeline.responses.inflight) == 1)  # type: ignore[union-attr]
    await asyncio.sleep(0.02)
    gate.open()
    answers = await asyncio.gather(*tasks)
    assert rig.calls == 1
    assert sorted(a.headers[CACHE_HEADER] for a in answers) == ["hit"] * 4 + ["miss"]
    assert len({a.message["id"] for a in answers}) == 5
    assert all(a.message["content"] == [{"type": "text", "text": "shared"}] for a in answers)
    assert (await complete(rig)).headers[CACHE_HEADER] == "hit" and rig.calls == 1


async def test_concurrent_streams_share_one_call_each_complete_with_its_own_id() -> None:
    gate = Gate()
    rig = make_rig(gate)
    tasks = [asyncio.create_task(stream(rig)) for _ in range(4)]
    await until(lambda: rig.calls == 1)
    await asyncio.sleep(0.02)
    gate.open()
    results = await asyncio.gather(*tasks)
    assert rig.calls == 1
    for _, events in results:
        check_stream(events)
        assert accumulate(events)["content"] == [{"type": "text", "text": "Hello there, shared!"}]
    assert len({accumulate(events)["id"] for _, events in results}) == 4


async def consume(rig: Rig, started: asyncio.Event) -> list[dict[str, Any]]:
    prepared = await prepare(rig, {**HELLO, "stream": True})
    opened = await rig.pipeline.open_stream(prepared)
    pieces: list[bytes] = []
    try:
        async for piece in rig.pipeline.stream_events(prepared, opened):
            pieces.append(piece)
            started.set()
    finally:
        await opened.aclose()
    return parse_sse(b"".join(pieces))


async def streams_under_way(rig: Rig, count: int) -> tuple[list[asyncio.Task[Any]], list[asyncio.Event]]:
    started = [asyncio.Event() for _ in range(count)]
    tasks = [asyncio.create_task(consume(rig, event)) for event in started]
    await until(
        lambda: (
            rig.calls == 1
            and rig.pipeline.responses.inflight[next(iter(rig.pipeline.responses.inflight))].readers == count
        )
    )  # type: ignore[union-attr]
    return tasks, started


@pytest.mark.parametrize("gone", [0, 1], ids=["the leader", "a follower"])
async def test_a_client_going_away_does_not_cancel_the_call_others_read(gone: int) -> None:
    gate = Gate()
    rig = make_rig(gate)
    tasks, started = await streams_under_way(rig, 2)
    gate.open()
    await started[gone].wait()
    tasks[gone].cancel()
    other = await tasks[1 - gone]
    check_stream(other)
    assert accumulate(other)["content"] == [{"type": "text", "text": "Hello there, shared!"}]
    await idle(rig)
    assert rig.calls == 1 and not rig.fake.responses[0].dropped
    assert (await entries(rig)) == 1


async def test_the_last_one_out_cancels_the_call() -> None:
    gate = Gate()
    rig = make_rig(gate)
    tasks, _ = await streams_under_way(rig, 2)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    responses = rig.pipeline.responses
    assert responses is not None
    await until(lambda: not responses.inflight)
    gate.open()
    assert (await complete(rig)).headers[CACHE_HEADER] == "miss" and rig.calls == 2  # a new call, nothing stored


async def test_a_shared_call_that_fails_fails_every_request_sharing_it() -> None:
    release = asyncio.Event()

    async def failing_later(req: UpstreamRequest) -> FakeResponse:
        await release.wait()
        return failing(503)

    rig = make_rig(failing_later)
    tasks = [asyncio.create_task(complete(rig)) for _ in range(3)]
    await until(lambda: rig.calls == 1)
    await asyncio.sleep(0.02)
    release.set()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [getattr(r, "status", None) for r in results] == [503, 503, 503] and rig.calls == 1
    assert (await entries(rig)) == 0


async def test_with_the_cache_off_nothing_is_hashed_or_labelled() -> None:
    rig = make_rig(responses=False)
    first, second = await complete(rig), await complete(rig)
    assert rig.calls == 2 and CACHE_HEADER not in first.headers and CACHE_HEADER not in second.headers
    assert (await prepare(rig)).cache is None


async def test_a_corrupt_entry_is_a_miss() -> None:
    rig = make_rig()
    await complete(rig)
    (key,) = [k async for k in keys(rig.cache)]
    await rig.cache.set(key, {"format": 1, "type": "application/json", "base64": "%%%"})
    assert (await complete(rig)).headers[CACHE_HEADER] == "miss" and rig.calls == 2


async def keys(cache: MemoryCacheBackend) -> AsyncIterator[str]:
    for key in list(cache._entries):  # the test reads the store it built
        if key.startswith(ENTRY_PREFIX):
            yield key


async def test_the_memory_backend_adds_only_what_is_absent() -> None:
    cache = MemoryCacheBackend()
    assert await cache.add("lock", "one", 10) is True
    assert await cache.add("lock", "two", 10) is False
    assert await cache.get("lock") == "one"
    await cache.delete("lock")
    assert await cache.add("lock", "three", 10) is True
