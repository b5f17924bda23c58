"""Retry arithmetic, the budget, the breaker and the retry loop's rules for a non-idempotent
call. The loop is driven by a scripted upstream that stands in for Google at the `Upstream`
protocol (the reliability tests drive it against the emulator over real sockets)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

import pytest

from sidecar.core.model import AnnotationRequest, AssessmentRequest, UpstreamAssessment
from sidecar.core.ports import ATTEMPT, FailureKind, UpstreamError, UpstreamFailure
from sidecar.upstream.resilience import (
    BREAKER_OPEN,
    OUTCOME_UNKNOWN,
    BreakerSettings,
    BreakerState,
    BudgetSettings,
    CircuitBreaker,
    Outcome,
    ResilientUpstream,
    RetryBudget,
    RetrySettings,
    is_retryable,
    may_repeat_create,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def unavailable(reached: bool | None = None, pushback: float | None = None) -> UpstreamError:
    return UpstreamError(
        UpstreamFailure(
            FailureKind.TRANSIENT,
            "UNAVAILABLE",
            "down",
            reached=reached,
            retryable=True,
            pushback=pushback,
        )
    )


QUOTA = UpstreamError(
    UpstreamFailure(FailureKind.QUOTA, "RESOURCE_EXHAUSTED", "quota", reached=False)
)
VALID = UpstreamAssessment(name="projects/1/assessments/a", valid=True, score=0.9)
DUPE = UpstreamAssessment(name="projects/1/assessments/b", valid=False, invalid_reason="DUPE")

Step = UpstreamError | UpstreamAssessment | Callable[[], object]


class ScriptedUpstream:
    """Answers each attempt with the next scripted step; records attempts and timeouts."""

    def __init__(self, *steps: Step) -> None:
        self.steps: deque[Step] = deque(steps)
        self.timeouts: list[float] = []
        self.attempt_numbers: list[int] = []
        self.closed = False

    async def _next(self, timeout: float) -> object:
        self.timeouts.append(timeout)
        self.attempt_numbers.append(ATTEMPT.get())
        step = self.steps.popleft()
        if isinstance(step, UpstreamError):
            raise step
        if callable(step):
            return await step()  # type: ignore[misc]
        return step

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        answer = await self._next(timeout)
        assert isinstance(answer, UpstreamAssessment)
        return answer

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        await self._next(timeout)

    async def close(self) -> None:
        self.closed = True


class Sleeps:
    """Records the back-off the loop asked for instead of sleeping."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.asked.append(delay)


def resilient(
    upstream: ScriptedUpstream,
    sleeps: Sleeps | None = None,
    *,
    retry: RetrySettings | None = None,
    budget: BudgetSettings | None = None,
    breaker: BreakerSettings | None = None,
    clock: FakeClock | None = None,
) -> ResilientUpstream:
    return ResilientUpstream(
        upstream,
        retry=retry or RetrySettings(),
        budget=budget or BudgetSettings(),
        breaker=breaker or BreakerSettings(),
        clock=clock or FakeClock(),
        sleep=sleeps or Sleeps(),
    )


REQUEST = AssessmentRequest(token="t")


async def create(upstream: ResilientUpstream, timeout: float = 5.0) -> UpstreamAssessment:
    return await upstream.create_assessment(REQUEST, site_key="k", timeout=timeout)


# ---- settings -----------------------------------------------------------------------------


def test_retry_settings_are_immutable_values_with_builders() -> None:
    base = RetrySettings()
    changed = base.with_max_attempts(5).with_backoff(0.1, 2.0, 3.0).with_retry_ambiguous(False)
    assert (base.max_attempts, base.initial_backoff, base.retry_ambiguous) == (3, 0.05, True)
    assert (changed.max_attempts, changed.initial_backoff, changed.max_backoff) == (5, 0.1, 2.0)
    assert (changed.multiplier, changed.retry_ambiguous) == (3.0, False)
    with pytest.raises(AttributeError):
        base.max_attempts = 4  # type: ignore[misc]
    with pytest.raises(ValueError):
        RetrySettings(max_attempts=0)
    with pytest.raises(ValueError):
        RetrySettings(initial_backoff=2.0, max_backoff=1.0)


