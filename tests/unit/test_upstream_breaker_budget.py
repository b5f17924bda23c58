"""The back-off rule, the retry budget and the circuit breaker, each on a fake clock."""

from __future__ import annotations

import random

import pytest

from sidecar.core.backoff import Backoff
from sidecar.upstream.breaker import BreakerSettings, BreakerState, CircuitBreaker, Outcome
from sidecar.upstream.budget import BudgetSettings, RetryBudget
from tests.support.clock import FakeClock

# ---- back-off -----------------------------------------------------------------------------


def test_backoff_ceilings_grow_to_the_cap() -> None:
    backoff = Backoff(0.1, 0.8, 2.0)
    assert [backoff.ceiling(n) for n in range(6)] == pytest.approx([0.1, 0.2, 0.4, 0.8, 0.8, 0.8])
    assert Backoff(0.5, 60.0, 10.0).ceiling(10_000) == 60.0  # no overflow after a long outage


def test_backoff_jitter_stays_between_floor_and_ceiling_and_spreads() -> None:
    backoff = Backoff(0.5, 60.0)
    rng = random.Random(7)
    full = [backoff.delay(3, rng=rng) for _ in range(200)]
    assert all(0.0 <= d <= 4.0 for d in full) and min(full) < 1.0 < 3.0 < max(full)
    floored = [backoff.delay(3, floor=0.5, rng=rng) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in floored) and len(set(floored)) > 100


def test_backoff_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Backoff(0.0, 1.0)
    with pytest.raises(ValueError):
        Backoff(0.5, 0.0)
    assert Backoff(0.5, 0.2).ceiling(0) == 0.2  # a maximum below initial caps every ceiling
    with pytest.raises(ValueError):
        Backoff(0.1, 1.0, 0.5)


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


def test_budget_bound_formula() -> None:
    settings = BudgetSettings(ratio=0.2, min_per_second=1.0, window=10.0)
    assert settings.bound(requests=100, seconds=5.0) == pytest.approx(10 + 20 + 5)
    assert BudgetSettings(ratio=0.2, min_per_second=0).capacity == 1.0


# ---- breaker ------------------------------------------------------------------------------


def failing(breaker: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, Outcome.FAILURE)


def test_breaker_opens_on_failure_ratio_after_min_calls() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        BreakerSettings(0.5, min_calls=4, window=10.0, cooldown=2.0), clock=clock
    )
    failing(breaker, 3)
    assert breaker.state is BreakerState.CLOSED  # not enough calls to judge
    failing(breaker, 1)
    assert breaker.state is BreakerState.OPEN
    assert breaker.acquire() is None


def test_breaker_stays_closed_below_the_ratio() -> None:
    breaker = CircuitBreaker(
        BreakerSettings(0.8, min_calls=4, window=10.0, cooldown=5.0), clock=FakeClock()
    )
    for i in range(40):
        permit = breaker.acquire()
        assert permit is not None
        breaker.record(permit, Outcome.FAILURE if i % 2 else Outcome.SUCCESS)
    assert breaker.state is BreakerState.CLOSED
    assert breaker.counts() == (20, 20)


def test_breaker_window_forgets_old_outcomes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        BreakerSettings(0.5, min_calls=4, window=10.0, cooldown=5.0), clock=clock
    )
    failing(breaker, 3)
    clock.now += 11.0
    assert breaker.counts() == (0, 0)
    failing(breaker, 1)
    assert breaker.state is BreakerState.CLOSED


def test_breaker_half_open_probe_closes_or_reopens() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(
        BreakerSettings(1.0, min_calls=1, window=10.0, cooldown=2.0), clock=clock
    )
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
    breaker = CircuitBreaker(
        BreakerSettings(1.0, min_calls=1, window=10.0, cooldown=2.0), clock=FakeClock()
    )
    early = breaker.acquire()
    failing(breaker, 1)
    assert early is not None
    breaker.record(early, Outcome.SUCCESS)
    assert breaker.state is BreakerState.OPEN
    breaker.record(early, Outcome.FAILURE)  # each permit counts once
    assert breaker.state is BreakerState.OPEN
