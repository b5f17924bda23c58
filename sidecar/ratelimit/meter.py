"""Quota awareness: upstream CreateAssessment calls per minute against the project's quota.

Google allows `project_quota_per_minute` (60,000 by default) per project, shared by every
app and IP of the project; past it every call is RESOURCE_EXHAUSTED. Each attempt sent
upstream is counted here (retries too: each costs quota), per wall-clock minute so that
replicas agree on the buckets; the share used over the last minute (the previous minute
weighted by how much of it is still inside the last 60 s) is a gauge, and from 80% a
warning is logged, at most once a minute. With a Redis replay store each replica adds its
count to a per-minute key once a second and reads the fleet's back (one round trip a
second, none per call), so the share is the fleet's; when Redis cannot answer, this
replica's own count is shown until it can.

Google's quota is the project's, so its `RetryInfo` after a RESOURCE_EXHAUSTED speaks for
every replica: the window it opens (no upstream call until it has passed; the fidelity
issue's rule) is shared through the same once-a-second round trip, so within about two
seconds every replica stops calling, not only the one that was told. Inside the window the
metered upstream answers at once with a not-reached quota failure, `RETRY_AFTER` (UNCHECKED
`quota:retry_after` under `on_quota_exhausted`, the token released, never the breaker: the
retry layer treats quota as neutral), and counts nothing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from sidecar.core.model import (
    AnnotationRequest,
    AssessmentRequest,
    RelatedAccountsPage,
    RelatedAccountsQuery,
    UpstreamAssessment,
)
from sidecar.core.ports import (
    MAX_RETRY_AFTER,
    FailureKind,
    Upstream,
    UpstreamError,
    retry_after_refusal,
)

if TYPE_CHECKING:  # redis is imported only with a Redis store: 14 MiB of RSS otherwise
    from sidecar.redisconn.keyspace import Keyspace

log = logging.getLogger(__name__)

WARN_AT = 0.8
_WARN_EVERY = 60.0
_KEEP = 180  # seconds a minute's key outlives it (the next minute still reads it)

# One flush, all at once (so a script reloaded after NOSCRIPT never counts twice): KEYS this
# minute's count, the previous minute's, the fleet's RetryInfo window. ARGV this replica's
# calls since the last flush, the count's lifetime in seconds, this replica's end of the
# window in microseconds of the unix epoch (0: nothing new) and its length in ms. Returns
# {this minute's count, the previous minute's, the window's end (the later of the two)}, the
# window as text (Lua's numbers would print 1.8e15 in exponent form).
_FLUSH = """
local count = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
local previous = redis.call('GET', KEYS[2]) or '0'
local quiet = redis.call('GET', KEYS[3]) or '0'
if tonumber(ARGV[3]) > tonumber(quiet) then
  redis.call('SET', KEYS[3], ARGV[3], 'PX', ARGV[4])
  quiet = ARGV[3]
