"""Observers: immediate ones are called at the event, deferred ones get the events in batches, in order."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

import pytest

from ccproxy.events import CacheEvent, RequestRecord, UpstreamAttempt
from ccproxy.interfaces import Observer
from ccproxy.observers import DEFER_SECONDS, MAX_DEFERRED, AttemptTag, Observers, attempt_reporter
from ccproxy.upstream import UpstreamFailure, UpstreamRequest

Seen = list[tuple[str, str]]


class Immediate(Observer):
    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def request_started(self, record: RequestRecord) -> None:
        self.seen.append(("immediate started", record.request_id))

    def request_done(self, record: RequestRecord) -> None:
        record.cost_usd = 0.5  # what the built-in pricing does: deferred observers see it
        self.seen.append(("immediate done", record.request_id))


class Deferred(Observer):
    deferred = True

    def __init__(self, seen: Seen, name: str = "deferred") -> None:
        self.seen = seen
        self.name = name

    def request_started(self, record: RequestRecord) -> None:
        self.seen.append((f"{self.name} started", record.request_id))

    def request_done(self, record: RequestRecord) -> None:
        self.seen.append((f"{self.name} done {record.cost_usd}", record.request_id))

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        self.seen.append((f"{self.name} attempt", attempt.request_id))


class DoneOnly(Observer):
    """Overrides one method: it must not be called for the others (a None in its table)."""

    deferred = True

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def request_done(self, record: RequestRecord) -> None:
        self.seen.append(("done only", record.request_id))


class Failing(Observer):
    deferred = True

    def request_done(self, record: RequestRecord) -> None:
        raise RuntimeError("observer bug")


def attempt(request_id: str) -> UpstreamAttempt:
    return UpstreamAttempt(
        request_id=request_id, backend="b", upstream_model="m", attempt=1, status=200, error=None, ms=1.0
    )


def one_request(observers: Observers, request_id: str) -> RequestRecord:
    record = RequestRecord(request_id=request_id)
    observers.request_started(record)
    observers.upstream_attempt(attempt(request_id))
    observers.request_done(record)
    return record


async def test_deferred_observers_get_the_events_later_in_one_batch_in_order() -> None:
    seen: Seen = []
    observers = Observers([Immediate(seen), Deferred(seen, "first"), DoneOnly(seen), Deferred(seen, "second")])
    one_request(observers, "req_1")
    one_request(observers, "req_2")
    # At the events: only the immediate observer.
    assert seen == [
        ("immediate started", "req_1"),
        ("immediate done", "req_1"),
        ("immediate started", "req_2"),
        ("immediate done", "req_2"),
    ]
    del seen[:]
    await asyncio.sleep(DEFER_SECONDS * 3)
    # Then each deferred observer in registration order, through every event in the order they happened, with
    # what the immediate observers filled in.
    per_request = [("started", 1), ("attempt", 1), ("done 0.5", 1), ("started", 2), ("attempt", 2), ("done 0.5", 2)]
    assert seen == [
        *[(f"first {what}", f"req_{n}") for what, n in per_request],
        ("done only", "req_1"),
        ("done only", "req_2"),
        *[(f"second {what}", f"req_{n}") for what, n in per_request],
    ]


async def test_flush_delivers_at_once_and_the_timer_then_finds_nothing() -> None:
    seen: Seen = []
    observers = Observers([DoneOnly(seen)])
    one_request(observers, "req_1")
    assert seen == []
    observers.flush()
    assert seen == [("done only", "req_1")]
    await asyncio.sleep(DEFER_SECONDS * 3)
    assert seen == [("done only", "req_1")]  # not twice
    one_request(observers, "req_2")  # a new timer for the next batch
    await asyncio.sleep(DEFER_SECONDS * 3)
    assert seen == [("done only", "req_1"), ("done only", "req_2")]


async def test_a_full_queue_is_delivered_without_waiting_for_the_timer() -> None:
    seen: Seen = []
    observers = Observers([DoneOnly(seen)])
    for number in range(MAX_DEFERRED - 1):
        observers.request_done(RequestRecord(request_id=f"req_{number}"))
    assert seen == []
    observers.request_done(RequestRecord(request_id="req_last"))
    assert len(seen) == MAX_DEFERRED and seen[-1] == ("done only", "req_last")


def test_without_a_running_loop_events_are_delivered_at_once() -> None:
    seen: Seen = []
    observers = Observers([DoneOnly(seen)])
    observers.request_done(RequestRecord(request_id="req_1"))
    assert seen == [("done only", "req_1")]


def test_a_timer_on_a_loop_that_stopped_does_not_strand_later_events() -> None:
    # A server restarted in the same process (the test client does it per request): the first loop's timer never
    # fires, and the events of the next loop are still delivered by a timer of their own.
    seen: Seen = []
    observers = Observers([DoneOnly(seen)])

    async def request(request_id: str) -> None:
        observers.request_done(RequestRecord(request_id=request_id))

    first = asyncio.new_event_loop()
    first.run_until_complete(request("req_1"))
    first.close()
    assert seen == []

    async def request_and_wait() -> None:
        await request("req_2")
        await asyncio.sleep(DEFER_SECONDS * 3)

    asyncio.run(request_and_wait())
    assert seen == [("done only", "req_1"), ("done only", "req_2")]


async def test_an_event_from_a_thread_without_a_loop_is_delivered_at_once_while_a_timer_waits() -> None:
    # The armed loop is not asked for while it runs in the notifying thread; another thread has no loop of its own,
    # so its event (and what waits before it) is delivered there and then, not left to the other thread's timer.
    seen: Seen = []
    observers = Observers([DoneOnly(seen)])
    observers.request_done(RequestRecord(request_id="req_1"))
    assert seen == []  # the timer is armed on this loop
    worker = threading.Thread(target=observers.request_done, args=(RequestRecord(request_id="req_2"),))
    worker.start()
    worker.join()
    assert seen == [("done only", "req_1"), ("done only", "req_2")]


async def test_a_failing_deferred_observer_is_logged_and_the_others_still_get_every_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: Seen = []
    observers = Observers([Failing(), DoneOnly(seen)])
    with caplog.at_level(logging.ERROR, logger="ccproxy.observers"):
        one_request(observers, "req_1")
        one_request(observers, "req_2")
        observers.flush()
    assert seen == [("done only", "req_1"), ("done only", "req_2")]
    failures = [r for r in caplog.records if "observer Failing failed in request_done" in r.getMessage()]
    assert len(failures) == 2


async def test_only_immediate_observers_queue_nothing() -> None:
    seen: Seen = []
    observers = Observers([Immediate(seen)])
    one_request(observers, "req_1")
    observers.cache_event(CacheEvent("hit", "responses", "memory", "req_1"))
    assert not any(observers._queues) and observers._ordered is None  # nothing held for nobody
    assert seen == [("immediate started", "req_1"), ("immediate done", "req_1")]


class Gathering(Observer):
    """Gathers a batch's records and writes them out at batch_done (what the usage line does)."""

    deferred = True

    def __init__(self) -> None:
        self.gathered: list[str] = []
        self.written: list[list[str]] = []

    def request_done(self, record: RequestRecord) -> None:
        self.gathered.append(record.request_id)

    def batch_done(self) -> None:
        self.written.append(self.gathered)
        self.gathered = []


