"""The retry budget, in the style of Finagle's `RetryBudget` / gRPC A6 retry throttling: every
request deposits `ratio` of a retry, a floor refills by time, a retry withdraws one, so a
brownout cannot multiply the load on upstream."""

from __future__ import annotations

from dataclasses import dataclass

from sidecar.core.ports import Clock


@dataclass(frozen=True, slots=True)
class BudgetSettings:
    """Retries may be at most `ratio` of requests plus `min_per_second`; the bucket banks up
    to `window` seconds of the floor (at least one retry) and starts full."""

    ratio: float
    min_per_second: float
    window: float = 10.0  # no setting: the floor banks this many seconds

    def __post_init__(self) -> None:
        if self.ratio < 0 or self.min_per_second < 0 or self.window <= 0:
            raise ValueError("retry budget: ratio and min_per_second >= 0, window > 0")

    @property
    def capacity(self) -> float:
        return max(1.0, self.min_per_second * self.window)

    def bound(self, requests: int, seconds: float) -> float:
        """The most retries this budget can allow for `requests` over `seconds`."""
        return self.capacity + self.ratio * requests + self.min_per_second * seconds


class RetryBudget:
    """A token bucket: each request deposits `ratio`, time deposits `min_per_second`, each
    retry withdraws 1. Capped, so a long quiet spell cannot bank a retry storm."""

    def __init__(self, settings: BudgetSettings, *, clock: Clock) -> None:
        self._settings = settings
        self._clock = clock
        self._tokens = settings.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = max(0.0, now - self._stamp)
        self._stamp = now
        if elapsed and self._settings.min_per_second:
            self._tokens = min(
                self._settings.capacity, self._tokens + elapsed * self._settings.min_per_second
            )

    def deposit(self) -> None:
        """One request arrived."""
        self._refill()
        self._tokens = min(self._settings.capacity, self._tokens + self._settings.ratio)

    def try_withdraw(self) -> bool:
        """Pay for one retry; False when the budget is spent."""
        self._refill()
        if self._tokens >= 1.0 - 1e-9:  # ten deposits of 0.2 make one retry, float or not
            self._tokens -= 1.0
            return True
        return False

    def tokens(self) -> float:
        """Retries the budget would allow right now."""
        self._refill()
        return self._tokens

    def level(self) -> float:
        """Share of the budget left, 0.0 … 1.0, as of the last request: a plain read, safe
        from the metrics exporter's thread."""
        return self._tokens / self._settings.capacity if self._settings.capacity else 0.0
