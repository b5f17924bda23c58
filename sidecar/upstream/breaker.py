"""The circuit breaker: when most recent attempts failed, calls are answered at once with a
not-reached `BREAKER_OPEN` failure (UNCHECKED, the action's failure policy) and after a
cooldown a single probe decides whether to close again."""

from __future__ import annotations

import enum
import logging
from collections import deque
from dataclasses import dataclass

from sidecar.core.ports import Clock

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Open when at least `min_calls` attempts in the last `window` seconds ended and
    `failure_ratio` of them failed transiently; probe again after `cooldown` seconds."""

    failure_ratio: float
    min_calls: int
    window: float
    cooldown: float

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.min_calls < 1 or self.window <= 0 or self.cooldown <= 0:
            raise ValueError("breaker: min_calls >= 1, window > 0, cooldown > 0")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Outcome(enum.Enum):
    SUCCESS = "success"  # upstream answered
    FAILURE = "failure"  # a transient failure: upstream down, slow or broken
    NEUTRAL = "neutral"  # says nothing about availability (quota, credentials, cancelled)


@dataclass(slots=True)
class Permit:
    """Leave to make one attempt. A probe's outcome decides a half-open breaker."""

    probe: bool
    settled: bool = False


class CircuitBreaker:
    """Closed → open on a high failure ratio → half-open after the cooldown → one probe
    closes it (an answer) or opens it again (a failure). Outcomes are counted in one-second
    buckets over the window, so memory stays constant whatever the request rate."""

    _BUCKETS = 10

    def __init__(self, settings: BreakerSettings, *, clock: Clock, name: str = "") -> None:
        self._settings = settings
        self._name = name
        self._clock = clock
        self._width = settings.window / self._BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket index, successes, failures]
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        """The state as callers would meet it now (an expired cooldown reads half-open)."""
        if self._state is BreakerState.OPEN and self._cooled_down():
            return BreakerState.HALF_OPEN
        return self._state

    def _cooled_down(self) -> bool:
        return self._clock() - self._opened_at >= self._settings.cooldown

    def acquire(self) -> Permit | None:
        """A permit to call upstream, or None: answer at once without calling."""
        if self._state is BreakerState.CLOSED:
            return Permit(probe=False)
        if self._state is BreakerState.OPEN and self._cooled_down():
            self._state = BreakerState.HALF_OPEN
            self._probing = False
        if self._state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return Permit(probe=True)
        return None

    def record(self, permit: Permit, outcome: Outcome) -> None:
        """What became of a permitted attempt. Each permit counts once."""
        if permit.settled:
            return
        permit.settled = True
        if permit.probe:
            self._probing = False
            if outcome is Outcome.SUCCESS:
                self._close()
            elif outcome is Outcome.FAILURE:
                self._open("probe failed")
            return
        if self._state is not BreakerState.CLOSED or outcome is Outcome.NEUTRAL:
            return  # attempts begun before the breaker opened say nothing about now
        bucket = self._bucket()
        bucket[1 if outcome is Outcome.SUCCESS else 2] += 1
        if outcome is Outcome.FAILURE:
            successes, failures = self._totals()
            total = successes + failures
            if total >= self._settings.min_calls and failures >= (
                self._settings.failure_ratio * total
            ):
                self._open(f"{failures} of {total} attempts failed")

    def counts(self) -> tuple[int, int]:
        """(successes, failures) in the current window."""
        self._expire()
        return self._totals()

    def _bucket(self) -> list[int]:
        index = int(self._clock() / self._width)
        self._expire(index)
        if not self._buckets or self._buckets[-1][0] != index:
            self._buckets.append([index, 0, 0])
        return self._buckets[-1]

    def _expire(self, index: int | None = None) -> None:
        if index is None:
            index = int(self._clock() / self._width)
        while self._buckets and self._buckets[0][0] <= index - self._BUCKETS:
            self._buckets.popleft()

    def _totals(self) -> tuple[int, int]:
        return sum(b[1] for b in self._buckets), sum(b[2] for b in self._buckets)

    def _open(self, why: str) -> None:
        if self._state is not BreakerState.OPEN:
            log.warning(
                "upstream circuit breaker opened",
                extra={"rpc": self._name, "reason": why, "cooldown": self._settings.cooldown},
            )
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._buckets.clear()

    def _close(self) -> None:
        if self._state is not BreakerState.CLOSED:
            log.warning("upstream circuit breaker closed", extra={"rpc": self._name})
        self._state = BreakerState.CLOSED
        self._buckets.clear()
