"""The one polling helper: wait, with a bound, for a condition that something else makes true."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    predicate: Callable[[], object | Awaitable[object]],
    timeout: float = 20.0,
    interval: float = 0.05,
) -> None:
    """Poll a plain or async condition until it holds; AssertionError after `timeout`."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        if result:
            return
        if loop.time() >= give_up:
            raise AssertionError(f"condition not met in {timeout} s")
        await asyncio.sleep(interval)


def wait_until(
    predicate: Callable[[], object], timeout: float = 10.0, interval: float = 0.05
) -> bool:
    """The blocking form, for tests without an event loop: True once the condition holds."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
