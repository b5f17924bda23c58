"""Resilience around the upstream: one deadline, bounded retries with a budget, a breaker.

Google's client ships with a 600 s timeout and no retries, and an upstream outage must not
become the app's outage. `ResilientUpstream` wraps any `Upstream` and adds, per RPC:

- one deadline for the whole call (attempts and back-off included), passed down as time
  remaining, never a fixed per-attempt timeout;
- at most `max_attempts` attempts, with full-jitter exponential back-off (`core.backoff`) or
  the server's pushback (`grpc-retry-pushback-ms`, `RetryInfo`) when it sends one;
- the retry budget (`budget.py`) and the circuit breaker (`breaker.py`);
- Google's RetryInfo window after RESOURCE_EXHAUSTED (`quota.py`): no call inside it.

What a failure means (kind, reached, retryable) is decided by `classify.py`, once; this loop
only reads the `UpstreamFailure` values and copies them with `dataclasses.replace`. One clock
(injected) drives the deadline, the budget and the breaker.

CreateAssessment is not idempotent: the first attempt that reaches Google consumes the token.
A retry after an attempt that provably never left (`reached is False`) is free; after an
ambiguous failure (`reached is None`) a retry may still get the answer, so that answer is
marked `ambiguous_retry`. What that means for a DUPE (our own earlier attempt may have spent
the token: outcome unknown, never DUPLICATE) is the policy's business (`policy.rules.decide`),
not this loop's: the loop knows nothing of invalid reasons.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from sidecar.core.backoff import Backoff
from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    RelatedAccountsPage,
    RelatedAccountsQuery,
    UpstreamAssessment,
)
from sidecar.core.ports import ATTEMPT, Clock, FailureKind, Upstream, UpstreamError
from sidecar.upstream.breaker import BreakerSettings, BreakerState, CircuitBreaker, Outcome
from sidecar.upstream.budget import BudgetSettings, RetryBudget
from sidecar.upstream.classify import (
    BREAKER_OPEN,
    NO_TIME_LEFT,
    RPC_ANNOTATE,
    RPC_CREATE,
    RPC_SEARCH,
    is_retryable,
    local_failure,
    may_repeat_create,
    says_upstream_is_down,
)
from sidecar.upstream.quota import RetryAfterWindow

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long a quota or credential error keeps the `upstream` health entry NOT_SERVING.
PROBLEM_MEMORY_SECONDS = 30.0
# Quota and credential errors are logged at most this often per RPC and code.
PROBLEM_LOG_INTERVAL = 10.0


@dataclass(frozen=True, slots=True)
class RetrySettings:
    """How often and how patiently to try again. Whether to try again is `classify`'s."""

    max_attempts: int
    initial_backoff: float
    max_backoff: float
    multiplier: float
    # Retry CreateAssessment after a failure that may have reached Google. A DUPE on the retry
    # is then outcome unknown; False keeps ambiguous failures to a single attempt.
    retry_ambiguous: bool = True

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.max_backoff < self.initial_backoff:
            raise ValueError("need initial_backoff <= max_backoff")
        Backoff(self.initial_backoff, self.max_backoff, self.multiplier)  # checks the rest

    @property
    def backoff(self) -> Backoff:
        return Backoff(self.initial_backoff, self.max_backoff, self.multiplier)


class _Guard:
    """Everything one RPC keeps between calls."""

    def __init__(
        self, name: str, budget: BudgetSettings, breaker: BreakerSettings, clock: Clock
    ) -> None:
        self.name = name
        self.clock = clock
        self.budget = RetryBudget(budget, clock=clock)
        self.breaker = CircuitBreaker(breaker, name=name, clock=clock)
        self.quota = RetryAfterWindow(clock)
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


