"""Health follows the replay store: a sidecar that cannot reach its store answers every token
UNCHECKED, so readiness probes and balancers should send the traffic elsewhere."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from sidecar.core.ports import ReplayStore, ReplayStoreError

log = logging.getLogger(__name__)

Report = Callable[[bool], Awaitable[None]]


async def store_reachable(store: ReplayStore, timeout: float) -> bool:
    """One bounded ping. `asyncio.timeout`, not `wait_for`: on Python 3.11 `wait_for` can
    swallow a cancellation that arrives as the ping completes, and the watcher must stop."""
    try:
        async with asyncio.timeout(timeout):
            await store.ping()
    except (ReplayStoreError, TimeoutError, OSError):
        return False
    return True


async def check_store(
    store: ReplayStore, report: Report, *, timeout: float, last: bool | None = None
) -> bool:
    """Ping once; `report(reachable)` (and a log line) when it differs from `last`."""
    reachable = await store_reachable(store, timeout)
    if reachable is not last:
        if reachable:
            log.info("replay store reachable")
        else:
            log.warning("replay store unreachable: health NOT_SERVING")
        await report(reachable)
    return reachable


async def watch_store(
    store: ReplayStore, report: Report, *, interval: float, timeout: float, last: bool
) -> None:
    """Ping the store every `interval` seconds until cancelled, reporting every change from
    `last` (what the first check, made at start, reported)."""
    while True:
        await asyncio.sleep(interval)
        last = await check_store(store, report, timeout=timeout, last=last)
