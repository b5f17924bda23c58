"""Shared limits that fall back to this replica's own when Redis cannot answer.

Rate limits must never make Assess hang or fail: while the shared store is unreachable (or
slower than the shield's timeout) each replica keeps counting on its own, with the same
rules (so a fleet of N admits up to N times a limit until Redis is back), logged once when
it starts and once when it ends, and visible as a gauge. After a failure the shared store is
tried again at most every `retry_after` seconds, so a Redis that hangs costs one call's
timeout a second, not every call's. The replay store is not affected: it keeps failing
closed, as single use requires.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from sidecar.core.ports import Clock, RateLimit, RateLimiter, RateLimiterError
from sidecar.ratelimit.memory import MemoryRateLimiter

log = logging.getLogger(__name__)


class FallbackLimiter:
    """`shared` while it answers, `local` while it does not."""

    def __init__(
        self,
        shared: RateLimiter,
        local: MemoryRateLimiter,
        *,
        retry_after: float = 1.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self._shared = shared
        self._local = local
        self._retry_after = retry_after
        self._clock = clock
        self._retry_at = 0.0
        self._degraded = False
        self.fallbacks_total = 0  # calls decided locally because the shared store failed
        self.errors_total = 0  # shared store failures

    def degraded(self) -> bool:
        """True while limits are this replica's own (the shared store failed last)."""
        return self._degraded

    async def admit(self, limits: Sequence[RateLimit], timeout: float) -> int:
        if self._degraded and self._clock() < self._retry_at:
            self.fallbacks_total += 1
            return self._local.admit_now(limits)
        try:
            refused = await self._shared.admit(limits, timeout)
        except RateLimiterError as error:
            self.errors_total += 1
            self.fallbacks_total += 1
            self._retry_at = self._clock() + self._retry_after
            if not self._degraded:
                self._degraded = True
                log.warning(
                    "rate limits fall back to this replica's own counters: the shared store "
                    "failed (%s); the replay store still fails closed",
                    error,
                )
            return self._local.admit_now(limits)
        if self._degraded:
            self._degraded = False
            log.warning("rate limits are shared through Redis again")
        return refused

    async def close(self) -> None:
        await self._shared.close()
        await self._local.close()
