"""The response cache: upstream answers kept by a hash of the converted request, and identical concurrent calls shared.

It sits between the pipeline and one target's upstream stack (MessagesPipeline.send): what it hands back is an
UpstreamResponse, so a cached or shared answer is read and translated like a fresh one — with this request's message
id and model name. What is stored is the upstream's raw answer (a JSON completion, or an event stream's bytes), and
only once the pipeline has translated it without a failure (`confirm`).

In-flight de-duplication: the first request for a key (the leader) starts a SharedCall, a task of its own that makes
the upstream call and records the body; identical requests arriving meanwhile (followers) read that record from its
start, then live. No request's disconnect cancels the call while another still reads it; the last one out does.
Across processes the cache backend's `add` is the lock: the process that gets it calls upstream, the others poll the
cache for its answer for at most `dedupe_wait` seconds, then call upstream themselves. docs/cache.md has the rules.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from ccproxy.config import CacheConfig
from ccproxy.core.jsoncodec import dumps
from ccproxy.events import CacheEvent, RequestRecord
from ccproxy.interfaces import CacheBackend
from ccproxy.observers import Observers
from ccproxy.upstream import UpstreamFailure, UpstreamRequest, UpstreamResponse

log = logging.getLogger("ccproxy.response_cache")

CACHE_HEADER = "x-ccproxy-cache"
HIT: Final = "hit"
MISS: Final = "miss"
ENTRY_PREFIX = "responses:"
LOCK_PREFIX = "responses-lock:"
# Bumped when the key's recipe or the stored value's shape changes: old entries then simply miss.
FORMAT = 1
# How often another process's answer is looked for while it holds the lock: from the first to the longest pause.
FIRST_POLL = 0.02
LONGEST_POLL = 0.25
# Keys whose hits are counted for the warm-up file; beyond this, new keys are not tracked.
MAX_TRACKED = 10_000

Outcome = Literal["hit", "miss"]


def response_key(backend: str, model: str, request: UpstreamRequest) -> str:
    """A stable hash of what is sent upstream: the converted body, its path, the stream flag, backend and model."""
    digest = hashlib.sha256(dumps([FORMAT, backend, model, request.path, request.stream]))
    digest.update(request.body)
    return digest.hexdigest()


@dataclass(slots=True)
class CacheUse:
    """What one request may do with the response cache (from its `cache-control` header)."""

    lookup: bool  # False for `no-cache`: a fresh upstream call, shared with nobody
    store: bool  # False for `no-store`
    request_id: str
    record: RequestRecord | None


def cache_use(cache_control: str | None, request_id: str, record: RequestRecord | None) -> CacheUse:
    directives = {part.strip().lower() for part in cache_control.split(",")} if cache_control else set()
    return CacheUse("no-cache" not in directives, "no-store" not in directives, request_id, record)


def encode_entry(content_type: str, body: bytes) -> dict[str, Any]:
    """A stored answer as a JSON value: the body as text when it is UTF-8 (it nearly always is), else base64."""
    try:
        return {"format": FORMAT, "type": content_type, "text": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"format": FORMAT, "type": content_type, "base64": base64.b64encode(body).decode("ascii")}


def decode_entry(value: Any) -> tuple[str, bytes] | None:
    """(content type, body) of a stored answer; None for anything else (another format, a foreign value)."""
    if not isinstance(value, dict) or value.get("format") != FORMAT or not isinstance(value.get("type"), str):
        return None
    text = value.get("text")
    if isinstance(text, str):
        return value["type"], text.encode("utf-8")
    packed = value.get("base64")
    if isinstance(packed, str):
        try:
            return value["type"], base64.b64decode(packed, validate=True)
        except ValueError:
            return None
    return None


class CachedResponse(UpstreamResponse):
    """A stored answer, read like the upstream's own."""

    __slots__ = ("body", "outcome")

    def __init__(self, content_type: str, body: bytes) -> None:
        super().__init__(200, {"content-type": content_type})
        self.body = body
        self.outcome: Outcome = HIT

    async def read(self, limit: int | None = None) -> bytes:
        return self.body if limit is None else self.body[:limit]

    def iter_bytes(self) -> AsyncIterator[bytes]:
        return self._once()

    async def _once(self) -> AsyncIterator[bytes]:
        yield self.body

    async def aclose(self) -> None:
        return None


