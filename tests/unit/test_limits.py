"""The admission limiter: bounded in flight, bounded queue, FIFO hand-over, deadlines."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from sidecar.core.errors import Overloaded
from sidecar.core.limits import AdmissionLimiter


async def test_admits_up_to_the_bound_then_queues_then_sheds() -> None:
    limiter = AdmissionLimiter(max_in_flight=2, max_queued=1)
    first, second = await limiter.acquire(), await limiter.acquire()
    waiting = asyncio.create_task(limiter.acquire(5.0))
    await asyncio.sleep(0)
    assert (limiter.in_flight(), limiter.queued()) == (2, 1)
    with pytest.raises(Overloaded):
        await limiter.acquire(5.0)
    assert limiter.shed_total == 1
    first.release()
    third = await waiting  # the freed slot went to the waiter
    assert (limiter.in_flight(), limiter.queued()) == (2, 0)
    second.release()
    third.release()
    assert limiter.in_flight() == 0


async def test_a_wait_longer_than_the_deadline_is_shed() -> None:
    limiter = AdmissionLimiter(max_in_flight=1, max_queued=5)
    held = await limiter.acquire()
    with pytest.raises(Overloaded):
        await limiter.acquire(0.01)
    with pytest.raises(Overloaded):
        await limiter.acquire(0.0)
    assert limiter.queued() == 0
    held.release()
    (await limiter.acquire(0.01)).release()


async def test_cancelled_waiter_leaves_the_queue_and_never_leaks_a_slot() -> None:
    limiter = AdmissionLimiter(max_in_flight=1, max_queued=5)
    held = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire(5.0))
    await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert limiter.queued() == 0
    held.release()
    assert limiter.in_flight() == 0


async def test_slot_handed_over_while_its_waiter_is_cancelled_is_passed_on() -> None:
    limiter = AdmissionLimiter(max_in_flight=1, max_queued=5)
    held = await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire(5.0))
    await asyncio.sleep(0)
    held.release()  # hands the slot to the waiter…
    waiter.cancel()  # …which is cancelled before it runs: it passes the slot on, or keeps it
    with contextlib.suppress(asyncio.CancelledError):
        (await waiter).release()
    assert limiter.in_flight() == 0
    (await limiter.acquire(0.0)).release()


async def test_shared_slot_is_held_until_the_work_finishes() -> None:
    limiter = AdmissionLimiter(max_in_flight=1, max_queued=0)
    slot = await limiter.acquire()
    gate = asyncio.Event()
    work = asyncio.create_task(gate.wait())
    slot.share(work)
    slot.release()  # the caller left; the work goes on
    with pytest.raises(Overloaded):
        await limiter.acquire(0.0)
    gate.set()
    await work
    await asyncio.sleep(0)
    (await limiter.acquire(0.0)).release()


def test_bounds_are_validated() -> None:
    with pytest.raises(ValueError):
        AdmissionLimiter(0, 1)
    with pytest.raises(ValueError):
        AdmissionLimiter(1, -1)
