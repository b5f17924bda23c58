"""A clock the test moves by hand, injected wherever the code reads time."""

from __future__ import annotations


class FakeClock:
    """Monotonic seconds that only change when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