class FailingAtBatchEnd(Gathering):
    def batch_done(self) -> None:
        raise RuntimeError("observer bug")


async def test_batch_done_follows_each_batch_and_a_failing_one_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    gathering = Gathering()
    observers = Observers([FailingAtBatchEnd(), gathering, Immediate([])])
    with caplog.at_level(logging.ERROR, logger="ccproxy.observers"):
        one_request(observers, "req_1")
        one_request(observers, "req_2")
        observers.flush()
        observers.flush()  # nothing waiting: no batch, no batch_done
        one_request(observers, "req_3")
        await asyncio.sleep(DEFER_SECONDS * 3)
    assert gathering.written == [["req_1", "req_2"], ["req_3"]]
    failures = [r for r in caplog.records if "observer FailingAtBatchEnd failed in batch_done" in r.getMessage()]
    assert len(failures) == 2


class FillsIn(Observer):
    """What the built-in pricing is: fills the finished record in for the observers after it."""

    fills_in_record = True

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def request_done(self, record: RequestRecord) -> None:
        record.cost_usd = 0.25
        self.seen.append(("filled", record.request_id))


class ReadsNow(Observer):
    """An immediate reader of finished records (a key's budget)."""

    def __init__(self, seen: Seen) -> None:
        self.seen = seen

    def request_done(self, record: RequestRecord) -> None:
        self.seen.append((f"read now {record.cost_usd}", record.request_id))