def test_backoff_is_full_jitter_under_a_growing_ceiling() -> None:
    sleeps = RetrySettings().with_backoff(0.1, 0.8, 2.0).sleeps()
    for ceiling in (0.1, 0.2, 0.4, 0.8, 0.8, 0.8):
        delay = next(sleeps)
        assert 0.0 <= delay <= ceiling


def test_predicate_is_separate_from_backoff() -> None:
    assert is_retryable(unavailable())
    assert not is_retryable(QUOTA)
    assert not is_retryable(
        UpstreamError(
            UpstreamFailure(
                FailureKind.TRANSIENT, BREAKER_OPEN, "open", reached=False, retryable=True
            )
        )
    )
    assert may_repeat_create(unavailable(reached=False), RetrySettings(retry_ambiguous=False))
    assert not may_repeat_create(unavailable(reached=None), RetrySettings(retry_ambiguous=False))
    assert may_repeat_create(unavailable(reached=None), RetrySettings())


# ---- budget -------------------------------------------------------------------------------


def test_budget_allows_ratio_of_requests_plus_a_floor() -> None:
    clock = FakeClock()
    settings = BudgetSettings(ratio=0.2, min_per_second=1.0, window=5.0)
    budget = RetryBudget(settings, clock=clock)
    assert budget.tokens() == pytest.approx(5.0)  # starts with the banked floor
    for _ in range(5):
        assert budget.try_withdraw()
    assert not budget.try_withdraw()
    for _ in range(10):  # ten requests earn two retries
        budget.deposit()
    assert budget.try_withdraw() and budget.try_withdraw()
    assert not budget.try_withdraw()
    clock.now += 3.0  # the floor refills by time
    assert budget.tokens() == pytest.approx(3.0)
    clock.now += 100.0  # but never beyond its cap
    assert budget.tokens() == pytest.approx(settings.capacity)
    assert (budget.retries_total, budget.denied_total) == (7, 2)


def test_budget_bound_formula() -> None:
    settings = BudgetSettings(ratio=0.2, min_per_second=1.0, window=10.0)
    assert settings.bound(requests=100, seconds=5.0) == pytest.approx(10 + 20 + 5)
    assert BudgetSettings(min_per_second=0).capacity == 1.0


# ---- breaker ------------------------------------------------------------------------------


def failing(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, Outcome.FAILURE)


def test_breaker_opens_on_failure_ratio_after_min_calls() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerSettings(0.5, min_calls=4, cooldown=2.0), clock=clock)
    failing(breaker, 3)
    assert breaker.state is BreakerState.CLOSED  # not enough calls to judge
    failing(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.acquire() is None
    assert (breaker.opened_total, breaker.rejected_total) == (1, 1)


def test_breaker_stays_closed_below_the_ratio() -> None:
    breaker = CircuitBreaker(BreakerSettings(0.8, min_calls=4), clock=FakeClock())
    for i in range(40):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, Outcome.FAILURE if i % 2 else Outcome.SUCCESS)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.counts() == (20, 20)


