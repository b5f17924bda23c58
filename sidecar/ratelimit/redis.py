"""Rate limits shared by every replica through the replay store's Redis (standalone,
Sentinel or Cluster, through `sidecar.redisconn.keyspace` like the replay store).

One Lua script does GCRA on every counter of a call at once, on the server's clock (`TIME`,
so replicas' clocks never disagree): each counter is checked, and only when all have room is
the call counted in all of them; a shed call counts nowhere. On a Cluster the counters of one
call may live in different slots (a client's, and the global cap's), so the script runs once
per counter, in order, stopping at the first without room, and the ones before it are given
their call back (TAT one interval earlier): the same outcome, with a moment in between where
a concurrent call could find them one call fuller (so it may be shed, never admitted extra).
Keys expire with their TAT, so Redis holds one small string per client active within its
period.

Why not `limits`' Redis storage: it opens its own client (coredis, or redis-py's cluster
client, which `sidecar.redisconn` avoids for its burst failures), keeps one counter per
script call (so several rules cost as many round trips, and a call shed by a later rule is
still counted by the earlier ones even on a single server), and stamps entries with each
replica's wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from redis.exceptions import RedisError

from sidecar.core.ports import RateLimit, RateLimiterError
from sidecar.ratelimit.gcra import interval_us, tolerance_us
from sidecar.redisconn.keyspace import Keyspace, Script
from sidecar.redisconn.url import Shape

# KEYS: the counters; ARGV: each counter's interval and tolerance, in microseconds.
# 0 when every counter had room (each then counts the call), else the 1-based index of the
# first without room (nothing counted). TATs are integer microseconds of the server's clock.
_ADMIT = Script("""
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
for i = 1, #KEYS do
  local interval = tonumber(ARGV[2 * i - 1])
  local tolerance = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  if tat - now > tolerance then return i end
  tats[i] = tat + interval
end
for i = 1, #KEYS do
  local ttl = math.ceil((tats[i] - now) / 1000)
  redis.call('SET', KEYS[i], string.format('%d', tats[i]), 'PX', ttl)
end
return 0
""")


# KEYS[1] a counter; ARGV[1] its interval in microseconds. Gives back one call counted by
# `_ADMIT` (a later counter of the same call had no room, on a Cluster).
_REFUND = Script("""
local tat = tonumber(redis.call('GET', KEYS[1]))
if not tat then return 0 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
tat = tat - tonumber(ARGV[1])
if tat <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], string.format('%d', tat), 'PX', math.ceil((tat - now) / 1000))
end
return 1
""")


class RedisRateLimiter:
    """GCRA counters in Redis; every failure is a RateLimiterError (the fallback decides)."""

    def __init__(self, keyspace: Keyspace) -> None:
        self._keys = keyspace
        self._per_key = keyspace.shape is Shape.CLUSTER

    async def admit(self, limits: Sequence[RateLimit], timeout: float) -> int:
        try:
            async with asyncio.timeout(timeout):
                if not self._per_key:
                    return await self._admit(limits)
                for index, limit in enumerate(limits):
                    if await self._admit((limit,)) >= 0:
                        for counted in limits[:index]:
                            await self._keys.run(
                                counted.key, _REFUND.call([counted.key], [interval_us(counted)])
                            )
                        return index
                return -1
        except (RedisError, OSError) as error:
            raise RateLimiterError(f"{type(error).__name__}: {error}") from None
        except TimeoutError:
            raise RateLimiterError(f"no answer within {timeout:g} s") from None

    async def _admit(self, limits: Sequence[RateLimit]) -> int:
        keys = [limit.key for limit in limits]
        args: list[int] = []
        for limit in limits:
            args += (interval_us(limit), tolerance_us(limit))
        replies = await self._keys.run(keys[0], _ADMIT.call(keys, args))
        refused = int(replies.values[0])
        return refused - 1 if refused else -1

    async def ping(self) -> None:
        try:
            await self._keys.ping()
        except (RedisError, OSError) as error:
            raise RateLimiterError(f"{type(error).__name__}: {error}") from None

    async def close(self) -> None:
        await self._keys.close()
