"""Google's RetryInfo window after RESOURCE_EXHAUSTED: until it has passed, no upstream call.

When Google refuses a call for quota and says when to come back (`RetryInfo.retry_delay`),
every call made before then would burn quota, cost latency and be refused again. Inside the
window the call is answered at once with a not-reached `RETRY_AFTER` quota failure: UNCHECKED
`quota:retry_after` under the action's `on_quota_exhausted` (closed by default), the token
released. The window never involves the circuit breaker (quota says nothing about Google's
availability, so exhausting quota can never open it) and is kept per RPC (Assess and Annotate
have separate quotas). A RESOURCE_EXHAUSTED without RetryInfo opens no window.

The quota shield (per-client limits, the global cap) builds on this: `remaining()` is what it
reads to know that upstream is closed to everyone.
"""

from __future__ import annotations

import time

from sidecar.core.ports import (
    MAX_RETRY_AFTER,
    RETRY_AFTER,
    Clock,
    FailureKind,
    UpstreamError,
    UpstreamFailure,
    retry_after_refusal,
)

MAX_WINDOW = MAX_RETRY_AFTER


class RetryAfterWindow:
    """One RPC's window; `note` every failure, ask `refusal` before every call."""

    __slots__ = ("_clock", "_until")

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._until = 0.0

    def note(self, failure: UpstreamFailure) -> None:
        """Open (or extend) the window when Google refused for quota and said how long."""
        if failure.kind is FailureKind.QUOTA and failure.pushback and failure.code != RETRY_AFTER:
            self._until = max(self._until, self._clock() + min(failure.pushback, MAX_WINDOW))

    def remaining(self) -> float:
        """Seconds until upstream may be called again (0 when it may now)."""
        return max(0.0, self._until - self._clock())

    def refusal(self) -> UpstreamError | None:
        """The failure to answer with while the window lasts, else None."""
        left = self.remaining()
        if left <= 0:
            return None
        return retry_after_refusal(left)
