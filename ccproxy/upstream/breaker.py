"""CircuitBreakerUpstream: a backend that keeps failing is skipped for a cooldown, then one trial request decides.

closed --(`failures` consecutive failures)--> open --(`cooldown` s)--> half-open: the next request is the one trial,
the others are refused while it runs; its success closes the circuit, its failure opens it again. Failures are what
`is_backend_failure` says (no answer, a broken answer, 5xx); a 4xx, 429 included, is a working server's answer.
The state sits behind `BreakerState` so that several processes can share it (a store such as Redis).
`on_state` hears of each state this process sees the circuit in, when it differs from the last one it heard of
(per request that is one comparison; the metrics' breaker gauge is fed by it).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from ccproxy.upstream.base import Clock, Upstream, UpstreamRequest, UpstreamResponse, UpstreamWrapper
from ccproxy.upstream.errors import BackendUnavailable, RateLimitExceeded, UpstreamFailure, is_backend_failure

CircuitState = Literal["closed", "half_open", "open"]
# on_state(backend name, state): called on the request's task, must not block.
BreakerObserver = Callable[[str, CircuitState], None]


@dataclass(frozen=True, slots=True)
class Admission:
    """Whether a request may go: `trial` when it is the half-open probe; `retry_after` (cooldown left) if refused."""

    allowed: bool
    trial: bool = False
    retry_after: float | None = None


ADMITTED = Admission(True)
TRIAL = Admission(True, trial=True)
TRIAL_RUNNING = Admission(False)


class BreakerState(ABC):
    """Where circuits live, by key (the backend's name). `now` is the breaker's clock (time.monotonic by default);
    a store shared between processes should use its own shared clock instead, and expire a trial claim whose
    holder died."""

    @abstractmethod
    async def admit(self, key: str, now: float, cooldown: float) -> Admission:
        """Decide for one request, atomically: admitted (closed), the one trial (open and cooled down, no trial
        running: the claim is recorded), or refused."""

    @abstractmethod
    async def record(self, key: str, *, failed: bool, trial: bool, now: float, threshold: int) -> bool | None:
        """The outcome of an admitted request: a success closes the circuit and clears the count; a failure counts,
        and opens the circuit at `threshold` consecutive failures — or at once when it was the trial. Returns whether
        the circuit is open now, or None when the store cannot tell cheaply (the next admission tells then)."""

    @abstractmethod
    async def release(self, key: str) -> None:
        """A trial ended without saying anything about the backend (cancelled, refused locally): the next request
        becomes the trial."""

    async def describe(self, key: str, now: float, cooldown: float) -> str | None:
        """ "closed", "open" or "half_open" for status pages, without changing anything; None (the default) when
        the store cannot tell cheaply."""
        return None


class _Circuit:
    __slots__ = ("failures", "opened_at", "trial_running")

    def __init__(self) -> None:
        self.failures = 0
        self.opened_at: float | None = None
        self.trial_running = False


class InMemoryBreakerState(BreakerState):
    """Circuits in this process (each worker has its own)."""

    def __init__(self) -> None:
        self._circuits: dict[str, _Circuit] = {}

    def _circuit(self, key: str) -> _Circuit:
        circuit = self._circuits.get(key)
        if circuit is None:
            circuit = self._circuits[key] = _Circuit()
        return circuit

    async def admit(self, key: str, now: float, cooldown: float) -> Admission:
        circuit = self._circuit(key)
        if circuit.opened_at is None:
            return ADMITTED
        left = circuit.opened_at + cooldown - now
        if left > 0:
            return Admission(False, retry_after=left)
        if circuit.trial_running:
            return TRIAL_RUNNING
        circuit.trial_running = True
        return TRIAL

    async def record(self, key: str, *, failed: bool, trial: bool, now: float, threshold: int) -> bool:
        circuit = self._circuit(key)
        if trial:
            circuit.trial_running = False
        if not failed:
            circuit.failures = 0
            circuit.opened_at = None
            return False
        circuit.failures += 1
        if trial or (circuit.opened_at is None and circuit.failures >= threshold):
            circuit.opened_at = now
        return circuit.opened_at is not None

    async def release(self, key: str) -> None:
        self._circuit(key).trial_running = False

    async def describe(self, key: str, now: float, cooldown: float) -> str | None:
        circuit = self._circuits.get(key)
        if circuit is None or circuit.opened_at is None:
            return "closed"
        return "open" if circuit.opened_at + cooldown > now else "half_open"


class CircuitBreakerUpstream(UpstreamWrapper):
    """Refuses sends with BackendUnavailable while the backend's circuit is open (see the module docstring)."""

    def __init__(
        self,
        inner: Upstream,
        *,
        name: str,
        failures: int,
        cooldown: float,
        state: BreakerState,
        clock: Clock = time.monotonic,
        on_state: BreakerObserver | None = None,
    ) -> None:
        super().__init__(inner)
        self.name = name
        self.failures = failures
        self.cooldown = cooldown
        self.state = state
        self.clock = clock
        self.on_state = on_state
        self._seen: CircuitState | None = None  # the state on_state heard of last

    async def send(self, request: UpstreamRequest) -> UpstreamResponse:
        admission = await self.state.admit(self.name, self.clock(), self.cooldown)
        if not admission.allowed:
            self._see("half_open" if admission.retry_after is None else "open")
            raise self._unavailable(admission.retry_after)
        trial = admission.trial
        self._see("half_open" if trial else "closed")
        try:
            response = await self.inner.send(request)
        except RateLimitExceeded:
            if trial:  # refused by our own limiter: nothing learnt about the backend
                await self.state.release(self.name)
            raise
        except UpstreamFailure as exc:
            failed = is_backend_failure(exc)
            await self._record(failed=failed, trial=trial)
            raise
        except BaseException:
            if trial:
                await self.state.release(self.name)
            raise
        await self._record(failed=False, trial=trial)
        return response

    async def _record(self, *, failed: bool, trial: bool) -> None:
        opened = await self.state.record(
            self.name, failed=failed, trial=trial, now=self.clock(), threshold=self.failures
        )
        if opened is not None:
            self._see("open" if opened else "closed")

    def _see(self, state: CircuitState) -> None:
        if state != self._seen and self.on_state is not None:
            self._seen = state
            self.on_state(self.name, state)

    def _unavailable(self, retry_after: float | None) -> BackendUnavailable:
        if retry_after is None:
            message = f"Backend {self.name} is being probed after repeated failures; try again shortly"
        else:
            message = f"Backend {self.name} is unavailable after repeated failures; retry in {retry_after:.0f} s"
        return BackendUnavailable(message, retry_after=retry_after)
