"""One back-off rule for every retry in the sidecar: the upstream retry layer and the outbox.

Exponential ceilings (`initial * multiplier**n`, capped at `maximum`) with jitter below them.
The retry layer uses full jitter (uniform over `[0, ceiling]`: retries of a brownout spread out
the most); the outbox keeps a floor (`[floor * ceiling, ceiling]`), so a row that just failed
is never tried again at once. The random source is an argument, so tests pin it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential back-off ceilings; `delay` draws the jittered wait below one. A maximum
    below `initial` caps every ceiling at the maximum."""

    initial: float
    maximum: float
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum <= 0:
            raise ValueError("back-off: initial and maximum must be positive")
        if self.multiplier < 1:
            raise ValueError("multiplier must be at least 1")

    def ceiling(self, retry: int) -> float:
        """The largest wait before retry number `retry` (0 for the first)."""
        # The exponent is bounded so a long outage cannot overflow the float; any cap is
        # reached long before 64 retries.
        return min(self.maximum, self.initial * self.multiplier ** min(retry, 64))

    def delay(self, retry: int, *, floor: float = 0.0, rng: random.Random | None = None) -> float:
        """A wait in `[floor * ceiling, ceiling]` before retry number `retry`."""
        ceiling = self.ceiling(retry)
        return (rng or _RANDOM).uniform(floor * ceiling, ceiling)


_RANDOM = random.Random()  # jitter, not secrecy
