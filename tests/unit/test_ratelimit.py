"""The rate limit arithmetic (GCRA) and its memory store, on a fake clock: bursts, the
refill rate, all-or-nothing across a call's limits, and the memory bound; the quota meter
(every upstream attempt counted, the last minute's share, the 80% warning)."""

from __future__ import annotations

import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sidecar.core.model import AnnotationRequest, AssessmentRequest, UpstreamAssessment
from sidecar.core.ports import FailureKind, RateLimit, UpstreamError, UpstreamFailure
from sidecar.ratelimit.gcra import conform, interval_us, tolerance_us
from sidecar.ratelimit.memory import MemoryRateLimiter
from sidecar.ratelimit.meter import MeteredUpstream, QuotaMeter
from sidecar.upstream.retry import ResilientUpstream
from tests.support.defaults import BREAKER, BUDGET, RETRY


class Micros:
    """A fake monotonic clock in integer microseconds."""

    def __init__(self) -> None:
        self.now = 10_000_000

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1_000_000)


def limiter(max_keys: int = 1000) -> tuple[MemoryRateLimiter, Micros]:
    clock = Micros()
    return MemoryRateLimiter(max_keys=max_keys, clock=clock), clock


def test_a_full_bucket_admits_the_limit_at_once_then_one_per_interval() -> None:
    memory, clock = limiter()
    per_ip = RateLimit("ip:a", 30, 60.0)
    admitted = [memory.admit_now([per_ip]) for _ in range(40)]
    assert admitted.count(-1) == 30 and admitted[30:] == [0] * 10
    clock.advance(1.9)
    assert memory.admit_now([per_ip]) == 0, "no room before one interval (2 s)"
    clock.advance(0.1)
    assert memory.admit_now([per_ip]) == -1
    assert memory.admit_now([per_ip]) == 0
    clock.advance(60)
    assert [memory.admit_now([per_ip]) for _ in range(31)].count(-1) == 30


def test_odd_rates_admit_exactly_their_burst() -> None:
    """Intervals are rounded to microseconds; the burst must still be exactly `calls`."""
    for calls, period in ((7, 60.0), (3, 1.0), (900, 1.0), (60_000, 60.0), (1, 86_400.0)):
        memory, _ = limiter()
        limit = RateLimit("k", calls, period)
        admitted = sum(memory.admit_now([limit]) == -1 for _ in range(calls + 5))
        assert admitted == calls, (calls, period)


def test_a_refused_call_counts_against_none_of_its_limits() -> None:
    memory, _ = limiter()
    client, cap = RateLimit("ip:a", 100, 60.0), RateLimit("cap", 2, 1.0)
    assert [memory.admit_now([client, cap]) for _ in range(4)] == [-1, -1, 1, 1]
    other = RateLimit("ip:b", 100, 60.0)
    assert memory.admit_now([other, cap]) == 1
    small, clock = limiter()
    three = RateLimit("ip:c", 3, 60.0)
    assert [small.admit_now([three, cap]) for _ in range(3)] == [-1, -1, 1]
    clock.advance(1.0)  # the cap has room again
    assert small.admit_now([three, cap]) == -1, "the call the cap shed was not the client's"
    assert small.admit_now([three, cap]) == 0
    # the client spent only what reached upstream: 98 more fit once the cap has room
    memory2, _ = limiter()
    tight = RateLimit("ip:a", 1, 60.0)
    assert memory2.admit_now([tight, cap]) == -1
    assert memory2.admit_now([tight, cap]) == 0
    assert memory2.admit_now([cap]) == -1, "the call the client rule shed never touched the cap"


@settings(max_examples=200, deadline=None)
@given(
    calls=st.integers(1, 50),
    period=st.sampled_from([1.0, 10.0, 60.0]),
    gaps=st.lists(st.floats(0, 3, allow_nan=False), min_size=1, max_size=300),
)
def test_no_window_ever_admits_more_than_the_burst_plus_its_refill(
    calls: int, period: float, gaps: list[float]
) -> None:
    """The token-bucket bound: in any span of W seconds at most `calls + W / interval`."""
    memory, clock = limiter()
    limit = RateLimit("k", calls, period)
    times = []
    for gap in gaps:
        clock.advance(gap)
        if memory.admit_now([limit]) == -1:
            times.append(clock.now)
    interval = interval_us(limit)
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            span = times[j] - start
            assert j - i + 1 <= calls + span // interval, (i, j)


def test_expired_counters_are_forgotten_and_the_bound_holds() -> None:
    memory, clock = limiter(max_keys=50)
    for n in range(40):
        memory.admit_now([RateLimit(f"ip:{n}", 5, 1.0)])
    clock.advance(2)  # every TAT has passed: none of them carries information any more
    for n in range(40):
        memory.admit_now([RateLimit(f"fresh:{n}", 5, 1.0)])
    assert len(memory) <= 50
    assert memory.evicted_total == 0, "expired counters went first, no live one was evicted"
    for n in range(200):
        memory.admit_now([RateLimit(f"flood:{n}", 5, 60.0)])
    assert len(memory) == 50 and memory.evicted_total > 0