end
return {count, previous, quiet}
"""


class QuotaMeter:
    """Counts upstream calls; `used()` is the share of the quota used in the last minute."""

    def __init__(
        self,
        quota_per_minute: int,
        *,
        keyspace: Keyspace | None = None,
        key_prefix: str = "recaptcha-sidecar:limit:",
        interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.quota = quota_per_minute
        self._keys = keyspace
        self._prefix = key_prefix
        self._interval = interval
        self._clock = clock
        self._local: dict[int, int] = {}  # minute → this replica's calls
        self._fleet: dict[int, int] = {}  # minute → every replica's calls (Redis)
        self._fleet_at = -1.0  # when the fleet's counts were read
        self._unsent = 0
        self._warned_at = -_WARN_EVERY
        self._quiet_until = 0.0  # unix time before which upstream must not be called
        self._quiet_unsent = False
        self.calls_total = 0

    def count(self) -> None:
        """One call sent upstream (the hot path: two dict updates)."""
        minute = int(self._clock() // 60)
        self._local[minute] = self._local.get(minute, 0) + 1
        self._unsent += 1
        self.calls_total += 1

    def calls_last_minute(self) -> float:
        """Calls in the last 60 s: this minute's, plus the previous minute's weighted by the
        part of it still inside the last 60 s (the sliding-window-counter estimate)."""
        now = self._clock()
        minute = int(now // 60)
        counts = self._local
        if self._keys is not None and now - self._fleet_at <= 3 * self._interval:
            counts = self._fleet
        elapsed = (now - minute * 60) / 60
        return counts.get(minute, 0) + counts.get(minute - 1, 0) * (1 - elapsed)

    def used(self) -> float:
        return self.calls_last_minute() / self.quota

    def quiet(self, seconds: float) -> None:
        """Google said (RetryInfo) to make no call for `seconds`: this replica stops now, and
        the fleet at the next flushes."""
        until = self._clock() + min(max(0.0, seconds), MAX_RETRY_AFTER)
        if until > self._quiet_until:
            self._quiet_until = until
            self._quiet_unsent = True

    def quiet_left(self) -> float:
        """Seconds left in Google's RetryInfo window, this replica's or the fleet's (0: none)."""
        return max(0.0, self._quiet_until - self._clock())

    async def flush(self) -> None:
        """Add this replica's calls to the fleet's count and read the fleet's back; forget
        minutes no longer needed. Redis failures leave the local count in charge."""
        now = self._clock()
        minute = int(now // 60)
        for old in [m for m in self._local if m < minute - 1]:
            del self._local[old]
        if self._keys is None:
            return
        from redis.exceptions import RedisError

        from sidecar.redisconn.keyspace import Script

        unsent, self._unsent = self._unsent, 0
        current, previous = self._key(minute), self._key(minute - 1)
        quiet, self._quiet_unsent = self._quiet_unsent, False
        left = self._quiet_until - now
        mine = round(self._quiet_until * 1_000_000) if quiet and left > 0 else 0
        try:
            replies = await self._keys.run(
                current,
                Script(_FLUSH).call(
                    [current, previous, self._key("quiet")],
                    [unsent, _KEEP, mine, max(1, math.ceil(left * 1000))],
                ),
            )
        except (RedisError, OSError) as error:
            self._unsent += unsent  # sent with the next flush
            self._quiet_unsent = self._quiet_unsent or quiet
            log.debug("quota count not shared: %s", type(error).__name__)
            return
        count, before, window = replies.values[0]
        self._fleet = {minute: int(count), minute - 1: int(before)}
        self._fleet_at = now
        fleet_until = int(window) / 1_000_000
        if fleet_until > self._quiet_until:
            self._quiet_until = min(fleet_until, now + MAX_RETRY_AFTER)
            log.warning(
                "another replica was told by Google to stop calling for quota: no upstream "
                "call for %.1f s",
                self._quiet_until - now,
            )

    def _key(self, minute: int | str) -> str:
        # One hash slot for every key of the meter, so a Cluster runs the script on one node.
        return f"{self._prefix}{{quota}}:{minute}"

    def warn(self) -> None:
        """A warning from 80% of the quota, at most once a minute."""
        now = self._clock()
        used = self.used()
        if used >= WARN_AT and now - self._warned_at >= _WARN_EVERY:
            self._warned_at = now
            log.warning(
                "upstream calls at %d%% of project_quota_per_minute (%d of %d in the last "
                "minute): past it Google refuses every call of the project",
                round(used * 100),
                round(self.calls_last_minute()),
                self.quota,
            )

    async def run(self) -> None:
        """Flush and warn every `interval` seconds until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
                self.warn()
            except Exception:  # a meter that dies silently is worse than a noisy one
                log.exception("quota meter failed")

    async def close(self) -> None:
        if self._keys is not None:
            await self._keys.close()


class MeteredUpstream:
    """Counts every CreateAssessment attempt into the meter (inside the retry layer, so
    retries count and calls refused inside Google's RetryInfo window do not), notes Google's
    RetryInfo after a quota refusal, and refuses every attempt inside that window (this
    replica's or the fleet's) without calling Google."""

    def __init__(self, inner: Upstream, meter: QuotaMeter) -> None:
        self._inner = inner
        self._meter = meter

    async def create_assessment(
        self, request: AssessmentRequest, *, site_key: str, timeout: float
    ) -> UpstreamAssessment:
        left = self._meter.quiet_left()
        if left > 0:
            raise retry_after_refusal(left)
        self._meter.count()
        try:
            return await self._inner.create_assessment(request, site_key=site_key, timeout=timeout)
        except UpstreamError as error:
            failure = error.failure
            if failure.kind is FailureKind.QUOTA and failure.pushback:
                self._meter.quiet(failure.pushback)
            raise

    async def annotate(self, request: AnnotationRequest, *, timeout: float) -> None:
        await self._inner.annotate(request, timeout=timeout)

    async def search_related_accounts(
        self, query: RelatedAccountsQuery, *, timeout: float
    ) -> RelatedAccountsPage:
        """Not an assessment: neither metered nor held by the assessments' window."""
        return await self._inner.search_related_accounts(query, timeout=timeout)

    async def close(self) -> None:
        await self._inner.close()
