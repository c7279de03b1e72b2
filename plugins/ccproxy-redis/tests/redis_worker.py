"""A second (third...) ccproxy process for the shared-state tests: `python redis_worker.py '<json job>'` prints JSON.

Jobs: "limit" sends `attempts` requests at once through a rate limiter on the shared Redis state, after a barrier
that every party of the test reaches; "send" sends one request through a circuit breaker on the shared state;
"claim-and-die" takes the half-open trial and exits without a word, as a killed worker would.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

from redis.asyncio import Redis

from ccproxy.upstream import (
    BackendUnavailable,
    CircuitBreakerUpstream,
    RateLimitedUpstream,
    RateLimitExceeded,
    UpstreamRequest,
)
from ccproxy.upstream.fake import FakeResponse, FakeUpstream
from ccproxy_redis import RedisCacheBackend, RedisOptions

BARRIER_TIMEOUT = 30.0


def ok(request: UpstreamRequest) -> FakeResponse:
    return FakeResponse.json({"id": "chatcmpl-1", "choices": []})


def request() -> UpstreamRequest:
    return UpstreamRequest("/chat/completions", b"{}", False, time.monotonic() + 60)


async def barrier(url: str, key: str, parties: int) -> None:
    client = Redis.from_url(url)
    try:
        await client.incr(key)
        deadline = time.monotonic() + BARRIER_TIMEOUT
        while int(await client.get(key) or 0) < parties:
            if time.monotonic() > deadline:
                raise TimeoutError("the other parties never came")
            await asyncio.sleep(0.005)
    finally:
        await client.aclose()


async def limit(backend: RedisCacheBackend, job: dict[str, Any]) -> dict[str, Any]:
    fake = FakeUpstream(ok)
    limited = RateLimitedUpstream(
        fake, name=job["key"], rpm=job["rpm"], tpm=0, limit_wait=0.0, state=backend.shared_states().limiter
    )
    await barrier(job["url"], job["barrier"], job["parties"])
    results = await asyncio.gather(*(limited.send(request()) for _ in range(job["attempts"])), return_exceptions=True)
    refused = [result for result in results if isinstance(result, RateLimitExceeded)]
    return {
        "admitted": len(fake.requests),
        "refused": len(refused),
        "other": len(results) - len(fake.requests) - len(refused),
    }


async def send(backend: RedisCacheBackend, job: dict[str, Any]) -> dict[str, Any]:
    fake = FakeUpstream(ok)
    breaker = CircuitBreakerUpstream(
        fake, name=job["key"], failures=job["failures"], cooldown=job["cooldown"], state=backend.shared_states().breaker
    )
    try:
        response = await breaker.send(request())
    except BackendUnavailable as exc:
        return {"result": "unavailable", "retry_after": exc.retry_after, "reached": len(fake.requests)}
    return {"result": response.status, "reached": len(fake.requests)}


async def main(job: dict[str, Any]) -> None:
    backend = RedisCacheBackend(RedisOptions(url=job["url"], key_prefix=job["prefix"], **job.get("options", {})))
    await backend.open()
    if job["job"] == "claim-and-die":
        admission = await backend.shared_states().breaker.admit(job["key"], time.monotonic(), job["cooldown"])
        print(json.dumps({"allowed": admission.allowed, "trial": admission.trial}), flush=True)
        os._exit(0)  # no record, no release, no close: the claim is left behind
    result = await (limit if job["job"] == "limit" else send)(backend, job)
    result["redis_up"] = backend.link.up and backend.link.failed == 0
    await backend.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