async def test_a_filling_observer_runs_first_in_the_batch_unless_someone_reads_records_at_once() -> None:
    seen: Seen = []
    batched = Observers([FillsIn(seen), Deferred(seen)])
    batched.request_done(RequestRecord(request_id="req_1"))
    assert seen == []  # nobody reads at the event: the filling waits for the batch too
    batched.flush()
    assert seen == [("filled", "req_1"), ("deferred done 0.25", "req_1")]
    del seen[:]
    at_once = Observers([FillsIn(seen), ReadsNow(seen), Deferred(seen)])
    at_once.request_done(RequestRecord(request_id="req_2"))
    assert seen == [("filled", "req_2"), ("read now 0.25", "req_2")]
    at_once.flush()
    assert seen[-1] == ("deferred done 0.25", "req_2")


def test_request_started_is_wanted_only_when_someone_listens() -> None:
    assert Observers([DoneOnly([])]).wants_started is False
    assert Observers([Deferred([])]).wants_started is True
    assert Observers([Immediate([])]).wants_started is True


class AttemptsNow(Observer):
    def __init__(self, seen: list[UpstreamAttempt]) -> None:
        self.seen = seen

    def upstream_attempt(self, attempt: UpstreamAttempt) -> None:
        self.seen.append(attempt)


class AttemptsLater(AttemptsNow):
    deferred = True


def attempts_of(observers: Observers) -> tuple[RequestRecord, Callable[..., None]]:
    """A request's record and the reporter its backend's stack calls after each attempt."""
    record = RequestRecord(request_id="req_a")
    report = attempt_reporter(observers, lambda text: text.replace("sk-secret", "[REDACTED]"))

    def attempt(number: int, status: int | None, error: UpstreamFailure | None) -> None:
        request = UpstreamRequest(
            path="/chat/completions",
            body=b"{}",
            stream=False,
            deadline=0.0,
            attempt=number,
            tag=AttemptTag(record, "openai", "gpt-5"),
        )
        report(request, status, error, 0.25)

    return record, attempt


@pytest.mark.parametrize("deferred", [False, True], ids=["immediate", "deferred"])
async def test_each_attempt_reaches_observers_built_and_redacted_whenever_they_hear_of_it(deferred: bool) -> None:
    """Only deferred observers hearing of attempts: an attempt is queued unbuilt and built once when delivered; the
    same record either way, in order with the request's other events, and the retries counted at once."""
    seen: list[UpstreamAttempt] = []
    also: list[UpstreamAttempt] = []
    observers = Observers([(AttemptsLater if deferred else AttemptsNow)(seen), AttemptsLater(also)])
    record, attempt = attempts_of(observers)
    attempt(0, 429, UpstreamFailure("rate limited for key sk-secret"))
    attempt(1, 200, None)
    assert record.retries == 1
    assert len(seen) == (0 if deferred else 2) and not also
    observers.flush()
    expected = [
        UpstreamAttempt("req_a", "openai", "gpt-5", 1, 429, "rate limited for key [REDACTED]", 250.0),
        UpstreamAttempt("req_a", "openai", "gpt-5", 2, 200, None, 250.0),
    ]
    assert seen == expected and also == expected
    assert also[0] is seen[0]  # built once for every observer


async def test_attempts_nobody_hears_of_are_neither_built_nor_queued() -> None:
    seen: Seen = []
    observers = Observers([DoneOnly(seen)])
    record, attempt = attempts_of(observers)
    attempt(0, 500, UpstreamFailure("boom"))
    attempt(1, 200, None)
    assert record.retries == 1 and not any(observers._queues)
