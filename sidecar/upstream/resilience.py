"""Resilience around the upstream: deadlines, bounded retries with a budget, a circuit breaker.

Google's client ships with a 600 s timeout and no retries, and an upstream outage must not
become the app's outage. `ResilientUpstream` wraps any `Upstream` and adds, per RPC:

- one deadline for the whole call (attempts and back-off included), passed down as time
  remaining, never a fixed per-attempt timeout;
- at most `max_attempts` attempts, with full-jitter exponential back-off (google-api-core's
  `exponential_sleep_generator`) or the server's `grpc-retry-pushback-ms` when it sends one;
- a retry budget in the style of Finagle's `RetryBudget` / gRPC A6 retry throttling: every
  request deposits `ratio` of a retry, a floor refills by time, a retry withdraws one, so a
  brownout cannot multiply load;
- a circuit breaker: when most recent attempts failed, calls are answered at once with a
  not-reached `BREAKER_OPEN` error (UNCHECKED, the action's failure policy) and after a
  cooldown a single probe decides whether to close again.

CreateAssessment is not idempotent: the first attempt that reaches Google consumes the token.
A retry after an attempt that provably never left (`reached is False`) is free; after an
ambiguous failure (`reached is None`) a retry may still get the answer, but a `DUPE` it brings
back may be our own earlier attempt, so it becomes `OUTCOME_UNKNOWN` (UNCHECKED), never
DUPLICATE.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from google.api_core.retry import exponential_sleep_generator

from sidecar.core.model import AnnotationRequest, AssessmentRequest, UpstreamAssessment
from sidecar.core.ports import ATTEMPT, FailureKind, Upstream, UpstreamError, UpstreamFailure

log = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]

RPC_CREATE = "create"
RPC_ANNOTATE = "annotate"
BREAKER_OPEN = "BREAKER_OPEN"
OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
# How long a quota or credential error keeps the `upstream` health entry NOT_SERVING.
PROBLEM_MEMORY_SECONDS = 30.0
# Quota and credential errors are logged at most this often per RPC and code.
PROBLEM_LOG_INTERVAL = 10.0


# ---- settings: immutable values with `with_*` builders, as google-api-core's Retry ----------


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How often and how patiently to try again. Whether to try again is `is_retryable`."""

    max_attempts: int = 3
    initial_backoff: float = 0.05
    max_backoff: float = 1.0
    multiplier: float = 2.0
    # Retry CreateAssessment after a failure that may have reached Google. A DUPE on the retry
    # is then reported as OUTCOME_UNKNOWN; False keeps ambiguous failures to a single attempt.
    retry_ambiguous: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff <= 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("need 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

    def with_max_attempts(self, max_attempts: int) -> RetrySettings:
        return dataclasses.replace(self, max_attempts=max_attempts)

    def with_backoff(
        self, initial: float, maximum: float, multiplier: float | None = None
    ) -> RetrySettings:
        return dataclasses.replace(
            self,
            initial_backoff=initial,
            max_backoff=maximum,
            multiplier=self.multiplier if multiplier is None else multiplier,
        )

    def with_retry_ambiguous(self, retry_ambiguous: bool) -> RetrySettings:
        return dataclasses.replace(self, retry_ambiguous=retry_ambiguous)

    def sleeps(self) -> Iterator[float]:
        """Full-jitter back-off: uniform(0, min(max, initial * multiplier**n))."""
        sleeps: Iterator[float] = exponential_sleep_generator(
            self.initial_backoff, self.max_backoff, self.multiplier
        )
        return sleeps


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """Retries may be at most `ratio` of requests plus `min_per_second`; the bucket banks up
    to `window` seconds of the floor (at least one retry) and starts full."""

    ratio: float = 0.2
    min_per_second: float = 5.0
    window: float = 10.0

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.min_per_second < 0 or self.window <= 0:
            raise ValueError("retry budget: ratio and min_per_second >= 0, window > 0")

    @property
    def capacity(self) -> float:
        return max(1.0, self.min_per_second * self.window)

    def with_ratio(self, ratio: float) -> BudgetSettings:
        return dataclasses.replace(self, ratio=ratio)

    def with_min_per_second(self, min_per_second: float) -> BudgetSettings:
        return dataclasses.replace(self, min_per_second=min_per_second)

    def bound(self, requests: int, seconds: float) -> float:
        """The most retries this budget can allow for `requests` over `seconds`."""
        return self.capacity + self.ratio * requests + self.min_per_second * seconds


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """Open when at least `min_calls` attempts in the last `window` seconds ended and
    `failure_ratio` of them failed transiently; probe again after `cooldown` seconds."""

    failure_ratio: float = 0.8
    min_calls: int = 10
    window: float = 10.0
    cooldown: float = 5.0

    def __post_init__(self) -> None:
        if not 0 < self.failure_ratio <= 1:
            raise ValueError("failure_ratio must be in (0, 1]")
        if self.min_calls < 1 or self.window <= 0 or self.cooldown <= 0:
            raise ValueError("breaker: min_calls >= 1, window > 0, cooldown > 0")

    def with_failure_ratio(self, failure_ratio: float) -> BreakerSettings:
        return dataclasses.replace(self, failure_ratio=failure_ratio)

    def with_min_calls(self, min_calls: int) -> BreakerSettings:
        return dataclasses.replace(self, min_calls=min_calls)

    def with_cooldown(self, cooldown: float) -> BreakerSettings:
        return dataclasses.replace(self, cooldown=cooldown)


# ---- the predicate, kept apart from the back-off ---------------------------------------------


def is_retryable(error: UpstreamError) -> bool:
    """Worth another attempt at all: a transient failure of a kind a repeat can cure.

    Quota and credential errors are not (another attempt costs quota and answers the same),
    and neither is the breaker's own refusal.
    """
    return error.kind is FailureKind.TRANSIENT and error.retryable and error.code != BREAKER_OPEN


def may_repeat_create(error: UpstreamError, settings: RetrySettings) -> bool:
    """CreateAssessment is repeatable when the token cannot have been consumed, or, when
    allowed, after an ambiguous failure (a DUPE then becomes OUTCOME_UNKNOWN)."""
    return error.reached is False or settings.retry_ambiguous


# ---- retry budget ----------------------------------------------------------------------------


class RetryBudget:
    """A token bucket: each request deposits `ratio`, time deposits `min_per_second`, each
    retry withdraws 1. Capped, so a long quiet spell cannot bank a retry storm."""

    def __init__(self, settings: BudgetSettings, *, clock: Clock = time.monotonic) -> None:
        self._settings = settings
        self._clock = clock
        self._tokens = settings.capacity
        self._stamp = clock()
        self.requests_total = 0
        self.retries_total = 0
        self.denied_total = 0

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        if elapsed and self._settings.min_per_second:
            self._tokens = min(
                self._settings.capacity, self._tokens + elapsed * self._settings.min_per_second
            )

    def deposit(self) -> None:
        """One request arrived."""
        self._refill()
        self.requests_total += 1
        self._tokens = min(self._settings.capacity, self._tokens + self._settings.ratio)

    def try_withdraw(self) -> bool:
        """Pay for one retry; False when the budget is spent."""
        self._refill()
        if self._tokens >= 1.0 - 1e-9:  # ten deposits of 0.2 make one retry, float or not
            self._tokens -= 1.0
            self.retries_total += 1
            return True
        self.denied_total += 1
        return False

    def tokens(self) -> float:
        """Retries the budget would allow right now."""
        self._refill()
        return self._tokens

    def level(self) -> float:
        """Share of the budget left, 0.0 … 1.0, as of the last request: a plain read, safe
        from the metrics exporter's thread."""
        return self._tokens / self._settings.capacity if self._settings.capacity else 0.0


# ---- circuit breaker -------------------------------------------------------------------------


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

    def __init__(
        self, settings: BreakerSettings, *, name: str = "", clock: Clock = time.monotonic
    ) -> None:
        self._settings = settings
        self._name = name
        self._clock = clock
        self._width = settings.window / self._BUCKETS
        self._buckets: deque[list[int]] = deque()  # [bucket index, successes, failures]
        self._state = BreakerState.CLOSED
        self._opened_at = 0.0
        self._probing = False
        self.opened_total = 0
        self.rejected_total = 0

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
        self.rejected_total += 1
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
            self.opened_total += 1
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


# ---- the wrapper -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RpcState:
    """A snapshot of one RPC's resilience state, for telemetry and health."""

    breaker: BreakerState
    breaker_opened_total: int
    breaker_rejected_total: int
    budget_tokens: float
    requests_total: int
    retries_total: int
    budget_denied_total: int
    outcome_unknown_total: int
    last_problem: str  # "quota" / "config" seen lately, else ""


class _Guard:
    """Everything one RPC keeps between calls."""

    def __init__(
        self, name: str, budget: BudgetSettings, breaker: BreakerSettings, clock: Clock
    ) -> None:
        self.name = name
        self.clock = clock
        self.budget = RetryBudget(budget, clock=clock)
        self.breaker = CircuitBreaker(breaker, name=name, clock=clock)
        self.outcome_unknown_total = 0
        self.problems: dict[FailureKind, float] = {}  # kind → when last seen
        self.logged: dict[str, float] = {}  # code → when last logged

    def note_problem(self, error: UpstreamError) -> None:
        """Quota and credential errors stay closed; make them visible in health and logs."""
        if error.kind not in (FailureKind.QUOTA, FailureKind.CONFIG):
            return
        now = self.clock()
        self.problems[error.kind] = now
        if now - self.logged.get(error.code, -PROBLEM_LOG_INTERVAL) >= PROBLEM_LOG_INTERVAL:
            self.logged[error.code] = now
            log.warning(
                "upstream refused the call: %s",
                error.code,
                extra={"rpc": self.name, "failure_kind": error.kind.value, "code": error.code},
            )

    def last_problem(self) -> str:
        now = self.clock()
        recent = [
            (seen, kind)
            for kind, seen in self.problems.items()
            if now - seen < PROBLEM_MEMORY_SECONDS
        ]
        return max(recent)[1].value if recent else ""

    def snapshot(self) -> RpcState:
        return RpcState(
            breaker=self.breaker.state,
            breaker_opened_total=self.breaker.opened_total,
            breaker_rejected_total=self.breaker.rejected_total,
            budget_tokens=self.budget.tokens(),
            requests_total=self.budget.requests_total,
            retries_total=self.budget.retries_total,
            budget_denied_total=self.budget.denied_total,
            outcome_unknown_total=self.outcome_unknown_total,
            last_problem=self.last_problem(),
        )


def _outcome(error: UpstreamError) -> Outcome:
    if error.kind is FailureKind.TRANSIENT and error.code != "CANCELLED":
        return Outcome.FAILURE
    return Outcome.NEUTRAL


class ResilientUpstream:
    """An `Upstream` that bounds, retries, budgets and breaks the calls of another."""

    def __init__(
        self,
        inner: Upstream,
        *,
        retry: RetrySettings | None = None,
        budget: BudgetSettings | None = None,
        breaker: BreakerSettings | None = None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._sleep = sleep
        self._retry = retry or RetrySettings()
        budget = budget or BudgetSettings()
        breaker = breaker or BreakerSettings()
        # Separate guards: a flood of failing annotations must not open Assess's breaker
        # nor spend its retries.
        self._guards = {
            rpc: _Guard(rpc, budget, breaker, clock) for rpc in (RPC_CREATE, RPC_ANNOTATE)
        }

    @property
    def inner(self) -> Upstream:
        return self._inner

    # ---- Upstream protocol ----

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        """CreateAssessment within `timeout` seconds, attempts and back-off included."""

        def attempt(remaining: float) -> Awaitable[UpstreamAssessment]:
            return self._inner.create_assessment(request, site_key=site_key, timeout=remaining)

        return await self._call(self._guards[RPC_CREATE], attempt, timeout, create=True)

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        """AnnotateAssessment within `timeout` seconds; a repeat only re-labels, so any
        retryable failure is retried."""

        def attempt(remaining: float) -> Awaitable[None]:
            return self._inner.annotate(request, timeout=remaining)

        await self._call(self._guards[RPC_ANNOTATE], attempt, timeout, create=False)

    async def close(self) -> None:
        await self._inner.close()

    # ---- state for telemetry and health ----

    def state(self, rpc: str = RPC_CREATE) -> RpcState:
        """Breaker state, budget level and counters of one RPC ("create" or "annotate")."""
        return self._guards[rpc].snapshot()

    def breaker_state(self, rpc: str = RPC_CREATE) -> BreakerState:
        return self._guards[rpc].breaker.state

    def budget_tokens(self, rpc: str = RPC_CREATE) -> float:
        return self._guards[rpc].budget.tokens()

    def budget_level(self, rpc: str = RPC_CREATE) -> float:
        return self._guards[rpc].budget.level()

    def health(self) -> tuple[bool, str]:
        """(serving, reason) for the `upstream` health entry: not serving while Assess's
        breaker is not closed, or while quota or credential errors are recent."""
        guard = self._guards[RPC_CREATE]
        state = guard.breaker.state
        if state is not BreakerState.CLOSED:
            return False, f"breaker_{state.value}"
        problem = guard.last_problem() or self._guards[RPC_ANNOTATE].last_problem()
        if problem:
            return False, problem
        return True, ""

    # ---- the loop ----

    async def _call(
        self,
        guard: _Guard,
        attempt: Callable[[float], Awaitable[T]],
        timeout: float,
        *,
        create: bool,
    ) -> T:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        guard.budget.deposit()
        sleeps = self._retry.sleeps()
        ambiguous = False  # an attempt of ours may have reached upstream
        last: UpstreamError | None = None
        for number in range(1, self._retry.max_attempts + 1):
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            permit = guard.breaker.acquire()
            if permit is None:
                last = UpstreamError(
                    UpstreamFailure(
                        FailureKind.TRANSIENT,
                        BREAKER_OPEN,
                        "upstream circuit breaker is open",
                        reached=False,
                    )
                )
                break
            token = ATTEMPT.set(number)
            try:
                result = await attempt(remaining)
            except UpstreamError as error:
                guard.breaker.record(permit, _outcome(error))
                guard.note_problem(error)
                last = error
            else:
                guard.breaker.record(permit, Outcome.SUCCESS)
                if create and ambiguous and _is_dupe(result):
                    guard.outcome_unknown_total += 1
                    raise UpstreamError(
                        UpstreamFailure(
                            FailureKind.TRANSIENT,
                            OUTCOME_UNKNOWN,
                            "DUPE after an attempt whose answer was lost",
                            reached=None,
                        )
                    ) from None
                return result
            finally:
                guard.breaker.record(permit, Outcome.NEUTRAL)  # cancelled: free the probe
                ATTEMPT.reset(token)

            if last.reached is not False:
                ambiguous = True
            if not is_retryable(last) or number == self._retry.max_attempts:
                break
            if create and not may_repeat_create(last, self._retry):
                break
            delay = last.pushback if last.pushback is not None else next(sleeps)
            if loop.time() + delay >= deadline:
                break  # no time left for another attempt after waiting
            if not guard.budget.try_withdraw():
                break
            await self._sleep(delay)

        if last is None:
            raise UpstreamError(
                UpstreamFailure(
                    FailureKind.TRANSIENT,
                    "DEADLINE_EXCEEDED",
                    "no time left for an upstream attempt",
                    reached=False,
                )
            )
        if ambiguous and last.reached is False:
            # An earlier attempt may have spent the token: the call as a whole is ambiguous.
            raise UpstreamError(dataclasses.replace(last.failure, reached=None))
        raise last


def _is_dupe(result: object) -> bool:
    return (
        isinstance(result, UpstreamAssessment)
        and not result.valid
        and result.invalid_reason == "DUPE"
    )
