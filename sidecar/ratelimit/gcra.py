"""GCRA (the generic cell rate algorithm, as redis-cell and Envoy's quota services use it):
a rate limit kept as one number per counter, its theoretical arrival time (TAT).

`calls` per `period` becomes an emission interval `period / calls` and a tolerance of
`calls - 1` intervals: up to `calls` at once from a full bucket, then one every interval, so
a client that keeps trying gets exactly the rate. A call conforms when `max(TAT, now) - now`
is within the tolerance; it then moves TAT one interval on. A TAT in the past carries no
information (a full bucket), so a counter can be forgotten as soon as its TAT has passed:
memory is one number per client active within the last period, and Redis keys expire then.

Integer microseconds throughout, in Python and in the Lua script alike, so both count the
same and no float rounding ever admits a call more or refuses the last one of a burst.
"""

from __future__ import annotations

from sidecar.core.ports import RateLimit

MICROS = 1_000_000


def interval_us(limit: RateLimit) -> int:
    """Microseconds between two calls at the limit's rate (at least 1)."""
    return max(1, round(limit.period * MICROS / limit.calls))


def tolerance_us(limit: RateLimit) -> int:
    """How far ahead of now TAT may be for a call to conform: `calls - 1` intervals."""
    return (limit.calls - 1) * interval_us(limit)


def conform(tat: int | None, now: int, interval: int, tolerance: int) -> int | None:
    """The new TAT if a call at `now` conforms, else None."""
    start = now if tat is None or tat < now else tat
    if start - now > tolerance:
        return None
    return start + interval
