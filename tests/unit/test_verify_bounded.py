"""`bounded`, the replay-store time limit (sidecar/core/bounded.py), behaves as
`asyncio.wait_for` does: the value or the exception of the call, TimeoutError when it takes
too long, cancellation passed through; a call that never suspends is answered without arming
a timer."""

from __future__ import annotations

import asyncio

import pytest

from sidecar.core.bounded import bounded


async def immediate(value: int) -> int:
    return value


async def suspends(value: int, times: int = 3) -> int:
    for _ in range(times):
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    return value


async def fails(after_suspending: bool) -> int:
    if after_suspending:
        await asyncio.sleep(0.01)
    raise LookupError("store said no")


async def test_a_call_that_never_suspends_needs_no_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_timer(delay: float | None) -> None:
        raise AssertionError("a timer was armed")

    monkeypatch.setattr(asyncio, "timeout", no_timer)
    assert await bounded(immediate(7), 0.1) == 7


async def test_a_call_that_suspends_gets_its_value() -> None:
    assert await bounded(suspends(8), 1.0) == 8


@pytest.mark.parametrize("after_suspending", [False, True])
async def test_the_call_s_exception_comes_through(after_suspending: bool) -> None:
    with pytest.raises(LookupError, match="store said no"):
        await bounded(fails(after_suspending), 1.0)


async def test_a_slow_call_times_out_and_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def hangs() -> int:
        await asyncio.sleep(0)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError):
        await bounded(hangs(), 0.05)
    assert cancelled.is_set()
    assert loop.time() - started < 5  # bounded, not a timing assertion on the bound itself


async def test_cancelling_the_caller_cancels_the_call() -> None:
    cancelled = asyncio.Event()
    entered = asyncio.Event()

    async def waits() -> int:
        entered.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 0

    task = asyncio.create_task(bounded(waits(), 30.0))
    await entered.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()


async def test_a_call_that_answers_despite_the_timeout_is_heard() -> None:
    async def answers_late() -> int:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            return 5
        return 0

    # As with wait_for and asyncio.timeout: a call that turns its cancellation into an answer
    # is taken at its word.
    assert await bounded(answers_late(), 0.02) == 5
