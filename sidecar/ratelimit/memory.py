"""Rate limits in this process: the memory store's, and every replica's own while Redis is
unreachable. Bounded: counters whose TAT has passed are dropped as calls go by (they carry no
information), and past `max_keys` the least recently used is dropped (counted): a client
forgotten that way gets a fresh bucket, no more than a client from a new address would,
and the global cap still holds them all.

Why not `limits`' memory storage: it keeps every key until a timer thread, woken every 10 ms,
scans them all (measured: 2.6 µs per call with one key, 15 µs with 50,000), has no bound on
the number of keys, and reads the wall clock.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from sidecar.core.ports import RateLimit
from sidecar.ratelimit.gcra import conform, interval_us, tolerance_us

_SWEEP = 2  # expired counters dropped per call: amortised O(1), and enough to keep up


def _monotonic_us() -> int:
    return time.monotonic_ns() // 1000


class MemoryRateLimiter:
    """GCRA counters in an OrderedDict kept in order of last use."""

    def __init__(self, *, max_keys: int = 100_000, clock: Callable[[], int] | None = None):
        if max_keys < 1:
            raise ValueError("max_keys >= 1")
        self._max_keys = max_keys
        self._clock = clock or _monotonic_us
        self._tats: OrderedDict[str, int] = OrderedDict()
        self.evicted_total = 0

    def __len__(self) -> int:
        return len(self._tats)

    async def admit(self, limits: Sequence[RateLimit], timeout: float = 0.0) -> int:
        return self.admit_now(limits)

    def admit_now(self, limits: Sequence[RateLimit]) -> int:
        """`admit` without the coroutine: all or nothing, at once."""
        now = self._clock()
        tats = self._tats
        new: list[int] = []
        for index, limit in enumerate(limits):
            interval = interval_us(limit)
            tat = conform(tats.get(limit.key), now, interval, tolerance_us(limit))
            if tat is None:
                return index
            new.append(tat)
        for limit, tat in zip(limits, new, strict=True):
            tats[limit.key] = tat
            tats.move_to_end(limit.key)
        self._sweep(now)
        return -1

    def _sweep(self, now: int) -> None:
        tats = self._tats
        for _ in range(_SWEEP):
            if not tats:
                break
            key, tat = next(iter(tats.items()))
            if tat > now:
                break
            del tats[key]
        while len(tats) > self._max_keys:
            tats.popitem(last=False)
            self.evicted_total += 1

    async def close(self) -> None:
        self._tats.clear()
