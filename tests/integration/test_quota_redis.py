"""The quota shield's Redis parts against a real redis-server the test stops and freezes
(issue 19, items 3 and 4): the rate limits fall back to this replica's own counters while
Redis cannot answer (logged once each way, counted, never slower than the timeout, retried
at most once a second) and are shared again when it is back; the quota meter adds every
replica's calls into one per-minute count, shows its own while Redis is gone, and warns
from 80%."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from sidecar.core.ports import RateLimit
from sidecar.ratelimit import FallbackLimiter, open_rate_limiter
from sidecar.ratelimit.meter import QuotaMeter
from sidecar.redisconn.keyspace import open_keyspace
from tests.support.redis_server import RedisServer

pytestmark = pytest.mark.redis

TIMEOUT = 0.3


def fallback(redis: RedisServer) -> FallbackLimiter:
    limiter = open_rate_limiter(redis.url, timeout=TIMEOUT)
    assert isinstance(limiter, FallbackLimiter)
    return limiter


async def test_limits_fall_back_per_replica_while_redis_is_stopped_and_share_again(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sidecar.ratelimit.fallback")
    one, two = fallback(redis_server), fallback(redis_server)
    limit = RateLimit("fallback-test:ip", 3, 60.0)
    try:
        # shared: two replicas spend one bucket of 3 together
        assert [await one.admit([limit], TIMEOUT) for _ in range(2)] == [-1, -1]
        assert [await two.admit([limit], TIMEOUT) for _ in range(2)] == [-1, 0]
        assert not one.degraded() and one.errors_total == 0

        redis_server.stop()
        started = time.monotonic()
        # per replica: each has its own full bucket of 3, the same rule
        assert [await one.admit([limit], TIMEOUT) for _ in range(4)] == [-1, -1, -1, 0]
        assert [await two.admit([limit], TIMEOUT) for _ in range(4)] == [-1, -1, -1, 0]
        assert time.monotonic() - started < 2 * TIMEOUT, "a stopped Redis costs no waiting"
        assert one.degraded() and two.degraded()
        assert one.errors_total == 1, "tried again at most once a second, not per call"
        assert one.fallbacks_total == 4
        fell_back = [r for r in caplog.records if "fall back" in r.getMessage()]
        assert len(fell_back) == 2, "logged once per replica"
        assert "replay store still fails closed" in fell_back[0].getMessage()

        redis_server.start()  # empty: the shared bucket is full again
        await asyncio.sleep(1.05)  # past retry_after
        assert await one.admit([limit], TIMEOUT) == -1
        assert not one.degraded()
        assert any("shared through Redis again" in r.getMessage() for r in caplog.records)
        assert [await two.admit([limit], TIMEOUT) for _ in range(3)] == [-1, -1, 0]
    finally:
        await one.close()
        await two.close()


async def test_a_hung_redis_costs_one_timeout_a_second_not_one_per_call(
    redis_server: RedisServer,
) -> None:
    limiter = fallback(redis_server)
    limit = RateLimit("fallback-test:hung", 100, 1.0)
    try:
        assert await limiter.admit([limit], TIMEOUT) == -1
        redis_server.freeze()
        started = time.monotonic()
        first = await limiter.admit([limit], TIMEOUT)
        waited = time.monotonic() - started
        assert first == -1 and limiter.degraded()
        assert waited < TIMEOUT + 0.5, waited
        started = time.monotonic()
        for _ in range(50):
            await limiter.admit([limit], TIMEOUT)
        assert time.monotonic() - started < TIMEOUT, "the calls after it never waited"
        assert limiter.errors_total == 1
    finally:
        redis_server.thaw()
        await limiter.close()


async def test_the_quota_meter_counts_the_fleet_and_its_own_calls_without_redis(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="sidecar.ratelimit.meter")
    now = [1_800_000_030.0]  # the middle of a minute
    meters = [
        QuotaMeter(
            100,
            keyspace=open_keyspace(redis_server.url, pool_size=1, timeout=TIMEOUT),
            key_prefix="meter-test:",
            clock=lambda: now[0],
        )
        for _ in range(2)
    ]
    try:
        for _ in range(50):
            meters[0].count()
        for _ in range(35):
            meters[1].count()
        assert meters[0].used() == pytest.approx(0.5), "before a flush: its own calls"
        for meter in meters:
            await meter.flush()
        await meters[0].flush()  # reads the other's back
        assert meters[0].used() == pytest.approx(0.85) and meters[1].used() >= 0.5
        meters[0].warn()
        warned = [r.getMessage() for r in caplog.records]
        assert len(warned) == 1 and "85% of project_quota_per_minute (85 of 100" in warned[0]
        meters[0].warn()
        assert len(caplog.records) == 1, "at most once a minute"

        # the next minute, half way: the previous minute weighs half
        now[0] += 60
        meters[0].count()
        await meters[0].flush()
        assert meters[0].used() == pytest.approx((1 + 85 * 0.5) / 100)

        redis_server.stop()
        for _ in range(9):
            meters[0].count()
        await meters[0].flush()  # fails: the unsent calls wait for the next flush
        now[0] += 5  # the fleet's figures are stale after 3 intervals: its own count then
        assert meters[0].used() == pytest.approx((10 + 50 * (1 - 35 / 60)) / 100)
        redis_server.start()
        await meters[0].flush()
        current = redis_server.cli("GET", f"meter-test:{{quota}}:{int(now[0] // 60)}")
        assert current.strip() == "9", "the calls counted while Redis was down were sent"
    finally:
        for meter in meters:
            await meter.close()


async def test_googles_retry_info_window_reaches_every_replica_through_redis(
    redis_server: RedisServer,
) -> None:
    now = [1_800_000_000.0]

    def meter() -> QuotaMeter:
        return QuotaMeter(
            100,
            keyspace=open_keyspace(redis_server.url, pool_size=1, timeout=TIMEOUT),
            key_prefix="quiet-test:",
            clock=lambda: now[0],
        )

    told, other, late = meter(), meter(), meter()
    try:
        told.quiet(30.0)
        await other.flush()
        assert other.quiet_left() == 0, "not before the told replica has shared it"
        await told.flush()
        await other.flush()
        assert other.quiet_left() == pytest.approx(30.0)
        told.quiet(5.0)  # a shorter window later never shortens the fleet's
        await told.flush()
        await late.flush()
        assert late.quiet_left() == pytest.approx(30.0)
        ttl = int(redis_server.cli("PTTL", "quiet-test:{quota}:quiet"))
        assert 0 < ttl <= 30_000, "the key goes with the window"
        now[0] += 31
        assert told.quiet_left() == other.quiet_left() == 0
    finally:
        for m in (told, other, late):
            await m.close()