def test_conform_is_the_gcra_rule() -> None:
    limit = RateLimit("k", 3, 3.0)
    interval, tolerance = interval_us(limit), tolerance_us(limit)
    assert (interval, tolerance) == (1_000_000, 2_000_000)
    assert conform(None, 0, interval, tolerance) == 1_000_000
    assert conform(2_000_000, 0, interval, tolerance) == 3_000_000
    assert conform(2_000_001, 0, interval, tolerance) is None
    assert conform(5, 100, interval, tolerance) == 1_000_100, "a past TAT is a full bucket"


# ---- the quota meter ------------------------------------------------------------------------


class _Scripted:
    """An upstream answering each attempt with the next of `failures` (then VALID)."""

    def __init__(self, *failures: UpstreamFailure) -> None:
        self.failures = list(failures)
        self.attempts = 0

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        self.attempts += 1
        if self.failures:
            raise UpstreamError(self.failures.pop(0))
        return UpstreamAssessment(name="projects/1/assessments/a", valid=True, score=0.9)

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        return None

    async def close(self) -> None:
        return None


def _exhausted(pushback: float | None) -> UpstreamFailure:
    """Google out of quota: RESOURCE_EXHAUSTED, with its RetryInfo or without."""
    return UpstreamFailure(
        FailureKind.QUOTA, "RESOURCE_EXHAUSTED", "", reached=False, pushback=pushback
    )


async def test_every_attempt_is_metered_inside_the_retry_layer() -> None:
    now = [6_000.0]
    meter = QuotaMeter(10, clock=lambda: now[0])
    # the first attempt provably never reached Google: retried
    inner = _Scripted(
        UpstreamFailure(FailureKind.TRANSIENT, "UNAVAILABLE", "", reached=False, retryable=True)
    )

    async def no_sleep(_: float) -> None:
        return None

    upstream = ResilientUpstream(
        MeteredUpstream(inner, meter),
        retry=RETRY,
        budget=BUDGET,
        breaker=BREAKER,
        sleep=no_sleep,
    )
    answer = await upstream.create_assessment(AssessmentRequest(token="t"), site_key="k", timeout=5)
    assert answer.valid and inner.attempts == 2
    assert meter.calls_total == 2 and meter.used() == pytest.approx(0.2), "the retry cost quota"
    await upstream.annotate(
        AnnotationRequest(assessment_name="projects/1/assessments/a"), timeout=5
    )
    assert meter.calls_total == 2, "annotations have their own quota"


def test_the_meter_slides_over_the_last_minute_and_warns_from_80_percent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="sidecar.ratelimit.meter")
    now = [6_000.0]  # a minute boundary (100 minutes)
    meter = QuotaMeter(100, clock=lambda: now[0])
    for _ in range(79):
        meter.count()
    meter.warn()
    assert meter.used() == pytest.approx(0.79) and not caplog.records
    meter.count()
    meter.warn()
    assert len(caplog.records) == 1 and "80% of project_quota_per_minute" in caplog.text
    now[0] += 105  # three quarters into the next minute: a quarter of the last still counts
    assert meter.calls_last_minute() == pytest.approx(80 * 0.25)
    now[0] += 30
    assert meter.calls_last_minute() == 0
    meter.count()
    meter.warn()
    assert len(caplog.records) == 1


async def test_inside_googles_retry_info_window_no_attempt_is_made_or_counted() -> None:
    now = [6_000.0]
    meter = QuotaMeter(100, clock=lambda: now[0])
    inner = _Scripted(*[_exhausted(5.0)] * 2)
    metered = MeteredUpstream(inner, meter)
    request = AssessmentRequest(token="t")
    with pytest.raises(UpstreamError):
        await metered.create_assessment(request, site_key="k", timeout=1)
    assert (inner.attempts, meter.calls_total, meter.quiet_left()) == (1, 1, 5.0)
    now[0] += 4
    with pytest.raises(UpstreamError) as refused:
        await metered.create_assessment(request, site_key="k", timeout=1)
    failure = refused.value.failure
    assert (failure.kind, failure.code, failure.reached) == (
        FailureKind.QUOTA,
        "RETRY_AFTER",
        False,
    )
    assert failure.pushback == pytest.approx(1.0)
    assert (inner.attempts, meter.calls_total) == (1, 1), "nothing sent, nothing counted"
    now[0] += 1.5
    with pytest.raises(UpstreamError):
        await metered.create_assessment(request, site_key="k", timeout=1)
    assert inner.attempts == 2, "the window ended: Google is asked again"
    meter.quiet(10 * 3600)
    assert meter.quiet_left() == 3600.0, "capped: the window must end"

    without = _Scripted(*[_exhausted(None)] * 2)
    plain = MeteredUpstream(without, QuotaMeter(100, clock=lambda: now[0]))
    for _ in range(2):
        with pytest.raises(UpstreamError):
            await plain.create_assessment(request, site_key="k", timeout=1)
    assert without.attempts == 2, "no RetryInfo, no window"


def test_without_a_redis_store_the_server_never_imports_redis() -> None:
    """The shield and the meter reach Redis only when the replay store is Redis: importing
    redis-py costs a sidecar on the memory store 14 MiB of RSS for nothing."""
    import subprocess
    import sys

    probe = "import sys, sidecar.server.app; print('redis' in sys.modules)"
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "False", done.stderr
