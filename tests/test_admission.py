"""RequestGate (ccproxy/http/admission.py): MAX_CONCURRENT_REQUESTS at once, a bounded wait, then 529."""

from __future__ import annotations

import asyncio
import time

import pytest

from ccproxy.errors import ProxyError
from ccproxy.http.admission import RequestGate


async def test_a_request_over_the_cap_gets_a_slot_freed_within_the_wait() -> None:
    gate = RequestGate(1, wait=5.0)
    await gate.enter()
    waiting = asyncio.create_task(gate.enter())
    await asyncio.sleep(0.05)
    assert not waiting.done() and gate.in_flight == 1
    gate.leave()
    await asyncio.wait_for(waiting, 1.0)
    assert gate.in_flight == 1
    gate.leave()
    assert gate.in_flight == 0


async def test_a_request_over_the_cap_is_refused_after_the_wait() -> None:
    gate = RequestGate(2, wait=0.1)
    await gate.enter()
    await gate.enter()
    started = time.monotonic()
    with pytest.raises(ProxyError) as refused:
        await gate.enter()
    assert 0.08 < time.monotonic() - started < 1.0
    assert (refused.value.status, refused.value.error_type) == (529, "overloaded_error")
    assert refused.value.headers == {"retry-after": "1"}
    assert gate.in_flight == 2  # the refused request took nothing


async def test_no_wait_sheds_at_once() -> None:
    gate = RequestGate(1, wait=0.0)
    await gate.enter()
    with pytest.raises(ProxyError):
        await gate.enter()
