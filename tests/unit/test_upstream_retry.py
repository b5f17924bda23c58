"""Retry arithmetic, the budget, the breaker and the retry loop's rules for a non-idempotent
call. The loop is driven by a scripted upstream that stands in for Google at the `Upstream`
protocol (the reliability tests drive it against the emulator over real sockets)."""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable

import pytest

from sidecar.core.model import AnnotationRequest, AssessmentRequest, UpstreamAssessment
from sidecar.core.ports import ATTEMPT, FailureKind, UpstreamError, UpstreamFailure
from sidecar.upstream.breaker import BreakerSettings, BreakerState
from sidecar.upstream.budget import BudgetSettings
from sidecar.upstream.classify import BREAKER_OPEN, is_retryable, may_repeat_create
from sidecar.upstream.retry import ResilientUpstream, RetrySettings
from tests.support.clock import FakeClock
from tests.support.defaults import BREAKER, BUDGET, RETRY


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
    """Records the back-off the loop asked for and moves the fake clock on by it."""

    def __init__(self, clock: FakeClock | None = None) -> None:
        self.asked: list[float] = []
        self.clock = clock

    async def __call__(self, delay: float) -> None:
        self.asked.append(delay)
        if self.clock is not None:
            self.clock.now += delay


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
        retry=retry or RETRY,
        budget=budget or BUDGET,
        breaker=breaker or BREAKER,
        clock=clock or FakeClock(),
        sleep=sleeps or Sleeps(),
    )


REQUEST = AssessmentRequest(token="t")


async def create(upstream: ResilientUpstream, timeout: float = 5.0) -> UpstreamAssessment:
    return await upstream.create_assessment(REQUEST, site_key="k", timeout=timeout)


# ---- settings -----------------------------------------------------------------------------


def test_retry_settings_are_immutable_and_checked() -> None:
    base = RETRY
    assert (base.max_attempts, base.initial_backoff, base.retry_ambiguous) == (3, 0.05, True)
    with pytest.raises(AttributeError):
        base.max_attempts = 4  # type: ignore[misc]
    with pytest.raises(ValueError):
        dataclasses.replace(RETRY, max_attempts=0)
    with pytest.raises(ValueError):
        dataclasses.replace(RETRY, initial_backoff=2.0, max_backoff=1.0)


def test_predicate_is_separate_from_backoff() -> None:
    assert is_retryable(unavailable().failure)
    assert not is_retryable(QUOTA.failure)
    assert not is_retryable(
        UpstreamFailure(FailureKind.TRANSIENT, BREAKER_OPEN, "open", reached=False, retryable=True)
    )
    assert may_repeat_create(unavailable(reached=False).failure, retry_ambiguous=False)
    assert not may_repeat_create(unavailable(reached=None).failure, retry_ambiguous=False)
    assert may_repeat_create(unavailable(reached=None).failure, retry_ambiguous=True)


# ---- the retry loop -----------------------------------------------------------------------


async def test_not_reached_failure_is_retried_and_attempts_are_numbered() -> None:
    upstream = ScriptedUpstream(unavailable(reached=False), unavailable(reached=False), VALID)
    sleeps = Sleeps()
    answer = await create(resilient(upstream, sleeps))
    assert answer is VALID
    assert upstream.attempt_numbers == [1, 2, 3]
    assert len(sleeps.asked) == 2


async def test_deadline_is_passed_down_as_time_remaining() -> None:
    clock = FakeClock()

    async def slow() -> object:
        clock.now += 0.4  # the attempt took 0.4 s of the call's second
        raise unavailable(reached=False)

    upstream = ScriptedUpstream(slow, VALID)
    sleeps = Sleeps(clock)
    await create(resilient(upstream, sleeps, clock=clock), timeout=1.0)
    first, second = upstream.timeouts
    assert first == pytest.approx(1.0)
    assert second == pytest.approx(1.0 - 0.4 - sleeps.asked[0])