class ResilientUpstream:
    """An `Upstream` that bounds, retries, budgets and breaks the calls of another."""

    def __init__(
        self,
        inner: Upstream,
        *,
        retry: RetrySettings,
        budget: BudgetSettings,
        breaker: BreakerSettings,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._inner = inner
        self._clock = clock
        self._sleep = sleep
        self._retry = retry
        self._backoff = retry.backoff
        # Separate guards: a flood of failing annotations must not open Assess's breaker
        # nor spend its retries.
        self._guards = {
            rpc: _Guard(rpc, budget, breaker, clock)
            for rpc in (RPC_CREATE, RPC_ANNOTATE, RPC_SEARCH)
        }

    # ---- Upstream protocol ----

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        """CreateAssessment within `timeout` seconds, attempts and back-off included."""

        def attempt(remaining: float) -> Awaitable[UpstreamAssessment]:
            return self._inner.create_assessment(request, site_key=site_key, timeout=remaining)

        answer, ambiguous = await self._call(
            self._guards[RPC_CREATE], attempt, timeout, create=True
        )
        if ambiguous:
            return dataclasses.replace(answer, ambiguous_retry=True)
        return answer

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        """AnnotateAssessment within `timeout` seconds; a repeat only re-labels, so any
        retryable failure is retried."""

        def attempt(remaining: float) -> Awaitable[None]:
            return self._inner.annotate(request, timeout=remaining)

        await self._call(self._guards[RPC_ANNOTATE], attempt, timeout, create=False)

    async def search_related_accounts(
        self, query: RelatedAccountsQuery, *, timeout: float
    ) -> RelatedAccountsPage:
        """SearchRelatedAccountGroupMemberships within `timeout` seconds: a read, so any
        retryable failure is retried."""

        def attempt(remaining: float) -> Awaitable[RelatedAccountsPage]:
            return self._inner.search_related_accounts(query, timeout=remaining)

        page, _ = await self._call(self._guards[RPC_SEARCH], attempt, timeout, create=False)
        return page

    async def close(self) -> None:
        await self._inner.close()

    # ---- state for telemetry and health ----

    def breaker_state(self, rpc: str = RPC_CREATE) -> BreakerState:
        return self._guards[rpc].breaker.state

    def budget_level(self, rpc: str = RPC_CREATE) -> float:
        return self._guards[rpc].budget.level()

    def retry_after(self, rpc: str = RPC_CREATE) -> float:
        """Seconds left in Google's RetryInfo window for `rpc` (0: upstream may be called)."""
        return self._guards[rpc].quota.remaining()

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
    ) -> tuple[T, bool]:
        """The answer, and whether an earlier attempt may have reached upstream."""
        clock = self._clock
        deadline = clock() + timeout
        refusal = guard.quota.refusal()
        if refusal is not None:
            guard.note_problem(refusal)
            raise refusal
        guard.budget.deposit()
        ambiguous = False  # an attempt of ours may have reached upstream
        last: UpstreamError | None = None
        for number in range(1, self._retry.max_attempts + 1):
            remaining = deadline - clock()
            if remaining <= 0:
                break
            permit = guard.breaker.acquire()
            if permit is None:
                last = local_failure(BREAKER_OPEN, "upstream circuit breaker is open")
                break
            token = ATTEMPT.set(number)
            try:
                result = await attempt(remaining)
            except UpstreamError as error:
                outcome = Outcome.FAILURE if says_upstream_is_down(error.failure) else None
                guard.breaker.record(permit, outcome or Outcome.NEUTRAL)
                guard.note_problem(error)
                guard.quota.note(error.failure)
                last = error
            else:
                guard.breaker.record(permit, Outcome.SUCCESS)
                return result, ambiguous
            finally:
                guard.breaker.record(permit, Outcome.NEUTRAL)  # cancelled: free the probe
                ATTEMPT.reset(token)

            if last.reached is not False:
                ambiguous = True
            if not is_retryable(last.failure) or number == self._retry.max_attempts:
                break
            if create and not may_repeat_create(last.failure, self._retry.retry_ambiguous):
                break
            delay = last.pushback
            if delay is None:
                delay = self._backoff.delay(number - 1)
            if clock() + delay >= deadline:
                break  # no time left for another attempt after waiting
            if not guard.budget.try_withdraw():
                break
            await self._sleep(delay)

        if last is None:
            raise local_failure(NO_TIME_LEFT, "no time left for an upstream attempt")
        if ambiguous and last.reached is False:
            # An earlier attempt may have spent the token: the call as a whole is ambiguous.
            raise UpstreamError(dataclasses.replace(last.failure, reached=None))
        raise last
