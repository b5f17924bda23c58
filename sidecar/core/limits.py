"""Load shedding: a bound on requests in flight and on requests waiting for a slot.

Past both bounds a request is refused at once with `Overloaded` (RESOURCE_EXHAUSTED on gRPC),
so a flood costs a small, constant amount of memory per refused call instead of an ever
longer queue that answers too late to matter. A waiting request gives up when its own
deadline would pass.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

from sidecar.core.errors import Overloaded


class Slot:
    """One admitted request. Shared with work that outlives the caller (a single-flight
    leader whose caller gave up), it returns to the limiter when its last holder lets go."""

    __slots__ = ("_holders", "_limiter")

    def __init__(self, limiter: AdmissionLimiter) -> None:
        self._limiter = limiter
        self._holders = 1

    def share(self, task: asyncio.Future[Any]) -> None:
        """Keep the slot taken until `task` is done as well."""
        self._holders += 1
        task.add_done_callback(lambda _: self.release())

    def release(self) -> None:
        self._holders -= 1
        if self._holders == 0:
            self._limiter._release()


class AdmissionLimiter:
    """At most `max_in_flight` admitted at once and `max_queued` waiting, FIFO, none of them
    longer than `max_wait` seconds (nor than its own deadline)."""

    def __init__(
        self,
        max_in_flight: int,
        max_queued: int,
        *,
        max_wait: float | None = None,
        name: str = "",
    ) -> None:
        if max_in_flight < 1 or max_queued < 0:
            raise ValueError("max_in_flight >= 1 and max_queued >= 0")
        self.name = name
        self.max_wait = max_wait
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self._in_flight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self.shed_total = 0

    def in_flight(self) -> int:
        return self._in_flight

    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self, timeout: float | None = None) -> Slot:
        """A slot, after waiting at most `timeout` seconds; `Overloaded` when the queue is
        full or the wait would outlast the caller's deadline."""
        if self.max_wait is not None:
            timeout = self.max_wait if timeout is None else min(timeout, self.max_wait)
        if self._in_flight < self.max_in_flight and not self._waiters:
            self._in_flight += 1
            return Slot(self)
        if len(self._waiters) >= self.max_queued or (timeout is not None and timeout <= 0):
            self.shed_total += 1
            raise Overloaded(f"{self.name or 'sidecar'} overloaded: too many requests in flight")
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (TimeoutError, asyncio.CancelledError) as error:
            if waiter.done() and not waiter.cancelled():
                # The slot was handed over just as we gave up: pass it on.
                self._release()
            else:
                waiter.cancel()
                self._discard(waiter)
            if isinstance(error, TimeoutError):
                self.shed_total += 1
                raise Overloaded(
                    f"{self.name or 'sidecar'} overloaded: no slot before the deadline"
                ) from None
            raise
        return Slot(self)

    @asynccontextmanager
    async def admit(self, timeout: float | None = None) -> AsyncIterator[Slot]:
        slot = await self.acquire(timeout)
        try:
            yield slot
        finally:
            slot.release()

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with suppress(ValueError):
            self._waiters.remove(waiter)

    def _release(self) -> None:
        """Hand the slot to the oldest live waiter, else free it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._in_flight -= 1


T = TypeVar("T")


async def admitted(
    limiter: AdmissionLimiter | None,
    timeout: float | None,
    call: Callable[[float | None], Awaitable[T]],
) -> T:
    """`call(time left)` once `limiter` admits it (at once without a limiter): what is spent
    waiting for a slot comes off the caller's `timeout`."""
    if limiter is None:
        return await call(timeout)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with limiter.admit(timeout):
        if timeout is not None:
            timeout -= loop.time() - started
        return await call(timeout)