async def test_backoff_grows_and_is_never_zero() -> None:
    """Full jitter under ceilings 0.1, 0.2, 0.4: each wait is within its ceiling, and the
    waits are not all zero (a back-off of 0 would retry a brownout at once)."""
    clock = FakeClock()
    retry = dataclasses.replace(RETRY, max_attempts=4, initial_backoff=0.1, max_backoff=1.0)
    budget = dataclasses.replace(BUDGET, min_per_second=100.0)
    for _ in range(20):
        upstream = ScriptedUpstream(*(unavailable(reached=False) for _ in range(3)), VALID)
        sleeps = Sleeps(clock)
        await create(resilient(upstream, sleeps, retry=retry, budget=budget, clock=clock))
        assert len(sleeps.asked) == 3
        for delay, ceiling in zip(sleeps.asked, (0.1, 0.2, 0.4), strict=True):
            assert 0.0 <= delay <= ceiling
        if sum(sleeps.asked) > 0.05:
            break
    else:
        raise AssertionError("twenty calls and the back-off never waited")


async def test_an_answer_after_an_ambiguous_failure_says_so() -> None:
    upstream = ScriptedUpstream(unavailable(reached=None), DUPE)
    answer = await create(resilient(upstream))
    assert answer == dataclasses.replace(DUPE, ambiguous_retry=True)


async def test_dupe_after_attempts_that_never_left_is_a_real_duplicate() -> None:
    upstream = ScriptedUpstream(unavailable(reached=False), DUPE)
    assert await create(resilient(upstream)) is DUPE


async def test_dupe_on_the_first_attempt_is_a_real_duplicate() -> None:
    assert await create(resilient(ScriptedUpstream(DUPE))) is DUPE


async def test_ambiguous_failures_are_not_retried_when_so_configured() -> None:
    upstream = ScriptedUpstream(unavailable(reached=None), VALID)
    retry = dataclasses.replace(RETRY, retry_ambiguous=False)
    with pytest.raises(UpstreamError) as caught:
        await create(resilient(upstream, retry=retry))
    assert caught.value.code == "UNAVAILABLE" and caught.value.reached is None
    assert len(upstream.timeouts) == 1


async def test_annotate_retries_ambiguous_failures() -> None:
    upstream = ScriptedUpstream(unavailable(reached=None), None)  # type: ignore[arg-type]
    retry = dataclasses.replace(RETRY, retry_ambiguous=False)  # applies to CreateAssessment only
    await resilient(upstream, retry=retry).annotate(
        AnnotationRequest(assessment_name="projects/1/assessments/a"), timeout=1.0
    )
    assert len(upstream.timeouts) == 2


async def test_attempts_are_bounded() -> None:
    upstream = ScriptedUpstream(*(unavailable(reached=False) for _ in range(5)))
    with pytest.raises(UpstreamError) as caught:
        await create(resilient(upstream, retry=dataclasses.replace(RETRY, max_attempts=3)))
    assert caught.value.reached is False  # no attempt left: the token was never sent
    assert len(upstream.timeouts) == 3


async def test_a_later_not_reached_failure_keeps_the_earlier_ambiguity() -> None:
    upstream = ScriptedUpstream(unavailable(reached=None), unavailable(reached=False))
    with pytest.raises(UpstreamError) as caught:
        await create(resilient(upstream, retry=dataclasses.replace(RETRY, max_attempts=2)))
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
    budget = dataclasses.replace(
        BUDGET, ratio=0.0, min_per_second=0.0
    )  # one banked retry, then none
    upstream = ScriptedUpstream(*(unavailable(reached=False) for _ in range(6)))
    wrapper = resilient(upstream, budget=budget)
    with pytest.raises(UpstreamError):
        await create(wrapper)
    assert len(upstream.timeouts) == 2  # the first attempt and the one banked retry
    with pytest.raises(UpstreamError):
        await create(wrapper)
    assert len(upstream.timeouts) == 3  # no retry left


async def test_open_breaker_answers_at_once_without_calling_upstream() -> None:
    clock = FakeClock()
    breaker = dataclasses.replace(BREAKER, failure_ratio=1.0, min_calls=2, cooldown=5.0)
    upstream = ScriptedUpstream(unavailable(reached=False), unavailable(reached=False), VALID)
    wrapper = resilient(
        upstream, breaker=breaker, clock=clock, retry=dataclasses.replace(RETRY, max_attempts=2)
    )
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
    breaker = dataclasses.replace(BREAKER, failure_ratio=1.0, min_calls=1)
    upstream = ScriptedUpstream(unavailable(reached=None), VALID)
    wrapper = resilient(
        upstream, breaker=breaker, clock=clock, retry=dataclasses.replace(RETRY, max_attempts=1)
    )
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