def test_breaker_window_forgets_old_outcomes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerSettings(0.5, min_calls=4, window=10.0), clock=clock)
    failing(breaker, 3)
    clock.now += 11.0
    assert breaker.counts() == (0, 0)
    failing(breaker, 1)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_half_open_probe_closes_or_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(BreakerSettings(1.0, min_calls=1, cooldown=2.0), clock=clock)
    failing(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    clock.now += 2.0
    assert breaker.state is BreakerState.HALF_OPEN
    probe = breaker.acquire()
    assert probe is not None and probe.probe
    assert breaker.acquire() is None  # one probe at a time
    breaker.record(probe, Outcome.FAILURE)
    assert breaker.state is BreakerState.OPEN
    clock.now += 2.0
    probe = breaker.acquire()
    assert probe is not None
    breaker.record(probe, Outcome.NEUTRAL)  # a cancelled probe frees the way for another
    probe = breaker.acquire()
    assert probe is not None
    breaker.record(probe, Outcome.SUCCESS)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.acquire() is not None


def test_breaker_ignores_attempts_begun_before_it_opened() -> None:
    breaker = CircuitBreaker(BreakerSettings(1.0, min_calls=1, cooldown=2.0), clock=FakeClock())
    early = breaker.acquire()
    failing(breaker, 1)
    assert early is not None
    breaker.record(early, Outcome.SUCCESS)
    assert breaker.state is BreakerState.OPEN
    breaker.record(early, Outcome.FAILURE)  # each permit counts once
    assert breaker.state is BreakerState.OPEN


# ---- the retry loop -----------------------------------------------------------------------


async def test_not_reached_failure_is_retried_and_attempts_are_numbered() -> None:
    upstream = ScriptedUpstream(unavailable(reached=False), unavailable(reached=False), VALID)
    sleeps = Sleeps()
    answer = await create(resilient(upstream, sleeps))
    assert answer is VALID
    assert upstream.attempt_numbers == [1, 2, 3]
    assert len(sleeps.asked) == 2


async def test_deadline_is_passed_down_as_time_remaining() -> None:
    async def slow() -> object:
        await asyncio.sleep(0.05)
        raise unavailable(reached=False)

    upstream = ScriptedUpstream(slow, VALID)
    await create(resilient(upstream), timeout=1.0)
    first, second = upstream.timeouts
    assert first <= 1.0 and second < first - 0.04


async def test_ambiguous_failure_then_dupe_is_outcome_unknown() -> None:
    upstream = ScriptedUpstream(unavailable(reached=None), DUPE)
    wrapper = resilient(upstream)
    with pytest.raises(UpstreamError) as caught:
        await create(wrapper)
    assert (caught.value.code, caught.value.reached) == (OUTCOME_UNKNOWN, None)
    assert caught.value.kind is FailureKind.TRANSIENT
    assert wrapper.state().outcome_unknown_total == 1


async def test_dupe_after_attempts_that_never_left_is_a_real_duplicate() -> None:
    upstream = ScriptedUpstream(unavailable(reached=False), DUPE)
    assert await create(resilient(upstream)) is DUPE


async def test_dupe_on_the_first_attempt_is_a_real_duplicate() -> None:
    assert await create(resilient(ScriptedUpstream(DUPE))) is DUPE


async def test_ambiguous_failures_are_not_retried_when_so_configured() -> None:
    upstream = ScriptedUpstream(unavailable(reached=None), VALID)
    retry = RetrySettings(retry_ambiguous=False)
    with pytest.raises(UpstreamError) as caught:
        await create(resilient(upstream, retry=retry))
    assert caught.value.code == "UNAVAILABLE" and caught.value.reached is None
    assert len(upstream.timeouts) == 1


async def test_annotate_retries_ambiguous_failures() -> None:
    upstream = ScriptedUpstream(unavailable(reached=None), None)  # type: ignore[arg-type]
    retry = RetrySettings(retry_ambiguous=False)  # applies to CreateAssessment only
    await resilient(upstream, retry=retry).annotate(
        AnnotationRequest(assessment_name="projects/1/assessments/a"), timeout=1.0
    )
    assert len(upstream.timeouts) == 2


async def test_attempts_are_bounded() -> None:
    upstream = ScriptedUpstream(*(unavailable(reached=False) for _ in range(5)))
    with pytest.raises(UpstreamError) as caught:
        await create(resilient(upstream, retry=RetrySettings(max_attempts=3)))
    assert caught.value.reached is False  # no attempt left: the token was never sent
    assert len(upstream.timeouts) == 3


async def test_a_later_not_reached_failure_keeps_the_earlier_ambiguity() -> None:
    upstream = ScriptedUpstream(unavailable(reached=None), unavailable(reached=False))
    with pytest.raises(UpstreamError) as caught:
        await create(resilient(upstream, retry=RetrySettings(max_attempts=2)))
    assert caught.value.reached is None  # the first attempt may have spent the token


async def test_quota_and_config_errors_are_not_retried() -> None:
    config = UpstreamError(
        UpstreamFailure(FailureKind.CONFIG, "PERMISSION_DENIED", "no", reached=False)
    )
    for error in (QUOTA, config):
        upstream = ScriptedUpstream(error, VALID)
        wrapper = resilient(upstream)
        with pytest.raises(UpstreamError) as caught:
            await create(wrapper)
        assert caught.value is error
        assert len(upstream.timeouts) == 1
        assert wrapper.health() == (False, error.kind.value)


async def test_pushback_replaces_the_backoff() -> None:
    upstream = ScriptedUpstream(unavailable(reached=False, pushback=0.3), VALID)
    sleeps = Sleeps()
    await create(resilient(upstream, sleeps), timeout=5.0)
    assert sleeps.asked == [0.3]


async def test_pushback_past_the_deadline_ends_the_call_at_once() -> None:
    upstream = ScriptedUpstream(unavailable(reached=False, pushback=10.0), VALID)
    sleeps = Sleeps()
    with pytest.raises(UpstreamError):
        await create(resilient(upstream, sleeps), timeout=1.0)
    assert sleeps.asked == [] and len(upstream.timeouts) == 1


async def test_spent_budget_stops_retries() -> None:
    budget = BudgetSettings(ratio=0.0, min_per_second=0.0)  # one banked retry, then none
    upstream = ScriptedUpstream(*(unavailable(reached=False) for _ in range(6)))
    wrapper = resilient(upstream, budget=budget)
    with pytest.raises(UpstreamError):
        await create(wrapper)
    assert len(upstream.timeouts) == 2  # the first attempt and the one banked retry
    with pytest.raises(UpstreamError):
        await create(wrapper)
    assert len(upstream.timeouts) == 3  # no retry left
    state = wrapper.state()
    assert (state.retries_total, state.budget_denied_total, state.requests_total) == (1, 2, 2)


async def test_open_breaker_answers_at_once_without_calling_upstream() -> None:
    clock = FakeClock()
    breaker = BreakerSettings(failure_ratio=1.0, min_calls=2, cooldown=5.0)
    upstream = ScriptedUpstream(unavailable(reached=False), unavailable(reached=False), VALID)
    wrapper = resilient(upstream, breaker=breaker, clock=clock, retry=RetrySettings(2))
    with pytest.raises(UpstreamError):
        await create(wrapper)
    assert wrapper.breaker_state() is BreakerState.OPEN
    with pytest.raises(UpstreamError) as caught:
        await create(wrapper)
    assert (caught.value.code, caught.value.reached) == (BREAKER_OPEN, False)
    assert caught.value.kind is FailureKind.TRANSIENT
    assert len(upstream.timeouts) == 2
    assert wrapper.health() == (False, "breaker_open")
    clock.now += 5.0
    assert await create(wrapper) is VALID  # the probe
    assert wrapper.breaker_state() is BreakerState.CLOSED
    assert wrapper.health() == (True, "")


async def test_annotate_has_its_own_breaker_and_budget() -> None:
    clock = FakeClock()
    breaker = BreakerSettings(failure_ratio=1.0, min_calls=1)
    upstream = ScriptedUpstream(unavailable(reached=None), VALID)
    wrapper = resilient(upstream, breaker=breaker, clock=clock, retry=RetrySettings(1))
    with pytest.raises(UpstreamError):
        await wrapper.annotate(
            AnnotationRequest(assessment_name="projects/1/assessments/a"), timeout=1.0
        )
    assert wrapper.breaker_state("annotate") is BreakerState.OPEN
    assert wrapper.breaker_state("create") is BreakerState.CLOSED
    assert await create(wrapper) is VALID


async def test_no_time_left_is_a_not_reached_deadline() -> None:
    upstream = ScriptedUpstream(VALID)
    with pytest.raises(UpstreamError) as caught:
        await create(resilient(upstream), timeout=0.0)
    assert (caught.value.code, caught.value.reached) == ("DEADLINE_EXCEEDED", False)
    assert upstream.timeouts == []


async def test_close_closes_the_inner_upstream() -> None:
    upstream = ScriptedUpstream()
    await resilient(upstream).close()
    assert upstream.closed