class SharedResponse(UpstreamResponse):
    """One request's view of a SharedCall: the recorded body from its start, then live. Closing it leaves the call."""

    __slots__ = ("call", "left", "outcome")

    def __init__(self, call: SharedCall, outcome: Outcome) -> None:
        super().__init__(call.status, call.headers)
        self.call = call
        self.outcome = outcome
        self.left = False

    async def read(self, limit: int | None = None) -> bytes:
        """The whole body. Unlike a transport's, it does not finish the response: the pipeline confirms the answer,
        then closes it (until then the call waits for this request's verdict)."""
        body = b"".join([data async for data in self.iter_bytes()])
        return body if limit is None else body[:limit]

    def iter_bytes(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        call = self.call
        index = 0
        while True:
            chunks = call.chunks
            if index < len(chunks):
                data = chunks[index] if index + 1 == len(chunks) else b"".join(chunks[index:])
                index = len(chunks)
                yield data
            elif call.ended:
                if call.failure is not None:
                    raise call.failure
                return
            else:
                await call.more()

    async def aclose(self) -> None:
        if not self.left:
            self.left = True
            self.call.leave()


class SharedCall:
    """One upstream call and its recorded body, read by every request that asked for it (see the module docstring)."""

    def __init__(
        self,
        owner: ResponseCache,
        key: str,
        send: Callable[[], Awaitable[UpstreamResponse]],
        *,
        joinable: bool,
        store: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        self.owner = owner
        self.key = key
        self._send = send
        self.joinable = joinable  # registered for followers, and locked across processes
        self.store = store
        self.opened: asyncio.Future[None] = loop.create_future()
        self.opened.add_done_callback(_retrieved)  # a failure nobody is left to read is no "never retrieved" warning
        self.status = 0
        self.headers: Mapping[str, str] = {}
        self.chunks: list[bytes] = []
        self.ended = False
        self.failure: BaseException | None = None
        self.from_cache = False  # another process's answer, found while it held the lock
        self.readers = 0
        self.stored = False
        self._waiter: asyncio.Future[None] | None = None
        # Resolved by the first verdict (confirm) or when the last reader leaves: until then a finished call stays
        # in flight, so an identical request arriving meanwhile reads it rather than calling upstream again.
        self._settled: asyncio.Future[None] = loop.create_future()
        self._confirmed: tuple[str, bytes] | None = None  # what to store: (content type, body)
        self.task = owner.spawn(self._run(), "call")

    async def more(self) -> None:
        """Until the body has grown or ended."""
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)

    def join(self) -> None:
        self.readers += 1

    def leave(self) -> None:
        """A reader is done (answered, failed or gone). The last one out cancels a call still running, unless its
        answer was confirmed already (a stream read up to `[DONE]`): that call reads on to the end of the body, so
        the connection goes back to the pool, and then stores the answer."""
        self.readers -= 1
        if self.readers > 0:
            return
        if self.ended:
            if not self.stored:  # no verdict came: a later request makes a call of its own
                self.owner.forget(self)
            self._settle()
            return
        if not self.stored:  # a confirmed call stays in flight until it is stored: newcomers read it meanwhile
            self.owner.forget(self)
            self.task.cancel()

    def confirm(self) -> None:
        """A reader translated the whole answer without a failure: store what was recorded, once."""
        if self.stored or self.from_cache or not self.store:
            return
        self.stored = True
        self._confirmed = (self.headers.get("content-type", ""), b"".join(self.chunks))
        self._settle()

    def _settle(self) -> None:
        if not self._settled.done():
            self._settled.set_result(None)

    async def _run(self) -> None:
        response: UpstreamResponse | None = None
        locked = False
        try:
            if self.joinable and self.owner.cache.shared:
                locked, found = await self.owner.claim_or_wait(self.key)
                if found is not None:
                    self._answer_from_cache(*found)
                    return
            response = await self._send()
            self.status, self.headers = response.status, response.headers
            self.opened.set_result(None)
            async for data in response.iter_bytes():
                self.chunks.append(data)
                self._wake()
        except UpstreamFailure as exc:
            self._fail(exc)
        except asyncio.CancelledError:  # every reader left: nobody to tell
            self._fail(UpstreamCancelled())
        except Exception as exc:  # a bug: every reader fails the way the pipeline reports bugs
            log.exception("shared upstream call failed")
            self._fail(exc)
        finally:
            self.ended = True
            self._wake()
            await self._finish(response, locked)

    async def _finish(self, response: UpstreamResponse | None, locked: bool) -> None:
        if response is not None:
            await response.aclose()
        if self.failure is None and self.opened.done() and not self.opened.exception() and self.readers > 0:
            await self._settled
        if self._confirmed is not None:  # stored by this task: no task of its own, and before the lock is let go
            await self.owner.store(self.key, *self._confirmed)
        if locked:
            await self.owner.unlock(self.key)
        self.owner.forget(self)

    def _answer_from_cache(self, content_type: str, body: bytes) -> None:
        self.from_cache = True
        self.status, self.headers = 200, {"content-type": content_type}
        self.chunks.append(body)
        self.opened.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self.owner.forget(self)  # later requests make a call of their own
        if not self.opened.done():
            self.opened.set_exception(exc)
        else:
            self.failure = exc

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class UpstreamCancelled(UpstreamFailure):
    """The shared call was cancelled because every request reading it had gone (nobody sees this)."""

    def __init__(self) -> None:
        super().__init__("the shared upstream call was cancelled: every request reading it went away")


def _retrieved(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


class ResponseCache:
    """The response cache of one server process (see the module docstring); built only when it is switched on."""

    def __init__(
        self,
        cache: CacheBackend,
        *,
        ttl: float,
        dedupe_wait: float,
        observers: Observers | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cache = cache
        self.ttl = ttl
        self.dedupe_wait = dedupe_wait
        self.observers = observers
        self.clock = clock
        self.inflight: dict[str, SharedCall] = {}
        self.popular: dict[str, int] = {}  # key -> hits in this process (and carried over by the warm-up file)
        self.counts = {"hits": 0, "misses": 0, "shared": 0, "stores": 0, "errors": 0}
        self._broken = False  # a cache backend that raised: logged once
        self.tasks: set[asyncio.Task[None]] = set()  # shared calls and stores still running

    def spawn(self, work: Coroutine[Any, Any, None], what: str) -> asyncio.Task[None]:
        """A task of this cache's own, kept until it is done (and cancelled at server stop)."""
        task = asyncio.get_running_loop().create_task(work, name=f"ccproxy-response-cache-{what}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def send(
        self,
        upstream_send: Callable[[UpstreamRequest], Awaitable[UpstreamResponse]],
        request: UpstreamRequest,
        backend: str,
        model: str,
        use: CacheUse,
    ) -> UpstreamResponse:
        """The answer for one target: from the cache, from an identical call in flight, or from a new call."""
        key = response_key(backend, model, request)
        if use.lookup:
            call = self.inflight.get(key)
            if call is None:
                found = await self._lookup(key)
                if found is not None:
                    self._count(HIT, use, key)
                    return CachedResponse(*found)
                call = self.inflight.get(key)  # one may have started while this request looked
            if call is not None:
                return await self._read(call, use, follower=True)
        call = SharedCall(self, key, lambda: upstream_send(request), joinable=use.lookup, store=use.store)
        if use.lookup:
            self.inflight[key] = call
        return await self._read(call, use, follower=False)

    async def _read(self, call: SharedCall, use: CacheUse, *, follower: bool) -> UpstreamResponse:
        call.join()
        try:
            await asyncio.shield(call.opened)
        except BaseException:
            call.leave()
            raise
        outcome: Outcome = HIT if follower or call.from_cache else MISS
        if follower:
            self.counts["shared"] += 1
        self._count(outcome, use, call.key)
        return SharedResponse(call, outcome)

    def _count(self, outcome: Outcome, use: CacheUse, key: str) -> None:
        if outcome == HIT:
            self.counts["hits"] += 1
            if key in self.popular or len(self.popular) < MAX_TRACKED:
                self.popular[key] = self.popular.get(key, 0) + 1
            if use.record is not None:
                use.record.cost_usd = 0.0  # no upstream call was paid for this answer
        else:
            self.counts["misses"] += 1
        self._event(outcome, use.request_id)

    def _event(self, kind: Literal["hit", "miss", "store", "error"], request_id: str) -> None:
        if self.observers is not None:
            self.observers.cache_event(CacheEvent(kind, "responses", self.cache.name, request_id))

    async def _lookup(self, key: str) -> tuple[str, bytes] | None:
        try:
            value = await self.cache.get(ENTRY_PREFIX + key)
        except Exception as exc:
            self._failed("read", exc)
            return None
        return None if value is None else decode_entry(value)

    async def store(self, key: str, content_type: str, body: bytes) -> None:
        """Keep a confirmed answer for `ttl` seconds."""
        try:
            await self.cache.set(ENTRY_PREFIX + key, encode_entry(content_type, body), self.ttl)
        except Exception as exc:
            self._failed("write", exc)
            return
        self.counts["stores"] += 1
        self._event("store", "")

    async def claim_or_wait(self, key: str) -> tuple[bool, tuple[str, bytes] | None]:
        """(whether this process holds the lock, another process's answer): the lock when nobody else holds it,
        else the answer once the holder stored it; after `dedupe_wait` seconds, or when the holder stored nothing
        and let go, neither (the caller then calls upstream without waiting any longer)."""
        deadline = self.clock() + self.dedupe_wait
        pause = FIRST_POLL
        while True:
            try:
                if await self.cache.add(LOCK_PREFIX + key, secrets.token_hex(8), self.dedupe_wait):
                    # The holder before may have stored the answer and let go since this request looked.
                    found = await self._lookup(key)
                    if found is not None:
                        await self.unlock(key)
                        return False, found
                    return True, None
            except Exception as exc:
                self._failed("lock", exc)
                return False, None
            if self.clock() >= deadline:
                return False, None
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_POLL)
            found = await self._lookup(key)
            if found is not None:
                return False, found

    async def unlock(self, key: str) -> None:
        try:
            await self.cache.delete(LOCK_PREFIX + key)
        except Exception as exc:
            self._failed("unlock", exc)

    def forget(self, call: SharedCall) -> None:
        if self.inflight.get(call.key) is call:
            del self.inflight[call.key]

    def stats(self) -> dict[str, Any]:
        """This process's counts, for GET /v1/cache/stats."""
        return {
            "enabled": True,
            **self.counts,
            "in_flight": len(self.inflight),
            "ttl": self.ttl,
            "dedupe_wait": self.dedupe_wait,
        }

    async def close(self) -> None:
        """Cancel the calls and stores still running (server stop)."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _failed(self, what: str, exc: Exception) -> None:
        self.counts["errors"] += 1
        self._event("error", "")
        if not self._broken:
            self._broken = True
            log.warning("response cache: the %s cache failed to %s (%s); going without it", self.cache.name, what, exc)


def response_cache_or_none(
    options: CacheConfig, cache: CacheBackend, observers: Observers | None
) -> ResponseCache | None:
    """The response cache when `[cache] responses` (RESPONSE_CACHE) is on; None keeps it out of every request."""
    if not options.responses:
        return None
    return ResponseCache(cache, ttl=options.response_ttl, dedupe_wait=options.dedupe_wait, observers=observers)


def cache_headers(served: Mapping[str, str], response: UpstreamResponse) -> Mapping[str, str]:
    """The served headers with `x-ccproxy-cache` saying whether the answer came from the cache."""
    return {**served, CACHE_HEADER: getattr(response, "outcome", MISS)}


def confirm(response: UpstreamResponse) -> None:
    """The pipeline's verdict: this answer was translated in full without a failure, so it may be stored."""
    if isinstance(response, SharedResponse):
        response.call.confirm()
