"""What the flusher, the sink and the gauges need of an outbox, whichever holds the queue:
the SQLite file of one pod (`outbox.Outbox`) or a Redis stream every replica shares
(`streams.RedisOutbox`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol

from sidecar.core.model import AnnotationRequest
from sidecar.outbox.store import Retry, Row


class OutboxQueue(Protocol):
    """Append durably, lease what is due, settle each lease; plus the counters telemetry
    reads (plain methods, no I/O)."""

    trigger_after: int  # appends that wake the flusher at once
    moved_aside: int  # damaged files moved aside at open (the SQLite file; 0 for Redis)

    async def append(self, request: AnnotationRequest, *, lease: bool = False) -> int:
        """Store one annotation durably and return its id; with `lease` it is the caller's
        to send at once (`settle` or `release_soon` it). `Overloaded` when it cannot."""
        ...

    def read(self, payload: bytes) -> AnnotationRequest:
        """A leased row's payload → the annotation: `UnsealableRow` when no configured key
        opens it, ValueError (and friends) when it is not a record at all."""
        ...

    async def lease_due(self, limit: int, *, after_id: int | None = None) -> list[Row]:
        """Up to `limit` annotations due now, leased to the caller; with `after_id`, every
        one of this process past that id whatever its schedule (a drain at shutdown)."""
        ...

    async def settle(
        self,
        delivered: Iterable[int] = (),
        retries: Iterable[Retry] = (),
        dead: Iterable[tuple[int, str]] = (),
    ) -> None:
        """Remove what upstream accepted, reschedule failures, bury poison."""
        ...

    def release_soon(self, ids: Sequence[int]) -> None:
        """Give leases back untouched, without waiting."""
        ...

    async def wait_trigger(self, timeout: float) -> None:
        """Return after `trigger_after` appends, a `kick`, or `timeout` seconds."""
        ...

    def kick(self) -> None: ...

    def depth(self) -> int:
        """Annotations queued and not yet accepted upstream."""
        ...

    def local_depth(self) -> int:
        """Those of them this process is to deliver (what a drain at shutdown waits for)."""
        ...

    def oldest_age(self) -> float: ...

    def dead_letter_count(self) -> int: ...

    async def close(self) -> None: ...
