"""The one polling helper, in three shapes: wait, with a bound, for a condition something else
makes true. `eventually` fails the test; `arrives` and `wait_until` answer whether it held.
Plain and async predicates alike."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable

INTERVAL = 0.02


async def arrives(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = INTERVAL
) -> bool:
    """True once `predicate()` (or what it awaits to) is truthy; False after `timeout`."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return True
        if loop.time() >= give_up:
            return False
        await asyncio.sleep(interval)


async def eventually(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = INTERVAL
) -> None:
    """Wait for the condition; AssertionError when it never holds within `timeout`."""
    if not await arrives(predicate, timeout, interval):
        raise AssertionError(f"condition not met in {timeout} s")


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    """The blocking form, for tests (and helpers) without an event loop."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
