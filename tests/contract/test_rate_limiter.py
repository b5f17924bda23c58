"""The one contract every rate limiter passes: the memory store's and Redis standalone,
Cluster and Sentinel (the replay store's URL forms). A limiter that passes it admits a burst
of exactly `calls`, then the rate, counts a shed call nowhere, and keeps clients apart."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from sidecar.core.ports import RateLimit, RateLimiter
from sidecar.ratelimit import FallbackLimiter, open_rate_limiter
from sidecar.ratelimit.redis import RedisRateLimiter

LIMITERS = ["memory", "redis", "cluster", "sentinel"]
TIMEOUT = 2.0


@pytest.fixture(params=LIMITERS)
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    shape = str(request.param)
    if shape == "memory":
        opened = open_rate_limiter("memory://")
    else:
        fixture = {"redis": "redis_server", "cluster": "redis_cluster"}.get(shape, "redis_sentinel")
        url = request.getfixturevalue(fixture).url
        fallback = open_rate_limiter(url, timeout=TIMEOUT)
        assert isinstance(fallback, FallbackLimiter)
        opened = fallback._shared  # the contract is the shared store's, without the fallback
        assert isinstance(opened, RedisRateLimiter)
    yield opened
    await opened.close()


def key(name: str) -> str:
    # fresh names per test: the Cluster and Sentinel topologies are shared by the run
    return f"contract-{secrets.token_hex(4)}:{name}"


async def test_a_burst_of_exactly_the_limit_then_the_rate(limiter: RateLimiter) -> None:
    limit = RateLimit(key("ip"), 10, 1.0)  # one every 100 ms once the burst is spent
    answers = [await limiter.admit([limit], TIMEOUT) for _ in range(15)]
    assert answers == [-1] * 10 + [0] * 5
    spent = time.monotonic()
    await asyncio.sleep(0.35)
    refilled = 0
    while await limiter.admit([limit], TIMEOUT) == -1:
        refilled += 1
    elapsed = time.monotonic() - spent
    assert 3 <= refilled <= elapsed / 0.1 + 1, (refilled, elapsed)


async def test_a_shed_call_counts_against_no_limit(limiter: RateLimiter) -> None:
    client, cap = RateLimit(key("ip"), 3, 60.0), RateLimit(key("cap"), 2, 60.0)
    assert [await limiter.admit([client, cap], TIMEOUT) for _ in range(3)] == [-1, -1, 1]
    other = RateLimit(key("other"), 5, 60.0)
    assert await limiter.admit([other, cap], TIMEOUT) == 1
    # the client has one call left: the one the cap shed was never its
    assert await limiter.admit([client], TIMEOUT) == -1
    assert await limiter.admit([client], TIMEOUT) == 0
    # and a call shed by the client rule never touched the cap (a fresh cap shows it)
    fresh_cap = RateLimit(key("cap2"), 1, 60.0)
    assert await limiter.admit([client, fresh_cap], TIMEOUT) == 0
    assert await limiter.admit([fresh_cap], TIMEOUT) == -1


async def test_clients_are_counted_apart(limiter: RateLimiter) -> None:
    a, b = RateLimit(key("a"), 2, 60.0), RateLimit(key("b"), 2, 60.0)
    assert [await limiter.admit([a], TIMEOUT) for _ in range(3)] == [-1, -1, 0]
    assert [await limiter.admit([b], TIMEOUT) for _ in range(3)] == [-1, -1, 0]


async def test_concurrent_calls_never_exceed_the_burst(limiter: RateLimiter) -> None:
    limit = RateLimit(key("burst"), 25, 60.0)
    answers = await asyncio.gather(*(limiter.admit([limit], TIMEOUT) for _ in range(100)))
    assert answers.count(-1) == 25
